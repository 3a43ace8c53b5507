"""The loop over several processes (jax.distributed on 127.0.0.1, CPU, gloo collectives).

Two processes of one device each must give the run one process of two devices gives with the
same seeds: the same ledger rows, champion and parameters. The parts that make that so (replay
shards per device, gate matches cut in slices, decisions taken by process 0) are tested here
without processes too, and so is the watchdog that stops a process whose peer was lost.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import jax
import numpy as np
import pytest

from rlloop import parallel
from rlloop.distributed import DONE, EXIT_PEER_LOST, HEARTBEAT_KEY, Watchdog
from rlloop.ledger import LedgerError, ProcessLedger
from rlloop.replay import SAMPLE_FIELDS, ReplayBuffer, ShardedReplay, split_pending_state

LINEAGE = Path("lineages") / "tictactoe"
RUN = [
    "game=tictactoe", "loop=smoke", "gate=smoke", "loop.tensorboard=false", "search.num_simulations=4",
    "train.min_replay_size=16", "train.batch_size=32", "train.steps_per_iteration=4",
    "hardware.games_per_device=16", "gate.promote_score=0.3", "hardware.compilation_cache=false",
]  # fmt: skip


# ---------------------------------------------------------------------- replay shards
def _samples(count: int, start: float) -> dict[str, np.ndarray]:
    values = start + np.arange(count, dtype=np.float32)
    return {
        "observation": np.broadcast_to(values[:, None, None], (count, 2, 2)).copy(),
        "policy_actions": np.zeros((count, 3), np.int32),
        "policy_weights": np.full((count, 3), 1 / 3, np.float32),
        "value": np.stack([values, -values], axis=1),
    }


def _replay(positions: list[int], capacity: int = 40) -> ShardedReplay:
    return ShardedReplay(capacity, positions=positions, num_devices=2, seed=[3, 11, 0],
                         observation_shape=(2, 2), num_actions=3, num_players=2)  # fmt: skip


def test_replay_batches_do_not_depend_on_how_devices_are_split_over_processes(tmp_path: Path) -> None:
    device0, device1 = _samples(7, 0.0), _samples(5, 100.0)
    both = _replay([0, 1])
    both.add([device0, device1])
    first, second = _replay([0]), _replay([1])
    first.add([device0])
    second.add([device1])
    assert (len(both), both.total_added, both.capacity, both.smallest_shard) == (12, 12, 40, 5)
    assert len(first) == 7  # a process counts other processes' shards at sync() only
    whole = both.sample(batch_size=8, num_batches=3)
    halves = [replay.sample(batch_size=8, num_batches=3) for replay in (first, second)]
    for name in SAMPLE_FIELDS:
        np.testing.assert_array_equal(whole[name], np.concatenate([h[name] for h in halves], axis=1))
    # Each device's columns come from its own shard only.
    assert (whole["observation"][:, :4] < 100).all() and (whole["observation"][:, 4:] >= 100).all()
    # Saved and loaded, generators included, the next batches are the same again.
    both.save(tmp_path / "replay.npz")
    loaded = _replay([0, 1])
    loaded.load([tmp_path / "replay.npz"])
    assert (len(loaded), loaded.total_added) == (12, 12)
    again, later = loaded.sample(batch_size=8, num_batches=2), both.sample(batch_size=8, num_batches=2)
    np.testing.assert_array_equal(again["observation"], later["observation"])
    with pytest.raises(ValueError, match="multiple of the 2 devices"):
        both.sample(batch_size=7, num_batches=1)


def test_a_replay_of_one_buffer_is_dealt_over_the_device_shards(tmp_path: Path) -> None:
    old = ReplayBuffer(40, observation_shape=(2, 2), num_actions=3, num_players=2)
    old.add(_samples(9, 0.0))
    old.save(tmp_path / "old.npz")  # the format before replays were split by device
    replay = _replay([0, 1])
    replay.load([tmp_path / "old.npz"])
    assert (len(replay), replay.total_added, replay.smallest_shard) == (9, 9, 4)
    held = np.sort(np.concatenate([shard.samples()["value"][:, 0] for shard in replay.shards]))
    np.testing.assert_array_equal(held, np.arange(9, dtype=np.float32))


def test_waiting_moves_of_every_column_split_by_device() -> None:
    state = {"rows/done": np.arange(12).reshape(3, 4), "waiting": np.ones((3, 4), bool)}
    left, right = split_pending_state(state, 2)
    np.testing.assert_array_equal(right["rows/done"], [[2, 3], [6, 7], [10, 11]])
    assert left["waiting"].shape == (3, 2)
    assert split_pending_state({}, 2) == [{}, {}]
    with pytest.raises(ValueError, match="do not split over 3 devices"):
        split_pending_state(state, 3)


# ---------------------------------------------------------------------- one process's view
def test_single_process_helpers_are_the_local_operations() -> None:
    assert parallel.agree(lambda: {"pick": "a"}) == {"pick": "a"}
    assert parallel.gather(3) == [3]
    np.testing.assert_array_equal(parallel.global_sum([1, 2.5]), [1.0, 2.5])
    mesh = parallel.make_mesh(jax.devices()[:1])
    assert parallel.local_positions(mesh) == [0]
    batch = parallel.put_local_batch(np.arange(6.0).reshape(2, 3), mesh, axis=1)
    np.testing.assert_array_equal(parallel.local_rows(batch, axis=1), np.arange(6.0).reshape(2, 3))
    tree = {"w": np.ones(3, np.float32)}
    assert parallel.fingerprint(tree) == parallel.fingerprint({"w": np.ones(3, np.float32)})
    assert parallel.fingerprint(tree) != parallel.fingerprint({"w": np.zeros(3, np.float32)})


def test_other_processes_never_read_the_ledger() -> None:
    ledger = ProcessLedger(config="tictactoe", process=1)
    assert ledger.add_model("iter-1", parent=None, iteration=1, status="candidate") == 0
    ledger.record_match("a", "b", 1, 0, 1, stage="screen", iteration=1)
    with pytest.raises(LedgerError, match="process 1 read the ledger \\(champion\\)"):
        ledger.champion()


def test_gate_slices_add_up_to_the_match() -> None:
    from rlloop import games
    from rlloop.arena import greedy_player, match_slices, play_match_slices, random_player

    assert match_slices(10, 2) == [6, 4] and match_slices(40, 2) == [20, 20] and match_slices(2, 3) == [2, 0, 0]
    game = games.make("tictactoe")
    a, b = greedy_player(game), random_player(game)
    key = jax.random.key(4)
    whole = play_match_slices(game, a, b, num_games=20, key=key, slices=2)
    parts = [play_match_slices(game, a, b, num_games=20, key=key, slices=2, local=[k]) for k in (0, 1)]
    assert whole.games == 20 and sum(part.games for part in parts) == 20
    assert (whole.wins_a, whole.draws, whole.wins_b) == tuple(
        sum(getattr(part, name) for part in parts) for name in ("wins_a", "draws", "wins_b")
    )


# ---------------------------------------------------------------------- the watchdog
class _Store:
    """A stand-in for the coordinator's key-value store."""

    def __init__(self) -> None:
        self.values: dict[str, str] = {}
        self.down = False

    def key_value_set(self, key: str, value: str, allow_overwrite: bool = False) -> None:
        if self.down:
            raise RuntimeError("UNAVAILABLE: failed to connect")
        self.values[key] = value

    def key_value_try_get(self, key: str) -> str:
        if key not in self.values:
            raise KeyError(key)
        return self.values[key]


