"""The telemetry API in one process: stage clocks across helper threads, gauges read at scrape
time, and the exposition any HTTP server can send."""

from __future__ import annotations

import threading
import time

from prometheus_client.parser import text_string_to_metric_families

from roboflow_core import telemetry


def _samples(accept: str | None = None) -> dict[str, float]:
    body, _ = telemetry.metrics_exposition(accept)
    return {
        f"{s.name}{sorted(s.labels.items())}": s.value
        for family in text_string_to_metric_families(body.decode())
        for s in family.samples
    }


def test_stage_time_of_helper_threads_counts_for_the_job_that_started_them() -> None:
    key = f"roboflow_stage_duration_seconds_count{[('stage', 'encode')]}"
    before = _samples().get(key, 0.0)
    with telemetry.job_trace("test.job", {"roboflow.job": "j"}) as job:

        def encode() -> None:
            with telemetry.timed("encode"):
                time.sleep(0.05)

        helper = threading.Thread(target=telemetry.in_context(encode))
        helper.start()
        helper.join()
        stranger = threading.Thread(target=encode)  # not started in the job's context
        stranger.start()
        stranger.join()
        job.outcome = "completed"
    assert 0.05 <= job.busy("encode") < 0.1, "the helper's time counts once, the stranger's not"
    assert job.busy("decode") == 0.0
    assert _samples()[key] == before + 1, "one observation per stage and job"
    with telemetry.timed("encode"):  # outside a job: nothing to count, no error
        pass


def test_probe_reports_while_watched() -> None:
    probe = telemetry.Probe("roboflow.test.probe", "s", "a test gauge")
    value = {"now": 1.5}
    forget = probe.watch(lambda: value["now"], {"kind": "test"})
    key = f"roboflow_test_probe_seconds{[('kind', 'test')]}"
    assert _samples()[key] == 1.5
    value["now"] = 2.5
    assert _samples()[key] == 2.5
    forget()
    assert key not in _samples()


def test_exposition_is_prometheus_text_or_openmetrics_on_request() -> None:
    body, kind = telemetry.metrics_exposition()
    assert kind.startswith("text/plain") and b"# TYPE process_cpu_seconds_total counter" in body
    body, kind = telemetry.metrics_exposition("application/openmetrics-text; version=1.0.0")
    assert kind.startswith("application/openmetrics-text") and body.rstrip().endswith(b"# EOF")
