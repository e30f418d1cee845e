"""The ``roboflow`` command line: inspect recordings and convert them into LeRobot datasets."""

from __future__ import annotations

import gc
import io
import json
import sys
from importlib import import_module
from pathlib import Path
from typing import Any, ClassVar, TextIO, cast

import click
import msgspec

from roboflow_cli._options import episodes_per_chunk_option, log_format_option
from roboflow_core import ConfigError, RoboflowError, load_config
from roboflow_core.annotation import read_annotation
from roboflow_core.config import SourceConfig
from roboflow_core.logs import configure_logging
from roboflow_core.redact import redact

__all__ = ["cli"]


def _fail(err: RoboflowError) -> None:
    click.echo(f"error: {redact(str(err))}", err=True)
    sys.exit(1)


def _fmt_time(ns: int | None) -> str:
    return "-" if ns is None else f"{ns / 1e9:.3f}"


def _print_inspection(info: dict[str, Any]) -> None:
    click.echo(f"path:      {info['path']}")
    click.echo(f"format:    {info['format']}")
    click.echo(f"duration:  {info['duration_s']:.3f} s")
    click.echo(f"start/end: {_fmt_time(info['start_ns'])} / {_fmt_time(info['end_ns'])} (s since epoch)")
    click.echo(f"messages:  {info['message_count']}")
    if "timelines" in info:
        timelines = ", ".join(f"{name} ({kind})" for name, kind in info["timelines"].items())
        click.echo(f"timeline:  {info['timeline']} (of: {timelines})")
    topics = info["topics"]
    if not topics:
        click.echo("topics:    none")
        return
    width = max(len(t["topic"]) for t in topics)
    type_width = max(len(t["type"]) for t in topics)
    click.echo(f"\n{'topic':<{width}}  {'type':<{type_width}}  {'count':>8}  {'Hz':>8}  encoding")
    for t in topics:
        click.echo(
            f"{t['topic']:<{width}}  {t['type']:<{type_width}}  {t['count']:>8}  "
            f"{t['frequency_hz']:>8.2f}  {t['encoding']}"
        )


class _Commands(click.Group):
    """The ``roboflow`` group: the distributed commands and ``ui`` are imported when one is run or
    listed (their modules cost every ``inspect`` and ``convert`` ~3 ms at start otherwise)."""

    _ELSEWHERE: ClassVar[dict[str, str]] = {
        **dict.fromkeys(("submit", "batch", "jobs", "run", "worker", "scanner", "health"), "distributed"),
        "ui": "console.command",
    }

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self._ELSEWHERE})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        module = self._ELSEWHERE.get(cmd_name)
        if module is not None and cmd_name not in self.commands:
            self.add_command(getattr(import_module(f"roboflow_cli.{module}"), cmd_name))
        return super().get_command(ctx, cmd_name)


@click.group(
    cls=_Commands, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100}
)
@click.version_option(package_name="roboflow-cli")
def cli() -> None:
    """Roboflow: turn robotics recordings into training-ready LeRobot datasets.

    Reads ROS1 .bag files, ROS2 bag directories (.db3 or .mcap storage), bare MCAP files and
    Rerun .rrd recordings.
    """


@cli.command()
@click.argument("path")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of a table.")
@click.option("--timeline", help="A .rrd recording's timeline to count and time on (default: log_time).")
@click.option("--timeline-rate-hz", type=float, help="The rate of a .rrd sequence timeline.")
def inspect(path: str, as_json: bool, timeline: str | None, timeline_rate_hz: float | None) -> None:
    """Show a recording's format, duration and topics (type, count, frequency, encoding).

    PATH is a .bag, .mcap or .rrd file or a ROS2 bag directory, locally or at an s3:// or oss://
    URL (a bag "directory" in a bucket is a key prefix). The topics of a .rrd recording are its
    entity paths with their archetypes.
    """
    from roboflow_dataset import inspect_source

    try:
        info = inspect_source(path, timeline=timeline, timeline_rate_hz=timeline_rate_hz)
    except RoboflowError as err:
        _fail(err)
    if as_json:
        click.echo(json.dumps(info))
    else:
        _print_inspection(info)


@cli.command()
@click.argument("recording")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False),
    default=None,
    help="Write the config here instead of printing it (an existing file is not overwritten).",
)
def init(recording: str, output: str | None) -> None:
    """Write a commented starter config for the robot that recorded RECORDING.

    Cameras become image mappings (depth ones marked; one whose images do not decode is left
    commented out with the reason), JointState topics the state, command-like topics the action,
    and fps the cameras' median rate. Edit it, then `roboflow convert ... --config FILE`.
    """
    from roboflow_dataset.starter import starter_config

    try:
        text = starter_config(recording)
    except RoboflowError as err:
        _fail(err)
        return
    if output is None:
        click.echo(text, nl=False)
        return
    try:
        with open(output, "x", encoding="utf-8") as out:
            out.write(text)
    except FileExistsError:
        raise click.ClickException(f"{output} exists; choose another name or remove it") from None
    click.echo(f"wrote {output}", err=True)


