"""TLS files and credentials of a networked store (etcd, TiKV), from URL options and the environment.

=====================  ==============================  ===========================================
URL option             environment (etcd / TiKV)       meaning
=====================  ==============================  ===========================================
``ca=PATH``            ``ROBOFLOW_ETCD_CA_PATH`` /     PEM CA bundle that signed the server
                       ``TIKV_CA_PATH``                certificates (TLS on)
``cert=PATH``          ``ROBOFLOW_ETCD_CERT_PATH`` /   PEM client certificate (with ``key``)
                       ``TIKV_CERT_PATH``
``key=PATH``           ``ROBOFLOW_ETCD_KEY_PATH`` /    PEM private key of the client certificate
                       ``TIKV_KEY_PATH``
``user=NAME``          ``ROBOFLOW_ETCD_USER``          etcd user (password auth; etcd only)
(none)                 ``ROBOFLOW_ETCD_PASSWORD``      its password: only from the environment
=====================  ==============================  ===========================================

A URL option wins over the variable. The password is never part of a URL (URLs end up in logs and
process listings) and never shown: :class:`Credentials` leaves it out of its ``repr``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qsl

from roboflow_core import CoordinationError

__all__ = ["Credentials", "StoreOptions", "TlsFiles", "parse_store_query"]

_ETCD_ENV = {
    "ca": "ROBOFLOW_ETCD_CA_PATH",
    "cert": "ROBOFLOW_ETCD_CERT_PATH",
    "key": "ROBOFLOW_ETCD_KEY_PATH",
    "user": "ROBOFLOW_ETCD_USER",
}
_TIKV_ENV = {"ca": "TIKV_CA_PATH", "cert": "TIKV_CERT_PATH", "key": "TIKV_KEY_PATH"}
ETCD_PASSWORD_ENV = "ROBOFLOW_ETCD_PASSWORD"


@dataclass(frozen=True, slots=True)
class TlsFiles:
    """PEM files for a TLS connection: the CA to trust (``None``: the system's) and a client pair.

    Raises:
        CoordinationError: Only one of ``cert`` and ``key`` is given.
    """

    ca: Path | None = None
    cert: Path | None = None
    key: Path | None = None

    def __post_init__(self) -> None:
        if (self.cert is None) != (self.key is None):
            raise CoordinationError(
                "a TLS client certificate needs its key and the key its certificate: give both or neither"
            )

    def read(self) -> tuple[bytes | None, bytes | None, bytes | None]:
        """The contents of ``ca``, ``key`` and ``cert`` (``None`` where not given).

        Raises:
            CoordinationError: A file cannot be read (named, with the reason).
        """
        return _read(self.ca, "CA"), _read(self.key, "key"), _read(self.cert, "certificate")


@dataclass(frozen=True, slots=True)
class Credentials:
    """A user name and password; the password never appears in ``repr`` or messages."""

    user: str
    password: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class StoreOptions:
    """Security options of a store URL (see the module docstring)."""

    tls: TlsFiles | None = None
    credentials: Credentials | None = None


def parse_store_query(scheme: str, query: str, environ: Mapping[str, str] | None = None) -> StoreOptions:
    """The options of an ``etcd://`` or ``tikv://`` URL's query, completed from the environment.

    Args:
        scheme: ``etcd`` or ``tikv``.
        query: The URL's query (after ``?``), possibly empty.
        environ: The environment (default ``os.environ``).

    Raises:
        CoordinationError: An unknown or repeated option, a password in the URL, a user without a
            password (or the reverse), or only one of certificate and key.
    """
    env = os.environ if environ is None else environ
    names = _ETCD_ENV if scheme == "etcd" else _TIKV_ENV
    given: dict[str, str] = {}
    for name, value in parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query)):
        if name == "password":
            raise CoordinationError(
                f"a store URL must not carry the password: set {ETCD_PASSWORD_ENV} instead"
            )
        if name not in names:
            known = ", ".join(names)
            raise CoordinationError(f"unknown {scheme}:// URL option {name!r}; known options: {known}")
        if name in given:
            raise CoordinationError(f"{scheme}:// URL option {name!r} given twice")
        given[name] = value
    chosen = {name: (given.get(name) or env.get(var, "")).strip() for name, var in names.items()}
    paths = {name: Path(chosen[name]) if chosen[name] else None for name in ("ca", "cert", "key")}
    tls = TlsFiles(**paths) if any(paths.values()) else None
    credentials = None
    if scheme == "etcd":
        user, password = chosen["user"], env.get(ETCD_PASSWORD_ENV, "")
        if bool(user) != bool(password):
            raise CoordinationError(
                f"etcd password auth needs both a user (user= or {_ETCD_ENV['user']}) and "
                f"a password ({ETCD_PASSWORD_ENV}); only one is set"
            )
        credentials = Credentials(user, password) if user else None
    return StoreOptions(tls=tls, credentials=credentials)


def _read(path: Path | None, what: str) -> bytes | None:
    if path is None:
        return None
    try:
        return path.read_bytes()
    except OSError as err:
        raise CoordinationError(f"cannot read the TLS {what} file {path}: {err.strerror}") from err
