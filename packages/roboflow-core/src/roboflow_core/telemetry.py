"""Telemetry in one place: OpenTelemetry metrics and traces for every package.

- **Instruments**: packages create theirs at import with :func:`counter`, :func:`histogram`,
  :func:`gauge` and :class:`Probe` (names like ``roboflow.jobs``; the Prometheus exporter adds
  ``_total`` to counters and the unit, ``_seconds`` / ``_bytes``). Until :func:`enable_metrics`
  they record nothing and OpenTelemetry is not even imported (~12 ms a process: a local
  conversion never pays it); it makes the SDK's instrument behind each, those created before
  included. Attributes stay few and bounded: never a job, recording or batch id.
- **Exposition**: :func:`enable_metrics` installs the SDK with the Prometheus reader (once per
  process); :func:`metrics_exposition` renders the text any HTTP framework can serve at
  ``/metrics`` (bytes and content type).
- **Traces**: :func:`enable_tracing` installs the SDK's tracer (spans give log lines their trace
  id) and an OTLP/HTTP exporter only when the standard ``OTEL_*`` variables ask for one
  (``OTEL_EXPORTER_OTLP_ENDPOINT``, ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` or
  ``OTEL_TRACES_EXPORTER=otlp|console``); without an exporter a span costs a few microseconds.
  The API is imported where a span is first made.
  :func:`job_trace` opens one trace per unit of work (a new root span) and collects the time its
  stages (:data:`STAGES`) were busy through :func:`timed`, in whatever helper thread they run
  (started with :func:`in_context`).
"""

from __future__ import annotations

import contextvars
import functools
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from roboflow_core.logs import log_fields

if TYPE_CHECKING:
    from opentelemetry.metrics import CallbackOptions, Meter, Observation
    from opentelemetry.trace import Span, Tracer

__all__ = [
    "SECONDS",
    "STAGES",
    "Counter",
    "Gauge",
    "Histogram",
    "JobTrace",
    "Probe",
    "counter",
    "enable_metrics",
    "enable_tracing",
    "flush_traces",
    "gauge",
    "histogram",
    "in_context",
    "job_trace",
    "metrics_exposition",
    "root_span",
    "span",
    "timed",
]

_P = ParamSpec("_P")
_R = TypeVar("_R")

SCOPE = "roboflow"
SECONDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
"""Histogram buckets for durations in seconds (store calls to hour-long recordings)."""

STAGES = ("download", "decode", "encode", "upload")
"""Where a job's time goes: ``download`` (GETs of its input), ``decode`` (reading, aligning and
decoding messages into frames), ``encode`` (video encoders), ``upload`` (staged files to the store).
They overlap in time (a pipeline), so each is the busy time summed over its threads."""

Attributes = Mapping[str, str | bool | int | float]
_setup_lock = threading.Lock()
_registry: Any = None  # prometheus_client.CollectorRegistry once metrics are enabled
_meter: Meter | None = None  # the SDK's, once metrics are enabled
_instruments: list[_Instrument] = []
_tracing = False


# --- instruments ----------------------------------------------------------------------------------


class _Instrument:
    """An instrument the SDK's meter makes (``make``) once metrics are enabled; a no-op until then."""

    def __init__(self, make: Callable[[Meter], Any]) -> None:
        self._make = make
        self._real: Any = None
        with _setup_lock:
            _instruments.append(self)
            if _meter is not None:
                self._real = make(_meter)

    def _bind(self, meter: Meter) -> None:
        self._real = self._make(meter)


class Counter(_Instrument):
    """A monotonic counter (see :func:`counter`)."""

    def add(self, amount: float, attributes: Attributes | None = None) -> None:
        """Add ``amount`` (not negative) to the series of ``attributes``."""
        if self._real is not None:
            self._real.add(amount, attributes)


class Histogram(_Instrument):
    """A histogram (see :func:`histogram`)."""

    def record(self, amount: float, attributes: Attributes | None = None) -> None:
        """Count ``amount`` in the series of ``attributes``."""
        if self._real is not None:
            self._real.record(amount, attributes)


class Gauge(_Instrument):
    """A gauge set by the code that knows its value (see :func:`gauge`)."""

    def set(self, amount: float, attributes: Attributes | None = None) -> None:
        """Set the series of ``attributes`` to ``amount``."""
        if self._real is not None:
            self._real.set(amount, attributes)


def counter(name: str, unit: str, description: str) -> Counter:
    """A monotonic counter (exposed as ``<name>[_<unit>]_total``)."""
    return Counter(lambda meter: meter.create_counter(name, unit=unit, description=description))


def histogram(
    name: str, description: str, *, unit: str = "s", buckets: Iterable[float] = SECONDS
) -> Histogram:
    """A histogram, of seconds unless told otherwise."""
    boundaries = list(buckets)
    return Histogram(
        lambda meter: meter.create_histogram(
            name, unit=unit, description=description, explicit_bucket_boundaries_advisory=boundaries
        )
    )


