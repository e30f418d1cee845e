"""Distributed-mode commands: ``submit``, ``batch``, ``jobs``, ``run`` (``worker``, ``scanner``), ``health``.

Every command talks to the coordination store named by ``--store`` or ``ROBOFLOW_STORE``
(default: the embedded SQLite store ``.roboflow/state.db`` in the working directory).
"""

from __future__ import annotations

import csv
import faulthandler
import io
import json
import logging
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
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
    from roboflow_distributed.service import Operations

__all__ = ["batch", "health", "jobs", "run", "scanner", "submit", "worker"]

_F = TypeVar("_F", bound=Callable[..., Any])

STORE_HELP = (
    "Coordination store: sqlite:///path/state.db (embedded, default .roboflow/state.db), "
    "etcd://host:2379 or tikv://pd1:2379,pd2:2379. Env: ROBOFLOW_STORE (TIKV_PD_ENDPOINTS also works)."
)


_PHASES = ["pending", "discovering", "running", "suspended", "merging", "complete", "failed", "cancelled"]
_STATUSES = ["pending", "processing", "complete", "failed", "dead", "cancelled"]


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


@contextmanager
def _ops(url: str | None) -> Iterator[Operations]:
    """The operations service on the store at ``url`` (errors end the command with their reason)."""
    from roboflow_distributed.service import Operations
    from roboflow_distributed.settings import Settings

    with _store(url) as store:
        yield Operations(store, heartbeat_timeout=Settings.from_env().heartbeat_timeout)


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


def _labels(ctx: click.Context, param: click.Parameter, value: tuple[str, ...]) -> dict[str, str]:
    """``--label k=v`` values as a dict."""
    labels: dict[str, str] = {}
    for item in value:
        key, sep, val = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{item!r} is not key=value", ctx, param)
        labels[key] = val
    return labels


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
@click.option(
    "--priority",
    type=int,
    default=0,
    show_default=True,
    help="Jobs of higher-priority batches are claimed first (every fourth claim ignores priority, "
    "so none starves).",
)
@click.option("--label", "labels", multiple=True, callback=_labels, help="A key=value label (repeatable).")
@click.option(
    "--ttl-seconds",
    type=click.IntRange(min=1),
    default=86400,
    show_default=True,
    help="Keep the batch's records this long after it finished; then the control roles delete them.",
)
@click.option(
    "--watch",
    is_flag=True,
    help="Keep the batch open: add each new recording under INPUTS (directories, prefixes, globs) once "
    "it is stable and publish as they convert, until `roboflow batch close ID`.",
)
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
    priority: int,
    labels: dict[str, str],
    ttl_seconds: int,
    watch: bool,
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
    from roboflow_distributed.views import SubmitRequest
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
    requests = [
        SubmitRequest(
            sources=group.sources,
            config=text,
            output=group.output,
            format=cast(Any, fmt),
            task=task,
            tasks=group.tasks or None,
            annotation=annotation,
            max_attempts=group.max_attempts,
            name=name,
            staging=staging,
            episodes_per_chunk=episodes_per_chunk,
            priority=priority,
            labels=labels,
            ttl_seconds=ttl_seconds,
            watch=watch,
        )
        for group in groups
    ]
    with _ops(store_url) as ops:
        submitted = [ops.submit(request, config_source=config_path) for request in requests]
    if as_json:
        found = msgspec.to_builtins(submitted)
        _echo_json(found[0] if manifest_path is None else found)
    elif as_csv:
        rows = [[d.batch.id, d.batch.name, d.batch.output, str(len(d.sources))] for d in submitted]
        _listing(rows, ["ID", "NAME", "OUTPUT", "SOURCES"], as_csv=True)
    else:
        click.echo("\n".join(d.batch.id for d in submitted))


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
    """List, show, follow (watch), cancel, suspend, resume and delete batches."""


@batch.command("list")
@click.option("--phase", type=click.Choice(_PHASES), default=None, help="Only batches in this phase.")
@click.option(
    "--label", "labels", multiple=True, callback=_labels, help="Only batches with this key=value label."
)
@_store_option
@_json_option
@_csv_option
def batch_list(
    phase: str | None, labels: dict[str, str], store_url: str | None, as_json: bool, as_csv: bool
) -> None:
    """Every batch with its phase and progress, newest first (only those with every --label)."""
    from roboflow_distributed.records import BatchPhase
    from roboflow_distributed.service import MAX_PAGE

    with _ops(store_url) as ops:
        found = _all_pages(
            lambda offset: ops.batches(
                phase=BatchPhase(phase) if phase else None, labels=labels, offset=offset, limit=MAX_PAGE
            )
        )
    if as_json:
        _echo_json(msgspec.to_builtins(found))
        return
    rows = [
        [
            b.id,
            b.name if b.name != b.id else "",
            "watching" if b.watching else str(b.phase),
            f"{b.jobs.complete}/{b.jobs.total}",
            str(b.jobs.dead),
            str(b.episodes),
            str(b.priority),
            b.output,
        ]
        for b in found
    ]
    header = ["BATCH", "NAME", "PHASE", "DONE", "DEAD", "EPISODES", "PRIORITY", "OUTPUT"]
    _listing(rows, header, as_csv=as_csv)


