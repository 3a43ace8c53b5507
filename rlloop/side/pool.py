"""The side-trainer pool: worker processes on the host CPUs that fit tree models while the
device loop plays and trains.

:class:`SidePool` starts ``workers`` processes with the ``spawn`` start method (forking a
process that has imported JAX can deadlock) that each run one job at a time with
``threads`` LightGBM threads, optionally niced. The caller never blocks on it:

- :meth:`SidePool.submit` queues a job;
- :meth:`SidePool.poll` (call it once per iteration) collects finished results without
  waiting, kills and replaces the worker of a job past its timeout (the job fails with
  ``timeout after N s``), replaces a worker that died (its job fails with the exit code or
  signal), and hands queued jobs to idle workers;
- :meth:`SidePool.close` stops every worker at once (a job in progress is abandoned).

A failed job is a :class:`~rlloop.side.jobs.SideResult` with ``status="failed"`` and a
reason; nothing a job does raises into the caller. Workers exit on their own when the
parent process dies (see :mod:`rlloop.side.worker`). JAX-free.
"""

from __future__ import annotations

import contextlib
import dataclasses
import multiprocessing
import os
import signal
import sys
import time
from collections import deque
from typing import Any

from rlloop.side.jobs import SideJob, SideResult, failed, model_iteration, newest_model_files
from rlloop.side.worker import worker_main

START_METHOD = "spawn"
# A worker that dies this many times in a row before it is ready ends the pool's restarts.
MAX_START_FAILURES = 3
JOIN_SECONDS = 5.0


@dataclasses.dataclass
class _Worker:
    process: Any  # multiprocessing.Process
    connection: Any  # the parent's end of the worker's pipe
    ready: bool = False
    job: SideJob | None = None
    job_started: float = 0.0  # time.monotonic() when the job was handed over
    job_started_wall: float = 0.0
    jax_loaded: bool = False


