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
LINEAGE = Path("lineages") / "tictactoe"  # the run's one lineage folder


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


@pytest.fixture(scope="module")
def _three_checkpoint_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished three-iteration run with checkpoints 1, 2 and 3; tests damage copies."""
    run_dir = tmp_path_factory.mktemp("three_checkpoints") / "run"
    first = subprocess.run([*_command(run_dir)[:-1], "loop.iterations=3", "loop.keep_checkpoints=3",
                            f"hydra.run.dir={run_dir}"],
                           capture_output=True, text=True, timeout=300)  # fmt: skip
    assert first.returncode == 0, first.stderr[-3000:]
    steps = sorted(int(p.name) for p in (run_dir / LINEAGE / "checkpoints" / "train").iterdir() if p.name.isdigit())
    assert steps == [1, 2, 3]
    return run_dir


def _resume_copy(tmp_path: Path, source: Path, damage) -> tuple[subprocess.CompletedProcess, Path]:
    run_dir = tmp_path / "run"
    shutil.copytree(source, run_dir)
    damage(run_dir)
    # One iteration more than the run had: a resumed run plays it and stops.
    command = [*_command(run_dir)[:-1], "loop.iterations=4", "loop.keep_checkpoints=3",
               f"hydra.run.dir={run_dir}"]
    return subprocess.run(command, capture_output=True, text=True, timeout=300), run_dir


def _skipped_events(run_dir: Path) -> list[dict]:
    with Ledger(run_dir / "ledger.sqlite", readonly=True) as ledger:
        return [event.payload for event in ledger.events_since(kind="CHECKPOINT_SKIPPED")]


def test_resume_skips_a_checkpoint_whose_arrays_are_truncated(
    tmp_path: Path, _three_checkpoint_run: Path
) -> None:
    def truncate_arrays(run_dir: Path) -> None:
        files = [p for p in (run_dir / LINEAGE / "checkpoints" / "train" / "3" / "state").rglob("*")
                 if p.is_file() and p.stat().st_size > 0]  # fmt: skip
        assert files
        for path in files:
            with path.open("r+b") as handle:
                handle.truncate(path.stat().st_size // 2)

    result, run_dir = _resume_copy(tmp_path, _three_checkpoint_run, truncate_arrays)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "skipped checkpoint 3" in result.stdout
    assert "resumed from iteration 2 (checkpoint 2)" in result.stdout
    (event,) = _skipped_events(run_dir)
    assert event["step"] == 3 and event["resumed_from"] == 2
    assert _iterations_done(run_dir) == 3 + 2  # iterations 3 and 4 again after the resume


def test_resume_skips_a_checkpoint_whose_replay_is_missing_or_another(
    tmp_path: Path, _three_checkpoint_run: Path
) -> None:
    def delete_newest_replay(run_dir: Path) -> None:
        (run_dir / LINEAGE / "replay" / "replay-3.npz").unlink()

    result, run_dir = _resume_copy(tmp_path / "missing", _three_checkpoint_run, delete_newest_replay)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "skipped checkpoint 3: FileNotFoundError: its file replay/replay-3.npz is missing" in result.stdout
    assert "resumed from iteration 2 (checkpoint 2); replay " in result.stdout
    assert "replay 0 samples" not in result.stdout

    def older_replay_in_place(run_dir: Path) -> None:
        replay = run_dir / LINEAGE / "replay"
        shutil.copy(replay / "replay-2.npz", replay / "replay-3.npz")

    result, run_dir = _resume_copy(tmp_path / "swapped", _three_checkpoint_run, older_replay_in_place)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "skipped checkpoint 3: replay-3.npz hold(s)" in result.stdout
    assert [event["step"] for event in _skipped_events(run_dir)] == [3]


def test_resume_refuses_when_no_checkpoint_verifies(tmp_path: Path, _three_checkpoint_run: Path) -> None:
    def damage_every_pending_file(run_dir: Path) -> None:
        for path in (run_dir / LINEAGE / "replay").glob("pending-*.npz"):
            data = bytearray(path.read_bytes())
            data[len(data) // 2] ^= 0xFF  # one flipped byte: the zip CRC catches it
            path.write_bytes(bytes(data))

    result, _ = _resume_copy(tmp_path, _three_checkpoint_run, damage_every_pending_file)
    assert result.returncode == 2
    message = result.stderr
    assert "no training checkpoint restores" in message
    for step in (3, 2, 1):
        assert f"checkpoint {step}: " in message
    assert "move" in message and "aside" in message


def _as_before_lineages(run_dir: Path) -> None:
    """The layout of rlloop before lineages (2026-12-04): the one configuration's checkpoints and replay
    at the top of the run, no lineages/ folder."""
    for name in ("checkpoints", "replay"):
        (run_dir / LINEAGE / name).rename(run_dir / name)
    shutil.rmtree(run_dir / "lineages")


def test_a_run_written_before_lineages_with_ledger_schema_1_resumes_and_is_migrated(
    tmp_path: Path, _one_iteration_run: Path
) -> None:
    import sqlite3

    run_dir = tmp_path / "run"
    shutil.copytree(_one_iteration_run, run_dir)
    _as_before_lineages(run_dir)
    with sqlite3.connect(run_dir / "ledger.sqlite") as connection:  # back to schema 1
        connection.execute("DROP INDEX IF EXISTS models_status")
        for table in ("models", "matches", "promotions", "iterations"):
            connection.execute(f"ALTER TABLE {table} DROP COLUMN config")
        connection.execute("CREATE INDEX models_status ON models(status)")
        connection.execute("PRAGMA user_version = 1")
    command = [*_command(run_dir)[:-1], "loop.iterations=2", f"hydra.run.dir={run_dir}"]
    second = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "resumed from iteration 1" in second.stdout
    with Ledger(run_dir / "ledger.sqlite", readonly=True) as ledger:
        assert [e.payload["config"] for e in ledger.events_since(kind="LEDGER_MIGRATED")] == ["tictactoe"]
        assert {m.config for m in ledger.models()} == {"tictactoe"}
        assert ledger.last_iteration() == 2 and ledger.champion() is not None
        assert (run_dir / "checkpoints" / "train" / "2").is_dir() and not (run_dir / "lineages").exists()


def test_a_run_written_before_lineages_refuses_several_configurations(
    tmp_path: Path, _one_iteration_run: Path
) -> None:
    run_dir = tmp_path / "run"
    shutil.copytree(_one_iteration_run, run_dir)
    _as_before_lineages(run_dir)
    command = [*_command(run_dir)[:-1], "schedule=small_games", f"hydra.run.dir={run_dir}"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2
    assert "written before lineages" in result.stderr and "one-configuration run" in result.stderr