def _all_pages(fetch: Callable[[int], Any]) -> list[Any]:
    """Every item of a paginated listing."""
    items: list[Any] = []
    while True:
        page = fetch(len(items))
        items.extend(page.items)
        if not page.items or len(items) >= page.total:
            return items


@batch.command("get")
@click.argument("batch_id")
@_store_option
@_json_option
def batch_get(batch_id: str, store_url: str | None, as_json: bool) -> None:
    """One batch: phase, job counts, progress, the dataset it produced, and its failed jobs."""
    from roboflow_distributed.records import UnitStatus
    from roboflow_distributed.service import MAX_PAGE

    with _ops(store_url) as ops:
        found = ops.batch(batch_id)
        every = _all_pages(lambda offset: ops.jobs(batch=batch_id, offset=offset, limit=MAX_PAGE))
    failed = [j for j in every if j.status in (UnitStatus.DEAD, UnitStatus.FAILED)]
    if as_json:
        _echo_json(msgspec.to_builtins(found))
        return
    b = found.batch
    counts = msgspec.structs.asdict(b.jobs)
    total = counts.pop("total")
    click.echo(f"batch     {b.id}  ({b.name})")
    watching = "  (watching its sources: `roboflow batch close` ends it)" if b.watching else ""
    click.echo(f"phase     {b.phase}{watching}  (updated {_ago(b.updated_at)})")
    click.echo(f"output    {b.output}  ({b.format})")
    click.echo(f"sources   {', '.join(found.sources)}")
    click.echo(f"config    sha256:{found.config_hash[:16]}")
    click.echo(f"priority  {b.priority}   ttl {b.ttl_seconds} s after it finished")
    if b.labels:
        click.echo(f"labels    {', '.join(f'{k}={v}' for k, v in sorted(b.labels.items()))}")
    click.echo(
        f"jobs      {total}: " + (", ".join(f"{n} {k}" for k, n in sorted(counts.items()) if n) or "none yet")
    )
    click.echo(
        f"frames    {found.frames_done}/{found.frames_total} converted ({found.frames_per_s} frames/s)"
    )
    if found.dataset is not None:
        d = found.dataset
        click.echo(f"dataset   {b.episodes} episodes, {b.frames} frames added")
        click.echo(
            f"          {d.codebase_version}: {d.total_episodes} episodes, {d.total_frames} frames at "
            f"{d.fps} fps, {len(d.features)} features, cameras: {', '.join(d.cameras) or 'none'}"
        )
    elif found.dataset_error:
        click.echo(f"dataset   (no readable meta/info.json: {found.dataset_error})")
    if b.error:
        click.echo(f"error     {b.error}")
    for j in failed:
        click.echo(f"  {j.status}: {j.source}: {j.error}")
    if b.merge_failed:
        click.echo(f"          staged episodes kept: `roboflow batch retry-merge {b.id}` merges again")


@batch.command("watch")
@click.argument("batch_id")
@click.option(
    "--interval",
    type=click.FloatRange(min=0.1),
    default=2.0,
    show_default=True,
    help="Seconds between looks at the store.",
)
@_store_option
def batch_watch(batch_id: str, interval: float, store_url: str | None) -> None:
    """Follow a batch until it finishes: jobs by status, frames/s, ETA, failures as they happen.

    On a terminal a progress line is redrawn in place; otherwise a line is printed whenever it
    changes. Exits 0 once the batch is complete, 1 when it failed or was cancelled.
    """
    from roboflow_cli._watch import BatchWatch
    from roboflow_distributed.records import BatchPhase
    from roboflow_distributed.service import MAX_PAGE

    tty = sys.stdout.isatty()
    watch, shown = BatchWatch(), None
    with _ops(store_url) as ops:
        while True:
            detail = ops.batch(batch_id)
            jobs = _all_pages(lambda offset: ops.jobs(batch=batch_id, offset=offset, limit=MAX_PAGE))
            line = watch.line(detail)
            for failure in watch.failures(jobs):
                click.echo(("\r\x1b[2K" if tty else "") + failure)
            state = (detail.batch.phase, detail.batch.jobs, detail.frames_done)
            if tty:
                click.echo("\r\x1b[2K" + line, nl=False)
            elif state != shown:  # a log: a line when something moved
                click.echo(line)
            shown = state
            if detail.batch.phase.terminal:
                break
            time.sleep(interval)
    if tty:
        click.echo()
    b = detail.batch
    error = f"; {b.error}" if b.error else ""
    click.echo(f"batch {b.id} {b.phase}: {b.episodes} episodes, {b.frames} frames{error}")
    if b.phase is not BatchPhase.COMPLETE:
        sys.exit(1)


