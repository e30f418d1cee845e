"""Distributed-mode commands: ``submit``, ``batch``, ``jobs``, ``run`` (``worker``, ``scanner``), ``health``.

Every command talks to the coordination store named by ``--store`` or ``ROBOFLOW_STORE``
(default: the embedded SQLite store ``.roboflow/state.db`` in the working directory).
"""

from __future__ import annotations

import csv
import io
import json
import logging
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast

import click
import msgspec

from roboflow_cli._options import episodes_per_chunk_option, log_format_option
from roboflow_core import RoboflowError
from roboflow_core.logs import configure_logging
from roboflow_core.redact import redact

if TYPE_CHECKING:
    from roboflow_distributed.manifest import ManifestBatch

__all__ = ["register"]

_F = TypeVar("_F", bound=Callable[..., Any])

STORE_HELP = (
    "Coordination store: sqlite:///path/state.db (embedded, default .roboflow/state.db), "
    "etcd://host:2379 or tikv://pd1:2379,pd2:2379. Env: ROBOFLOW_STORE (TIKV_PD_ENDPOINTS also works)."
)


def _store_option(fn: _F) -> _F:
    return click.option("--store", "store_url", envvar="ROBOFLOW_STORE", default=None, help=STORE_HELP)(fn)


def _json_option(fn: _F) -> _F:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")(fn)


def _fail(err: RoboflowError) -> None:
    click.echo(f"error: {redact(str(err))}", err=True)
    sys.exit(1)


@contextmanager
def _store(url: str | None) -> Iterator[Any]:
    from roboflow_distributed.store import open_store

    try:
        store = open_store(url)
    except RoboflowError as err:
        _fail(err)
    try:
        yield store
    except RoboflowError as err:
        _fail(err)
    finally:
        store.close()


def _echo_json(value: object) -> None:
    click.echo(json.dumps(value, indent=2, default=str))


def _ago(ts: float | None) -> str:
    if not ts:
        return "-"
    secs = max(time.time() - ts, 0.0)
    return f"{secs:.0f}s ago" if secs < 120 else f"{secs / 60:.0f}m ago"


def _csv_option(fn: _F) -> _F:
    return click.option("--csv", "as_csv", is_flag=True, help="Print CSV (a header row, then one row each).")(
        fn
    )


def _listing(rows: list[list[str]], header: list[str], *, as_csv: bool) -> None:
    """Rows as an aligned table, or as CSV with ``--csv``."""
    if not as_csv:
        _table(rows, header)
        return
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(h.lower() for h in header)
    writer.writerows(rows)
    click.echo(out.getvalue(), nl=False)


def _table(rows: list[list[str]], header: list[str]) -> None:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


# --- submit ------------------------------------------------------------------------------------