class SidePool:
    """Host worker processes for side jobs (see the module docstring).

    Args:
      workers: worker processes (``hardware.side_workers``).
      threads: LightGBM threads per worker (``hardware.side_threads``).
      nice: niceness added in each worker (``side.nice``; 0 = none).
    """

    def __init__(self, *, workers: int, threads: int, nice: int = 0) -> None:
        if workers < 1 or threads < 1:
            raise ValueError(f"side pool: workers={workers} and threads={threads} must be >= 1")
        if not 0 <= nice <= 19:
            raise ValueError(f"side pool: nice={nice} must be in [0, 19]")
        self.workers, self.threads, self.nice = workers, threads, nice
        self._context = multiprocessing.get_context(START_METHOD)
        self._pending: deque[SideJob] = deque()
        self._slots: list[_Worker] = []
        self._start_failures = 0
        self.broken = ""  # why the pool stopped restarting workers ("" while healthy)
        self._closed = False
        # Telemetry.
        self.models_trained = 0
        self.jobs_ok = 0
        self.jobs_failed = 0
        self.timeouts = 0
        self.worker_restarts = 0
        self.training_seconds = 0.0
        self._busy_intervals: list[tuple[float, float]] = []
        # lineage -> kind -> (iteration, model path) of the newest model written.
        self._newest: dict[str, dict[str, tuple[int, str]]] = {}
        for _ in range(workers):
            self._slots.append(self._start_worker())

    @classmethod
    def from_config(cls, config: Any) -> SidePool:
        """A pool sized by ``config.hardware`` (``side_workers`` x ``side_threads``) and niced
        by ``config.side.nice``."""
        return cls(workers=int(config.hardware.side_workers),
                   threads=int(config.hardware.side_threads), nice=int(config.side.nice))  # fmt: skip

    # ------------------------------------------------------------------ the public API
    def submit(self, job: SideJob) -> None:
        """Queue ``job``; a later :meth:`poll` hands it to an idle worker."""
        if self._closed:
            raise RuntimeError(f"side pool is closed; cannot run {job.job_id}")
        self._pending.append(job)
        self._dispatch()

    def poll(self) -> list[SideResult]:
        """Finished results since the last call (never waits)."""
        if self._closed:
            return []
        results: list[SideResult] = []
        for index, slot in enumerate(self._slots):
            results += self._drain(index, slot)
        for index, slot in enumerate(self._slots):
            results += self._check(index, slot)
        if self.broken:
            now = time.time()
            while self._pending:
                job = self._pending.popleft()
                results.append(self._record(failed(job, self.broken, started_at=now, finished_at=now)))
        self._dispatch()
        return results

    def wait(self, timeout_seconds: float, *, interval_seconds: float = 0.05) -> list[SideResult]:
        """Poll until no job is queued or running, or ``timeout_seconds`` have passed
        (for tools, tests and the end of a run; the loop itself only polls)."""
        deadline = time.monotonic() + timeout_seconds
        results = self.poll()
        while self.busy and time.monotonic() < deadline:
            time.sleep(interval_seconds)
            results += self.poll()
        return results

    @property
    def busy(self) -> bool:
        """Jobs are queued or running."""
        return bool(self._pending) or any(slot.job is not None for slot in self._slots)

    @property
    def pending(self) -> int:
        return len(self._pending)

    def queued_jobs(self) -> list[SideJob]:
        """Jobs waiting for a worker or running, oldest first."""
        return list(self._pending) + [slot.job for slot in self._slots if slot.job is not None]

    @property
    def running(self) -> int:
        return sum(slot.job is not None for slot in self._slots)

    def worker_pids(self) -> list[int]:
        """The worker processes' ids, one per slot (for tests and diagnostics)."""
        return [slot.process.pid for slot in self._slots]

    def running_pid(self, job_id: str) -> int | None:
        """The worker process running job ``job_id`` (None if it is not running)."""
        for slot in self._slots:
            if slot.job is not None and slot.job.job_id == job_id:
                return slot.process.pid
        return None

    def workers_import_jax(self) -> bool:
        """Whether any ready worker had JAX imported (it should not: see the worker module)."""
        return any(slot.jax_loaded for slot in self._slots if slot.ready)

    def close(self) -> None:
        """Stop every worker now: idle ones are asked to exit, busy ones are killed."""
        if self._closed:
            return
        self._closed = True
        for slot in self._slots:
            if slot.job is None and slot.process.is_alive():
                with contextlib.suppress(OSError):  # it died meanwhile: nothing to ask
                    slot.connection.send(None)
            else:
                slot.process.kill()
        for slot in self._slots:
            slot.process.join(JOIN_SECONDS)
            if slot.process.is_alive():
                slot.process.kill()
                slot.process.join(JOIN_SECONDS)
            slot.connection.close()
        self._pending.clear()

    def __enter__(self) -> SidePool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def telemetry(self) -> dict[str, Any]:
        """Figures for the learning-health telemetry: ``models_per_second`` (boosters fitted
        per second of wall time while any job ran), ``mean_training_ms_per_model`` (time
        inside LightGBM per booster), ``models_trained``, job counts, restarts, and
        ``newest_models`` (lineage -> kind -> model path)."""
        busy = _union_seconds(self._busy_intervals)
        mean_ms = 1000.0 * self.training_seconds / self.models_trained if self.models_trained else 0.0
        return {
            "models_trained": self.models_trained,
            "models_per_second": self.models_trained / busy if busy > 0 else 0.0,
            "mean_training_ms_per_model": mean_ms,
            "busy_seconds": busy, "jobs_ok": self.jobs_ok, "jobs_failed": self.jobs_failed,
            "timeouts": self.timeouts, "worker_restarts": self.worker_restarts,
            "pending": self.pending, "running": self.running, "workers": self.workers,
            "threads": self.threads, "broken": self.broken,
            "newest_models": self.newest_models(),
        }

    def newest_models(self) -> dict[str, dict[str, str]]:
        """lineage -> kind -> path of the newest model (by iteration) this pool wrote or was
        told of (:meth:`note_existing_models`)."""
        return {lineage: {kind: path for kind, (_, path) in sorted(kinds.items())}
                for lineage, kinds in sorted(self._newest.items())}  # fmt: skip

    def note_existing_models(self, lineage: str, side_dir: str | os.PathLike) -> None:
        """Count the models already in ``side_dir`` as ``lineage``'s newest (a resumed run)."""
        for kind, path in newest_model_files(side_dir).items():
            self._note_model(lineage, kind, model_iteration(path), str(path))

    def _note_model(self, lineage: str, kind: str, iteration: int, path: str) -> None:
        kinds = self._newest.setdefault(lineage, {})
        if kind not in kinds or iteration >= kinds[kind][0]:
            kinds[kind] = (iteration, path)

    # ------------------------------------------------------------------ the workers
    def _start_worker(self) -> _Worker:
        parent_end, worker_end = self._context.Pipe(duplex=True)
        process = self._context.Process(
            target=worker_main, args=(worker_end, os.getpid(), self.threads, self.nice),
            name="rlloop-side-worker", daemon=True,
        )  # fmt: skip
        with _parent_main_hidden():
            process.start()
        worker_end.close()  # the worker holds its own copy; ours would hide its death
        return _Worker(process=process, connection=parent_end)

    def _restart(self, index: int) -> None:
        slot = self._slots[index]
        if slot.process.is_alive():
            slot.process.kill()
        slot.process.join(JOIN_SECONDS)
        slot.connection.close()
        if self.broken:
            return
        self.worker_restarts += 1
        self._slots[index] = self._start_worker()

    def _drain(self, index: int, slot: _Worker) -> list[SideResult]:
        """Messages the worker has sent (never blocks)."""
        results = []
        try:
            while slot.connection.poll():
                message = slot.connection.recv()
                if message[0] == "ready":
                    slot.ready, slot.jax_loaded = True, bool(message[2])
                    self._start_failures = 0
                elif message[0] == "result" and slot.job is not None:
                    results.append(self._record(message[1]))
                    slot.job = None
        except (EOFError, OSError):
            pass  # the worker is gone; _check sees it
        return results

    def _check(self, index: int, slot: _Worker) -> list[SideResult]:
        """Fail and replace the worker of a job past its timeout, or one that died."""
        now = time.monotonic()
        job = slot.job
        if slot.process.is_alive():
            if job is None or now - slot.job_started <= job.timeout_seconds:
                return []
            reason = f"timeout after {job.timeout_seconds:g} s"
            self.timeouts += 1
        else:
            reason = f"worker died ({_exit_description(slot.process.exitcode)})"
            if not slot.ready:
                self._start_failures += 1
                if self._start_failures >= MAX_START_FAILURES:
                    self.broken = (f"side workers fail to start: {MAX_START_FAILURES} in a row "
                                   f"died before they were ready ({reason})")  # fmt: skip
        pid = slot.process.pid
        self._restart(index)
        if job is None:
            return []
        return [self._record(failed(job, reason, started_at=slot.job_started_wall,
                                    finished_at=time.time(), worker_pid=pid or 0))]  # fmt: skip

    def _dispatch(self) -> None:
        for slot in self._slots:
            if not self._pending:
                return
            if slot.ready and slot.job is None and slot.process.is_alive():
                job = self._pending.popleft()
                try:
                    slot.connection.send(job)
                except OSError:  # died just now: the job waits for the next worker
                    self._pending.appendleft(job)
                    continue
                slot.job, slot.job_started, slot.job_started_wall = job, time.monotonic(), time.time()

    def _record(self, result: SideResult) -> SideResult:
        if result.ok:
            self.jobs_ok += 1
            self.models_trained += result.models_trained
            self.training_seconds += result.training_seconds
            if result.model_path:
                self._note_model(result.lineage, result.kind, result.iteration, result.model_path)
        else:
            self.jobs_failed += 1
        if result.finished_at > result.started_at > 0:
            self._busy_intervals.append((result.started_at, result.finished_at))
        return result