@cli.command()
@click.argument("inputs", nargs=-1, required=True)
@click.option(
    "-c",
    "--config",
    "config_path",
    required=True,
    type=click.Path(dir_okay=False),
    help="TOML config: [dataset], [[mappings]], [video], [alignment], [flushing].",
)
@click.option(
    "-o",
    "--output",
    required=True,
    help="Dataset directory or s3:// / oss:// URL (created, or appended to).",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["lerobot-v3", "lerobot-v2.1"]),
    default="lerobot-v3",
    show_default=True,
    help="LeRobot dataset version to write (v2.1 for lerobot <= 0.3.3).",
)
@click.option(
    "-j",
    "--jobs",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Recordings converted at once, each in its own process.",
)
@click.option(
    "--on-error",
    type=click.Choice(["fail", "skip"]),
    default="fail",
    show_default=True,
    help="fail: stop at the first bad recording and write nothing; skip: convert the rest and list failures.",
)
@click.option("--task", default=None, help="Task string for every episode (overrides [dataset].task).")
@click.option(
    "--tasks",
    "tasks_file",
    type=click.Path(dir_okay=False, exists=True),
    default=None,
    help='JSON object {"recording path": "task", ...}: a task per recording (overrides --task).',
)
@click.option(
    "--salvage",
    is_flag=True,
    help="Convert interrupted recordings (truncated MCAP, unindexed ROS1 bag) up to the damage "
    "(config: [source] salvage = true).",
)
@click.option("--progress/--no-progress", default=None, help="Progress bar (default: on a terminal).")
@episodes_per_chunk_option
@log_format_option
def convert(
    inputs: tuple[str, ...],
    config_path: str,
    output: str,
    fmt: str,
    jobs: int,
    on_error: str,
    task: str | None,
    tasks_file: str | None,
    salvage: bool,
    progress: bool | None,
    episodes_per_chunk: int | None,
    log_format: str,
) -> None:
    """Convert recordings into one LeRobot dataset: an episode per recording (per mark of annotation_file).

    INPUTS are .bag/.mcap files, ROS2 bag directories or globs (quote them: 'data/*.mcap'), locally
    or at s3:// / oss:// URLs (globs match object listings). --output may be a URL too.
    Exits non-zero when any recording failed.
    """
    from roboflow_executor import Progress
    from roboflow_pipeline import DatasetFormat, OnError
    from roboflow_pipeline import convert as run_convert

    gc.freeze()  # what the imports made lives on: no collection walks it again, the exit's included (~0.1 s)
    configure_logging(log_format)
    try:
        config = load_config(config_path)
        if salvage:
            config = msgspec.structs.replace(config, source=SourceConfig(salvage=True))
        annotation = None
        if config.annotation_file is not None:
            _, annotation = read_annotation(config.annotation_file, base=Path(config_path).parent)
        stream: TextIO = io.StringIO() if progress is False else sys.stderr
        bar = Progress(label="convert", force=bool(progress), stream=stream)
        tasks = _load_tasks(inputs, task, tasks_file)
        summary = run_convert(
            list(inputs),
            config,
            output,
            fmt=cast(DatasetFormat, fmt),
            jobs=jobs,
            on_error=cast(OnError, on_error),
            tasks=tasks,
            annotation=annotation,
            progress=bar,
            chunks_size=episodes_per_chunk,
        )
    except RoboflowError as err:
        _fail(err)
    click.echo(summary.render())
    if summary.failures:
        sys.exit(1)


def _load_tasks(inputs: tuple[str, ...], task: str | None, tasks_file: str | None) -> dict[str, str]:
    from roboflow_storage import resolve_inputs

    tasks = {str(p): task for p in resolve_inputs(inputs)} if task is not None else {}
    if tasks_file is not None:
        try:
            given = json.loads(Path(tasks_file).read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise ConfigError(f"cannot read the tasks file: {err}", path=tasks_file) from err
        if not isinstance(given, dict) or not all(isinstance(v, str) for v in given.values()):
            raise ConfigError('the tasks file must be a JSON object {"path": "task"}', path=tasks_file)
        tasks.update({k if "://" in k else str(Path(k)): v for k, v in given.items()})
    return tasks


@cli.command()
@click.argument("path", type=click.Path(dir_okay=True))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["mcap", "ros1", "ros2-db3", "ros2-mcap", "rrd"]),
    default=None,
    help="Recording format (default: from the suffix: .mcap, .bag, .rrd, else a ROS2 .db3 bag directory).",
)
@click.option("--duration", type=float, default=3.0, show_default=True, help="Seconds of recording.")
@click.option("--width", type=int, default=320, show_default=True)
@click.option("--height", type=int, default=240, show_default=True)
@click.option("--compressed", is_flag=True, help="JPEG CompressedImage instead of raw rgb8 Image.")
@click.option(
    "--depth",
    type=click.Choice(["16UC1", "32FC1", "compressedDepth"]),
    default=None,
    help="Also a depth topic for the camera (/cam_high/depth/image_raw[/compressedDepth]).",
)
def sample(
    path: str, fmt: str | None, duration: float, width: int, height: int, compressed: bool, depth: str | None
) -> None:
    """Write a synthetic sample recording (camera + joint states + commands) to try Roboflow on.

    Convert it with the config in examples/sample.toml (sample-compressed.toml for --compressed;
    sample-depth.toml for --depth 16UC1).
    """
    from roboflow_dataset.synth import DepthEncoding, SynthFormat, write_recording

    if fmt is None:
        suffix = Path(path).suffix
        fmt = {".mcap": "mcap", ".bag": "ros1", ".rrd": "rrd"}.get(suffix, "ros2-db3")
    try:
        write_recording(
            path,
            cast(SynthFormat, fmt),
            duration_s=duration,
            width=width,
            height=height,
            compressed=compressed,
            depth_cameras=("cam_high",) if depth else (),
            depth_encoding=cast(DepthEncoding, depth or "16UC1"),
        )
    except RoboflowError as err:
        _fail(err)
    except (ValueError, FileExistsError) as err:
        raise click.UsageError(str(err)) from err
    click.echo(f"wrote {fmt} sample recording: {path}")
