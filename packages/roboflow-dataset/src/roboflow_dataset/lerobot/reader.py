"""Reading a LeRobot dataset (v3.0 or v2.1) back: metadata for appends, everything for checks."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from roboflow_core.errors import DatasetError
from roboflow_dataset.stats import FeatureStats

if TYPE_CHECKING:  # pandas is imported by read_dataset only: conversions and merges never need it
    import pandas as pd
    import pyarrow as pa

__all__ = [
    "DatasetContents",
    "EpisodeRow",
    "episode_stats",
    "is_v3",
    "read_dataset",
    "read_episodes",
    "read_info",
    "read_json",
    "read_jsonl",
    "read_parquet",
    "read_tasks",
]

INFO = "meta/info.json"
STATS = "meta/stats.json"

EpisodeRow = dict[str, Any]
"""One episode's metadata as :func:`read_episodes` gives it (v3: every ``meta/episodes`` column,
lists as lists; v2.1: the ``episodes.jsonl`` fields plus ``stats``)."""


@dataclass(frozen=True)
class DatasetContents:
    """A whole dataset in memory (for tests and checks of small datasets).

    Attributes:
        info: ``meta/info.json``.
        episodes: One row per episode (v3: every column of ``meta/episodes``; v2.1: the
            ``episodes.jsonl`` fields plus ``stats``).
        data: Every data row, files concatenated in sorted path order.
        tasks: Task strings by ``task_index``.
        stats: ``meta/stats.json``.
    """

    info: dict[str, Any]
    episodes: pd.DataFrame
    data: pd.DataFrame
    tasks: list[str]
    stats: dict[str, Any]


def read_json(path: Path) -> Any:
    """Parse a JSON file.

    Raises:
        DatasetError: The file is missing or not JSON.
    """
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise DatasetError(f"cannot read JSON: {err}", path=str(path)) from err


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Parse a JSON-lines file.

    Raises:
        DatasetError: The file is missing or a line is not JSON.
    """
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
        return [json.loads(line) for line in lines if line.strip()]
    except (OSError, ValueError) as err:
        raise DatasetError(f"cannot read JSON lines: {err}", path=str(path)) from err


def read_parquet(path: Path, columns: Sequence[str] | None = None) -> pa.Table:
    """One parquet file (``pq.read_table`` would import ``pyarrow.dataset``, and so pandas: ~0.3 s)."""
    import pyarrow.parquet as pq  # where parquet is read: a conversion needs none before its first frame

    with pq.ParquetFile(path) as file:
        return file.read(columns=columns)


def _read_parquets(paths: list[Path]) -> pa.Table | None:
    import pyarrow as pa

    try:
        tables = [read_parquet(path) for path in paths]
    except (OSError, pa.ArrowException) as err:
        raise DatasetError(f"cannot read parquet: {err}", path=str(paths[0].parent)) from err
    return pa.concat_tables(tables, promote_options="permissive") if tables else None


def read_info(root: Path) -> dict[str, Any]:
    """``meta/info.json`` of the dataset at ``root``.

    Raises:
        DatasetError: Missing or unreadable (an unfinished dataset has no info.json).
    """
    info: dict[str, Any] = read_json(root / INFO)
    return info


def is_v3(info: dict[str, Any]) -> bool:
    """Whether ``info`` describes a v3.x dataset (else v2.x)."""
    return str(info.get("codebase_version", "")).startswith("v3")


def read_episodes(root: Path, info: dict[str, Any]) -> list[EpisodeRow]:
    """Episode metadata in episode order.

    Raises:
        DatasetError: A metadata file is unreadable.
    """
    if is_v3(info):
        table = _episodes_table(root)
        rows = table.to_pylist() if table is not None else []
    else:
        stats = {row["episode_index"]: row["stats"] for row in read_jsonl(root / "meta/episodes_stats.jsonl")}
        episodes = read_jsonl(root / "meta/episodes.jsonl")
        rows = [row | {"stats": stats.get(row["episode_index"])} for row in episodes]
    return sorted(rows, key=lambda row: int(row["episode_index"]))


def _episodes_table(root: Path) -> pa.Table | None:
    return _read_parquets(sorted(root.glob("meta/episodes/*/*.parquet")))


def read_tasks(root: Path, info: dict[str, Any]) -> list[str]:
    """Task strings, position = ``task_index``.

    Raises:
        DatasetError: The tasks file is unreadable.
    """
    if is_v3(info):  # the task strings are the pandas index of tasks.parquet, stored as column "task"
        import pyarrow as pa

        path = root / "meta/tasks.parquet"
        try:
            table = read_parquet(path, columns=["task", "task_index"])
        except (OSError, pa.ArrowException) as err:
            raise DatasetError(f"cannot read tasks: {err}", path=str(path)) from err
        rows = table.to_pylist()
    else:
        rows = read_jsonl(root / "meta/tasks.jsonl")
    return [str(row["task"]) for row in sorted(rows, key=lambda row: int(row["task_index"]))]


def read_dataset(root: str | Path) -> DatasetContents:
    """Read a whole dataset into memory (for tests and checks; not for large datasets).

    Raises:
        DatasetError: A file is missing or unreadable.
    """
    import pandas as pd

    root = Path(root)
    info = read_info(root)
    pattern = "data/*/*.parquet" if is_v3(info) else "data/chunk-*/episode_*.parquet"
    data = _read_parquets(sorted(root.glob(pattern)))
    if is_v3(info):  # list columns as numpy arrays, as lerobot's reader gives them
        table = _episodes_table(root)
        episodes = table.to_pandas() if table is not None else pd.DataFrame({"episode_index": []})
    else:
        episodes = pd.DataFrame(read_episodes(root, info))
    return DatasetContents(
        info=info,
        episodes=episodes.sort_values("episode_index", ignore_index=True) if not episodes.empty else episodes,
        data=data.to_pandas() if data is not None else pd.DataFrame(),
        tasks=read_tasks(root, info),
        stats=read_json(root / STATS),
    )


def episode_stats(episodes: Sequence[Mapping[str, Any]]) -> list[dict[str, FeatureStats]]:
    """Per-episode statistics of :func:`read_episodes` rows (v3 ``stats/<feature>/<stat>`` columns or
    v2.1 ``stats``)."""
    result: list[dict[str, FeatureStats]] = []
    for row in episodes:
        if "stats" in row:
            result.append(dict(row["stats"]))
            continue
        stats: dict[str, FeatureStats] = {}
        for column, value in row.items():
            if column.startswith("stats/"):
                name, stat = column.removeprefix("stats/").rsplit("/", 1)
                stats.setdefault(name, {})[stat] = value
        result.append(stats)
    return result