@click.command()
@click.argument("inputs", nargs=-1)
@click.option(
    "-c", "--config", "config_path", required=True, type=click.Path(dir_okay=False), help="TOML config."
)
@click.option(
    "-o",
    "--output",
    default=None,
    help="Dataset directory or s3:// / oss:// URL (created or appended to); a manifest's jobs may "
    "name their own.",
)
@click.option(
    "-m",
    "--manifest",
    "manifest_path",
    type=click.Path(dir_okay=False),
    default=None,
    help='JSON manifest (the original\'s): {"jobs": [{"source": ..., "task": ..., "output": ..., '
    '"max_attempts": ...}, ...]} or a list of sources; jobs sharing an output become one batch.',
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["lerobot-v3", "lerobot-v2.1"]),
    default="lerobot-v3",
    show_default=True,
)
@click.option("--task", default=None, help="Task string of every episode (default: [dataset].task).")
@click.option("--name", default=None, help="A name for the batch (default: its id).")
@click.option(
    "--max-attempts",
    type=click.IntRange(min=1),
    default=3,
    show_default=True,
    help="Failed conversions of a recording before it is dead.",
)
@click.option(
    "--staging", default=None, help="Where workers stage episodes (default: <output>.roboflow-staging)."
)
@episodes_per_chunk_option
@click.option("--dry-run", is_flag=True, help="Resolve the inputs and print them; submit nothing.")
@_store_option
@_json_option
@_csv_option
def submit(
    inputs: tuple[str, ...],
    config_path: str,
    output: str | None,
    manifest_path: str | None,
    fmt: str,
    task: str | None,
    name: str | None,
    max_attempts: int,
    staging: str | None,
    episodes_per_chunk: int | None,
    dry_run: bool,
    store_url: str | None,
    as_json: bool,
    as_csv: bool,
) -> None:
    """Submit recordings as one batch for `roboflow run` workers to convert into one dataset.

    INPUTS are files, bag directories, prefixes or globs, locally or in a store; the scanner
    expands them. Prints the batch id (one per output with --manifest).
    """
    from roboflow_core import load_config
    from roboflow_distributed.batches import shown, submit_batch
    from roboflow_storage import display_url, resolve_inputs

    try:
        text = Path(config_path).read_text(encoding="utf-8")
    except OSError as err:
        raise click.BadParameter(f"cannot read {config_path}: {err.strerror}", param_hint="--config") from err
    try:
        annotation = _annotation_text(config_path)
        groups = _submissions(inputs, manifest_path, output, max_attempts)
    except RoboflowError as err:
        _fail(err)
    if dry_run:
        try:
            load_config(config_path)
            found = [display_url(r) for g in groups for r in resolve_inputs(g.sources)]
        except RoboflowError as err:
            _fail(err)
        _echo_json({"recordings": found}) if as_json else click.echo("\n".join(found))
        return
    if name is not None and len(groups) > 1:
        raise click.BadParameter("one name for several batches (the manifest names several outputs)")
    with _store(store_url) as store:
        specs = [
            submit_batch(
                store,
                group.sources,
                text,
                group.output,
                config_source=config_path,
                fmt=fmt,
                task=task,
                tasks=group.tasks,
                annotation=annotation,
                max_attempts=group.max_attempts,
                name=name,
                staging=staging,
                episodes_per_chunk=episodes_per_chunk,
            )
            for group in groups
        ]
    if as_json:
        _echo_json(shown(specs[0]) if manifest_path is None else [shown(spec) for spec in specs])
    elif as_csv:
        rows = [[sp.id, sp.name, display_url(sp.output), str(len(sp.sources))] for sp in specs]
        _listing(rows, ["ID", "NAME", "OUTPUT", "SOURCES"], as_csv=True)
    else:
        click.echo("\n".join(spec.id for spec in specs))


def _submissions(
    inputs: tuple[str, ...], manifest_path: str | None, output: str | None, max_attempts: int
) -> list[ManifestBatch]:
    """The batches to submit: the inputs (into ``--output``) and the manifest's jobs, by output."""
    from roboflow_distributed.manifest import ManifestJob, manifest_batches, read_manifest

    if not inputs and manifest_path is None:
        raise click.UsageError("name INPUTS or a --manifest")
    jobs = [ManifestJob(source=i) for i in inputs]
    where = manifest_path or "<inputs>"
    if manifest_path is not None:
        try:
            raw = Path(manifest_path).read_bytes()
        except OSError as err:
            raise click.BadParameter(
                f"cannot read {manifest_path}: {err.strerror}", param_hint="--manifest"
            ) from err
        jobs += read_manifest(raw, path=manifest_path)
    if output is None and any(j.output is None for j in jobs):
        raise click.UsageError("--output is required (unless every manifest job names its output)")
    return manifest_batches(jobs, output=output, max_attempts=max_attempts, path=where)


def _annotation_text(config_path: str) -> str | None:
    """The JSON of the config's ``annotation_file``, stored with the batch (workers have no copy)."""
    from roboflow_core import load_config
    from roboflow_core.annotation import read_annotation

    config = load_config(config_path)
    if config.annotation_file is None:
        return None
    raw, _ = read_annotation(config.annotation_file, base=Path(config_path).parent)
    return raw.decode("utf-8")


# --- batch -------------------------------------------------------------------------------------


@click.group()
def batch() -> None:
    """List, show and cancel batches."""


@batch.command("list")
@_store_option
@_json_option
@_csv_option
def batch_list(store_url: str | None, as_json: bool, as_csv: bool) -> None:
    """Every batch with its phase and progress."""
    from roboflow_distributed.batches import list_batches
    from roboflow_storage import display_url

    with _store(store_url) as store:
        batches = list_batches(store)
    if as_json:
        _echo_json([b.to_builtins() for b in batches])
        return
    rows = []
    for b in batches:
        s = b.status.record
        rows.append(
            [
                b.spec.id,
                b.spec.name if b.spec.name != b.spec.id else "",
                str(s.phase),
                f"{s.units_complete}/{s.units_total}",
                str(s.units_dead),
                str(s.episodes),
                display_url(b.spec.output),
            ]
        )
    _listing(rows, ["BATCH", "NAME", "PHASE", "DONE", "DEAD", "EPISODES", "OUTPUT"], as_csv=as_csv)


