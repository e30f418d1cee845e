"""The web console in a real browser: Debian's chromium driven by Playwright, against a real
``roboflow ui`` on 127.0.0.1 while real ``roboflow run`` pods convert a batch with a corrupt
recording. Screenshots of every page go to the test's temporary directory.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.roboflow_cli._console import CHROMIUM, NO_CHROMIUM, UiServer, cli_process, stop
from tests.roboflow_distributed._batch_helpers import config_text, corrupt, recordings, wait_for

from roboflow_distributed import keys
from roboflow_distributed.records import UnitStatus, WorkUnit, read
from roboflow_distributed.store import Store, open_store

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason=NO_CHROMIUM)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    opened = context.new_page()
    opened.on("dialog", lambda dialog: dialog.accept())  # the confirmations of retry/cancel/delete
    errors: list[str] = []
    opened.on("pageerror", lambda err: errors.append(str(err)))
    try:
        yield opened
    finally:
        context.close()
    assert not errors, f"JavaScript errors: {errors}"


def _unit(store: Store, ref: str) -> WorkUnit:
    batch, unit = ref.split("/")
    found = read(store, keys.unit(batch, unit), WorkUnit)
    assert found is not None
    return found.record


def _submit(server: UiServer, root: Path, count: int) -> tuple[str, Path]:
    recs = recordings(root / "in", count, base=1.0)
    bad = corrupt(recs[0].path, root / "in" / "rec_zz_broken.mcap")
    body = {
        "sources": [str(r.path) for r in recs] + [str(bad)],
        "config": config_text(),
        "output": str(root / "dataset"),
        "name": "browser-batch",
    }
    status, submitted = server.json("POST", "/api/v1/batches", body)
    assert status == 201, submitted
    return submitted["batch"]["id"], bad


def _shot(page: Any, shots: Path, name: str) -> None:
    path = shots / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 10_000


def _check_viewer(page: Any, server: UiServer, batch: str, shots: Path) -> None:
    page.goto(f"{server.url}/batches/{batch}")
    page.click("text=Open the episode viewer")
    page.wait_for_function("window.roboflowViewer && window.roboflowViewer.ready")
    page.wait_for_function("document.querySelector('video').readyState >= 2")
    page.click("#play")
    page.wait_for_function("document.querySelector('video').currentTime > 0.15", timeout=15_000)
    assert page.evaluate("document.querySelector('video').error") is None
    assert page.inner_text("#clock") != "0.00 s · frame 0"  # the cursor follows the video
    plots = page.eval_on_selector_all(".plot", "els => els.map(e => e.dataset.feature)")
    assert sorted(plots) == ["action", "observation.state"]
    inked = page.evaluate(
        """() => [...document.querySelectorAll('.plot canvas')].map(c => {
               const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
               let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++; return n; })"""
    )
    assert len(inked) == 2 and all(n > 1000 for n in inked), inked  # lines were drawn
    _shot(page, shots, "viewer")


def test_console_follows_a_batch_and_acts_on_its_jobs(page: Any, tmp_path: Path) -> None:
    shots = tmp_path / "screenshots"
    shots.mkdir()
    store_url = f"sqlite://{tmp_path / 'state.db'}"
    server = UiServer(store_url, tmp_path)
    store = open_store(store_url)
    pods = []
    try:
        batch, bad = _submit(server, tmp_path, 10)
        # no finalizer yet: the batch stays running after its jobs end, so retry is still allowed
        pods.append(
            cli_process(["run", "--role", "scanner", "--pod-id", "s1"], store_url, tmp_path / "s1.log")
        )
        page.goto(server.url)
        row = page.locator("tr", has=page.locator(f"a[href='/batches/{batch}']"))
        row.locator(".progress-text", has_text="0/11 jobs").wait_for(timeout=60_000)

        # cancel a job before any worker runs
        pending = server.json("GET", f"/api/v1/jobs?batch={batch}&status=pending&limit=500")[1]["items"]
        victim = next(j["ref"] for j in reversed(pending) if "broken" not in j["source"])
        page.goto(f"{server.url}/jobs/{victim}")
        page.click("#cancel")
        wait_for(lambda: _unit(store, victim).status is UnitStatus.CANCELLED, 30, "the job to be cancelled")
        page.wait_for_selector("#toast.show")
        _shot(page, shots, "cancelled-job")

        # the dashboard follows the batch while a worker converts it
        page.goto(server.url)
        pods.append(
            cli_process(["run", "--role", "worker", "--pod-id", "w1"], store_url, tmp_path / "w1.log")
        )
        seen: list[str] = []

        def progress() -> bool:
            text = row.locator(".progress-text").inner_text()
            if not seen or seen[-1] != text:
                seen.append(text)
            # a worker converts a 1 s recording in ~0.2 s: the ten may all end between two of the
            # page's 2 s refreshes, so one change of the count (in place) is what can be asked
            return len(seen) >= 2

        wait_for(progress, 180, "the dashboard's progress to move")
        assert all(t.endswith("/11 jobs") for t in seen), seen  # updated in place, no reload
        assert [int(t.split("/")[0]) for t in seen] == sorted(int(t.split("/")[0]) for t in seen)
        _shot(page, shots, "dashboard")

        # search by part of the source name
        page.goto(f"{server.url}/jobs")
        page.fill("#job-search", "zz_brok")
        page.wait_for_function(
            "[...document.querySelectorAll('tr.job-row')].length === 1 && "
            "document.querySelector('tr.job-row a').textContent.includes('rec_zz_broken.mcap')"
        )
        _shot(page, shots, "search")

        # the dead job: its reason and log lines, then retry
        wait_for(
            lambda: bool(server.json("GET", f"/api/v1/jobs?batch={batch}&status=dead")[1]["items"]),
            120,
            "the corrupt recording's job to die",
        )
        page.click("tr.job-row a")
        page.wait_for_selector("#job-error")
        assert "rec_zz_broken.mcap" in page.inner_text("#job-error")
        log = page.inner_text("#job-log")
        assert "ERROR" in log and "converting" in log and str(bad) in log
        _shot(page, shots, "dead-job")
        dead = page.url.split("/jobs/", 1)[1]
        assert _unit(store, dead).claims == 1
        page.click("#retry")
        wait_for(
            lambda: (u := _unit(store, dead)).status is UnitStatus.PENDING or u.claims >= 2,
            30,
            "the retried job to be queued again",
        )
        wait_for(lambda: _unit(store, dead).claims >= 2, 60, "the retried job to be claimed again")

        # let the rest finish, then merge, and look at the episodes
        wait_for(
            lambda: all(
                j["status"] in ("complete", "dead", "cancelled")
                for j in server.json("GET", f"/api/v1/jobs?batch={batch}&limit=500")[1]["items"]
            ),
            240,
            "every job to finish",
        )
        pods.append(
            cli_process(["run", "--role", "finalizer", "--pod-id", "f1"], store_url, tmp_path / "f1.log")
        )
        wait_for(
            lambda: server.json("GET", f"/api/v1/batches/{batch}")[1]["batch"]["phase"] == "complete",
            120,
            "merge",
        )
        page.goto(f"{server.url}/batches/{batch}")
        assert "9/11 complete" in page.inner_text(".progress-text")  # one dead, one cancelled
        _shot(page, shots, "batch")
        _check_viewer(page, server, batch, shots)
        # delete the cancelled job (confirmed), which takes the page back to its batch
        page.goto(f"{server.url}/jobs/{victim}")
        page.click("#delete")
        page.wait_for_url(f"{server.url}/batches/{batch}")
        assert read(store, keys.unit(*victim.split("/")), WorkUnit) is None
        page.goto(f"{server.url}/workers")
        assert "w1" in page.inner_text("#workers-live")
        _shot(page, shots, "workers")
    finally:
        for pod in pods:
            stop(pod)
        store.close()
        server.stop()
    assert {p.name for p in shots.iterdir()} >= {"dashboard.png", "dead-job.png", "viewer.png"}


@pytest.mark.etcd
def test_console_works_on_an_etcd_store(page: Any, tmp_path: Path, etcd_clean: Any) -> None:
    shots = tmp_path / "screenshots"
    shots.mkdir()
    server = UiServer(etcd_clean.url, tmp_path)
    pod = None
    try:
        batch, _ = _submit(server, tmp_path, 2)
        pod = cli_process(
            ["run", "--role", "all", "--pod-id", "e1", "--exit-when-idle"],
            etcd_clean.url,
            tmp_path / "e1.log",
        )
        assert pod.wait(240) == 0, (tmp_path / "e1.log").read_text()
        page.goto(server.url)
        row = page.locator("tr", has=page.locator(f"a[href='/batches/{batch}']"))
        row.wait_for()
        assert "complete" in row.inner_text() and "2/3 jobs" in row.inner_text()
        page.goto(f"{server.url}/jobs?q=broken")
        page.wait_for_selector("tr.job-row")
        page.click("tr.job-row a")
        assert "rec_zz_broken.mcap" in page.inner_text("#job-error") and "ERROR" in page.inner_text(
            "#job-log"
        )
        _check_viewer(page, server, batch, shots)
    finally:
        if pod is not None:
            stop(pod)
        server.stop()
