"""Errors of object storage, below :class:`roboflow_core.StorageError`::

    StorageError                 storage URL, credentials, I/O against a store (names the URL)
    ├── ObjectNotFoundError      no object at the URL
    ├── ObjectExistsError        a ``mode="create"`` put found an object already there
    └── ObjectChangedError       a conditional replace found the object changed or gone

Every message names the URL and the reason and never a secret (access keys, tokens, query
parameters that carry credentials).
"""

from __future__ import annotations

from roboflow_core import StorageError

__all__ = ["ObjectChangedError", "ObjectExistsError", "ObjectNotFoundError", "StorageError"]


class ObjectNotFoundError(StorageError):
    """No object exists at the URL (permanent: retrying finds none either)."""

    transient = False


class ObjectExistsError(StorageError):
    """A conditional (``mode="create"``) write found an object already at the URL."""


class ObjectChangedError(StorageError):
    """A conditional replace (``If-Match``) found the object changed or deleted since it was read."""
