"""The public surface of roboflow_media."""

from __future__ import annotations

import roboflow_media


def test_all_is_sorted_and_exported() -> None:
    # ruff's RUF022 order: CONSTANTS, then Classes, then functions
    def rank(name: str) -> tuple[bool, bool, str]:
        return (not name.isupper(), not name[0].isupper(), name)

    assert roboflow_media.__all__ == sorted(roboflow_media.__all__, key=rank)
    assert all(hasattr(roboflow_media, name) for name in roboflow_media.__all__)
