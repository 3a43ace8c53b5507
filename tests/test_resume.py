"""A run killed with SIGKILL at arbitrary moments resumes without losing committed records."""

from __future__ import annotations

import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rlloop.ledger import Ledger

TARGET_ITERATIONS = 16


def _command(run_dir: Path) -> list[str]:
    return [
        sys.executable, "-m", "rlloop.run", "game=tictactoe", "loop=smoke", "gate=smoke",
        f"loop.iterations={TARGET_ITERATIONS}", "loop.checkpoint_every=1", "loop.tensorboard=false",
        "search.num_simulations=4", "train.min_replay_size=16", "train.batch_size=32",
        "train.steps_per_iteration=4", "hardware.games_per_device=16", "gate.promote_score=0.3",
        f"hydra.run.dir={run_dir}",
    ]  # fmt: skip


def _committed(run_dir: Path) -> tuple[set, set, int]:
    ledger_path = run_dir / "ledger.sqlite"
    if not ledger_path.exists():
        return set(), set(), 0
    with Ledger(ledger_path, readonly=True) as ledger:
        assert ledger.integrity_check() == "ok"
        matches = {(m.id, m.model_a, m.model_b, m.wins_a, m.draws, m.wins_b) for m in ledger.matches()}
        promotions = {(p.id, p.model_id) for p in ledger.promotions()}
        return matches, promotions, ledger.last_iteration()


def _iterations_done(run_dir: Path) -> int:
    metrics = run_dir / "metrics.jsonl"
    return metrics.read_text().count("\n") if metrics.exists() else 0


@pytest.mark.long
def test_sigkill_at_random_points_then_resume(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    rng = random.Random(5)
    seen_matches: set = set()
    seen_promotions: set = set()
    for kill in range(3):
        process = subprocess.Popen(_command(run_dir), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            before = _iterations_done(run_dir)
            deadline = time.monotonic() + 240
            # Let it get past start-up and at least one new iteration, then kill at a random moment.
            while time.monotonic() < deadline and _iterations_done(run_dir) <= before:
                if process.poll() is not None:
                    pytest.fail(f"run exited early: {process.stderr.read()[-3000:]}")
                time.sleep(0.2)
            time.sleep(rng.uniform(0.0, 0.8))
        finally:
            process.send_signal(signal.SIGKILL)
            process.wait()
        matches, promotions, _ = _committed(run_dir)
        assert seen_matches <= matches and seen_promotions <= promotions, f"records lost after kill {kill}"
        seen_matches, seen_promotions = matches, promotions

    result = subprocess.run(_command(run_dir), capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "resumed from iteration" in result.stdout
    resumed_from = int(result.stdout.split("resumed from iteration ")[1].split(" ")[0])
    assert 1 <= resumed_from < TARGET_ITERATIONS, "the kills should land before the end"
    assert f"iter {resumed_from + 1:>4}" in result.stdout, "the iteration count must continue"
    matches, promotions, last = _committed(run_dir)
    assert seen_matches <= matches and seen_promotions <= promotions
    assert last == TARGET_ITERATIONS
    assert f"iter {TARGET_ITERATIONS:>4}" in result.stdout
    with Ledger(run_dir / "ledger.sqlite", readonly=True) as ledger:
        status = {model.id: model.status for model in ledger.models()}
        used = {metrics["champion"] for metrics in ledger.iterations().values()}
    assert promotions, "the gate never promoted in this run"
    assert all(status[model] != "rejected" for model in used), "a rejected model reached self-play"


@pytest.fixture(scope="module")
def _one_iteration_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished one-iteration run, made once; each test below resumes a copy of it."""
    run_dir = tmp_path_factory.mktemp("one_iteration") / "run"
    first = subprocess.run([*_command(run_dir)[:-1], "loop.iterations=1", f"hydra.run.dir={run_dir}"],
                           capture_output=True, text=True, timeout=300)  # fmt: skip
    assert first.returncode == 0, first.stderr[-3000:]
    return run_dir


def test_resume_refuses_a_checkpoint_of_another_game(tmp_path: Path, _one_iteration_run: Path) -> None:
    run_dir = tmp_path / "run"
    shutil.copytree(_one_iteration_run, run_dir)
    other = [arg.replace("game=tictactoe", "game=connect4") for arg in _command(run_dir)]
    second = subprocess.run(other, capture_output=True, text=True, timeout=300)
    assert second.returncode != 0
    assert "holds a run of game 'tictactoe'" in second.stderr
    bigger = subprocess.run([*_command(run_dir), "model=small"], capture_output=True, text=True, timeout=300)
    assert bigger.returncode == 2
    assert "holds a network" in bigger.stderr and "'channels': 64" in bigger.stderr


def test_resume_names_a_folder_that_is_not_a_run(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "rlloop.run", f"resume={tmp_path}", f"hydra.run.dir={tmp_path / 'x'}"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 2
    assert f"resume={tmp_path}: not an rlloop run directory" in result.stderr


def test_resume_refuses_a_newer_ledger(tmp_path: Path, _one_iteration_run: Path) -> None:
    import sqlite3

    run_dir = tmp_path / "run"
    shutil.copytree(_one_iteration_run, run_dir)
    with sqlite3.connect(run_dir / "ledger.sqlite") as connection:
        connection.execute("PRAGMA user_version = 999")
    second = subprocess.run(_command(run_dir), capture_output=True, text=True, timeout=300)
    assert second.returncode == 2
    assert "999" in second.stderr and "upgrade" in second.stderr.lower()
