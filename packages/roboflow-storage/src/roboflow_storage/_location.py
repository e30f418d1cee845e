"""Parse a storage URL into where it points, and show it without its query.

A URL may say where its store is (``endpoint``, ``region``) and how to address it, never with
what credentials: a URL is stored in batch records, logged and shown, so a secret in it would
leak. Credentials come from the environment of the process (``AWS_*`` / ``OSS_*`` variables, a
Kubernetes Secret, IRSA or an instance role).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal
from urllib.parse import parse_qsl, unquote, urlsplit

import msgspec

from roboflow_storage.errors import StorageError

Scheme = Literal["file", "memory", "s3", "oss"]
_SCHEMES: dict[str, Scheme] = {"file": "file", "memory": "memory", "s3": "s3", "s3a": "s3", "oss": "oss"}
#: Query parameters a URL may carry.
QUERY_KEYS = frozenset({"endpoint", "region", "virtual_hosted", "anonymous"})
#: Query parameters that would carry credentials: refused.
SECRET_KEYS = frozenset({"access_key_id", "secret_access_key", "session_token"})
_CREDENTIALS_HINT = (
    "credentials are not accepted in a URL (it is stored in batch records, logged and shown); "
    "give the process credentials through its environment (AWS_ACCESS_KEY_ID / "
    "AWS_SECRET_ACCESS_KEY, OSS_ACCESS_KEY_ID / OSS_ACCESS_KEY_SECRET), a Kubernetes Secret or "
    "IRSA / an instance role"
)


class Location(msgspec.Struct, frozen=True, kw_only=True):
    """Where a storage URL points.

    Attributes:
        scheme: ``file``, ``memory``, ``s3`` or ``oss``.
        bucket: The bucket (the store name for ``memory``; empty for ``file``).
        prefix: Key prefix inside the bucket without empty or ``.`` segments (so without slashes
            at the ends); for ``file``, the absolute directory.
        options: Query parameters (endpoint, region, addressing); never shown by ``repr``.
    """

    scheme: Scheme
    bucket: str
    prefix: str
    options: dict[str, str] = {}

    def __repr__(self) -> str:
        return f"Location({self.display()!r})"

    def display(self, key: str = "") -> str:
        """The URL of ``key`` below this location, without query parameters (they may hold secrets)."""
        if self.scheme == "file":
            return str(Path(self.prefix, key)) if key else self.prefix
        path = "/".join(part for part in (self.prefix, key) if part)
        return f"{self.scheme}://{self.bucket}/{path}"

    def identity(self) -> str:
        """One name for where this location points, however its URL was spelled.

        Trailing, repeated and ``.`` path segments are already gone from :attr:`prefix`; a local
        directory is named by its real path (symlinks resolved); credentials and other options
        are left out, except the endpoint, which decides which store a bucket is in.
        """
        if self.scheme == "file":
            return Path(os.path.realpath(self.prefix)).as_uri()
        where = f"{self.scheme}://{self.bucket}/{self.prefix}"
        endpoint = self.options.get("endpoint", "").rstrip("/")
        return f"{where} at {endpoint}" if endpoint else where


def parse_location(url: str | os.PathLike[str]) -> Location:
    """Parse a plain path, ``file://``, ``memory://``, ``s3://`` or ``oss://`` URL.

    Raises:
        StorageError: Unknown scheme, missing bucket, credentials in the query (refused, see
            the module docstring) or an unknown query parameter.
    """
    text = os.fspath(url)
    parts = urlsplit(text)
    if not parts.scheme or len(parts.scheme) == 1:  # a plain path (or a Windows drive letter)
        return Location(scheme="file", bucket="", prefix=str(Path(text).absolute()))
    scheme = _SCHEMES.get(parts.scheme.lower())
    shown = text.split("?")[0]
    if scheme is None:
        known = ", ".join(sorted(_SCHEMES))
        raise StorageError(
            f"unknown scheme {parts.scheme!r}; use a path or one of {known}", transient=False, url=shown
        )
    if scheme == "file":
        return Location(scheme="file", bucket="", prefix=str(Path(unquote(parts.path)).absolute()))
    options = dict(parse_qsl(parts.query, keep_blank_values=True))
    secret = sorted(set(options) & SECRET_KEYS)
    if secret:
        raise StorageError(f"{', '.join(secret)} in the URL: {_CREDENTIALS_HINT}", transient=False, url=shown)
    if "allow_http" in options:
        raise StorageError(
            "allow_http in a URL is not accepted: plain HTTP is allowed only for an endpoint listed "
            "with its http:// scheme in ROBOFLOW_ALLOWED_ENDPOINTS",
            transient=False,
            url=shown,
        )
    unknown = sorted(set(options) - QUERY_KEYS)
    if unknown:
        raise StorageError(
            f"unknown query parameter(s) {', '.join(unknown)}; known: {', '.join(sorted(QUERY_KEYS))}",
            transient=False,
            url=shown,
        )
    if not parts.netloc and scheme != "memory":
        raise StorageError(
            f"the URL names no bucket; use {scheme}://BUCKET/PREFIX", transient=False, url=shown
        )
    segments = [seg for seg in unquote(parts.path).split("/") if seg not in ("", ".")]
    if ".." in segments:
        raise StorageError(
            "'..' is not allowed in a store URL's path (keys are not directories)", transient=False, url=shown
        )
    prefix = "/".join(segments)
    return Location(scheme=scheme, bucket=parts.netloc, prefix=prefix, options=options)


def normalize_endpoint(endpoint: str) -> str:
    """``scheme://host[:port]`` of an endpoint, lower case, https assumed, default port dropped."""
    parts = urlsplit(endpoint if "://" in endpoint else f"https://{endpoint}")
    scheme, host = parts.scheme.lower(), (parts.hostname or "").lower()
    default = {"http": 80, "https": 443}.get(scheme)
    try:
        port = parts.port
    except ValueError:
        port = None
    netloc = host if port in (None, default) else f"{host}:{port}"
    return f"{scheme}://{netloc}"
