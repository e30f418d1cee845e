"""Telemetry of real pods: ``roboflow run`` processes convert a batch from and into a real S3 server
(moto) while the test scrapes their ``/metrics``, receives their traces with a local OTLP/HTTP
receiver and reads their JSON logs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from prometheus_client.parser import text_string_to_metric_families
from tests._servers import TEST_SECRET, S3Bucket, free_port, moto_server, s3_bucket
from tests.roboflow_distributed._batch_helpers import FAST_ENV, config_text, corrupt, recordings, wait_for
from tests.test_deploy import queried_metrics

from roboflow_distributed.batches import get_batch, list_units, submit_batch
from roboflow_distributed.records import BatchPhase, UnitStatus
from roboflow_distributed.store import SqliteStore
from roboflow_storage import Storage

__all__ = ["moto_server", "s3_bucket"]

ROBOFLOW = str(Path(sys.executable).parent / "roboflow")
STAGES = ("download", "decode", "encode", "upload")


class OtlpReceiver:
    """An OTLP/HTTP trace receiver on 127.0.0.1 (``POST /v1/traces``, protobuf) keeping every span."""

    def __init__(self) -> None:
        self.spans: list[dict[str, Any]] = []
        lock = threading.Lock()
        spans = self.spans

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                request = ExportTraceServiceRequest()
                request.ParseFromString(self.rfile.read(int(self.headers["Content-Length"])))
                with lock:
                    spans.extend(_spans(request))
                body = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


def _spans(request: ExportTraceServiceRequest) -> Iterator[dict[str, Any]]:
    for resource_spans in request.resource_spans:
        resource = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                attributes = {
                    a.key: a.value.string_value or a.value.int_value or a.value.double_value
                    for a in span.attributes
                }
                yield {
                    "name": span.name,
                    "trace": span.trace_id.hex(),
                    "id": span.span_id.hex(),
                    "parent": span.parent_span_id.hex(),
                    "attributes": attributes,
                    "resource": resource,
                }


@pytest.fixture
def otlp() -> Iterator[OtlpReceiver]:
    receiver = OtlpReceiver()
    yield receiver
    receiver.stop()


class Pod:
    """A ``roboflow run`` process serving /metrics on a port of 127.0.0.1, logging JSON to a file."""

    def __init__(self, name: str, roles: list[str], store_url: str, env: dict[str, str], logs: Path) -> None:
        self.name = name
        self.port = free_port()
        self.log = logs / f"{name}.log"
        args = [ROBOFLOW, "run", "--pod-id", name, "--store", store_url, "--log-format", "json"]
        args += [a for role in roles for a in ("--role", role)]
        args += ["--health-host", "127.0.0.1", "--health-port", str(self.port)]
        with self.log.open("wb") as err:
            self.proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=err)

    def scrape(self) -> dict[str, float]:
        """``{'name{label="value",...}': value}`` of every roboflow sample (labels sorted)."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=5) as response:
            text = response.read().decode()
        samples = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
                samples[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
        return samples

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise


def _sum(scrapes: list[dict[str, float]], key: str) -> float:
    return sum(s.get(key, 0.0) for s in scrapes)


def _settled(metrics: dict[str, float]) -> bool:
    active = sum(v for k, v in metrics.items() if k.startswith("roboflow_batches_active{"))
    return active == 0 and metrics.get('roboflow_merge_duration_seconds_count{outcome="complete"}') == 1


def _upload(local: Path, bucket: S3Bucket) -> None:
    storage = Storage.from_url(bucket.url("in"))
    for path in sorted(local.glob("*.mcap")):
        storage.put(path.name, path.read_bytes())


def _up(pod: Pod) -> bool:
    try:
        return bool(pod.scrape())
    except OSError:
        return False


def test_pods_expose_metrics_traces_and_json_logs(
    tmp_path: Path, s3_bucket: S3Bucket, otlp: OtlpReceiver
) -> None:
    recs = recordings(tmp_path / "in", 4, base=0.3)
    corrupt(recs[0].path, tmp_path / "in" / "rec_zzz_corrupt.mcap")
    _upload(tmp_path / "in", s3_bucket)
    (tmp_path / "tmp").mkdir()
    store_url = f"sqlite:///{tmp_path / 'state.db'}"
    env = {
        **os.environ,
        **FAST_ENV,
        "TMPDIR": str(tmp_path / "tmp"),
        "ROBOFLOW_BUFFER_DIR": str(tmp_path / "tmp" / "buffer"),
        "OTEL_EXPORTER_OTLP_ENDPOINT": otlp.endpoint,
        "OTEL_BSP_SCHEDULE_DELAY": "100",
        "AWS_SECRET_ACCESS_KEY": TEST_SECRET,
    }
    env.pop("ROBOFLOW_LOG_FORMAT", None)
    store = SqliteStore(tmp_path / "state.db")
    logs = tmp_path / "logs"
    logs.mkdir()
    pods = [
        Pod("worker-a", ["worker"], store_url, env, logs),
        Pod("worker-b", ["worker"], store_url, env, logs),
        Pod("control", ["scanner", "reaper", "finalizer"], store_url, env, logs),
    ]
    control = pods[2]
    try:
        for pod in pods:
            wait_for(lambda pod=pod: _up(pod), 60, f"/metrics of {pod.name}")
        spec = submit_batch(store, [s3_bucket.url("in/*.mcap")], config_text(), s3_bucket.url("ds"))
        wait_for(lambda: get_batch(store, spec.id).status.record.phase.terminal, 240, "the batch")
        assert get_batch(store, spec.id).status.record.phase is BatchPhase.COMPLETE
        # the reaper's next sweep finds no active batch (the queue gauges drop to 0), and the
        # finalizer records the merge once it has cleaned the staging up
        wait_for(lambda: _settled(control.scrape()), 30, "the gauges to empty and the merge to be recorded")
        scrapes = [pod.scrape() for pod in pods]
    finally:
        for pod in pods:
            pod.stop()
        store_units = list_units(store, spec.id) if "spec" in locals() else []
        store.close()

    units = {u.record.id: u.record for u in store_units}
    complete = [u for u in units.values() if u.status is UnitStatus.COMPLETE]
    dead = [u for u in units.values() if u.status is UnitStatus.DEAD]
    assert len(complete) == 4 and len(dead) == 1
    info = json.loads(Storage.from_url(s3_bucket.url("ds")).get("meta/info.json"))

    # --- metrics: counters match the batch, histograms have one observation per job ---------------
    assert _sum(scrapes, "roboflow_frames_total") == info["total_frames"] == sum(u.frames for u in complete)
    assert _sum(scrapes, 'roboflow_jobs_total{outcome="completed"}') == len(complete)
    assert _sum(scrapes, 'roboflow_jobs_total{outcome="dead"}') == len(dead)
    for outcome in ("failed", "requeued", "cancelled", "lost"):
        assert _sum(scrapes, f'roboflow_jobs_total{{outcome="{outcome}"}}') == 0
    assert _sum(scrapes, 'roboflow_job_duration_seconds_count{outcome="completed"}') == len(complete)
    assert _sum(scrapes, 'roboflow_job_duration_seconds_count{outcome="dead"}') == len(dead)
    for stage in STAGES:
        assert _sum(scrapes, f'roboflow_stage_duration_seconds_count{{stage="{stage}"}}') == len(units)
    for stage in ("decode", "encode", "upload"):
        assert _sum(scrapes, f'roboflow_stage_duration_seconds_sum{{stage="{stage}"}}') > 0
    assert _sum(scrapes, "roboflow_input_bytes_total") == sum(u.size for u in complete)
    assert _sum(scrapes, "roboflow_output_bytes_total") > 0
    metrics = scrapes[2]
    assert metrics['roboflow_queue_jobs{status="pending"}'] == 0
    assert metrics['roboflow_queue_jobs{status="running"}'] == 0
    assert metrics["roboflow_workers_live"] == 2
    assert metrics['roboflow_leader{lease="scanner"}'] == 1
    assert metrics["roboflow_scanner_recordings_total"] == len(units)
    assert metrics["roboflow_finalizer_episodes_total"] == len(complete)
    assert metrics['roboflow_merge_duration_seconds_count{outcome="complete"}'] == 1
    assert metrics['roboflow_batches_total{outcome="complete"}'] == 1
    for scrape in scrapes:
        assert scrape["roboflow_ready"] == 1 and 0 <= scrape["roboflow_heartbeat_age_seconds"] < 5
        assert scrape['roboflow_store_operation_duration_seconds_count{op="txn"}'] > 0
        assert sum(v for k, v in scrape.items() if k.startswith("roboflow_store_errors_total")) == 0
        assert not [k for k in scrape if "job=" in k or "batch=" in k], "no per-job labels"

    # --- dashboards and alerts query only series the pods expose -----------------------------------
    names = {key.split("{", 1)[0] for scrape in scrapes for key in scrape}
    missing = queried_metrics() - names
    assert not missing, f"the dashboard or alert rules query series no pod exposes: {sorted(missing)}"

    # --- traces: one per job attempt with its stages, one for the merge -----------------------------
    jobs = {s["attributes"]["roboflow.job"]: s for s in otlp.spans if s["name"] == "roboflow.job"}
    assert set(jobs) == set(units)
    assert len({s["trace"] for s in jobs.values()}) == len(units), "one trace per job attempt"
    stage_spans: dict[str, set[str]] = {}
    for root in jobs.values():
        assert root["parent"] == "" and root["attributes"]["roboflow.batch"] == spec.id
        assert root["attributes"]["roboflow.pod"] in ("worker-a", "worker-b")
        children = [s for s in otlp.spans if s["parent"] == root["id"]]
        assert all(c["trace"] == root["trace"] for c in children)
        stage_spans[root["attributes"]["roboflow.job"]] = {c["name"] for c in children}
    for unit in complete:
        assert {"roboflow.decode", "roboflow.encode", "roboflow.upload"} <= stage_spans[unit.id]
    assert any("roboflow.download" in names for names in stage_spans.values())
    merges = [s for s in otlp.spans if s["name"] == "roboflow.merge"]
    assert (
        len(merges) == 1
        and merges[0]["parent"] == ""
        and merges[0]["attributes"]["roboflow.batch"] == spec.id
    )
    assert merges[0]["trace"] not in {s["trace"] for s in jobs.values()}
    assert any(s["name"] == "roboflow.merge.group" and s["parent"] == merges[0]["id"] for s in otlp.spans)

    # --- JSON logs: every line parses, job lines carry batch and job, no credential ----------------
    for pod in pods:
        text = pod.log.read_text(encoding="utf-8")
        assert TEST_SECRET not in text
        lines = [json.loads(line) for line in text.splitlines() if line.strip()]
        assert lines and all(
            {"time", "level", "logger", "message", "pod", "role"} <= line.keys() for line in lines
        )
        assert all(line["pod"] == pod.name for line in lines)
        for line in lines:
            if line["logger"] == "roboflow.worker" and line["message"].startswith(("converting", "done")):
                assert line["job"] in units and line["batch"] == spec.id
                assert line["trace_id"] == jobs[line["job"]]["trace"], "the log line names the job's trace"
    worker_lines = [json.loads(line) for pod in pods[:2] for line in pod.log.read_text().splitlines()]
    assert sum(line["message"].startswith("converting") for line in worker_lines) == len(units)