@batch.command("cancel")
@click.argument("batch_id")
@_store_option
def batch_cancel(batch_id: str, store_url: str | None) -> None:
    """Cancel a batch: its waiting recordings are not converted and nothing is merged."""
    with _ops(store_url) as ops:
        found = ops.cancel_batch(batch_id)
    click.echo(f"{batch_id}: {found.phase}")


@batch.command("suspend")
@click.argument("batch_id")
@click.option("--release", is_flag=True, help="Also give its running jobs back to the queue now.")
@_store_option
def batch_suspend(batch_id: str, release: bool, store_url: str | None) -> None:
    """Stop workers claiming a running batch's jobs; running ones finish (or, with --release, go
    back to the queue and resume after their uploaded segments once the batch is resumed)."""
    with _ops(store_url) as ops:
        found, released = ops.suspend_batch(batch_id, release=release)
    click.echo(f"{batch_id}: {found.phase}" + (f" ({released} running job(s) released)" if release else ""))


@batch.command("close")
@click.argument("batch_id")
@_store_option
def batch_close(batch_id: str, store_url: str | None) -> None:
    """Stop watching a batch's sources: what it added is converted and published, then it completes."""
    with _ops(store_url) as ops:
        found = ops.close_batch(batch_id)
    click.echo(f"{batch_id}: {found.phase}, closed")


@batch.command("resume")
@click.argument("batch_id")
@_store_option
def batch_resume(batch_id: str, store_url: str | None) -> None:
    """Let workers claim a suspended batch's jobs again."""
    with _ops(store_url) as ops:
        found = ops.resume_batch(batch_id)
    click.echo(f"{batch_id}: {found.phase}")


@batch.command("delete")
@click.argument("batch_id")
@click.option("--with-dataset", is_flag=True, help="Also delete the dataset at its output (all of it).")
@_store_option
def batch_delete(batch_id: str, with_dataset: bool, store_url: str | None) -> None:
    """Delete a finished batch: its jobs, checkpoints, staged episodes and records (the dataset
    stays unless --with-dataset). Finished batches are deleted anyway once their ttl ran out."""
    with _ops(store_url) as ops:
        ops.delete_batch(batch_id, with_dataset=with_dataset)
    click.echo(f"{batch_id}: deleted" + (" with its dataset" if with_dataset else ""))


@batch.command("retry-merge")
@click.argument("batch_id")
@_store_option
def batch_retry_merge(batch_id: str, store_url: str | None) -> None:
    """Merge a batch again whose merge failed: its staged episodes were kept.

    Remove the cause first (see `batch get`); the merge resumes after the episodes it had
    already published, and a finalizer (`run --role finalizer`) carries it out.
    """
    with _ops(store_url) as ops:
        found = ops.retry_merge(batch_id)
    click.echo(f"{batch_id}: {found.phase}")


# --- jobs --------------------------------------------------------------------------------------


@click.group()
def jobs() -> None:
    """List, show, retry, cancel and delete jobs and read their logs (one job converts one recording)."""


@jobs.command("list")
@click.option("--batch", "batch_id", default=None, help="Only this batch's jobs.")
@click.option("--status", type=click.Choice(_STATUSES), default=None, help="Only jobs with this status.")
@click.option("--search", "query", default=None, help="Only jobs whose source contains this text.")
@_store_option
@_json_option
@_csv_option
def jobs_list(
    batch_id: str | None,
    status: str | None,
    query: str | None,
    store_url: str | None,
    as_json: bool,
    as_csv: bool,
) -> None:
    """Jobs with their status, owner and last error.

    FAILED is conversions that ended in an error out of the attempts allowed; LOST is claims
    whose worker stopped heartbeating (re-queued by the reaper).
    """
    from roboflow_distributed.records import UnitStatus
    from roboflow_distributed.service import MAX_PAGE

    with _ops(store_url) as ops:
        found = _all_pages(
            lambda offset: ops.jobs(
                batch=batch_id,
                status=UnitStatus(status) if status else None,
                query=query,
                offset=offset,
                limit=MAX_PAGE,
            )
        )
    if as_json:
        _echo_json(msgspec.to_builtins(found))
        return
    rows = [
        [
            j.ref,
            str(j.status),
            f"{j.attempts}/{j.max_attempts}",
            str(j.lost),
            j.owner or "-",
            j.source,
            (j.error or "") if as_csv else (j.error or "")[:80],
        ]
        for j in found
    ]
    _listing(rows, ["JOB", "STATUS", "FAILED", "LOST", "OWNER", "SOURCE", "ERROR"], as_csv=as_csv)


