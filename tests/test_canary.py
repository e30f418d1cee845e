"""The canary: a distinct secret in the pods' environment appears nowhere a person or a store sees.

Pods (``roboflow run`` processes, one logging text, one JSON) convert a batch from the S3 test
server that holds a corrupt recording among good ones, with a secret key no other test uses.
Afterwards the secret must be in none of: the pods' logs, the coordination store's bytes, any
CLI output (with and without ``--json``), ``/health*`` and ``/metrics``, the objects in the
bucket (dataset and staging). ``submit`` with a secret in a URL is refused with the explanation.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

from tests._servers import S3Bucket, free_port, moto_server, s3_bucket
from tests.roboflow_distributed._batch_helpers import FAST_ENV, config_text, corrupt, recordings

from roboflow_storage import Storage

__all__ = ["moto_server", "s3_bucket"]

ROBOFLOW = str(Path(sys.executable).parent / "roboflow")


def _get(url: str) -> str:
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            return str(answer.read().decode())
    except urllib.error.HTTPError as err:
        return str(err.read().decode())
    except OSError:
        return ""


def test_a_secret_in_the_pods_environment_is_never_shown_or_stored(
    tmp_path: Path, s3_bucket: S3Bucket
) -> None:
    canary = f"canary-{uuid.uuid4().hex}"
    env = {
        **os.environ,
        **FAST_ENV,
        "AWS_ACCESS_KEY_ID": "AKIDCANARY",
        "AWS_SECRET_ACCESS_KEY": canary,
        "AWS_ENDPOINT_URL": s3_bucket.endpoint,
        "ROBOFLOW_ALLOWED_ENDPOINTS": s3_bucket.endpoint,
        "ROBOFLOW_STORE": f"sqlite:///{tmp_path / 'state' / 'state.db'}",
        "ROBOFLOW_BUFFER_DIR": str(tmp_path / "buffer"),
    }
    seen: dict[str, str] = {}

    def cli(name: str, *args: str, ok: bool = True) -> str:
        done = subprocess.run(
            [ROBOFLOW, *args], env=env, capture_output=True, text=True, timeout=120, check=False
        )
        assert (done.returncode == 0) is ok, (args, done.stdout, done.stderr)
        seen[name] = done.stdout + done.stderr
        return done.stdout

    good = recordings(tmp_path / "in", 2)
    bad = corrupt(good[0].path, tmp_path / "in" / "rec_zzz_bad.mcap")
    inputs = Storage.from_url(s3_bucket.url("in"))
    for path in [r.path for r in good] + [bad]:
        inputs.put(path.name, path.read_bytes())
    config = tmp_path / "robot.toml"
    config.write_text(config_text(), encoding="utf-8")

    source, output = s3_bucket.url("in/*.mcap"), s3_bucket.url("out/ds")
    refused = subprocess.run(
        [ROBOFLOW, "submit", f"{source}&secret_access_key={canary}", "-c", str(config), "-o", output],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert refused.returncode == 1
    assert "secret_access_key in the URL: credentials are not accepted" in refused.stderr
    assert "environment" in refused.stderr and "Kubernetes Secret" in refused.stderr
    seen["submit-refused"] = refused.stdout + refused.stderr

    cli("submit-dry", "submit", source, "-c", str(config), "-o", output, "--dry-run")
    cli("submit-dry-json", "submit", source, "-c", str(config), "-o", output, "--dry-run", "--json")
    batch = cli("submit", "submit", source, "-c", str(config), "-o", output).strip()

    ports = [free_port(), free_port()]
    logs = [tmp_path / "pod-text.log", tmp_path / "pod-json.log"]
    pods = []
    for i, (port, log, fmt) in enumerate(zip(ports, logs, ["text", "json"], strict=True)):
        with log.open("wb") as out:
            command = [ROBOFLOW, "run", "--role", "all" if i == 0 else "worker", "--pod-id", f"pod-{fmt}"]
            command += ["--exit-when-idle", "--health-port", str(port), "--health-host", "127.0.0.1"]
            command += ["--log-format", fmt, "-v"]
            pods.append(subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT))
    try:
        deadline = time.monotonic() + 240
        while any(p.poll() is None for p in pods) and time.monotonic() < deadline:
            for port in ports:
                for path in ("/health", "/health/live", "/health/ready", "/metrics"):
                    body = _get(f"http://127.0.0.1:{port}{path}")
                    seen[f"{port}{path}"] = seen.get(f"{port}{path}", "") + body
            time.sleep(0.2)
    finally:
        for pod in pods:
            if pod.poll() is None:
                pod.kill()
            pod.wait(30)
    assert [p.returncode for p in pods] == [0, 0], [log.read_text() for log in logs]
    assert any("# HELP" in seen[f"{port}/metrics"] for port in ports), "metrics were never read"
    assert '"pod"' in seen[f"{ports[0]}/health"]

    got = cli("batch-get-json", "batch", "get", batch, "--json")
    assert '"phase": "complete"' in got and '"dead": 1' in got and '"episodes": 2' in got
    cli("batch-get", "batch", "get", batch)
    cli("batch-list", "batch", "list")
    cli("batch-list-json", "batch", "list", "--json")
    jobs = cli("jobs-list", "jobs", "list")
    cli("jobs-list-json", "jobs", "list", "--json")
    assert "rec_zzz_bad.mcap" in jobs and "dead" in jobs
    for line in jobs.splitlines()[1:]:
        job = line.split()[0]
        cli(f"jobs-get-{job}", "jobs", "get", job)
        cli(f"jobs-get-json-{job}", "jobs", "get", job, "--json")
    cli("health", "health")
    cli("health-json", "health", "--json")

    seen.update({log.name: log.read_text(encoding="utf-8", errors="replace") for log in logs})
    assert '"message"' in seen["pod-json.log"] and "converting s3://" in seen["pod-text.log"]
    leaks = [name for name, text in seen.items() if canary in text]
    assert not leaks, f"the secret is shown in {leaks}"
    state = [p for p in (tmp_path / "state").iterdir() if p.is_file()]
    assert state and not [p.name for p in state if canary.encode() in p.read_bytes()]
    bucket = Storage.from_url(s3_bucket.url())
    objects = list(bucket.list())
    assert any(o.key.endswith("meta/info.json") for o in objects), "no dataset was written"
    assert not [o.key for o in objects if canary.encode() in bucket.get(o.key)], "the secret is in the bucket"
