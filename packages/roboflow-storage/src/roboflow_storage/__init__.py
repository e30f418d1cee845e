"""Roboflow storage: where recordings are read from and datasets written to.

:class:`Storage` is one API over local directories, ``memory://``, ``s3://`` (AWS or any
S3-compatible endpoint) and ``oss://`` (Alibaba OSS), built on obstore: object verbs only.
:class:`Spool` keeps local copies of objects (bounded LRU cache, parallel downloads, copies
readable while they download) for readers that need a real file. :func:`resolve_inputs`
turns the inputs a user names into recordings.
"""

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from roboflow_storage._cache import LruCache, Reservation
    from roboflow_storage._files import download_tree, upload_file
    from roboflow_storage._glob import has_wildcards
    from roboflow_storage._growing import GrowingCopy
    from roboflow_storage._info import ObjectInfo
    from roboflow_storage._inputs import (
        RECORDING_SUFFIXES,
        Recording,
        check_inputs,
        display_url,
        is_remote,
        local_path,
        open_remote,
        prefetch_recording,
        recording_bytes,
        resolve_inputs,
    )
    from roboflow_storage._pread import pread_stream
    from roboflow_storage._reader import ObjectReader
    from roboflow_storage._retry import RetryPolicy, retry_call
    from roboflow_storage._settings import StorageSettings
    from roboflow_storage._spool import Spool, default_spool
    from roboflow_storage._storage import MIN_PART_SIZE, Storage
    from roboflow_storage._writer import ObjectWriter
    from roboflow_storage.errors import ObjectChangedError, ObjectExistsError, ObjectNotFoundError

__all__ = [
    "MIN_PART_SIZE",
    "RECORDING_SUFFIXES",
    "GrowingCopy",
    "LruCache",
    "ObjectChangedError",
    "ObjectExistsError",
    "ObjectInfo",
    "ObjectNotFoundError",
    "ObjectReader",
    "ObjectWriter",
    "Recording",
    "Reservation",
    "RetryPolicy",
    "Spool",
    "Storage",
    "StorageSettings",
    "check_inputs",
    "default_spool",
    "display_url",
    "download_tree",
    "has_wildcards",
    "is_remote",
    "local_path",
    "open_remote",
    "pread_stream",
    "prefetch_recording",
    "recording_bytes",
    "resolve_inputs",
    "retry_call",
    "upload_file",
]

# Each name is imported from its module when first used: a local conversion then loads neither
# obstore nor the spool (~10 ms of imports), which only a store or a remote recording needs.
_MODULES = {
    "MIN_PART_SIZE": "_storage",
    "RECORDING_SUFFIXES": "_inputs",
    "GrowingCopy": "_growing",
    "LruCache": "_cache",
    "ObjectChangedError": "errors",
    "ObjectExistsError": "errors",
    "ObjectInfo": "_info",
    "ObjectNotFoundError": "errors",
    "ObjectReader": "_reader",
    "ObjectWriter": "_writer",
    "Recording": "_inputs",
    "Reservation": "_cache",
    "RetryPolicy": "_retry",
    "Spool": "_spool",
    "Storage": "_storage",
    "StorageSettings": "_settings",
    "check_inputs": "_inputs",
    "default_spool": "_spool",
    "display_url": "_inputs",
    "download_tree": "_files",
    "has_wildcards": "_glob",
    "is_remote": "_inputs",
    "local_path": "_inputs",
    "open_remote": "_inputs",
    "pread_stream": "_pread",
    "prefetch_recording": "_inputs",
    "recording_bytes": "_inputs",
    "resolve_inputs": "_inputs",
    "retry_call": "_retry",
    "upload_file": "_files",
}


def __getattr__(name: str) -> Any:
    module = _MODULES.get(name)
    if module is None:
        raise AttributeError(f"module 'roboflow_storage' has no attribute {name!r}")
    value = getattr(import_module(f"roboflow_storage.{module}"), name)
    globals()[name] = value  # found without this hook from now on
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