@jobs.command("get")
@click.argument("job")
@_store_option
@_json_option
def jobs_get(job: str, store_url: str | None, as_json: bool) -> None:
    """One job (BATCH/UNIT, or a unique unit id prefix): progress, attempts and their errors."""
    with _ops(store_url) as ops:
        found = ops.job(job)
    if as_json:
        _echo_json(msgspec.to_builtins(found))
        return
    for key, value in msgspec.structs.asdict(found.job).items():
        click.echo(f"{key:<13} {value if value is not None else '-'}")
    click.echo(f"{'segments':<13} {found.segments}")
    for a in found.attempts:
        click.echo(f"claim {a.claim:<7} {a.pod}  {a.lines} log line(s)  {a.error or ''}".rstrip())


@jobs.command("logs")
@click.argument("job")
@_store_option
@_json_option
def jobs_logs(job: str, store_url: str | None, as_json: bool) -> None:
    """A job's log lines (its milestones, warnings and errors), one block per claim."""
    with _ops(store_url) as ops:
        found = ops.job_logs(job)
    if as_json:
        _echo_json(msgspec.to_builtins(found))
        return
    for claim in found.claims:
        dropped = f", {claim.dropped} older line(s) dropped" if claim.dropped else ""
        click.echo(f"--- claim {claim.claim} on {claim.pod}{dropped}")
        for line in claim.lines:
            at = time.strftime("%H:%M:%S", time.gmtime(line.at))
            click.echo(f"{at} {line.level:<7} {line.message}")


@jobs.command("retry")
@click.argument("job")
@_store_option
def jobs_retry(job: str, store_url: str | None) -> None:
    """Queue a dead, failed or cancelled job again (attempts reset)."""
    with _ops(store_url) as ops:
        found = ops.retry_job(job)
    click.echo(f"{found.ref}: {found.status}")


@jobs.command("cancel")
@click.argument("job")
@_store_option
def jobs_cancel(job: str, store_url: str | None) -> None:
    """Cancel a job that has not finished."""
    with _ops(store_url) as ops:
        found = ops.cancel_job(job)
    click.echo(f"{found.ref}: {found.status}")


@jobs.command("delete")
@click.argument("job")
@_store_option
def jobs_delete(job: str, store_url: str | None) -> None:
    """Delete a dead or cancelled job (or any job of a finished batch), with its checkpoint and logs."""
    with _ops(store_url) as ops:
        ops.delete_job(job)
    click.echo(f"{job}: deleted")


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

    # a crash in native code (a codec, a store client) leaves every thread's stack in the log; run
    # in-process by a test runner, stderr has no descriptor to write one to
    with suppress(io.UnsupportedOperation, AttributeError, ValueError):
        faulthandler.enable()
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
    report: dict[str, Any] = {"store": store_url, "healthy": False}
    try:
        from roboflow_distributed.service import Operations
        from roboflow_distributed.settings import Settings
        from roboflow_distributed.store import open_store

        store = open_store(store_url)
        try:
            report["store"] = store.url
            settings = Settings.from_env()
            ops = Operations(store, heartbeat_timeout=settings.heartbeat_timeout)
            workers = ops.workers(watch=min(settings.heartbeat_interval + 1.0, settings.heartbeat_timeout))
            phases = {k: n for k, n in ops.phases().items() if n}
        finally:
            store.close()
    except RoboflowError as err:
        report["error"] = str(err)
        _echo_json(report) if as_json else click.echo(f"unhealthy: {err}", err=True)
        sys.exit(1)
    report["healthy"] = True
    report["pods"] = [
        {
            "pod": w.pod,
            "roles": w.roles,
            "alive": w.alive,
            "seen": time.time() - w.heartbeat_age_s,
            "unit": w.current_job,
        }
        for w in workers
    ]
    report["batches"] = phases
    if as_json:
        _echo_json(report)
        return
    click.echo(f"store     {report['store']}: reachable")
    alive = sum(w.alive for w in workers)
    click.echo(f"pods      {alive} alive, {len(workers) - alive} stale")
    for w in workers:
        state = "alive" if w.alive else "STALE"
        click.echo(
            f"  {w.pod:<28} {state:<6} {','.join(w.roles):<28} "
            f"beat {_ago(time.time() - w.heartbeat_age_s)} by its clock  {w.current_job or ''}"
        )
    click.echo("batches   " + (", ".join(f"{n} {k}" for k, n in sorted(phases.items())) or "none"))
