"""Metadata of one stored object."""

from __future__ import annotations

from datetime import datetime

import msgspec


class ObjectInfo(msgspec.Struct, frozen=True, kw_only=True):
    """What a store knows about one object.

    Attributes:
        key: The key relative to the storage root (``/``-separated).
        size: Size in bytes.
        etag: The entity tag (changes when the content changes), if the store has one.
        last_modified: When the object was last written.
    """

    key: str
    size: int
    etag: str | None = None
    last_modified: datetime | None = None
