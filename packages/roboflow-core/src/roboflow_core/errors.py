"""The one error hierarchy of Roboflow.

Every error a user can meet derives from :class:`RoboflowError` and names what failed
(file, topic, key path, URL) and why, so that a job can be marked failed with a useful reason::

    RoboflowError
    ├── ConfigError            bad or unknown config key, invalid value (names the key path)
    ├── SourceError            a recording cannot be read (names the file)
    │   ├── UnknownFormatError     not a ROS1 bag, ROS2 bag or MCAP file
    │   ├── CorruptRecordingError  truncated or damaged file
    │   └── MissingTopicError      a mapped topic is not in the recording
    ├── DecodeError            one message cannot be decoded (names file, topic, log time)
    ├── MediaError             image decoding or video encoding failed
    ├── DatasetError           writing or reading a dataset failed
    ├── StorageError           storage URL, credentials, I/O against a store
    ├── PipelineError          a conversion failed as a whole (wraps the reasons above)
    └── CoordinationError      the coordination store (SQLite/etcd/TiKV) is unreachable or refused

Errors keep their context as attributes and survive a pickle round-trip, so worker
processes can send them back to the parent unchanged.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "ConfigError",
    "CoordinationError",
    "CorruptRecordingError",
    "DatasetError",
    "DecodeError",
    "MediaError",
    "MissingTopicError",
    "PipelineError",
    "RoboflowError",
    "SourceError",
    "StorageError",
    "UnknownFormatError",
]


class RoboflowError(Exception):
    """Base of every Roboflow error.

    Args:
        reason: What went wrong and, where possible, what to do about it.
        **context: Named context (``path``, ``topic``, ``key``, ...); ``None`` values are dropped.
    """

    def __init__(self, reason: str, **context: Any) -> None:
        self.reason = reason
        self.context: dict[str, Any] = {k: v for k, v in context.items() if v is not None}
        super().__init__(self._render())

    def _render(self) -> str:
        where = ", ".join(f"{k}={v}" for k, v in self.context.items())
        return f"{where}: {self.reason}" if where else self.reason

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), self.reason, self.context))

    def __getattr__(self, name: str) -> Any:
        context = self.__dict__.get("context", {})
        if name in context:
            return context[name]
        raise AttributeError(name)


def _rebuild(cls: type[RoboflowError], reason: str, context: dict[str, Any]) -> RoboflowError:
    return cls(reason, **context)


class ConfigError(RoboflowError):
    """A config file or value is invalid; ``key`` names the key path."""


class SourceError(RoboflowError):
    """A recording cannot be opened or read; ``path`` names the file."""


class UnknownFormatError(SourceError):
    """The input is not a recognised recording format."""


class CorruptRecordingError(SourceError):
    """The recording is truncated or damaged."""


class MissingTopicError(SourceError):
    """A topic named in the config is not in the recording."""


class DecodeError(RoboflowError):
    """A single message cannot be decoded (malformed payload, size mismatch, bad image)."""


class MediaError(RoboflowError):
    """Image decoding or video encoding failed."""


class DatasetError(RoboflowError):
    """A dataset cannot be written or read back."""


class StorageError(RoboflowError):
    """A storage URL is invalid or an operation against a store failed."""


class PipelineError(RoboflowError):
    """A conversion failed as a whole."""


class CoordinationError(RoboflowError):
    """The coordination store is unreachable, refused an operation, or holds an invalid record."""
