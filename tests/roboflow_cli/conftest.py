"""Servers the CLI and console tests use: etcd on 127.0.0.1 (Debian etcd-server)."""

from __future__ import annotations

from tests._servers import etcd_clean, etcd_server

__all__ = ["etcd_clean", "etcd_server"]
