"""Reading a LeRobot dataset (v3.0 or v2.1) back: metadata for appends, everything for checks."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from roboflow_core.errors import DatasetError
from roboflow_dataset.stats import FeatureStats

if TYPE_CHECKING:  # pandas is imported where it is used: a conversion's workers never need it
    import pandas as pd

__all__ = [
    "DatasetContents",
    "episode_stats",
    "is_v3",
    "read_dataset",
    "read_episodes",
    "read_info",
    "read_json",
    "read_jsonl",
    "read_tasks",
]

INFO = "meta/info.json"
STATS = "meta/stats.json"


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


def _read_parquets(paths: list[Path]) -> pa.Table | None:
    try:
        tables = [pq.read_table(path) for path in paths]
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


def read_episodes(root: Path, info: dict[str, Any]) -> pd.DataFrame:
    """Episode metadata in episode order.

    Raises:
        DatasetError: A metadata file is unreadable.
    """
    import pandas as pd

    if is_v3(info):
        table = _read_parquets(sorted(root.glob("meta/episodes/*/*.parquet")))
        frame = table.to_pandas() if table is not None else pd.DataFrame({"episode_index": []})
    else:
        frame = pd.DataFrame(read_jsonl(root / "meta/episodes.jsonl"))
        stats = {row["episode_index"]: row["stats"] for row in read_jsonl(root / "meta/episodes_stats.jsonl")}
        if not frame.empty:
            frame["stats"] = [stats.get(i) for i in frame["episode_index"]]
    return frame.sort_values("episode_index", ignore_index=True) if not frame.empty else frame


def read_tasks(root: Path, info: dict[str, Any]) -> list[str]:
    """Task strings, position = ``task_index``.

    Raises:
        DatasetError: The tasks file is unreadable.
    """
    if is_v3(info):
        import pandas as pd

        path = root / "meta/tasks.parquet"
        try:
            frame = pd.read_parquet(path)
        except (OSError, pa.ArrowException) as err:
            raise DatasetError(f"cannot read tasks: {err}", path=str(path)) from err
        return [str(task) for task in frame.sort_values("task_index").index]
    rows = sorted(read_jsonl(root / "meta/tasks.jsonl"), key=lambda row: int(row["task_index"]))
    return [str(row["task"]) for row in rows]


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
    return DatasetContents(
        info=info,
        episodes=read_episodes(root, info),
        data=data.to_pandas() if data is not None else pd.DataFrame(),
        tasks=read_tasks(root, info),
        stats=read_json(root / STATS),
    )


def episode_stats(episodes: pd.DataFrame) -> list[dict[str, FeatureStats]]:
    """Per-episode statistics from :func:`read_episodes` rows (v3 ``stats/*`` columns or v2.1 ``stats``)."""
    if episodes.empty:
        return []
    if "stats" in episodes:
        return [dict(stats) for stats in episodes["stats"]]
    columns = [c.split("/") for c in episodes.columns if c.startswith("stats/")]
    result: list[dict[str, FeatureStats]] = []
    for _, row in episodes.iterrows():
        stats: dict[str, FeatureStats] = {}
        for _, *feature, stat in columns:
            name = "/".join(feature)
            stats.setdefault(name, {})[stat] = _to_list(row[f"stats/{name}/{stat}"])
        result.append(stats)
    return result


def _to_list(value: Any) -> Any:
    """Nested lists from what pandas makes of arrow lists (object arrays of arrays)."""
    if isinstance(value, np.ndarray):
        return [_to_list(v) for v in value] if value.dtype == object else value.tolist()
    return value