@contextlib.contextmanager
def _parent_main_hidden() -> Any:
    """While a worker starts: the spawn start method re-imports the parent's ``__main__`` in
    the child (its file, or its module under ``python -m``), which runs a user's script
    without an ``if __name__ == "__main__"`` guard a second time in every worker (and imports
    JAX there). Workers need nothing of it (their code is ``rlloop.side.worker``), so the
    parent's ``__main__`` shows neither its file nor its spec while the child is prepared."""
    main = sys.modules.get("__main__")
    saved = {name: getattr(main, name) for name in ("__file__", "__spec__") if hasattr(main, name)}
    try:
        if "__file__" in saved:
            del main.__file__
        if "__spec__" in saved:
            main.__spec__ = None
        yield
    finally:
        for name, value in saved.items():
            setattr(main, name, value)


def _exit_description(exitcode: int | None) -> str:
    if exitcode is None:
        return "exit code unknown"
    if exitcode < 0:
        try:
            return f"killed by {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"killed by signal {-exitcode}"
    return f"exit code {exitcode}"


def _union_seconds(intervals: list[tuple[float, float]]) -> float:
    """Total length of the union of [start, end] intervals."""
    total, current_start, current_end = 0.0, None, None
    for start, end in sorted(intervals):
        if current_end is None or start > current_end:
            if current_end is not None:
                total += current_end - current_start
            current_start, current_end = start, end
        else:
            current_end = max(current_end, end)
    if current_end is not None:
        total += current_end - current_start
    return total