@batch.command("get")
@click.argument("batch_id")
@_store_option
@_json_option
def batch_get(batch_id: str, store_url: str | None, as_json: bool) -> None:
    """One batch: phase, unit counts, the dataset it produced, and its failed units."""
    from roboflow_distributed.batches import get_batch, list_units, shown
    from roboflow_storage import display_url

    with _store(store_url) as store:
        found = get_batch(store, batch_id)
        units = list_units(store, batch_id)
    if as_json:
        _echo_json({**found.to_builtins(), "units": [shown(u.record) for u in units]})
        return
    spec, s = found.spec, found.status.record
    by_status: dict[str, int] = {}
    for u in units:
        by_status[str(u.record.status)] = by_status.get(str(u.record.status), 0) + 1
    click.echo(f"batch     {spec.id}  ({spec.name})")
    click.echo(f"phase     {s.phase}  (updated {_ago(s.updated_at)})")
    click.echo(f"output    {display_url(spec.output)}  ({spec.format})")
    click.echo(f"sources   {', '.join(display_url(s) for s in spec.sources)}")
    click.echo(f"config    sha256:{spec.config_hash[:16]}")
    click.echo(
        f"units     {len(units)}: "
        + (", ".join(f"{n} {k}" for k, n in sorted(by_status.items())) or "none yet")
    )
    if s.phase == "complete":
        click.echo(
            f"dataset   {s.episodes} episodes, {s.frames} frames added; "
            f"{s.dataset_episodes} episodes in total"
        )
        click.echo(_dataset_summary(spec.output))
    if s.error:
        click.echo(f"error     {s.error}")
    if s.merge_failed:
        click.echo(f"          staged episodes kept: `roboflow batch retry-merge {spec.id}` merges again")
    for u in units:
        if u.record.status in ("dead", "failed"):
            click.echo(f"  {u.record.status}: {display_url(u.record.source)}: {u.record.error}")


def _dataset_summary(output: str) -> str:
    """One line about the dataset at ``output`` from its ``meta/info.json`` (or why there is none)."""
    from roboflow_pipeline import Dataset

    try:
        found = Dataset(output).summary()
    except RoboflowError as err:
        return f"          (no readable meta/info.json: {err})"
    if found is None:
        return "          (no meta/info.json)"
    return (
        f"          {found.codebase_version}: {found.total_episodes} episodes, "
        f"{found.total_frames} frames at {found.fps:g} fps, {len(found.features)} features, "
        f"cameras: {', '.join(found.cameras) or 'none'}"
    )


@batch.command("cancel")
@click.argument("batch_id")
@_store_option
def batch_cancel(batch_id: str, store_url: str | None) -> None:
    """Cancel a batch: its waiting recordings are not converted and nothing is merged."""
    from roboflow_distributed.batches import cancel_batch

    with _store(store_url) as store:
        status = cancel_batch(store, batch_id)
    click.echo(f"{batch_id}: {status.phase}")


@batch.command("retry-merge")
@click.argument("batch_id")
@_store_option
def batch_retry_merge(batch_id: str, store_url: str | None) -> None:
    """Merge a batch again whose merge failed: its staged episodes were kept.

    Remove the cause first (see `batch get`); the merge resumes after the episodes it had
    already published, and a finalizer (`run --role finalizer`) carries it out.
    """
    from roboflow_distributed.batches import retry_merge

    with _store(store_url) as store:
        status = retry_merge(store, batch_id)
    click.echo(f"{batch_id}: {status.phase}")


# --- jobs --------------------------------------------------------------------------------------


@click.group()
def jobs() -> None:
    """List, show, retry and cancel jobs (one job converts one recording of a batch)."""


_STATUSES = ["pending", "processing", "complete", "failed", "dead", "cancelled"]


@jobs.command("list")
@click.option("--batch", "batch_id", default=None, help="Only this batch's jobs.")
@click.option("--status", type=click.Choice(_STATUSES), default=None, help="Only jobs with this status.")
@_store_option
@_json_option
@_csv_option
def jobs_list(
    batch_id: str | None, status: str | None, store_url: str | None, as_json: bool, as_csv: bool
) -> None:
    """Jobs with their status, owner and last error.

    FAILED is conversions that ended in an error out of the attempts allowed; LOST is claims
    whose worker stopped heartbeating (re-queued by the reaper).
    """
    from roboflow_distributed.batches import list_units, shown
    from roboflow_distributed.records import UnitStatus
    from roboflow_storage import display_url

    with _store(store_url) as store:
        units = list_units(store, batch_id, UnitStatus(status) if status else None)
    if as_json:
        _echo_json([shown(u.record) for u in units])
        return
    rows = [
        [
            f"{u.record.batch}/{u.record.id}",
            str(u.record.status),
            f"{u.record.attempts}/{u.record.max_attempts}",
            str(u.record.lost),
            u.record.owner or "-",
            display_url(u.record.source),
            (u.record.error or "") if as_csv else (u.record.error or "")[:80],
        ]
        for u in units
    ]
    _listing(rows, ["JOB", "STATUS", "FAILED", "LOST", "OWNER", "SOURCE", "ERROR"], as_csv=as_csv)


