"""The distributed roles' instruments, in one list (Prometheus names in the comments).

Created through :mod:`roboflow_core.telemetry` (no-ops until a pod enables metrics). Attributes
are bounded sets: ``outcome``, ``status``, ``phase``, ``op``, ``lease``; never a batch, job or
recording id. Gauges about the queue come from the reaper's sweep, so every pod running the reaper
reports the same values (aggregate them with ``max``, not ``sum``).
"""

from __future__ import annotations

from roboflow_core import telemetry

__all__ = [
    "ABANDONED",
    "BATCHES",
    "BATCHES_ACTIVE",
    "EPISODES_MERGED",
    "FRAMES",
    "HEARTBEAT_AGE",
    "INPUT_BYTES",
    "JOBS",
    "JOB_DURATION",
    "LEADER",
    "MERGE_DURATION",
    "OUTPUT_BYTES",
    "QUEUE",
    "READY",
    "RECORDINGS_DISCOVERED",
    "REQUEUED",
    "STORE_DURATION",
    "STORE_ERRORS",
    "WORKERS_LIVE",
    "prime",
]

JOB_OUTCOMES = ("completed", "failed", "dead", "requeued", "cancelled", "lost")

# roboflow_jobs_total{outcome}: completed, failed (to be retried), dead, requeued (given back on
# shutdown, or re-queued by the reaper), cancelled, lost (taken over while this worker ran it)
JOBS = telemetry.counter("roboflow.jobs", "{job}", "Job attempts ended, by outcome")
# roboflow_frames_total
FRAMES = telemetry.counter("roboflow.frames", "{frame}", "Frames in the episodes of completed jobs")
# roboflow_input_bytes_total
INPUT_BYTES = telemetry.counter("roboflow.input", "By", "Bytes of the recordings of completed jobs")
# roboflow_output_bytes_total
OUTPUT_BYTES = telemetry.counter("roboflow.output", "By", "Bytes of staged episode files uploaded")
# roboflow_job_duration_seconds{outcome}
JOB_DURATION = telemetry.histogram("roboflow.job.duration", "Seconds from claim to outcome of a job attempt")
# roboflow_queue_jobs{status}: pending, running (of the active batches)
QUEUE = telemetry.gauge("roboflow.queue.jobs", "{job}", "Jobs of the active batches by status")
# roboflow_workers_live
WORKERS_LIVE = telemetry.gauge("roboflow.workers.live", "{worker}", "Pods with the worker role heartbeating")
# roboflow_batches_active{phase}
BATCHES_ACTIVE = telemetry.gauge("roboflow.batches.active", "{batch}", "Unfinished batches by phase")
# roboflow_batches_total{outcome}: complete, failed
BATCHES = telemetry.counter("roboflow.batches", "{batch}", "Batches finished by this pod's finalizer")
# roboflow_reaper_requeued_total
REQUEUED = telemetry.counter(
    "roboflow.reaper.requeued", "{job}", "Jobs of lost workers put back in the queue"
)
# roboflow_scanner_recordings_total
RECORDINGS_DISCOVERED = telemetry.counter(
    "roboflow.scanner.recordings", "{recording}", "Recordings discovered"
)
# roboflow_finalizer_episodes_total
EPISODES_MERGED = telemetry.counter(
    "roboflow.finalizer.episodes", "{episode}", "Episodes merged into datasets"
)
# roboflow_merge_duration_seconds{outcome}
MERGE_DURATION = telemetry.histogram("roboflow.merge.duration", "Seconds a batch's merge took")
# roboflow_store_operation_duration_seconds{op}: get, scan, txn
STORE_DURATION = telemetry.histogram(
    "roboflow.store.operation.duration",
    "Seconds of coordination store calls",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
# roboflow_store_errors_total{op}
STORE_ERRORS = telemetry.counter("roboflow.store.errors", "{error}", "Coordination store calls that failed")
# roboflow_heartbeat_age_seconds
HEARTBEAT_AGE = telemetry.Probe("roboflow.heartbeat.age", "s", "Seconds since this pod's last heartbeat")
# roboflow_ready
READY = telemetry.Probe("roboflow.ready", "1", "1 while the pod reaches its store, else 0")
# roboflow_conversions_abandoned
ABANDONED = telemetry.Probe(
    "roboflow.conversions.abandoned", "{conversion}", "Conversions this pod abandoned whose threads still run"
)
# roboflow_leader{lease}: scanner
LEADER = telemetry.Probe("roboflow.leader", "1", "1 while this pod holds the lease")


def prime() -> None:
    """Expose every counter at 0 for each of its label values, so that rates and alerts find the
    series before the first event (a pod calls it when it enables metrics)."""
    for outcome in JOB_OUTCOMES:
        JOBS.add(0, {"outcome": outcome})
    for plain in (FRAMES, INPUT_BYTES, OUTPUT_BYTES, REQUEUED, RECORDINGS_DISCOVERED, EPISODES_MERGED):
        plain.add(0)
    for outcome in ("complete", "failed"):
        BATCHES.add(0, {"outcome": outcome})
    for op in ("get", "scan", "txn"):
        STORE_ERRORS.add(0, {"op": op})
