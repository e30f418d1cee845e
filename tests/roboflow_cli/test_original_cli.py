"""The Rust original's command line keeps working: ``run --role unified`` and ``ROLE``, the
``worker`` / ``scanner`` shorthands, ``submit --manifest`` with a task per input, ``--csv`` and
``--episodes-per-chunk`` (real recordings, a real SQLite store, real pods)."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from tests.roboflow_distributed._batch_helpers import FAST, FAST_ENV, config_text, recordings
from tests.roboflow_pipeline.test_convert import run_doctor, verify_dataset

from roboflow_cli.main import cli
from roboflow_dataset.lerobot import read_dataset
from roboflow_distributed.scanner import Scanner
from roboflow_distributed.store import open_store


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    store = f"sqlite://{tmp_path / 'state.db'}"
    monkeypatch.setenv("ROBOFLOW_STORE", store)
    for key, value in FAST_ENV.items():
        monkeypatch.setenv(key, value)
    return {"ROBOFLOW_STORE": store, **FAST_ENV}


def _ok(runner: CliRunner, args: list[str], env: dict[str, str] | None = None) -> str:
    result = runner.invoke(cli, args, env=env)
    assert result.exit_code == 0, result.output
    return result.output


def test_manifest_tasks_unified_role_from_env_and_csv(tmp_path: Path, env: dict[str, str]) -> None:
    runner = CliRunner()
    recs = recordings(tmp_path / "in", 3, base=0.3)
    config = tmp_path / "c.toml"
    config.write_text(config_text())
    manifest = tmp_path / "jobs.json"
    manifest.write_text(
        json.dumps(
            {
                "jobs": [
                    {"source": str(recs[0].path), "task": "stack the blocks"},
                    {"source": str(recs[1].path)},  # no task: the config's
                    {"source": str(recs[2].path), "task": "open the drawer", "max_attempts": 2},
                    {"source": str(recs[0].path), "task": "stack the blocks", "output": str(tmp_path / "b")},
                ]
            }
        )
    )
    out = _ok(runner, ["submit", "-m", str(manifest), "-c", str(config), "-o", str(tmp_path / "a"), "--csv"])
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [r["output"] for r in rows] == [str(tmp_path / p) for p in ("a", "a", "b")]
    assert [r["sources"] for r in rows] == ["2", "1", "1"]  # by output and max_attempts

    ran = runner.invoke(cli, ["run", "--exit-when-idle", "--pod-id", "u"], env={"ROLE": "unified"})
    assert ran.exit_code == 0, ran.output
    assert "pod u: 4 job(s) converted" in ran.output

    batches = list(csv.DictReader(io.StringIO(_ok(runner, ["batch", "list", "--csv"]))))
    assert [b["phase"] for b in batches] == ["complete"] * 3
    assert set(batches[0]) == {"batch", "name", "phase", "done", "dead", "episodes", "priority", "output"}
    jobs = list(csv.DictReader(io.StringIO(_ok(runner, ["jobs", "list", "--csv"]))))
    assert len(jobs) == 4 and {j["status"] for j in jobs} == {"complete"}
    assert sorted(j["failed"] for j in jobs) == ["0/2", "0/3", "0/3", "0/3"]  # a job's own max_attempts

    a = read_dataset(tmp_path / "a")  # three episodes of two batches, each with its input's task
    by_length = {int(e["length"]): e["tasks"].tolist() for _, e in a.episodes.iterrows()}
    lengths = [len(rows) for _, rows in a.data.groupby("episode_index")]
    assert sorted(by_length) == sorted(lengths) and len(by_length) == 3
    short, middle, long = sorted(by_length)  # the recordings' lengths follow their order
    assert by_length == {
        short: ["stack the blocks"],
        middle: ["pick up the cube"],
        long: ["open the drawer"],
    }
    assert read_dataset(tmp_path / "b").tasks == ["stack the blocks"]


def test_manifest_errors_name_the_file_and_the_job(tmp_path: Path, env: dict[str, str]) -> None:
    runner = CliRunner()
    recs = recordings(tmp_path / "in", 1, base=0.3)
    config = tmp_path / "c.toml"
    config.write_text(config_text())
    bad = tmp_path / "bad.json"
    cases = {
        '{"jobs": [{"source": "x", "priority": 3}]}': "unknown field `priority`",
        '{"jobs": []}': "lists no jobs",
        "[1]": "Expected `str | object`",
        '{"jobs": [{"source": ""}]}': "jobs[0].source",
        f'[{{"source": "{recs[0].path}", "task": "a"}}, {{"source": "{recs[0].path}", "task": "b"}}]': (
            "listed twice with different tasks"
        ),
    }
    for text, expected in cases.items():
        bad.write_text(text)
        result = runner.invoke(cli, ["submit", "-m", str(bad), "-c", str(config), "-o", str(tmp_path / "o")])
        assert result.exit_code != 0 and expected in result.output, (text, result.output)
        assert str(bad) in result.output
    bad.write_text(f'["{recs[0].path}"]')
    result = runner.invoke(cli, ["submit", "-m", str(bad), "-c", str(config)])
    assert result.exit_code != 0 and "--output is required" in result.output
    result = runner.invoke(cli, ["submit", "-c", str(config), "-o", "x"])
    assert result.exit_code != 0 and "INPUTS or a --manifest" in result.output
    result = runner.invoke(cli, ["run", "--role", "controller"])
    assert result.exit_code != 0 and "'controller' is not one of" in result.output
    assert _ok(runner, ["batch", "list", "--csv"]) == "batch,name,phase,done,dead,episodes,priority,output\n"


def _pod(args: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    code = "import sys; from roboflow_cli.main import cli; sys.exit(cli())"
    return subprocess.Popen(
        [sys.executable, "-c", code, *args],
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


V21 = ["--format", "lerobot-v2.1", "--episodes-per-chunk"]


def test_worker_and_scanner_shorthands_and_episodes_per_chunk(tmp_path: Path, env: dict[str, str]) -> None:
    runner = CliRunner()
    recs = recordings(tmp_path / "in", 3, base=0.3)
    config = tmp_path / "c.toml"
    config.write_text(config_text())
    out = tmp_path / "ds"
    batch = _ok(
        runner,
        ["submit", str(tmp_path / "in" / "*.mcap"), "-c", str(config), "-o", str(out), *V21, "2"],
    ).strip()
    scanner = _pod(["scanner", "--exit-when-idle", "--pod-id", "s"], env)
    worker = _pod(["worker", "--exit-when-idle", "--pod-id", "w"], env)
    ROLE = {"ROLE": "reaper,finalizer"}  # comma-separated, as a pod's environment sets it
    control = runner.invoke(cli, ["run", "--exit-when-idle", "--pod-id", "c"], env=ROLE)
    assert control.exit_code == 0, control.output
    assert "pod c: 0 job(s) converted" in control.output  # no worker role here
    for pod in (scanner, worker):
        output, _ = pod.communicate(timeout=120)
        assert pod.returncode == 0, output
    assert "pod w: 3 job(s) converted" in output
    got = json.loads(_ok(runner, ["batch", "get", batch, "--json"]))
    assert got["batch"]["phase"] == "complete" and got["episodes_per_chunk"] == 2
    verify_dataset(out, recs)
    ds = read_dataset(out)
    assert ds.info["chunks_size"] == 2
    assert sorted(p.parent.name for p in out.glob("data/*/*.parquet")) == [
        "chunk-000",
        "chunk-000",
        "chunk-001",
    ]
    run_doctor(out)

    # convert takes the flag too; a dataset keeps its own chunk size and says so
    more = recordings(tmp_path / "more", 1, base=0.3)
    again = runner.invoke(
        cli,
        ["convert", str(more[0].path), "-c", str(config), "-o", str(out), *V21, "5"],
    )
    assert again.exit_code == 1 and "cannot be appended to with 5 per chunk" in again.output
    fresh = tmp_path / "fresh"
    _ok(
        runner,
        ["convert", str(more[0].path), "-c", str(config), "-o", str(fresh), "--episodes-per-chunk", "7"],
    )
    assert read_dataset(fresh).info["chunks_size"] == 7


def test_lifecycle_commands_priority_labels_suspend_and_delete(tmp_path: Path, env: dict[str, str]) -> None:
    runner = CliRunner()
    recs = recordings(tmp_path / "in", 1, base=0.3)
    config = tmp_path / "c.toml"
    config.write_text(config_text())
    args = ["submit", str(recs[0].path), "-c", str(config), "-o", str(tmp_path / "ds")]
    batch = _ok(runner, [*args, "--priority", "3", "--label", "robot=so101", "--label", "site=b"]).strip()
    other = _ok(runner, [*args, "--ttl-seconds", "60"]).strip()
    listed = list(
        csv.DictReader(io.StringIO(_ok(runner, ["batch", "list", "--csv", "--label", "robot=so101"])))
    )
    assert [(b["batch"], b["priority"]) for b in listed] == [(batch, "3")]
    assert (
        _ok(runner, ["batch", "list", "--csv", "--label", "robot=so101", "--label", "site=a"]).count("\n")
        == 1
    )
    got = json.loads(_ok(runner, ["batch", "get", other, "--json"]))
    assert got["batch"]["ttl_seconds"] == 60 and got["batch"]["labels"] == {}
    assert "labels    robot=so101, site=b" in _ok(runner, ["batch", "get", batch])
    bad = runner.invoke(cli, [*args, "--label", "robot"])
    assert bad.exit_code == 2 and "'robot' is not key=value" in bad.output

    pending = runner.invoke(cli, ["batch", "suspend", batch])
    assert pending.exit_code == 1 and "only a running batch is suspended" in pending.output
    early = runner.invoke(cli, ["batch", "delete", batch])
    assert early.exit_code == 1 and "cancel it first" in early.output
    store = open_store(env["ROBOFLOW_STORE"])
    try:
        Scanner(store, "s", FAST).tick()  # discovered: running
    finally:
        store.close()
    assert "suspended (0 running job(s) released)" in _ok(runner, ["batch", "suspend", batch, "--release"])
    assert "suspended" in _ok(runner, ["batch", "list"])
    assert f"{batch}: running" in _ok(runner, ["batch", "resume", batch])
    for b in (batch, other):
        _ok(runner, ["batch", "cancel", b])
    job = json.loads(_ok(runner, ["jobs", "list", "--batch", batch, "--json"]))[0]
    assert "deleted" in _ok(runner, ["jobs", "delete", f"{batch}/{job['id']}"])
    assert f"{batch}: deleted" in _ok(runner, ["batch", "delete", batch])
    assert [b["id"] for b in json.loads(_ok(runner, ["batch", "list", "--json"]))] == [other]
