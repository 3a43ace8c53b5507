"""Start-up of one process of a multi-process run (``jax.distributed``).

A run over several processes (one per machine, or one per task a launcher starts) needs three
values in every process: the coordinator's ``host:port`` (process 0 serves it), the process
count and this process's id. Each is taken from the first of these that has it, value by value:

1. the config: ``hardware.coordinator_address`` (non-empty), ``hardware.num_processes`` and
   ``hardware.process_id`` (not null), from a profile such as ``+hardware=pod`` or the
   command line;
2. ``RLLOOP_COORDINATOR``, ``RLLOOP_NUM_PROCESSES``, ``RLLOOP_PROCESS_ID`` (any launcher that
   can set environment variables: Kubernetes, a shell loop, ``mpirun -x``);
3. SLURM's task environment, the variables JAX's own ``SlurmCluster`` reads: ``SLURM_NTASKS``,
   ``SLURM_PROCID``, and the first host of ``SLURM_STEP_NODELIST`` with JAX's port for
   ``SLURM_JOB_ID`` (``JAX_COORDINATOR_PORT`` overrides the port, as in JAX).

The process count decides: with none anywhere the run is one process, and SLURM's other
variables are ignored (an ``sbatch`` script's own step has ``SLURM_PROCID`` too). A value set
in the config or by ``RLLOOP_*`` wins over a different one from a lower source, with a warning
naming both. :func:`resolve` is pure (config values and an environment in, a
:class:`ProcessGroup` out); :func:`initialize` starts ``jax.distributed`` from it with a
bounded wait for the coordinator.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import os
import socket
import time
from collections.abc import Mapping
from typing import Any

log = logging.getLogger(__name__)

ENV_COORDINATOR = "RLLOOP_COORDINATOR"
ENV_NUM_PROCESSES = "RLLOOP_NUM_PROCESSES"
ENV_PROCESS_ID = "RLLOOP_PROCESS_ID"
DEFAULT_TIMEOUT_SECONDS = 60.0


class StartupError(RuntimeError):
    """A multi-process start-up that cannot proceed; the message names what is missing."""


@dataclasses.dataclass(frozen=True)
class ProcessGroup:
    """This process's place in a multi-process run (``num_processes`` > 1)."""

    coordinator_address: str  # host:port of process 0's coordination service
    num_processes: int
    process_id: int  # in [0, num_processes)
    timeout_seconds: float  # the longest wait for the coordinator and the other processes
    # Where each value came from, e.g. "hardware.num_processes", "RLLOOP_PROCESS_ID",
    # "SLURM_STEP_NODELIST" (in the order coordinator, count, id).
    sources: tuple[str, str, str]
    # Lower-priority values that disagreed with the ones taken (logged as warnings).
    overridden: tuple[str, ...] = ()

    @property
    def coordinator_host(self) -> str:
        return self.coordinator_address.rpartition(":")[0].strip("[]")

    @property
    def coordinator_port(self) -> int:
        return int(self.coordinator_address.rpartition(":")[2])


