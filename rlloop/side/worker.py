"""A side worker process: receives jobs on its pipe, runs them, sends back results.

Started by :class:`rlloop.side.pool.SidePool` with the ``spawn`` start method. JAX-free on
purpose (numpy, LightGBM and the standard library), so a worker starts in about a second and
holds no accelerator. A worker exits when its pipe closes, when it receives ``None``, or when
its parent process is gone (a watcher thread compares ``os.getppid()`` with the parent it was
started by, so a SIGKILL of the whole run leaves no orphan training on).
"""

from __future__ import annotations

import os
import sys
import threading
import time
import traceback
from typing import Any

from rlloop.side.jobs import SideJob, SideResult, failed

PARENT_CHECK_SECONDS = 0.5


def worker_main(connection: Any, parent_pid: int, threads: int, nice: int) -> None:
    """The worker's body (the ``Process`` target). ``threads``: LightGBM's ``num_threads``;
    ``nice``: added to the worker's niceness, so the device loop keeps its cores."""
    _exit_with_parent(parent_pid)
    if nice:
        os.nice(nice)
    # OpenMP (LightGBM's threads) reads this when LightGBM is first loaded.
    os.environ["OMP_NUM_THREADS"] = str(threads)
    connection.send(("ready", os.getpid(), "jax" in sys.modules))
    while True:
        try:
            job = connection.recv()
        except (EOFError, OSError):
            return
        if job is None:
            return
        connection.send(("result", run_job(job, threads=threads)))


def run_job(job: SideJob, *, threads: int) -> SideResult:
    """Run one job; an exception becomes a failed result (never raised)."""
    started = time.time()
    try:
        if job.kind == "sleep":
            time.sleep(job.sleep_seconds)
            finished = time.time()
            result = SideResult(job_id=job.job_id, kind=job.kind, lineage=job.lineage,
                                iteration=job.iteration, status="ok", seconds=finished - started,
                                started_at=started, finished_at=finished)  # fmt: skip
        else:
            from rlloop.side.trainers import run_model_job

            result = run_model_job(job, threads=threads)
    except Exception as error:
        detail = traceback.format_exception_only(type(error), error)[-1].strip()
        result = failed(job, detail, started_at=started, finished_at=time.time())
    return _with_pid(result)


def _with_pid(result: SideResult) -> SideResult:
    import dataclasses

    return dataclasses.replace(result, worker_pid=os.getpid())


def _exit_with_parent(parent_pid: int) -> None:
    """Exit at once (no cleanup: the parent is gone) when this process is re-parented."""

    def watch() -> None:
        while True:
            if os.getppid() != parent_pid:
                os._exit(1)
            time.sleep(PARENT_CHECK_SECONDS)

    threading.Thread(target=watch, name="rlloop-side-parent-watch", daemon=True).start()
