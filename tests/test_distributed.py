"""Multi-process start-up (rlloop.distributed): where each value comes from, the clear errors,
and real ``jax.distributed`` start-ups of subprocesses on 127.0.0.1 (CPU, gloo collectives).

Each subprocess has a hard timeout, so a start-up that hangs fails the test instead of it.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rlloop.distributed import ProcessGroup, StartupError, first_host, resolve

WORKER = Path(__file__).with_name("distributed_worker.py")
SLURM = {"SLURM_JOB_ID": "1234567", "SLURM_NTASKS": "4", "SLURM_PROCID": "3", "SLURM_LOCALID": "0",
         "SLURM_STEP_NODELIST": "gpu[003-006]", "SLURM_STEP_NUM_NODES": "4"}  # fmt: skip
SLURM_PORT = 1234567 % 4096 + 61440  # JAX's SlurmCluster: the job id's port in 61440..65535


def test_nothing_set_is_one_process() -> None:
    assert resolve(environ={}) is None
    assert resolve(num_processes=1, environ={}) is None
    # An sbatch script's own step has SLURM_PROCID and a node list but no task count.
    batch_step = {k: v for k, v in SLURM.items() if k != "SLURM_NTASKS"}
    assert resolve(environ=batch_step) is None


def test_config_only() -> None:
    group = resolve(coordinator_address="10.0.0.1:7000", num_processes=2, process_id=1,
                    timeout_seconds=5, environ={})  # fmt: skip
    assert group == ProcessGroup(
        "10.0.0.1:7000", 2, 1, 5.0,
        ("hardware.coordinator_address", "hardware.num_processes", "hardware.process_id"),
    )  # fmt: skip
    assert (group.coordinator_host, group.coordinator_port) == ("10.0.0.1", 7000)


def test_slurm_only_matches_jax_own_detection(monkeypatch: pytest.MonkeyPatch) -> None:
    group = resolve(environ=SLURM)
    assert group is not None
    assert (group.coordinator_address, group.num_processes, group.process_id) == (
        f"gpu003:{SLURM_PORT}",
        4,
        3,
    )
    assert group.sources == ("SLURM_STEP_NODELIST", "SLURM_NTASKS", "SLURM_PROCID")
    from jax._src.clusters.slurm_cluster import SlurmCluster

    for name, value in SLURM.items():
        monkeypatch.setenv(name, value)
    assert SlurmCluster.is_env_present()
    assert group.coordinator_address == SlurmCluster.get_coordinator_address(None, None)
    assert (group.num_processes, group.process_id) == (
        SlurmCluster.get_process_count(),
        SlurmCluster.get_process_id(),
    )
    moved = resolve(environ={**SLURM, "JAX_COORDINATOR_PORT": "7777"})
    assert moved is not None and moved.coordinator_address == "gpu003:7777"


@pytest.mark.parametrize(
    ("nodelist", "host"),
    [("node001", "node001"), ("node001,host2", "node001"), ("node[001-015],host2", "node001"),
     ("node[001,007-015],host2", "node001"), ("a,b[1-2]", "a"), ("gpu-a[7]", "gpu-a7")],
)  # fmt: skip
def test_first_host_agrees_with_jax(
    nodelist: str, host: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from jax._src.clusters.slurm_cluster import SlurmCluster

    monkeypatch.setenv("SLURM_JOB_ID", "1")
    monkeypatch.setenv("SLURM_STEP_NODELIST", nodelist)
    assert first_host(nodelist) == host
    if nodelist != "gpu-a[7]":  # JAX's parser keeps the "]" of a one-node bracket: "gpu-a7]"
        assert SlurmCluster.get_coordinator_address(None, None) == f"{host}:61441"


def test_config_wins_over_rlloop_env_which_wins_over_slurm() -> None:
    rlloop_env = {
        "RLLOOP_COORDINATOR": "head:9000",
        "RLLOOP_NUM_PROCESSES": "4",
        "RLLOOP_PROCESS_ID": "2",
    }
    group = resolve(num_processes=4, process_id=1, environ={**SLURM, **rlloop_env})
    assert group is not None
    assert (group.coordinator_address, group.num_processes, group.process_id) == ("head:9000", 4, 1)
    assert group.sources == ("RLLOOP_COORDINATOR", "hardware.num_processes", "hardware.process_id")
    # Disagreeing values that lost are reported (num_processes agreed everywhere: not listed).
    assert group.overridden == (
        f"RLLOOP_COORDINATOR='head:9000' wins over SLURM_STEP_NODELIST='gpu003:{SLURM_PORT}'",
        "hardware.process_id=1 wins over RLLOOP_PROCESS_ID=2",
        "hardware.process_id=1 wins over SLURM_PROCID=3",
    )
    only_env = resolve(environ={**SLURM, **rlloop_env})
    assert only_env is not None and only_env.process_id == 2
    assert only_env.sources == ("RLLOOP_COORDINATOR", "RLLOOP_NUM_PROCESSES", "RLLOOP_PROCESS_ID")
    # The config's count of one wins too: every task runs alone (with a warning in the log).
    assert resolve(num_processes=1, environ=SLURM) is None


@pytest.mark.parametrize(
    ("settings", "environ", "message"),
    [
        ({"num_processes": 2}, {}, "hardware.num_processes is 2 but hardware.process_id is not set and "
         "neither RLLOOP_PROCESS_ID nor SLURM_PROCID is in the environment"),
        ({}, {"SLURM_NTASKS": "2", "SLURM_PROCID": "1"}, "SLURM_NTASKS is 2 but hardware.coordinator_address "
         "is not set and neither RLLOOP_COORDINATOR nor SLURM_STEP_NODELIST (with SLURM_JOB_ID) is in"),
        ({"coordinator_address": "h:1", "process_id": 0}, {}, "hardware.coordinator_address='h:1' and "
         "hardware.process_id=0 ask for a multi-process run, but hardware.num_processes is not set"),
        ({"num_processes": 2, "process_id": 2, "coordinator_address": "h:1"}, {},
         "hardware.process_id=2 must be in [0, 2) (hardware.num_processes is 2)"),
        ({"process_id": 0}, {"RLLOOP_NUM_PROCESSES": "two"}, "RLLOOP_NUM_PROCESSES='two' in the environment is not an integer"),
        ({"num_processes": 2, "process_id": 0}, {"RLLOOP_COORDINATOR": "head"}, "RLLOOP_COORDINATOR='head' must be host:port"),
        ({"num_processes": 2, "process_id": 0, "coordinator_address": "h:1", "timeout_seconds": 0}, {},
         "hardware.init_timeout_seconds=0 must be > 0"),
    ],
)  # fmt: skip
def test_missing_or_bad_values_are_named(settings: dict, environ: dict, message: str) -> None:
    with pytest.raises(StartupError, match=re.escape(message)):
        resolve(**settings, environ=environ)


def test_configure_jax_refuses_to_start_late(monkeypatch: pytest.MonkeyPatch) -> None:
    """Once JAX's backends are up, jax.distributed can no longer start: say so, don't skip it."""
    import jax
    from omegaconf import OmegaConf

    from rlloop import parallel
    from rlloop.config import HardwareConfig

    jax.devices()
    hardware = OmegaConf.structured(HardwareConfig(compilation_cache=False, num_cpu_devices=0))
    monkeypatch.setenv("RLLOOP_COORDINATOR", "127.0.0.1:1")
    monkeypatch.setenv("RLLOOP_NUM_PROCESSES", "2")
    monkeypatch.setenv("RLLOOP_PROCESS_ID", "1")
    with pytest.raises(
        StartupError,
        match=r"must start before any JAX work.*process 1 of 2, coordinator 127\.0\.0\.1:1",
    ):
        parallel.configure_jax(hardware)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _start(environ: dict[str, str], timeout: float) -> subprocess.Popen:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SLURM_", "RLLOOP_", "JAX_", "XLA_FLAGS"))
    }
    env.update({"JAX_PLATFORMS": "cpu", "PYTHONUNBUFFERED": "1", **environ})
    return subprocess.Popen([sys.executable, str(WORKER), str(timeout)], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip


def _finish(process: subprocess.Popen, limit: float) -> tuple[int, str, str]:
    try:
        out, err = process.communicate(timeout=limit)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate()
        pytest.fail(f"start-up hung for {limit} s:\n{out}\n{err[-3000:]}")
    return process.returncode, out, err


def test_two_processes_start_through_slurm_environment() -> None:
    """Two srun-like tasks on 127.0.0.1: one global mesh of 2 devices, a gloo all-gather works."""
    port = str(_free_port())
    tasks = [
        _start({"SLURM_JOB_ID": "42", "SLURM_NTASKS": "2", "SLURM_PROCID": str(task), "SLURM_LOCALID": str(task),
                "SLURM_STEP_NODELIST": "127.0.0.1", "JAX_COORDINATOR_PORT": port}, timeout=60)
        for task in range(2)
    ]  # fmt: skip
    results = [_finish(task, limit=120) for task in tasks]
    for task, (code, out, err) in enumerate(results):
        assert code == 0, f"task {task}:\n{out}\n{err[-3000:]}"
        seen = json.loads(out.strip().splitlines()[-1])
        assert seen["process_index"] == task and seen["process_count"] == 2
        assert (seen["device_count"], seen["local_device_count"]) == (2, 1)
        assert seen["gathered"] == [0, 1]
        assert f"process {task} of 2, coordinator 127.0.0.1:{port} (from SLURM_STEP_NODELIST" in err


def test_unreachable_coordinator_fails_within_the_timeout() -> None:
    address = f"127.0.0.1:{_free_port()}"  # nothing listens there
    started = time.monotonic()
    process = _start(
        {"RLLOOP_COORDINATOR": address, "RLLOOP_NUM_PROCESSES": "2", "RLLOOP_PROCESS_ID": "1"},
        timeout=4,
    )
    code, out, err = _finish(process, limit=60)
    assert code == 3, f"{out}\n{err[-3000:]}"
    assert (
        f"startup-error: process 1 of 2 could not reach the coordinator at {address} (from "
        "RLLOOP_COORDINATOR) within hardware.init_timeout_seconds=4 s"
    ) in out
    waited = json.loads(out.strip().splitlines()[-1])["seconds"]
    assert 3.5 < waited < 6, waited
    assert time.monotonic() - started < 45


def test_coordinator_without_peers_stops_within_the_timeout() -> None:
    """Process 0 alone: JAX waits for the missing process for the timeout, then XLA aborts the
    process (DEADLINE_EXCEEDED); our log line before it names the address and the timeout."""
    address = f"127.0.0.1:{_free_port()}"
    started = time.monotonic()
    process = _start(
        {"RLLOOP_COORDINATOR": address, "RLLOOP_NUM_PROCESSES": "2", "RLLOOP_PROCESS_ID": "0"},
        timeout=3,
    )
    code, out, err = _finish(process, limit=60)
    assert code != 0 and "process_index" not in out, f"{out}\n{err[-3000:]}"
    assert f"process 0 of 2, coordinator {address} (from RLLOOP_COORDINATOR" in err
    assert "waiting up to 3 s for all processes (hardware.init_timeout_seconds)" in err
    assert "DEADLINE_EXCEEDED" in err
    assert time.monotonic() - started < 45