def _watch(store: _Store, *, timeout: float = 0.4) -> tuple[Watchdog, list[int]]:
    exits: list[int] = []
    return Watchdog(0, 3, timeout=timeout, interval=0.05, client=store, exit=exits.append), exits


def test_watchdog_names_the_process_that_stopped_beating(capsys: pytest.CaptureFixture[str]) -> None:
    store = _Store()
    watchdog, exits = _watch(store)
    deadline = time.monotonic() + 5
    while not exits and time.monotonic() < deadline:
        store.values[HEARTBEAT_KEY.format(1)] = str(time.monotonic())  # process 1 beats, 2 never
        time.sleep(0.05)
    watchdog.stop()
    assert exits == [EXIT_PEER_LOST]
    assert "process 0 of 3: lost process 2: no heartbeat for" in capsys.readouterr().err
    assert store.values[HEARTBEAT_KEY.format(0)] == DONE


def test_watchdog_ignores_a_finished_process_and_reports_a_lost_coordinator(
    capsys: pytest.CaptureFixture[str],
) -> None:
    store = _Store()
    store.values.update({HEARTBEAT_KEY.format(1): DONE, HEARTBEAT_KEY.format(2): DONE})
    watchdog, exits = _watch(store, timeout=0.2)
    time.sleep(0.6)
    assert exits == []
    watchdog.stop()
    store = _Store()
    store.down = True
    watchdog = Watchdog(1, 2, timeout=5, interval=0.05, client=store, exit=(exits := []).append)
    time.sleep(0.4)
    assert exits == [EXIT_PEER_LOST]
    assert "process 1 of 2: lost process 0 (the coordinator): the coordinator does not answer" in capsys.readouterr().err