def resolve(
    *,
    coordinator_address: str = "",
    num_processes: int | None = None,
    process_id: int | None = None,
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
    environ: Mapping[str, str],
) -> ProcessGroup | None:
    """The process group from config values and an environment; None for a one-process run.

    Raises StartupError naming the missing or bad value (and where each other value came from).
    """
    address = _first(
        [("hardware.coordinator_address", coordinator_address or None),
         (ENV_COORDINATOR, environ.get(ENV_COORDINATOR) or None),
         ("SLURM_STEP_NODELIST", _slurm_coordinator(environ))],
    )  # fmt: skip
    count = _first(
        [("hardware.num_processes", num_processes),
         (ENV_NUM_PROCESSES, _env_int(environ, ENV_NUM_PROCESSES)),
         ("SLURM_NTASKS", _env_int(environ, "SLURM_NTASKS"))],
    )  # fmt: skip
    index = _first(
        [("hardware.process_id", process_id),
         (ENV_PROCESS_ID, _env_int(environ, ENV_PROCESS_ID)),
         ("SLURM_PROCID", _env_int(environ, "SLURM_PROCID"))],
    )  # fmt: skip
    if count is None:
        asked = [f"{found.source}={found.value!r}" for found in (address, index)
                 if found is not None and not found.source.startswith("SLURM")]  # fmt: skip
        if asked:
            raise StartupError(
                f"{' and '.join(asked)} ask for a multi-process run, but hardware.num_processes "
                f"is not set and neither {ENV_NUM_PROCESSES} nor SLURM_NTASKS is in the environment"
            )
        return None
    if count.value < 1:
        raise StartupError(f"{count.source}={count.value} must be >= 1 (the number of processes)")
    if count.value == 1:
        return None
    said = f"{count.source} is {count.value}"
    if index is None:
        raise StartupError(
            f"{said} but hardware.process_id is not set and neither {ENV_PROCESS_ID} nor "
            "SLURM_PROCID is in the environment"
        )
    if not 0 <= index.value < count.value:
        raise StartupError(f"{index.source}={index.value} must be in [0, {count.value}) ({said})")
    if address is None:
        raise StartupError(
            f"{said} but hardware.coordinator_address is not set and neither {ENV_COORDINATOR} "
            "nor SLURM_STEP_NODELIST (with SLURM_JOB_ID) is in the environment"
        )
    host, colon, port = str(address.value).rpartition(":")
    if not colon or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise StartupError(
            f"{address.source}={address.value!r} must be host:port (e.g. 10.0.0.1:61234), "
            "the address process 0 serves the coordinator on"
        )
    if not timeout_seconds > 0:
        raise StartupError(f"hardware.init_timeout_seconds={timeout_seconds} must be > 0")
    return ProcessGroup(
        coordinator_address=str(address.value),
        num_processes=count.value,
        process_id=index.value,
        timeout_seconds=float(timeout_seconds),
        sources=(address.source, count.source, index.source),
        overridden=address.overridden + count.overridden + index.overridden,
    )


def from_hardware(hardware: Any, environ: Mapping[str, str] | None = None) -> ProcessGroup | None:
    """:func:`resolve` with the values of a ``hardware`` config node (missing keys: unset)."""

    def value(name: str, default: Any = None) -> Any:
        return getattr(hardware, name, default)

    return resolve(
        coordinator_address=str(value("coordinator_address", "") or ""),
        num_processes=None if value("num_processes") is None else int(value("num_processes")),
        process_id=None if value("process_id") is None else int(value("process_id")),
        timeout_seconds=float(value("init_timeout_seconds", DEFAULT_TIMEOUT_SECONDS)),
        environ=os.environ if environ is None else environ,
    )


def initialize(group: ProcessGroup) -> None:
    """Start ``jax.distributed`` for ``group``; call before any JAX work.

    Processes other than 0 first wait for the coordinator's port to accept connections, at
    most ``group.timeout_seconds`` (StartupError naming the address otherwise), so a wrong or
    unreachable address fails with a message instead of XLA's abort. Once connected, JAX waits
    for the remaining processes for what is left of the timeout; if they never come XLA aborts
    the process with DEADLINE_EXCEEDED (a C++ fatal error Python cannot catch), after the log
    line below that names the address and the timeout.
    """
    import jax

    for line in group.overridden:
        log.warning("jax.distributed: %s", line)
    deadline = time.monotonic() + group.timeout_seconds
    if group.process_id != 0:
        wait_for_coordinator(group, deadline=deadline)
    # Cross-process collectives of the CPU backend (XLA's default has none); unused on GPU/TPU.
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    remaining = max(1, math.ceil(deadline - time.monotonic()))
    log.info(
        "jax.distributed: process %d of %d, coordinator %s (from %s, %s, %s); waiting up to "
        "%d s for all processes (hardware.init_timeout_seconds)",
        group.process_id, group.num_processes, group.coordinator_address, *group.sources, remaining,
    )  # fmt: skip
    jax.distributed.initialize(
        coordinator_address=group.coordinator_address,
        num_processes=group.num_processes,
        process_id=group.process_id,
        initialization_timeout=remaining,
        # Every value is resolved above; JAX's own detection would also pin each SLURM task to
        # the GPU of its SLURM_LOCALID, hiding the other GPUs of a one-task-per-node job.
        cluster_detection_method="deactivate",
    )


