"""The loop end to end: the Python API, the Hydra CLI, and Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pytest

import rlloop

SMOKE = ["loop=smoke", "loop.tensorboard=true", "search.num_simulations=8", "train.min_replay_size=16",
         "train.batch_size=32", "train.steps_per_iteration=4", "hardware.games_per_device=16"]  # fmt: skip


def test_api_runs_writes_and_loads_agent(tmp_path: Path) -> None:
    config = rlloop.compose(["game=tictactoe", *SMOKE])
    with rlloop.Loop(config, run_dir=tmp_path) as loop:
        history = loop.run(iterations=2)
        assert [h["iteration"] for h in history] == [1, 2]
        assert history[-1]["games"] > 0 and np.isfinite(history[-1]["loss"])
        assert history[-1]["train_step"] == 8
    lines = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [line["iteration"] for line in lines] == [1, 2]
    assert list((tmp_path / "tb").glob("events.out.tfevents.*")), "no TensorBoard events"
    assert (tmp_path / "config.yaml").is_file()

    agent = rlloop.load_agent(tmp_path, which="latest")
    states = jax.vmap(agent.game.init)(jax.random.split(jax.random.key(0), 3))
    policy = np.asarray(agent.policy(states))
    assert policy.shape == (3, 9)
    np.testing.assert_allclose(policy.sum(-1), 1.0, rtol=1e-5)
    values = np.asarray(agent.value(states))
    assert values.shape == (3, 2) and np.all(np.abs(values) <= 1)
    actions = np.asarray(agent.act(states, jax.random.key(1), num_simulations=4))
    assert actions.shape == (3,) and np.all(np.asarray(states.legal_action_mask)[np.arange(3), actions])
    with pytest.raises(ValueError, match="num_simulations"):
        agent.act(states, jax.random.key(1), num_simulations=-1)
    # The gated run's first champion is the fresh network it started from.
    champion = rlloop.load_agent(tmp_path, which="champion")
    assert np.asarray(champion.policy(states)).shape == (3, 9)
    differs = [
        not np.allclose(a, b)
        for a, b in zip(jax.tree.leaves(champion.params), jax.tree.leaves(agent.params), strict=True)
    ]
    assert any(differs), "the champion (fresh network) should differ from the trained latest"
    with pytest.raises(ValueError, match="valid: auto, champion, latest"):
        rlloop.load_agent(tmp_path, which="best")


def test_samples_per_insert_caps_training_at_a_replay_ratio(tmp_path: Path) -> None:
    """train.samples_per_insert: trained samples never exceed ratio x samples added, with
    steps_per_iteration still the most per iteration; a negative ratio is refused."""
    ratio, batch = 0.5, 32
    config = rlloop.compose(["game=tictactoe", *SMOKE, "loop.iterations=4", "gate.enabled=false",
                             f"train.samples_per_insert={ratio}", "train.steps_per_iteration=16"])  # fmt: skip
    with rlloop.Loop(config, run_dir=tmp_path) as loop:
        history = loop.run(iterations=4)
        added = loop.lineage.replay.total_added
        steps = int(loop.lineage.train_state.step)
    # 4 x 16 steps uncapped; capped to floor(ratio * added / batch) over the run.
    assert 0 < steps < 4 * 16
    assert steps * batch <= ratio * added < (steps + 1) * batch + 16 * batch
    assert all(h.get("train_step", 0) <= 16 * h["iteration"] for h in history)
    with pytest.raises(ValueError, match="samples_per_insert=-1"):
        rlloop.compose(["game=tictactoe", "train.samples_per_insert=-1"])


@pytest.mark.parametrize("at_end", [True, False])
def test_gate_at_end_judges_the_final_network(tmp_path: Path, at_end: bool) -> None:
    """gate.at_end: a run that ends by its iteration count between two gates gates its final
    network once (the gate's matches are in the ledger at the last iteration); without it,
    the run ends ungated. A second run() that trains nothing more does not gate again."""
    config = rlloop.compose(["game=tictactoe", *SMOKE, "gate=smoke", "gate.every=100",
                             f"gate.at_end={str(at_end).lower()}"])  # fmt: skip
    with rlloop.Loop(config, run_dir=tmp_path) as loop:
        history = loop.run(iterations=2)
        matches = loop.ledger.matches()
        if at_end:
            assert {m.iteration for m in matches} == {2}
            assert {m.stage for m in matches} >= {"screen", "anchor"}
            assert "gate_score" in history[-1]
            loop.run(iterations=0)  # nothing trained since: no second gate
            assert len(loop.ledger.matches()) == len(matches)
        else:
            assert matches == [] and "gate_score" not in history[-1]


def test_load_agent_refuses_a_folder_that_is_not_a_run(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="not an rlloop run directory"):
        rlloop.load_agent(tmp_path)


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "rlloop.run", *args]


def test_cli_smoke_run(tmp_path: Path) -> None:
    result = subprocess.run(
        _cli("game=tictactoe", *SMOKE, f"hydra.run.dir={tmp_path}"),
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "iter    2" in result.stdout
    assert (tmp_path / "lineages" / "tictactoe" / "checkpoints" / "train").is_dir()


def test_cli_names_a_bad_key(tmp_path: Path) -> None:
    result = subprocess.run(
        _cli("model.chanels=3", f"hydra.run.dir={tmp_path}"), capture_output=True, text=True, timeout=120
    )
    assert result.returncode != 0
    assert "model.chanels" in result.stderr


def test_ctrl_c_stops_cleanly_with_a_checkpoint(tmp_path: Path) -> None:
    process = subprocess.Popen(
        _cli("game=tictactoe", *SMOKE, "loop.iterations=100000", "loop.checkpoint_every=100000",
             f"hydra.run.dir={tmp_path}"),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ},
    )  # fmt: skip
    metrics = tmp_path / "metrics.jsonl"
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and not (
            metrics.exists() and metrics.read_text().count("\n") >= 2
        ):
            time.sleep(0.5)
        assert process.poll() is None, process.stderr.read()[-3000:]
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=120)
    finally:
        if process.poll() is None:  # never leave a runaway loop behind
            process.kill()
            process.wait()
    assert process.returncode == 0, stderr[-3000:]
    assert "interrupted" in stdout
    done = len(metrics.read_text().splitlines())
    steps = sorted(int(p.name) for p in (tmp_path / "lineages" / "tictactoe" / "checkpoints" / "train").iterdir() if p.name.isdigit())
    assert steps and steps[-1] == done, (steps, done)