# ---------------------------------------------------------------------- real processes
def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _start(run_dir: Path, *, processes: int, iterations: int, port: int, extra: list[str] = ()) -> list[Any]:
    """``processes`` processes of one run (one CPU device each; one process: two devices)."""
    devices = 2 if processes == 1 else 1
    args = [sys.executable, "-m", "rlloop.run", *RUN, f"loop.iterations={iterations}",
            f"hardware.num_cpu_devices={devices}", f"hydra.run.dir={run_dir}", *extra]  # fmt: skip
    started = []
    for index in range(processes):
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        if processes > 1:
            env.update(RLLOOP_COORDINATOR=f"127.0.0.1:{port}", RLLOOP_NUM_PROCESSES=str(processes),
                       RLLOOP_PROCESS_ID=str(index))  # fmt: skip
        log = (run_dir.parent / f"{run_dir.name}.{index}.log").open("a")
        started.append(subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT, text=True))
    return started


def _finish(processes: list[Any], run_dir: Path, timeout: float = 400) -> None:
    for index, process in enumerate(processes):
        try:
            code = process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            for other in processes:
                other.kill()
            raise
        log = (run_dir.parent / f"{run_dir.name}.{index}.log").read_text()
        assert code == 0, f"process {index} exited with {code}:\n{log[-4000:]}"


def _rows(run_dir: Path, query: str) -> list[tuple]:
    with sqlite3.connect(run_dir / "ledger.sqlite") as connection:
        return [tuple(row) for row in connection.execute(query)]


def _params(run_dir: Path) -> dict[str, np.ndarray]:
    """The trained parameters of the newest training checkpoint, read on one device."""
    import orbax.checkpoint as ocp

    root = run_dir / LINEAGE / "checkpoints" / "train"
    step = max(int(p.name) for p in root.iterdir() if p.name.isdigit())
    path = root / str(step) / "state"
    checkpointer = ocp.StandardCheckpointer()
    tree = checkpointer.metadata(path).item_metadata
    device = jax.sharding.SingleDeviceSharding(jax.devices("cpu")[0])
    target = jax.tree.map(lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=device), tree)
    restored = checkpointer.restore(path, target)
    return {jax.tree_util.keystr(k): np.asarray(v) for k, v in jax.tree_util.tree_leaves_with_path(restored["params"])}


MATCHES = "SELECT model_a, model_b, wins_a, draws, wins_b, stage, iteration, config FROM matches ORDER BY id"
MODELS = "SELECT id, parent, iteration, status, checkpoint, config FROM models ORDER BY id"
PROMOTIONS = "SELECT model_id, previous_champion, iteration, score FROM promotions ORDER BY id"


