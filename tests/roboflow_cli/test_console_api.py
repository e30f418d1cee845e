"""``roboflow ui``'s REST API against a real server on 127.0.0.1 and a real SQLite store.

One batch (two good recordings and a corrupt one) is converted by a real pod first; the server
runs with a token, so the token rules, errors, range requests and secrets are checked on it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import checks
from tests._servers import free_port
from tests.roboflow_cli._console import UiServer, cli_process
from tests.roboflow_distributed._batch_helpers import (
    PodThread,
    config_text,
    corrupt,
    recordings,
    wait_finished,
)

from roboflow_cli.console.security import check_bind
from roboflow_core import ConfigError
from roboflow_distributed.batches import submit_batch
from roboflow_distributed.store import SqliteStore

TOKEN = "tok-for-the-console-test"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
SECRET = "console-secret-never-shown"


@dataclass(frozen=True)
class Console:
    server: UiServer
    batch: str
    dead: str
    output: Path


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    root = tmp_path_factory.mktemp("console-api")
    recs = recordings(root / "in", 2, base=0.3)
    bad = corrupt(recs[0].path, root / "in" / "rec_zz_bad.mcap")
    store = SqliteStore(root / "state.db")
    try:
        spec = submit_batch(
            store, [str(r.path) for r in recs] + [str(bad)], config_text(), str(root / "ds"), name="api-test"
        )
        pod = PodThread(store, ["all"], "api-pod").start()
        assert wait_finished(store, spec.id).phase == "complete"
        pod.stop()
    finally:
        store.close()
    server = UiServer(f"sqlite://{root / 'state.db'}", root, token=TOKEN)
    try:
        status, dead = server.json("GET", "/api/v1/jobs?status=dead")
        assert status == 200 and dead["total"] == 1
        yield Console(server, spec.id, dead["items"][0]["ref"], root / "ds")
    finally:
        server.stop()


def test_binding_beyond_loopback_needs_a_token(tmp_path: Path) -> None:
    port = free_port()
    refused = cli_process(
        ["ui", "--host", "0.0.0.0", "--port", str(port)],
        f"sqlite://{tmp_path / 'state.db'}",
        tmp_path / "ui.log",
        {"ROBOFLOW_UI_TOKEN": ""},
    )
    assert refused.wait(60) == 2
    text = (tmp_path / "ui.log").read_text()
    assert "refusing to serve on 0.0.0.0 without a token" in text and "ROBOFLOW_UI_TOKEN" in text
    with pytest.raises(ConfigError, match="ROBOFLOW_UI_TOKEN"):
        check_bind("192.0.2.1", None)
    check_bind("0.0.0.0", "a-token")  # allowed with a token (not started here: tests bind loopback only)
    for loopback in ("127.0.0.1", "127.0.0.2", "::1", "localhost"):
        check_bind(loopback, None)


def test_mutations_need_the_bearer_token_and_reads_do_not(console: Console) -> None:
    server, job = console.server, console.dead
    status, headers, body = server.request("POST", f"/api/v1/jobs/{job}/retry")
    assert status == 401 and headers["www-authenticate"].startswith("Bearer") and b"Bearer" in body
    assert server.json("POST", f"/api/v1/jobs/{job}/retry", Authorization="Bearer wrong")[0] == 401
    assert server.json("DELETE", f"/api/v1/jobs/{job}")[0] == 401
    assert server.json("POST", "/api/v1/batches", {"sources": ["x"]})[0] == 401
    status, answer = server.json("POST", f"/api/v1/jobs/{job}/retry", **AUTH)
    assert status == 409 and "its batch is complete" in answer["error"]  # through the guard, refused by state
    assert server.json("GET", f"/api/v1/jobs/{job}")[0] == 200
    status, answer = server.json("POST", f"/api/v1/jobs/{job}/retry", Origin="http://evil.example", **AUTH)
    assert status == 403 and "cross-origin" in answer["error"]


def test_no_cors_headers_for_other_origins(console: Console) -> None:
    for method in ("GET", "OPTIONS"):
        _, headers, _ = console.server.request(
            method,
            "/api/v1/batches",
            headers={"Origin": "http://evil.example", "Access-Control-Request-Method": "POST"},
        )
        assert not any(k.lower().startswith("access-control-allow") for k in headers), headers


def test_bad_input_gets_a_json_4xx(console: Console) -> None:
    server, batch = console.server, console.batch
    cases: list[tuple[str, str, object, int, str]] = [
        ("GET", "/api/v1/batches/nope", None, 404, "no such batch"),
        ("GET", "/api/v1/jobs/nope/nothing", None, 404, "no such job"),
        ("GET", "/api/v1/jobs?batch=nope", None, 404, "no such batch"),
        ("GET", "/api/v1/jobs?status=sleeping", None, 400, "status"),
        ("GET", "/api/v1/batches?limit=0", None, 400, "limit"),
        ("GET", "/api/v1/batches?phase=done", None, 400, "phase"),
        ("GET", f"/api/v1/batches/{batch}/dataset/episodes/99", None, 404, "no such episode"),
        ("GET", f"/api/v1/batches/{batch}/dataset/episodes/0/videos/nocam", None, 404, "no such camera"),
        ("POST", "/api/v1/batches", {"sources": []}, 400, "invalid request"),
        (
            "POST",
            "/api/v1/batches",
            {"sources": ["a.mcap"], "config": "x", "output": "o", "bogus": 1},
            400,
            "",
        ),
        (
            "POST",
            "/api/v1/batches",
            {"sources": ["a"], "config": "[dataset]\nfps = 0\n", "output": "o"},
            400,
            "",
        ),
        (
            "POST",
            "/api/v1/batches",
            {"sources": ["a"], "config": config_text(), "output": "ftp://x/y"},
            400,
            "unknown scheme 'ftp'",
        ),
        ("POST", f"/api/v1/batches/{batch}/cancel", None, 409, "already complete"),
        ("DELETE", "/api/v1/batches/nope", None, 404, "no such batch"),
    ]
    for method, path, body, code, text in cases:
        status, headers, raw = server.request(method, path, body, AUTH)
        assert status == code, (method, path, status, raw)
        assert headers["content-type"].startswith("application/json"), (path, headers)
        assert text in raw.decode(), (path, raw)
    bad_json = server.request("POST", "/api/v1/batches", None, {**AUTH, "Content-Type": "application/json"})
    assert bad_json[0] == 400


def test_videos_are_served_with_range_requests(console: Console) -> None:
    server, batch = console.server, console.batch
    status, episode = server.json("GET", f"/api/v1/batches/{batch}/dataset/episodes/1")
    assert status == 200
    [video] = episode["videos"]
    on_disk = (console.output / video["path"]).read_bytes()
    path = f"/api/v1/batches/{batch}/dataset/episodes/1/videos/{video['camera']}"
    status, headers, body = server.request("GET", path, headers={"Range": "bytes=100-299"})
    assert status == 206 and body == on_disk[100:300]
    assert headers["content-range"] == f"bytes 100-299/{len(on_disk)}" and headers["accept-ranges"] == "bytes"
    status, headers, body = server.request("GET", path, headers={"Range": "bytes=-50"})
    assert status == 206 and body == on_disk[-50:]
    status, _, body = server.request("GET", path)
    assert status == 200 and body == on_disk
    status, headers, _ = server.request("GET", path, headers={"Range": f"bytes={len(on_disk)}-"})
    assert status == 416 and headers["content-range"] == f"bytes */{len(on_disk)}"


def test_dataset_and_episode_frames(console: Console) -> None:
    server, batch = console.server, console.batch
    status, dataset = server.json("GET", f"/api/v1/batches/{batch}/dataset")
    assert (
        status == 200
        and dataset["total_episodes"] == 2
        and dataset["cameras"] == ["observation.images.cam_high"]
    )
    status, episodes = server.json("GET", f"/api/v1/batches/{batch}/dataset/episodes")
    assert [e["index"] for e in episodes] == [0, 1] and all(e["length"] > 0 for e in episodes)
    status, frames = server.json("GET", f"/api/v1/batches/{batch}/dataset/episodes/0?max_points=10")
    length = episodes[0]["length"]
    assert frames["length"] == length and frames["stride"] == -(-length // 10)
    assert len(frames["timestamps"]) == len(range(0, length, frames["stride"]))
    names = {s["name"] for s in frames["series"]}
    assert names == {"observation.state", "action"}
    assert all(len(v) == len(frames["timestamps"]) for s in frames["series"] for v in s["values"])


def test_credentials_are_refused_and_never_echoed(console: Console, monkeypatch: pytest.MonkeyPatch) -> None:
    server = console.server
    query = f"?region=us-east-1&access_key_id=AK&secret_access_key={SECRET}"
    body = {"sources": [f"s3://fleet/runs/*.mcap{query}"], "config": config_text(), "output": "s3://ds/pick"}
    status, headers, raw = server.request("POST", "/api/v1/batches", body, AUTH)
    assert status == 400 and "credentials are not accepted in a URL" in raw.decode(), raw
    assert SECRET not in raw.decode() and headers["content-type"].startswith("application/json")
    body = {"sources": ["/nowhere/rec.mcap"], "config": config_text(), "output": "s3://ds/pick"}
    status, answer = server.json("POST", "/api/v1/batches", body, **AUTH)
    assert status == 400 and "/nowhere/rec.mcap" in answer["error"]
    for path in ("/api/v1/batches", "/api/v1/overview", "/batches", "/", f"/jobs/{console.dead}"):
        status, _, raw = server.request("GET", path)
        assert status == 200 and SECRET not in raw.decode() and TOKEN not in raw.decode(), path


def test_submit_cancel_and_delete_a_batch_through_the_api(console: Console) -> None:
    server = console.server
    recs = [str(p) for p in sorted((console.output.parent / "in").glob("rec_00*.mcap"))]
    body = {
        "sources": recs,
        "config": config_text(),
        "output": str(console.output.parent / "ds2"),
        "name": "n2",
    }
    status, submitted = server.json("POST", "/api/v1/batches", body, **AUTH)
    assert status == 201 and submitted["batch"]["phase"] == "pending" and submitted["batch"]["name"] == "n2"
    assert submitted["sources"] == recs
    batch = submitted["batch"]["id"]
    status, detail = server.json("GET", f"/api/v1/batches/{batch}")
    assert detail["sources"] == recs and detail["staging"] == str(
        console.output.parent / "ds2.roboflow-staging"
    )
    status, listed = server.json("GET", "/api/v1/batches?phase=pending")
    assert [b["id"] for b in listed["items"]] == [batch]
    assert server.json("DELETE", f"/api/v1/batches/{batch}", **AUTH)[0] == 409  # not finished: cancel first
    assert server.json("POST", f"/api/v1/batches/{batch}/cancel", **AUTH)[1]["phase"] == "cancelled"
    status = server.request("DELETE", f"/api/v1/batches/{batch}", headers=AUTH)[0]
    assert status == 204 and server.json("GET", f"/api/v1/batches/{batch}")[0] == 404


def test_html_pages_render_and_unknown_ids_get_an_error_page(console: Console) -> None:
    server = console.server
    for path in ("/", "/batches", f"/batches/{console.batch}", "/jobs", f"/jobs/{console.dead}", "/workers"):
        status, headers, raw = server.request("GET", path)
        assert status == 200 and headers["content-type"].startswith("text/html"), path
        assert "/static/vendor/htmx.min.js" in raw.decode() and "https://" not in raw.decode(), path
    status, _, raw = server.request("GET", "/batches/nope")
    assert status == 404 and "no such batch" in raw.decode()
    for asset in ("/static/vendor/htmx.min.js", "/static/vendor/uPlot.iife.min.js", "/static/app.js"):
        assert server.request("GET", asset)[0] == 200


# --- a property-based run of the whole API against its OpenAPI document (schemathesis) ---------


_CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
    checks.response_headers_conformance,
]


def test_the_api_answers_as_its_openapi_document_says(console: Console) -> None:
    """Generated requests to every operation of /openapi.json (15 each, with the token): no 5xx,
    and every answer's status, content type, headers and body match the document."""
    schema = schemathesis.openapi.from_url(f"{console.server.url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 18, [op.label for op in operations]
    statuses: list[int] = []
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=15,
            deadline=None,
            database=None,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        def run(case: Any) -> None:
            statuses.append(case.call_and_validate(headers=AUTH, checks=_CHECKS, timeout=30).status_code)

        run()
    assert len(statuses) > 5 * len(operations) and {200, 400, 404} <= set(statuses), sorted(set(statuses))
