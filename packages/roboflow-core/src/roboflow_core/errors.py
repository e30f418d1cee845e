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
    ├── StalledError           a conversion made no progress or ran too long: abandoned, retried
    └── CoordinationError      the coordination store (SQLite/etcd/TiKV) is unreachable or refused
        ├── NotFoundError          no batch, job or dataset of that name (an operator's request)
        └── ConflictError          the request does not fit the record's state (retry a running job)

Errors keep their context as attributes and survive a pickle round-trip, so worker
processes can send them back to the parent unchanged.

Each error says whether retrying can help (:attr:`RoboflowError.transient`): a fault of the
input (a damaged recording, a bad config, a missing object) is permanent and ends a job at once;
an outage (the store or the coordination store unreachable, an object changed mid-read) is
transient and is retried. Each class has a default that one error may override
(``transient=`` when raised).
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "ConfigError",
    "ConflictError",
    "CoordinationError",
    "CorruptRecordingError",
    "DatasetError",
    "DecodeError",
    "MediaError",
    "MissingTopicError",
    "NotFoundError",
    "PipelineError",
    "RoboflowError",
    "SourceError",
    "StalledError",
    "StorageError",
    "UnknownFormatError",
]


class RoboflowError(Exception):
    """Base of every Roboflow error.

    Args:
        reason: What went wrong and, where possible, what to do about it.
        transient: Whether retrying can help; default: the class's :attr:`transient`.
        **context: Named context (``path``, ``topic``, ``key``, ...); ``None`` values are dropped.

    Attributes:
        transient: ``True`` when the same operation may succeed later (an outage), ``False``
            when it fails the same way every time (a fault of the input or configuration).
    """

    transient: bool = False

    def __init__(self, reason: str, *, transient: bool | None = None, **context: Any) -> None:
        self.reason = reason
        self.context: dict[str, Any] = {k: v for k, v in context.items() if v is not None}
        if transient is not None:
            self.transient = transient
        super().__init__(self._render())

    def _render(self) -> str:
        where = ", ".join(f"{k}={v}" for k, v in self.context.items())
        return f"{where}: {self.reason}" if where else self.reason

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), self.reason, self.transient, self.context))

    def __getattr__(self, name: str) -> Any:
        context = self.__dict__.get("context", {})
        if name in context:
            return context[name]
        raise AttributeError(name)


def is_transient(err: BaseException) -> bool:
    """Whether retrying may help: a transient :class:`RoboflowError`, or an unexpected exception
    (a bug or an OS failure, not known to be permanent)."""
    return err.transient if isinstance(err, RoboflowError) else True


def _rebuild(
    cls: type[RoboflowError], reason: str, transient: bool, context: dict[str, Any]
) -> RoboflowError:
    return cls(reason, transient=transient, **context)


class ConfigError(RoboflowError):
    """A config file or value is invalid; ``key`` names the key path."""


class SourceError(RoboflowError):
    """A recording cannot be opened or read; ``path`` names the file."""


class UnknownFormatError(SourceError):
    """The input is not a recognised recording format."""


class CorruptRecordingError(SourceError):
    """The recording is truncated or damaged."""


class RecordingLimitError(CorruptRecordingError):
    """The recording claims more than a safety limit allows (record or chunk size, log time, image
    size, episode length): damaged or hostile, and not an interruption that salvage could cut."""


class MissingTopicError(SourceError):
    """A topic named in the config is not in the recording."""


class DecodeError(RoboflowError):
    """A single message cannot be decoded (malformed payload, size mismatch, bad image)."""


class MediaError(RoboflowError):
    """Image decoding or video encoding failed."""


class DatasetError(RoboflowError):
    """A dataset cannot be written or read back."""


class StorageError(RoboflowError):
    """A storage URL is invalid or an operation against a store failed.

    Transient by default (the store may come back); a bad URL or setting, a refused credential
    or a missing object is raised as permanent.
    """

    transient = True


class PipelineError(RoboflowError):
    """A conversion failed as a whole (permanent: the recording's topics cannot form an episode)."""


class StalledError(RoboflowError):
    """A conversion attempt made no progress for too long, or ran too long, and was abandoned
    (transient: another pod may convert it; a unit is Dead once its attempts are used up)."""

    transient = True


class CoordinationError(RoboflowError):
    """The coordination store is unreachable, refused an operation, or holds an invalid record."""

    transient = True


class NotFoundError(CoordinationError):
    """A batch, job, episode or dataset that a request names does not exist."""

    transient = False


class ConflictError(CoordinationError):
    """A request that does not fit the current state (retrying a running job, cancelling a finished batch)."""

    transient = False