def gauge(name: str, unit: str, description: str) -> Gauge:
    """A gauge whose value is set by the code that knows it."""
    return Gauge(lambda meter: meter.create_gauge(name, unit=unit, description=description))


class Probe:
    """A gauge read when metrics are collected, from the callables :meth:`watch` registers.

    Args:
        name: The instrument's name.
        unit: Its unit (``s``: exposed with ``_seconds``).
        description: Its help text.
    """

    def __init__(self, name: str, unit: str, description: str) -> None:
        self._sources: dict[int, tuple[Callable[[], float], dict[str, str]]] = {}
        self._lock = threading.Lock()
        self._next = 0
        _Instrument(
            lambda meter: meter.create_observable_gauge(
                name, callbacks=[self._observe], unit=unit, description=description
            )
        )

    def watch(
        self, read: Callable[[], float], attributes: Mapping[str, str] | None = None
    ) -> Callable[[], None]:
        """Report ``read()`` from now on; returns the function that stops it."""
        with self._lock:
            handle, self._next = self._next, self._next + 1
            self._sources[handle] = (read, dict(attributes or {}))

        def forget() -> None:
            with self._lock:
                self._sources.pop(handle, None)

        return forget

    def _observe(self, options: CallbackOptions) -> Iterator[Observation]:
        from opentelemetry.metrics import Observation

        with self._lock:
            sources = list(self._sources.values())
        for read, attributes in sources:
            yield Observation(read(), attributes)


_STAGE_SECONDS = histogram(
    "roboflow.stage.duration", "Busy seconds of one job in each stage (download, decode, encode, upload)"
)


# --- set-up ---------------------------------------------------------------------------------------


def _resource(pod: str | None, role: str | None) -> Any:
    from opentelemetry.sdk.resources import Resource

    attributes = {"service.name": os.environ.get("OTEL_SERVICE_NAME", "roboflow")}
    if pod:
        attributes["service.instance.id"] = pod
        attributes["roboflow.pod"] = pod
    if role:
        attributes["roboflow.role"] = role
    return Resource.create(attributes)  # OTEL_RESOURCE_ATTRIBUTES add to these


def enable_metrics(*, pod: str | None = None, role: str | None = None) -> None:
    """Install the OpenTelemetry SDK with a Prometheus reader for this process (once; later calls
    do nothing): instruments start counting and :func:`metrics_exposition` serves them."""
    global _registry, _meter
    with _setup_lock:
        if _registry is not None:
            return
        from opentelemetry import metrics
        from opentelemetry.exporter.prometheus import PrometheusMetricReader
        from opentelemetry.sdk.metrics import MeterProvider
        from prometheus_client import CollectorRegistry, ProcessCollector

        registry = CollectorRegistry(auto_describe=True)
        ProcessCollector(registry=registry)
        reader = PrometheusMetricReader(scope_info_enabled=False, registry=registry)
        metrics.set_meter_provider(MeterProvider(metric_readers=[reader], resource=_resource(pod, role)))
        _meter = metrics.get_meter(SCOPE)
        for instrument in _instruments:
            instrument._bind(_meter)
        _registry = registry


def metrics_exposition(accept: str | None = None) -> tuple[bytes, str]:
    """The ``/metrics`` document and its content type (Prometheus text, or OpenMetrics when the
    ``Accept`` header asks for it); enables metrics first if nothing did."""
    from prometheus_client.exposition import choose_encoder

    enable_metrics()
    encoder, content_type = choose_encoder(accept or "")
    return encoder(_registry), content_type


def enable_tracing(*, pod: str | None = None, role: str | None = None) -> bool:
    """Record spans (so that log lines carry trace ids) and export them when the standard ``OTEL_*``
    variables ask for it; whether they do.

    ``OTEL_TRACES_EXPORTER=otlp`` (or an ``OTEL_EXPORTER_OTLP[_TRACES]_ENDPOINT``) sends them with
    OTLP over HTTP (endpoint, headers, timeout and compression from the exporter's own ``OTEL_*``
    variables), ``console`` prints them; without either, or with ``none``, nothing is exported.
    ``OTEL_SDK_DISABLED=true`` leaves the API's no-op tracer. Exported spans are batched in a
    background thread (flushed by :func:`flush_traces` and at exit). Once per process.
    """
    global _tracing
    env = os.environ
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporter_name = env.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    endpoint = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    exporting = exporter_name in ("otlp", "console") or (not exporter_name and bool(endpoint))
    with _setup_lock:
        if _tracing:
            return exporting
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter

        provider = TracerProvider(resource=_resource(pod, role))
        if exporting:
            exporter: SpanExporter
            if exporter_name == "console":
                exporter = ConsoleSpanExporter()
            else:
                from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

                exporter = OTLPSpanExporter()
            provider.add_span_processor(BatchSpanProcessor(exporter))
        trace.set_tracer_provider(provider)
        _tracing = True
    return exporting