def report_lost(process_id: int, num_processes: int, who: str, why: str, exit: Any = None) -> None:
    """Print that ``who`` was lost and end this process with ``EXIT_PEER_LOST`` (never returns
    with the default ``exit``)."""
    import sys

    message = (
        f"[rlloop] process {process_id} of {num_processes}: lost {who}: {why}. Stopping this "
        f"process too (exit status {EXIT_PEER_LOST}); restart every process to resume from the "
        "last complete checkpoint"
    )
    log.critical(message)
    print(message, file=sys.stderr, flush=True)
    (exit or os._exit)(EXIT_PEER_LOST)


def wait_for_coordinator(group: ProcessGroup, *, deadline: float) -> None:
    """Return once the coordinator's port accepts a TCP connection; StartupError at ``deadline``
    (a ``time.monotonic()`` time)."""
    while True:
        left = deadline - time.monotonic()
        try:
            with socket.create_connection(
                (group.coordinator_host, group.coordinator_port), timeout=max(0.1, min(1.0, left))
            ):
                return
        except OSError as error:
            if time.monotonic() + 0.25 >= deadline:
                raise StartupError(
                    f"process {group.process_id} of {group.num_processes} could not reach the "
                    f"coordinator at {group.coordinator_address} (from {group.sources[0]}) within "
                    f"hardware.init_timeout_seconds={group.timeout_seconds:g} s ({error}): is "
                    "process 0 running there, and is the port open between the machines?"
                ) from None
            time.sleep(0.25)


@dataclasses.dataclass(frozen=True)
class _Found:
    source: str
    value: Any
    overridden: tuple[str, ...]


def _first(candidates: list[tuple[str, Any]]) -> _Found | None:
    """The first candidate with a value, and the later ones that disagree with it."""
    present = [(source, value) for source, value in candidates if value is not None]
    if not present:
        return None
    (source, value), rest = present[0], present[1:]
    overridden = tuple(f"{source}={value!r} wins over {other}={theirs!r}"
                       for other, theirs in rest if theirs != value)  # fmt: skip
    return _Found(source, value, overridden)


def _env_int(environ: Mapping[str, str], name: str) -> int | None:
    text = environ.get(name, "").strip()
    if not text:
        return None
    try:
        return int(text)
    except ValueError:
        raise StartupError(f"{name}={text!r} in the environment is not an integer") from None


def _slurm_coordinator(environ: Mapping[str, str]) -> str | None:
    """``host:port`` as JAX's SlurmCluster picks it: the step's first node, a port from the job id."""
    nodes, job = environ.get("SLURM_STEP_NODELIST", ""), environ.get("SLURM_JOB_ID", "")
    if not nodes or not job:
        return None
    port = environ.get("JAX_COORDINATOR_PORT") or str(
        _env_int(environ, "SLURM_JOB_ID") % 2**12 + 65536 - 2**12
    )
    return f"{first_host(nodes)}:{port}"


def first_host(nodelist: str) -> str:
    """The first host of a SLURM node list: ``node[003-010,020],gpu7`` -> ``node003``."""
    head = nodelist.split(",", 1)[0] if "[" not in nodelist.split(",", 1)[0] else nodelist
    prefix, bracket, rest = head.partition("[")
    if not bracket:
        return prefix.strip()
    return prefix.strip() + rest.split(",", 1)[0].split("-", 1)[0].split("]", 1)[0]


# ---------------------------------------------------------------------- losing a process
EXIT_PEER_LOST = 75  # the exit status of a process that stopped because another was lost
HEARTBEAT_KEY = "rlloop/heartbeat/{}"
DONE = "done"