@jobs.command("get")
@click.argument("job")
@_store_option
@_json_option
def jobs_get(job: str, store_url: str | None, as_json: bool) -> None:
    """One job (BATCH/UNIT, or a unique unit id prefix)."""
    from roboflow_distributed import keys
    from roboflow_distributed.batches import find_unit, shown
    from roboflow_distributed.records import Checkpoint, read

    with _store(store_url) as store:
        unit = find_unit(store, job).record
        saved = read(store, keys.checkpoint(unit.batch, unit.id), Checkpoint)
    data = shown(unit)
    data["checkpoint"] = msgspec.to_builtins(saved.record) if saved else None
    if as_json:
        _echo_json(data)
        return
    for key, value in data.items():
        click.echo(f"{key:<13} {value if value is not None else '-'}")


@jobs.command("retry")
@click.argument("job")
@_store_option
def jobs_retry(job: str, store_url: str | None) -> None:
    """Queue a dead, failed or cancelled job again (attempts reset)."""
    from roboflow_distributed.batches import retry_unit

    with _store(store_url) as store:
        unit = retry_unit(store, job)
    click.echo(f"{unit.batch}/{unit.id}: {unit.status}")


@jobs.command("cancel")
@click.argument("job")
@_store_option
def jobs_cancel(job: str, store_url: str | None) -> None:
    """Cancel a job that has not finished."""
    from roboflow_distributed.batches import cancel_unit

    with _store(store_url) as store:
        unit = cancel_unit(store, job)
    click.echo(f"{unit.batch}/{unit.id}: {unit.status}")


# --- run / health ------------------------------------------------------------------------------


def _roles(ctx: click.Context, param: click.Parameter, value: tuple[str, ...]) -> tuple[str, ...]:
    """``--role`` values (repeated, or comma-separated as in ``ROLE=scanner,reaper``), checked."""
    from roboflow_distributed.runner import ROLES

    roles = tuple(r.strip() for v in value for r in v.split(",") if r.strip())
    for role in roles:
        if role not in ROLES:
            raise click.BadParameter(f"{role!r} is not one of {', '.join(ROLES)}", ctx, param)
    return roles or ("all",)


def _pod_options(fn: _F) -> _F:
    """The options of every command that runs a pod (``run``, ``worker``, ``scanner``)."""
    for option in reversed(
        [
            click.option(
                "--pod-id",
                default=None,
                help="This pod's id (default: POD_ID, POD_NAME, or host-pid-random).",
            ),
            click.option(
                "--exit-when-idle",
                is_flag=True,
                help="Stop once every batch is complete, failed or cancelled.",
            ),
            click.option(
                "--health-port",
                type=click.IntRange(0, 65535),
                envvar="HEALTH_PORT",
                default=None,
                help="Serve /health/live, /health/ready, /health and /metrics on this port (off by default).",
            ),
            click.option(
                "--health-host",
                envvar="HEALTH_HOST",
                default="0.0.0.0",
                show_default=True,
                help="Address to serve them on.",
            ),
            click.option(
                "-v", "--verbose", is_flag=True, help="Log every step (default: warnings and unit outcomes)."
            ),
            log_format_option,
            _store_option,
        ]
    ):
        fn = option(fn)
    return fn


@click.command()
@click.option(
    "--role",
    "roles",
    multiple=True,
    envvar="ROLE",
    callback=_roles,
    metavar="ROLE",
    help="Roles of this pod (repeatable or comma-separated; env ROLE): worker, scanner, reaper, "
    "finalizer, or all / unified (the default: every role).",
)
@_pod_options
def run(roles: tuple[str, ...], **options: Any) -> None:
    """Run a pod: claim and convert jobs, discover batches, re-queue lost work, merge finished batches.

    Stops on SIGTERM/SIGINT: no new jobs are claimed; a running job gets ROBOFLOW_SHUTDOWN_GRACE_SECS
    (15) to finish, else it is given back to the queue. Timings come from the environment
    (WORKER_POLL_INTERVAL_SECS, WORKER_HEARTBEAT_INTERVAL_SECS, ROBOFLOW_HEARTBEAT_TIMEOUT_SECS, ...).
    """
    _run_pod(roles, **options)


