"""The distributed commands end to end through the CLI, on a real SQLite store."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from tests.roboflow_distributed._batch_helpers import FAST_ENV, config_text, corrupt, recordings
from tests.roboflow_pipeline.test_convert import verify_dataset

from roboflow_cli.main import cli
from roboflow_distributed import keys
from roboflow_distributed.records import Heartbeat, encode
from roboflow_distributed.store import open_store


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    store = f"sqlite://{tmp_path / 'state.db'}"
    monkeypatch.setenv("ROBOFLOW_STORE", store)
    for key, value in FAST_ENV.items():
        monkeypatch.setenv(key, value)
    return store


def _json(runner: CliRunner, args: list[str]) -> object:
    result = runner.invoke(cli, args)
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_submit_run_and_inspect_a_batch(tmp_path: Path, env: str) -> None:
    runner = CliRunner()
    recs = recordings(tmp_path / "in", 2, base=0.3)
    bad = corrupt(recs[0].path, tmp_path / "in" / "rec_zz_bad.mcap")
    config = tmp_path / "c.toml"
    config.write_text(config_text())
    glob = str(tmp_path / "in" / "*.mcap")
    dry = _json(
        runner, ["submit", glob, "-c", str(config), "-o", str(tmp_path / "ds"), "--dry-run", "--json"]
    )
    assert dry == {"recordings": [str(r.path) for r in recs] + [str(bad)]}
    submitted = runner.invoke(cli, ["submit", glob, "-c", str(config), "-o", str(tmp_path / "ds")])
    assert submitted.exit_code == 0, submitted.output
    batch = submitted.output.strip()
    listed = _json(runner, ["batch", "list", "--json"])
    assert [b["id"] for b in listed] == [batch] and listed[0]["phase"] == "pending"

    ran = runner.invoke(cli, ["run", "--role", "all", "--pod-id", "p1", "--exit-when-idle"])
    assert ran.exit_code == 0, ran.output
    assert "pod p1: 2 job(s) converted" in ran.output  # the corrupt one is dead

    got = _json(runner, ["batch", "get", batch, "--json"])
    assert got["batch"]["phase"] == "complete" and got["batch"]["jobs"]["dead"] == 1
    assert got["dataset"]["total_episodes"] == 2 and got["frames_done"] == got["batch"]["frames"] > 0
    text = runner.invoke(cli, ["batch", "get", batch]).output
    assert "2 episodes" in text and "rec_zz_bad.mcap" in text
    assert "v3.0: 2 episodes" in text and "cameras: observation.images.cam_high" in text
    dead = _json(runner, ["jobs", "list", "--status", "dead", "--json"])
    assert [d["source"] for d in dead] == [str(bad)]
    job = _json(runner, ["jobs", "get", dead[0]["id"][:8], "--json"])
    assert job["job"]["status"] == "dead" and "rec_zz_bad.mcap" in job["job"]["error"]
    assert [a["error"] for a in job["attempts"]] == [job["job"]["error"]]
    logs = runner.invoke(cli, ["jobs", "logs", dead[0]["ref"]])
    assert logs.exit_code == 0 and "claim 1 on p1" in logs.output and "ERROR" in logs.output, logs.output
    found = _json(runner, ["jobs", "list", "--search", "ZZ_BAD", "--json"])
    assert [j["ref"] for j in found] == [dead[0]["ref"]]
    retried = runner.invoke(cli, ["jobs", "retry", f"{batch}/{dead[0]['id']}"])
    assert retried.exit_code == 1 and "its batch is complete" in retried.output
    verify_dataset(tmp_path / "ds", recs)
    deleted = runner.invoke(cli, ["jobs", "delete", dead[0]["ref"]])
    assert deleted.exit_code == 0 and _json(runner, ["jobs", "list", "--status", "dead", "--json"]) == []

    health = _json(runner, ["health", "--json"])
    assert health["healthy"] is True and health["batches"] == {"complete": 1}
    assert health["pods"] == [], "a stopped pod removes its heartbeat"


def test_health_calls_a_pod_alive_when_its_heartbeat_changes_whatever_its_clock(env: str) -> None:
    store = open_store(env)
    stop = threading.Event()

    def beat(pod: str, at: float) -> None:
        record = Heartbeat(pod=pod, roles=["worker"], at=at, started_at=at)
        store.txn(puts={keys.heartbeat(pod): encode(record)})

    def keep_beating() -> None:  # a pod whose clock is an hour ahead of this machine's
        while not stop.wait(0.05):
            beat("ahead", time.time() + 3600)

    beat("frozen", time.time())  # fresh by this machine's clock, but it never beats again
    beat("ahead", time.time() + 3600)
    beater = threading.Thread(target=keep_beating)
    beater.start()
    try:
        report = _json(CliRunner(), ["health", "--json"])
        text = CliRunner().invoke(cli, ["health"]).output
    finally:
        stop.set()
        beater.join()
        store.close()
    assert isinstance(report, dict)
    assert {p["pod"]: p["alive"] for p in report["pods"]} == {"ahead": True, "frozen": False}
    assert "1 alive, 1 stale" in text and "STALE" in text


def test_cancel_and_errors_name_what_is_wrong(tmp_path: Path, env: str) -> None:
    runner = CliRunner()
    recs = recordings(tmp_path / "in", 1, base=0.3)
    config = tmp_path / "c.toml"
    config.write_text(config_text())
    batch = runner.invoke(cli, ["submit", str(recs[0].path), "-c", str(config), "-o", str(tmp_path / "ds")])
    batch_id = batch.output.strip()
    cancelled = runner.invoke(cli, ["batch", "cancel", batch_id])
    assert cancelled.exit_code == 0 and "cancelled" in cancelled.output
    again = runner.invoke(cli, ["batch", "cancel", batch_id])
    assert again.exit_code == 1 and "already cancelled" in again.output
    running = runner.invoke(cli, ["batch", "delete", "nope"])
    assert running.exit_code == 1 and "no such batch" in running.output
    assert runner.invoke(cli, ["batch", "delete", batch_id]).exit_code == 0
    assert _json(runner, ["batch", "list", "--json"]) == []
    missing = runner.invoke(cli, ["batch", "get", "nope"])
    assert missing.exit_code == 1 and "no such batch" in missing.output
    bad_store = runner.invoke(cli, ["batch", "list", "--store", "redis://x"])
    assert bad_store.exit_code == 1 and "sqlite://" in bad_store.output
    bad_config = tmp_path / "bad.toml"
    bad_config.write_text(config_text().replace("fps = 30", "fps = 0"))
    rejected = runner.invoke(cli, ["submit", str(recs[0].path), "-c", str(bad_config), "-o", "x"])
    assert rejected.exit_code == 1 and "dataset.fps" in rejected.output and "bad.toml" in rejected.output
    unhealthy = runner.invoke(cli, ["health", "--store", "etcd://127.0.0.1:9"])
    assert unhealthy.exit_code == 1 and "unhealthy" in unhealthy.output


def test_help_explains_the_distributed_commands() -> None:
    result = CliRunner().invoke(cli, ["--help"])
    for command in ("submit", "batch", "jobs", "run", "health"):
        assert command in result.output
    run_help = CliRunner().invoke(cli, ["run", "--help"]).output
    assert "SIGTERM" in run_help and "--role" in run_help and "ROBOFLOW_STORE" in run_help


def test_batch_watch_follows_a_batch_to_its_end(tmp_path: Path, env: str) -> None:
    from tests.roboflow_distributed._batch_helpers import PodThread

    from roboflow_distributed.batches import cancel_batch, get_batch, submit_batch

    recs = recordings(tmp_path / "in", 3, base=0.3)
    bad = corrupt(recs[0].path, tmp_path / "in" / "rec_zz_bad.mcap")
    store = open_store(env)
    pod = None
    try:
        spec = submit_batch(store, [str(tmp_path / "in" / "*.mcap")], config_text(), str(tmp_path / "ds"))
        pod = PodThread(store, ["all"], "p1", exit_when_idle=False).start()
        watched = CliRunner().invoke(cli, ["batch", "watch", spec.id, "--interval", "0.1"])
        assert watched.exit_code == 0, watched.output
        lines = watched.output.splitlines()
        progress = [line for line in lines if " jobs" in line and " fps ETA " in line]
        assert progress and progress[-1].startswith("complete [" + "#" * 24 + "] 4/4 jobs (1 dead)")
        assert any("4/4 jobs" not in line for line in progress[:-1]), "the watch saw the batch move"
        dead = [line for line in lines if line.startswith("dead: ")]
        assert len(dead) == 1 and str(bad) in dead[0], "the failure is reported once, with its source"
        frames = get_batch(store, spec.id).status.record.frames
        assert frames > 0 and lines[-1] == f"batch {spec.id} complete: 3 episodes, {frames} frames"

        cancelled = submit_batch(store, [str(recs[1].path)], config_text(), str(tmp_path / "ds2"))
        pod.stop()
        pod = None
        cancel_batch(store, cancelled.id)
        watched = CliRunner().invoke(cli, ["batch", "watch", cancelled.id])
        assert watched.exit_code == 1 and watched.output.splitlines()[-1].startswith(
            f"batch {cancelled.id} cancelled"
        )
    finally:
        if pod is not None:
            pod.stop()
        store.close()