class Watchdog:
    """Stops this process when another process of the run is lost, instead of leaving it
    waiting in a collective that can never finish.

    A daemon thread beats every ``interval`` seconds: it bumps this process's counter in the
    coordinator's key-value store and reads every other process's. A process whose counter
    has not moved for ``timeout`` seconds (by this process's clock: machines' clocks need not
    agree), or a coordinator that no longer answers (process 0 is gone), ends this process at
    once (``os._exit(EXIT_PEER_LOST)``) after a message naming the lost process. Collectives
    release the GIL while they wait, so the thread runs while the loop is stuck in one.
    Nothing is lost: every checkpoint the run reported saved is complete, and restarting every
    process resumes from the newest one.
    """

    def __init__(self, process_id: int, num_processes: int, *, timeout: float, interval: float = 1.0,
                 client: Any = None, exit: Any = None) -> None:  # fmt: skip
        import threading

        if client is None:
            from jax._src import distributed as jax_distributed

            client = jax_distributed.global_state.client
        self.process_id, self.num_processes = process_id, num_processes
        self.timeout, self.interval = float(timeout), float(interval)
        self._client = client
        self._exit = exit if exit is not None else os._exit
        self._stopped = threading.Event()
        now = time.monotonic()
        self._seen = {peer: ("", now) for peer in range(num_processes) if peer != process_id}
        self._thread = threading.Thread(target=self._run, name="rlloop-watchdog", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """This process is done (its run ended): the others stop watching it."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        with contextlib.suppress(Exception):
            self._client.key_value_set(HEARTBEAT_KEY.format(self.process_id), DONE, allow_overwrite=True)

    def fail(self, error: BaseException) -> None:
        """This process's run raised ``error`` (often a collective that lost its peer): print
        it, give the heartbeats up to ``timeout`` seconds to name a lost process (then exit as
        :meth:`_lost` does), else exit with status 1. Never returns: a process that left the
        loop cannot join the others' collectives again, and JAX's shutdown would wait for them."""
        import sys
        import traceback

        traceback.print_exception(error, file=sys.stderr)
        print(f"[rlloop] process {self.process_id} of {self.num_processes}: the run failed "
              f"({type(error).__name__}); checking the other processes' heartbeats for up to "
              f"{self.timeout:g} s", file=sys.stderr, flush=True)  # fmt: skip
        self._thread.join(self.timeout + 2 * self.interval)
        print(f"[rlloop] process {self.process_id}: stopping (exit status 1); every other process "
              "stops when it misses this one; restart every process to resume from the last "
              "complete checkpoint", file=sys.stderr, flush=True)  # fmt: skip
        self._exit(1)

    def _run(self) -> None:
        beats = 0
        done: set[int] = set()  # peers whose run ended
        while not self._stopped.wait(self.interval):
            for peer in done:
                self._seen.pop(peer, None)
            beats += 1
            try:
                self._client.key_value_set(HEARTBEAT_KEY.format(self.process_id), str(beats), allow_overwrite=True)
            except Exception as error:  # the coordination service (process 0) is gone
                if self._stopped.is_set():
                    return
                self._lost(0, f"the coordinator does not answer ({type(error).__name__}: {str(error)[:200]})")
                return
            now = time.monotonic()
            for peer, (value, since) in self._seen.items():
                try:
                    current = str(self._client.key_value_try_get(HEARTBEAT_KEY.format(peer)))
                except Exception:  # not beaten yet
                    current = value
                if current == DONE:
                    done.add(peer)
                elif current != value:
                    self._seen[peer] = (current, now)
                elif now - since > self.timeout:
                    self._lost(peer, f"no heartbeat for {now - since:.0f} s (hardware.peer_timeout_seconds="
                                     f"{self.timeout:g})")  # fmt: skip
                    return

    def _lost(self, peer: int, why: str) -> None:
        if self._stopped.is_set():
            return
        who = f"process {peer}" + (" (the coordinator)" if peer == 0 else "")
        report_lost(self.process_id, self.num_processes, who, why, exit=self._exit)


def start_watchdog(hardware: Any) -> Watchdog | None:
    """A :class:`Watchdog` for this process when the run has several (None otherwise)."""
    import jax

    if jax.process_count() == 1:
        return None
    timeout = float(getattr(hardware, "peer_timeout_seconds", 30.0))
    return Watchdog(jax.process_index(), jax.process_count(), timeout=timeout)