def test_two_processes_play_and_train_as_one_process_of_two_devices(tmp_path: Path) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    _finish(_start(two, processes=2, iterations=3, port=_free_port()), two)
    _finish(_start(one, processes=1, iterations=3, port=0), one)
    for query in (MATCHES, MODELS, PROMOTIONS):
        assert _rows(two, query) == _rows(one, query), query
    assert _rows(one, "SELECT COUNT(*) FROM matches WHERE stage = 'screen'")[0][0] >= 2  # gated twice
    elo = {run: [row[0] for row in _rows(run, "SELECT elo FROM models ORDER BY id")] for run in (one, two)}
    assert elo[two] == pytest.approx(elo[one])
    metrics = {run: [json.loads(row[0]) for row in _rows(run, "SELECT metrics FROM iterations ORDER BY iteration")]
               for run in (one, two)}  # fmt: skip
    for mine, theirs in zip(metrics[two], metrics[one], strict=True):
        for name in ("games", "samples_added", "replay_size", "train_step", "samples_waiting", "champion"):
            assert mine.get(name) == theirs.get(name), name
        assert mine.get("loss") == pytest.approx(theirs.get("loss"), abs=1e-5)
    params_one, params_two = _params(one), _params(two)
    assert params_one.keys() == params_two.keys()
    for name, value in params_one.items():
        np.testing.assert_allclose(params_two[name], value, atol=1e-5, err_msg=name)
    # One writer; every process its own replay files.
    assert len((two / "metrics.jsonl").read_text().splitlines()) == 3
    assert sorted(p.name for p in (two / LINEAGE / "replay").iterdir()) == [
        f"{kind}-p{index}-{step}.npz" for kind in ("pending", "replay") for index in (0, 1) for step in (2, 3)
    ]


@pytest.mark.long
def test_a_killed_process_stops_the_other_and_a_restart_resumes(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    # With a teacher too: its games and pre-training run over both processes.
    extra = ["hardware.peer_timeout_seconds=10", "train.teacher=greedy", "train.teacher_samples=500",
             "train.teacher_steps=4"]  # fmt: skip
    processes = _start(run_dir, processes=2, iterations=7, port=_free_port(), extra=extra)
    metrics = run_dir / "metrics.jsonl"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and (not metrics.exists() or len(metrics.read_text().splitlines()) < 3):
        assert all(p.poll() is None for p in processes), "a process ended before the kill"
        time.sleep(0.2)
    committed = set(_rows(run_dir, MATCHES))
    os.kill(processes[1].pid, signal.SIGKILL)
    killed = time.monotonic()
    code = processes[0].wait(timeout=60)
    assert time.monotonic() - killed < 60
    log = (tmp_path / "run.0.log").read_text()
    assert code == EXIT_PEER_LOST, log[-3000:]
    assert "process 0 of 2: lost process 1" in log
    processes[1].wait()
    _finish(_start(run_dir, processes=2, iterations=7, port=_free_port(), extra=extra), run_dir)
    resumed = (tmp_path / "run.0.log").read_text()
    assert "[rlloop] resumed from iteration" in resumed
    assert "teacher greedy: 500 samples" in log  # the fresh start pre-trained over both processes
    assert committed <= set(_rows(run_dir, MATCHES))
    assert _rows(run_dir, "SELECT MAX(iteration) FROM iterations")[0][0] == 7


def test_processes_other_than_0_leave_hydra_files_to_process_0() -> None:
    from rlloop.run import _other_process_overrides

    quiet = ["hydra.output_subdir=null", "hydra/job_logging=stdout"]
    env = {"RLLOOP_COORDINATOR": "127.0.0.1:7000", "RLLOOP_NUM_PROCESSES": "2"}
    assert _other_process_overrides([], {**env, "RLLOOP_PROCESS_ID": "1"}) == quiet
    assert _other_process_overrides([], {**env, "RLLOOP_PROCESS_ID": "0"}) == []
    assert _other_process_overrides(["game=tictactoe"], {}) == []
    argv = ["+hardware=pod", "hardware.coordinator_address=10.0.0.1:61234", "hardware.num_processes=2",
            "hardware.process_id=1"]  # fmt: skip
    assert _other_process_overrides(argv, {}) == quiet
    assert _other_process_overrides(["hardware.num_processes=2"], {}) == []  # the Loop names what is missing
