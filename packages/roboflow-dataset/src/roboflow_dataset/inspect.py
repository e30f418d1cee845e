"""Summaries of recordings (``roboflow inspect``)."""

from __future__ import annotations

import os
from typing import Any

from roboflow_dataset.sources import TopicInfo, open_source

__all__ = ["frequency_hz", "inspect_source"]


def frequency_hz(topic: TopicInfo) -> float:
    """Messages per second over the topic's log-time span (0 for fewer than two messages)."""
    first, last = topic.first_log_time_ns, topic.last_log_time_ns
    if topic.count < 2 or first is None or last is None or last <= first:
        return 0.0
    return round((topic.count - 1) * 1e9 / (last - first), 3)


def inspect_source(
    path: str | os.PathLike[str], *, timeline: str | None = None, timeline_rate_hz: float | None = None
) -> dict[str, Any]:
    """Summarize a recording with exact per-topic message counts.

    Args:
        path: Anything :func:`roboflow_dataset.sources.open_source` accepts.
        timeline: A ``.rrd`` recording's timeline to count and time on (see ``open_source``).
        timeline_rate_hz: The rate of a ``.rrd`` sequence timeline.

    Returns:
        ``{"format", "path", "start_ns", "end_ns", "duration_s", "message_count", "topics": [{"topic",
        "type", "count", "frequency_hz", "encoding"}]}``; times are log times, ``None`` (and a
        duration of 0) for a recording without messages; frequencies from log times. A ``.rrd``
        recording adds ``"timeline"`` (the one its times are on) and ``"timelines"`` (name ->
        ``timestamp | duration | sequence``); its topics are entity paths, types archetypes.

    Raises:
        SourceError: The recording cannot be opened or is damaged.
    """
    with open_source(path, timeline=timeline, timeline_rate_hz=timeline_rate_hz) as source:
        topics = source.topics()
        start, end = source.start_ns, source.end_ns
        summary: dict[str, Any] = {
            "format": source.format,
            "path": str(source.path),
            "start_ns": start,
            "end_ns": end,
            "duration_s": (end - start) / 1e9 if start is not None and end is not None else 0.0,
            "message_count": sum(t.count for t in topics),
            "topics": [
                {
                    "topic": t.topic,
                    "type": t.msgtype,
                    "count": t.count,
                    "frequency_hz": frequency_hz(t),
                    "encoding": t.encoding,
                }
                for t in topics
            ],
        }
        from roboflow_dataset.sources._rrd import RrdSource  # imports pyarrow: not at every start

        if isinstance(source, RrdSource):
            summary["timeline"] = source.timeline.name
            summary["timelines"] = source.timelines
        return summary
