"""Configs in the store, addressed by their content hash (so a unit always finds its exact config)."""

from __future__ import annotations

from roboflow_core import ConfigError, RoboflowConfig, loads_config
from roboflow_distributed import keys
from roboflow_distributed.store import ABSENT, Compare, Store

__all__ = ["fetch_config", "store_config"]


def store_config(store: Store, text: str, *, source: str = "<config>") -> tuple[str, RoboflowConfig]:
    """Validate TOML ``text`` and keep it under its content hash; returns ``(sha256, config)``.

    Storing the same config twice is a no-op.

    Raises:
        ConfigError: The TOML is invalid (names the key path).
        CoordinationError: The store is unreachable.
    """
    config = loads_config(text, source=source)
    digest = config.content_hash()
    key = keys.config(digest)
    store.txn([Compare(key, ABSENT)], {key: text.encode("utf-8")})
    return digest, config


def fetch_config(store: Store, digest: str) -> RoboflowConfig:
    """The config stored under ``digest``.

    Never falls back to a default: a missing or altered config is an error.

    Raises:
        ConfigError: No config under that hash in this store, or its content does not match the hash.
        CoordinationError: The store is unreachable.
    """
    entry = store.get(keys.config(digest))
    if entry is None:
        raise ConfigError(
            f"config sha256:{digest} is not in the store {store.url} (was the batch submitted to another "
            "store?)",
            key=keys.config(digest),
        )
    config = loads_config(entry.value.decode("utf-8"), source=f"sha256:{digest}")
    if config.content_hash() != digest:
        raise ConfigError(f"stored config does not match its hash sha256:{digest}", key=entry.key)
    return config