def flush_traces() -> None:
    """Send the spans still batched (a pod calls it before it exits)."""
    if not _tracing:
        return
    from opentelemetry import trace

    provider = trace.get_tracer_provider()
    force_flush = getattr(provider, "force_flush", None)
    if callable(force_flush):
        force_flush()


# --- spans and stages -----------------------------------------------------------------------------


def in_context(fn: Callable[_P, _R]) -> Callable[_P, _R]:
    """``fn`` to run in another thread within a copy of the caller's context (its job and span)."""
    ctx = contextvars.copy_context()

    def run(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        return ctx.run(fn, *args, **kwargs)

    return run


@functools.cache
def _tracer() -> Tracer:
    """The API's tracer (the SDK's once :func:`enable_tracing` ran), imported with the first span."""
    from opentelemetry import trace

    return trace.get_tracer(SCOPE)


@contextmanager
def span(name: str, attributes: Mapping[str, str | int | float | bool] | None = None) -> Iterator[Span]:
    """A child span of the current one (or of nothing: then a new trace)."""
    with _tracer().start_as_current_span(name, attributes=attributes) as current:
        yield current


class JobTrace:
    """The busy time of one job's stages, summed over the threads that work for it."""

    def __init__(self, root: Span) -> None:
        self.root = root
        self.outcome = "unknown"
        self._lock = threading.Lock()
        self._busy: dict[str, float] = dict.fromkeys(STAGES, 0.0)
        self._first: dict[str, int] = {}
        self._last: dict[str, int] = {}

    def add(self, stage: str, seconds: float, start_ns: int, end_ns: int) -> None:
        """Count ``seconds`` of ``stage`` work done between two wall-clock times (ns)."""
        with self._lock:
            self._busy[stage] = self._busy.get(stage, 0.0) + seconds
            self._first[stage] = min(self._first.get(stage, start_ns), start_ns)
            self._last[stage] = max(self._last.get(stage, end_ns), end_ns)

    def busy(self, stage: str) -> float:
        """Seconds spent in ``stage`` so far."""
        with self._lock:
            return self._busy.get(stage, 0.0)

    def close(self) -> None:
        """Record one observation per stage and a child span over each stage that did work."""
        from opentelemetry import trace

        with self._lock:
            busy, first, last = dict(self._busy), dict(self._first), dict(self._last)
        parent = trace.set_span_in_context(self.root)
        for stage, seconds in busy.items():
            _STAGE_SECONDS.record(seconds, {"stage": stage})
            if stage in first and self.root.is_recording():
                child = _tracer().start_span(
                    f"roboflow.{stage}",
                    context=parent,
                    start_time=first[stage],
                    attributes={"roboflow.stage": stage, "roboflow.busy_seconds": round(seconds, 6)},
                )
                child.end(end_time=last[stage])


_JOB: contextvars.ContextVar[JobTrace | None] = contextvars.ContextVar("roboflow_job", default=None)


@contextmanager
def root_span(name: str, attributes: Mapping[str, str | int]) -> Iterator[Span]:
    """A new trace: a root span named ``name`` with ``attributes``, current while the body runs,
    whose ``roboflow.batch`` / ``roboflow.job`` attributes are also the ``batch`` / ``job`` fields
    of the log records written meanwhile."""
    from opentelemetry import context as otel_context
    from opentelemetry import trace

    root = _tracer().start_span(name, context=otel_context.Context(), attributes=attributes)
    fields = {k.removeprefix("roboflow."): str(v) for k, v in attributes.items() if k in _LOG_ATTRIBUTES}
    token = otel_context.attach(trace.set_span_in_context(root))
    try:
        with log_fields(**fields):
            yield root
    except BaseException as err:
        root.record_exception(err)
        raise
    finally:
        otel_context.detach(token)
        root.end()


_LOG_ATTRIBUTES = ("roboflow.batch", "roboflow.job")


@contextmanager
def job_trace(name: str, attributes: Mapping[str, str | int]) -> Iterator[JobTrace]:
    """One job attempt: a :func:`root_span` and the stage clock :func:`timed` adds to; on exit one
    observation of ``roboflow.stage.duration`` per stage and a child span per stage that worked."""
    with root_span(name, attributes) as root:
        job = JobTrace(root)
        token = _JOB.set(job)
        try:
            yield job
        finally:
            _JOB.reset(token)
            job.close()
            root.set_attribute("roboflow.outcome", job.outcome)


@contextmanager
def timed(stage: str) -> Iterator[None]:
    """Count the body's time as ``stage`` work of the current job (nothing outside a job)."""
    job = _JOB.get()
    if job is None:
        yield
        return
    start_ns, start = time.time_ns(), time.perf_counter()
    try:
        yield
    finally:
        job.add(stage, time.perf_counter() - start, start_ns, time.time_ns())
