"""``WORKER_MAX_CONCURRENT_JOBS``: a pod's worker role as N processes, each converting one job.

Each slot is a process of its own (``spawn``), running the worker role with the pod id
``{pod}.{i}``: it heartbeats under that id, claims, converts and records outcomes exactly like a
single worker, so the reaper, the compare-and-swap writes and the resume after a lost claim work
unchanged and no job is converted twice at once. The pod stops its slots with SIGTERM (each
finishes its job within the grace period or gives it back to the queue); a slot whose pod process
died (killed, so it sent nothing) notices its parent is gone within a second and gives its job
back at once, so killing a pod leaves no orphan converting on.
"""

from __future__ import annotations

import dataclasses
import logging
import multiprocessing
import os
import signal
import threading
from multiprocessing.process import BaseProcess
from typing import Any

from roboflow_distributed.settings import Settings

__all__ = ["WorkerPool"]

log = logging.getLogger("roboflow.pod")

_PARENT_POLL_SECS = 0.5
_STOP_MARGIN_SECS = 30.0
"""How long past the grace period a stopping slot may take to write its outcome before it is killed."""


class WorkerPool:
    """``size`` worker processes of the pod ``pod`` on the store at ``store_url``.

    Args:
        store_url: The store's URL (credentials, if any, come from the environment, as in the pod).
        pod: The pod's id; slot ``i`` runs as ``{pod}.{i}``.
        settings: The pod's settings (each slot converts one job at a time).
        size: How many slots.
    """

    def __init__(self, store_url: str, pod: str, settings: Settings, size: int) -> None:
        self.store_url = store_url
        self.pod = pod
        self.settings = dataclasses.replace(settings, max_concurrent_jobs=1)
        self.size = size
        self._ctx = multiprocessing.get_context("spawn")
        self._done: Any = self._ctx.Queue()
        self._procs: list[BaseProcess] = []

    @property
    def pods(self) -> list[str]:
        """The slots' pod ids."""
        return [f"{self.pod}.{i}" for i in range(self.size)]

    def start(self) -> WorkerPool:
        """Start every slot."""
        for slot in self.pods:
            proc = self._ctx.Process(
                target=_slot,
                args=(self.store_url, slot, self.settings, os.getpid(), self._done),
                name=f"roboflow-worker-{slot}",
                daemon=False,
            )
            proc.start()
            self._procs.append(proc)
        log.info("pod %s: %d worker processes (%s)", self.pod, self.size, ", ".join(self.pods))
        return self

    def alive(self) -> bool:
        """Whether every slot still runs."""
        return all(p.is_alive() for p in self._procs)

    def stop(self) -> int:
        """SIGTERM every slot, wait for them (killing one past the grace period and a margin);
        how many jobs they converted."""
        for proc in self._procs:
            if proc.is_alive() and proc.pid is not None:
                os.kill(proc.pid, signal.SIGTERM)
        for proc in self._procs:
            proc.join(self.settings.shutdown_grace + _STOP_MARGIN_SECS)
            if proc.is_alive():
                log.error(
                    "worker process %s did not stop; killing it (the reaper re-queues its job)", proc.name
                )
                proc.kill()
                proc.join()
        completed = 0
        while not self._done.empty():
            completed += int(self._done.get())
        return completed


def _slot(store_url: str, pod: str, settings: Settings, parent: int, done: Any) -> None:
    """A slot process: the worker role under its own pod id, until SIGTERM or its pod is gone."""
    from roboflow_core.logs import configure_logging
    from roboflow_distributed.runner import run_pod
    from roboflow_distributed.store import open_store
    from roboflow_distributed.worker import Shutdown

    configure_logging(None, pod=pod, role="worker")
    logging.getLogger("roboflow").setLevel(logging.INFO)
    shutdown = Shutdown(settings.shutdown_grace)
    threading.Thread(target=_watch_parent, args=(parent, shutdown), name="parent", daemon=True).start()
    store = open_store(store_url)
    try:
        report = run_pod(store, ["worker"], pod=pod, settings=settings, shutdown=shutdown)
    finally:
        store.close()
    done.put(report.units_completed)


def _watch_parent(parent: int, shutdown: Any) -> None:
    """Stop at once (releasing the running job) when the pod process that started this one is gone."""
    while not shutdown.event.wait(_PARENT_POLL_SECS):
        if os.getppid() != parent:
            log.warning("the pod process %d is gone: giving the running job back and stopping", parent)
            shutdown.grace = 0.0
            shutdown.request()
            return