@click.command()
@_pod_options
def worker(**options: Any) -> None:
    """Run a worker pod: the same as `roboflow run --role worker`."""
    _run_pod(("worker",), **options)


@click.command()
@_pod_options
def scanner(**options: Any) -> None:
    """Run a scanner pod: the same as `roboflow run --role scanner`."""
    _run_pod(("scanner",), **options)


def _run_pod(
    roles: tuple[str, ...],
    *,
    pod_id: str | None,
    exit_when_idle: bool,
    health_port: int | None,
    health_host: str,
    verbose: bool,
    log_format: str,
    store_url: str | None,
) -> None:
    from roboflow_distributed.runner import Role, default_pod_id, run_pod
    from roboflow_distributed.settings import Settings

    pod = pod_id or default_pod_id()
    configure_logging(
        log_format, level=logging.INFO if verbose else logging.WARNING, pod=pod, role=",".join(roles)
    )
    logging.getLogger("roboflow").setLevel(logging.INFO)
    try:
        settings = Settings.from_env()
    except RoboflowError as err:
        _fail(err)
    with _store(store_url) as store:
        report = run_pod(
            store,
            [cast(Role, r) for r in roles],
            pod=pod,
            settings=settings,
            exit_when_idle=exit_when_idle,
            health=(health_host, health_port) if health_port is not None else None,
        )
    click.echo(f"pod {report.pod}: {report.units_completed} job(s) converted")
    for error in report.errors:
        click.echo(f"  error: {error}", err=True)


@click.command()
@_store_option
@_json_option
def health(store_url: str | None, as_json: bool) -> None:
    """Check the store and list pods (alive or stale) and batches by phase; exit 1 when unhealthy.

    A pod is alive when its heartbeat changes while this command watches it (one heartbeat
    interval and a second): no pod's clock is compared with this machine's.
    """
    from roboflow_distributed import keys
    from roboflow_distributed.batches import list_batches
    from roboflow_distributed.records import Heartbeat, scan
    from roboflow_distributed.settings import Settings
    from roboflow_distributed.store import open_store

    settings = Settings.from_env()
    report: dict[str, Any] = {"store": store_url, "healthy": False}
    try:
        store = open_store(store_url)
        try:
            report["store"] = store.url
            first = {v.record.pod: v.version for v in scan(store, keys.HEARTBEATS, Heartbeat)}
            if first:  # watch the heartbeats change (or not)
                time.sleep(min(settings.heartbeat_interval + 1.0, settings.heartbeat_timeout))
            beats = scan(store, keys.HEARTBEATS, Heartbeat)
            batches = list_batches(store)
        finally:
            store.close()
    except RoboflowError as err:
        report["error"] = str(err)
        _echo_json(report) if as_json else click.echo(f"unhealthy: {err}", err=True)
        sys.exit(1)
    alive = {b.record.pod: first.get(b.record.pod) != b.version for b in beats}  # new or rewritten
    report["healthy"] = True
    report["pods"] = [
        {"pod": b.pod, "roles": b.roles, "alive": alive[b.pod], "seen": b.at, "unit": b.unit}
        for b in (v.record for v in beats)
    ]
    phases: dict[str, int] = {}
    for b in batches:
        phases[str(b.status.record.phase)] = phases.get(str(b.status.record.phase), 0) + 1
    report["batches"] = phases
    if as_json:
        _echo_json(report)
        return
    click.echo(f"store     {report['store']}: reachable")
    live = sum(alive.values())
    click.echo(f"pods      {live} alive, {len(beats) - live} stale")
    for beat in (v.record for v in beats):
        state = "alive" if alive[beat.pod] else "STALE"
        click.echo(
            f"  {beat.pod:<28} {state:<6} {','.join(beat.roles):<28} "
            f"beat {_ago(beat.at)} by its clock  {beat.unit or ''}"
        )
    click.echo("batches   " + (", ".join(f"{n} {k}" for k, n in sorted(phases.items())) or "none"))


def register(cli: click.Group) -> None:
    """Add the distributed commands to the ``roboflow`` group."""
    for command in (submit, batch, jobs, run, worker, scanner, health):
        cli.add_command(command)
