"""Runs of several game configurations: lineages, the scheduler in the loop, one compile per
configuration, per-lineage champions, and a SIGKILL-and-resume of a two-configuration run."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import rlloop
from rlloop.health import read_history
from rlloop.ledger import Ledger

TWO = ["schedule=small_games_smoke", "loop=smoke", "gate=smoke", "gate.every=2",
       "perfect_play.enabled=false", "loop.tensorboard=false", "hardware.compilation_cache=false"]  # fmt: skip


@pytest.fixture(scope="module")
def two_config_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    run_dir = tmp_path_factory.mktemp("two") / "run"
    config = rlloop.compose([*TWO, "loop.iterations=8", "loop.checkpoint_every=4", "loop.plots=true"])
    with rlloop.Loop(config, run_dir=run_dir) as loop:
        loop.run()
        facts = {
            "picks": loop.scheduler.picks,
            "traces": {name: dict(lineage.programs.traces) for name, lineage in loop.lineages.items()},
            "trained": {name: int(lineage.train_state.step) for name, lineage in loop.lineages.items()},
            "history": loop.history,
        }
        with pytest.raises(AttributeError, match="2 lineages"):
            loop.lineage  # noqa: B018 - the one-lineage shortcut refuses a run of two
    return run_dir, facts


def test_both_configurations_play_train_and_compile_once(two_config_run: tuple[Path, dict]) -> None:
    run_dir, facts = two_config_run
    assert set(facts["picks"]) == {"tictactoe", "connect4"} and sum(facts["picks"].values()) == 8
    for name, traces in facts["traces"].items():
        # Eight iterations, a gate, a checkpoint and a final one: each program traced once.
        assert traces == {"play": 1, "train_step": 1, "new_games": 1}, (name, traces)
        assert facts["trained"][name] > 0
    assert {row["config"] for row in facts["history"]} == {"tictactoe", "connect4"}
    last = facts["history"][-1]
    assert last["diversity/games"] > 0 and 0 < last["diversity/config_entropy"] <= 1
    assert last["diversity/asymmetric_share"] == 0.0  # self-play only
    assert all(abs(sum(v for k, v in row.items() if k.startswith("share/")) - 1) < 1e-6
               for row in facts["history"])  # fmt: skip
    for name in ("tictactoe", "connect4"):
        home = run_dir / "lineages" / name
        assert (home / "config.yaml").is_file() and (home / "checkpoints" / "train" / "8").is_dir()
        assert (home / "replay" / "replay-8.npz").is_file()


def test_learning_health_is_current_for_every_configuration(two_config_run: tuple[Path, dict]) -> None:
    run_dir, facts = two_config_run
    health = json.loads((run_dir / "learning_health.json").read_text())
    assert health["iteration"] == 8 and set(health["configurations"]) == {"tictactoe", "connect4"}
    assert [d["iteration"] for d in read_history(run_dir)] == list(range(1, 9))
    with Ledger(run_dir / "ledger.sqlite", readonly=True) as ledger:
        champions = {name: ledger.champion(name).id for name in ("tictactoe", "connect4")}
    assert health["current_best_policy"] == champions
    for name, config in health["configurations"].items():
        assert config["current_best_policy"] == champions[name]
        assert config["policy_entropy"] > 0 and config["raw_policy_entropy"] > 0
        assert 0 < config["replay_fill"] <= 1 and config["training_time_avg_ms"] > 0
    total = sum(c["selfplay_games_per_second"] for c in health["configurations"].values())
    assert health["selfplay_games_per_second"] == pytest.approx(total)
    # Plots are drawn at promotions and at the end of a run (loop.plots).
    assert {"elo.png", "lineage.png", "losses.png"} <= {p.name for p in (run_dir / "plots").glob("*.png")}
    played = [row for row in facts["history"] if "policy_entropy" in row]
    assert played and all(0 < row["policy_entropy"] < row["prior_entropy"] + 1 for row in played)


def test_each_lineage_has_its_own_models_matches_and_champion(two_config_run: tuple[Path, dict]) -> None:
    run_dir, _ = two_config_run
    with Ledger(run_dir / "ledger.sqlite", readonly=True) as ledger:
        for name in ("tictactoe", "connect4"):
            models = ledger.models(config=name)
            assert models and all(model.id.startswith(f"{name}/") for model in models)
            own = {model.id for model in models}
            champion = ledger.champion(name)
            assert champion is not None and champion.id in own
            matches = ledger.matches(config=name)
            assert matches, f"{name} was never gated"
            assert all(m.model_a in own and m.model_b in own for m in matches)
            assert {m.model_b for m in matches if m.stage == "anchor"} <= {f"{name}/random", f"{name}/greedy"}
        with pytest.raises(ValueError, match="several configurations"):
            ledger.champion()
        iterations = ledger.iterations()
        assert {metrics["config"] for metrics in iterations.values()} == {"tictactoe", "connect4"}


def test_agents_status_and_evaluate_name_the_lineage(
    two_config_run: tuple[Path, dict], capsys: pytest.CaptureFixture[str]
) -> None:
    from rlloop import status
    from rlloop.evaluate import main as evaluate_main

    run_dir, _ = two_config_run
    with pytest.raises(ValueError, match=r"several configurations \(tictactoe, connect4\)"):
        rlloop.load_agent(run_dir)
    with pytest.raises(ValueError, match="no lineage 'othello'"):
        rlloop.load_agent(run_dir, lineage="othello")
    agent = rlloop.load_agent(run_dir, lineage="connect4")
    assert agent.game.name == "connect4"
    assert rlloop.load_agent(run_dir, lineage="tictactoe", which="latest").game.name == "tictactoe"
    view = status.gather(run_dir)
    assert set(view["lineages"]) == {"tictactoe", "connect4"}
    text = status.render(view)
    assert "tictactoe" in text and "connect4" in text and "share" in text
    code = evaluate_main(["gauntlet", f"{run_dir}#tictactoe", "--opponents", "random", "--games", "4",
                          "--simulations", "2", "--out", str(run_dir / "eval")])  # fmt: skip
    assert code == 0
    report = json.loads((run_dir / "eval" / "gauntlet.json").read_text())
    assert report["agent"].startswith("run#tictactoe:tictactoe/")


def _command(run_dir: Path, iterations: int) -> list[str]:
    return [sys.executable, "-m", "rlloop.run", *TWO, f"loop.iterations={iterations}",
            "loop.checkpoint_every=1", "gate.promote_score=0.3", f"hydra.run.dir={run_dir}"]  # fmt: skip


def _iterations_done(run_dir: Path) -> int:
    metrics = run_dir / "metrics.jsonl"
    return metrics.read_text().count("\n") if metrics.exists() else 0


def _committed(run_dir: Path) -> tuple[set, set]:
    path = run_dir / "ledger.sqlite"
    if not path.exists():
        return set(), set()
    with Ledger(path, readonly=True) as ledger:
        assert ledger.integrity_check() == "ok"
        matches = {(m.id, m.model_a, m.model_b, m.wins_a, m.draws, m.wins_b, m.config) for m in ledger.matches()}
        return matches, {(p.id, p.model_id, p.config) for p in ledger.promotions()}


@pytest.mark.long
def test_two_configurations_sigkilled_at_random_points_resume(tmp_path: Path) -> None:
    run_dir, target = tmp_path / "run", 12
    rng = random.Random(11)
    seen: tuple[set, set] = (set(), set())
    for kill in range(3):
        process = subprocess.Popen(_command(run_dir, target), stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True)  # fmt: skip
        try:
            before = _iterations_done(run_dir)
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline and _iterations_done(run_dir) <= before:
                if process.poll() is not None:
                    pytest.fail(f"run exited early: {process.stderr.read()[-3000:]}")
                time.sleep(0.2)
            time.sleep(rng.uniform(0.0, 1.5))
        finally:
            process.send_signal(signal.SIGKILL)
            process.wait()
        committed = _committed(run_dir)
        assert seen[0] <= committed[0] and seen[1] <= committed[1], f"records lost after kill {kill}"
        health = json.loads((run_dir / "learning_health.json").read_text())  # whole after a kill
        assert set(health["configurations"]) == {"tictactoe", "connect4"}
        seen = committed
    result = subprocess.run(_command(run_dir, target), capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "resumed from iteration" in result.stdout
    matches, promotions = _committed(run_dir)
    assert seen[0] <= matches and seen[1] <= promotions
    with Ledger(run_dir / "ledger.sqlite", readonly=True) as ledger:
        assert ledger.last_iteration() == target
        for name in ("tictactoe", "connect4"):
            assert ledger.champion(name) is not None
    for name in ("tictactoe", "connect4"):
        assert (run_dir / "lineages" / name / "checkpoints" / "train" / str(target)).is_dir()


def test_critical_memory_pauses_the_largest_lineage_then_all_play_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rlloop import resources
    from rlloop.resources import Reading

    ok, critical = Reading(0.5, 0.3, 0.1), Reading(0.85, 0.3, 0.1)
    readings = iter([ok, critical, critical, ok])
    monkeypatch.setattr(resources, "measure", lambda path: next(readings))
    config = rlloop.compose([*TWO, "loop.iterations=4", "loop.checkpoint_every=100", "gate.enabled=false"])
    with rlloop.Loop(config, run_dir=tmp_path) as loop:
        sizes = {name: lineage.memory_bytes() for name, lineage in loop.lineages.items()}
        history = loop.run()
        assert not loop.paused
    assert all(size > 0 for size in sizes.values())
    with Ledger(tmp_path / "ledger.sqlite", readonly=True) as ledger:
        events = [(e.payload["action"], e.payload["lineage"]) for e in ledger.events_since(kind="SCHEDULER")]
    # Before iteration 2 the larger consumer pauses and the other plays 2 and 3 (the last one
    # playing is never paused: a run with nothing playing only spins); before 4 both play.
    (action, paused), resumed = events
    other = ({"tictactoe", "connect4"} - {paused}).pop()
    assert action == "paused" and resumed == ("resumed", paused)
    assert [h["config"] for h in history[1:3]] == [other, other]
    assert history[3]["config"] in {"tictactoe", "connect4"}


@pytest.mark.long
def test_twelve_ringrift_configurations_in_one_process_compile_once(tmp_path: Path) -> None:
    config = rlloop.compose([
        "schedule=ringrift_all", "loop=smoke", "gate.enabled=false", "loop.iterations=40",
        "loop.checkpoint_every=1000", "loop.moves_per_chunk=2", "search.num_simulations=2",
        "search.max_num_considered_actions=2", "train.replay_capacity=100000",
        "train.min_replay_size=100000",  # no training: the play programs are under test
        "hardware.num_cpu_devices=1", "perfect_play.enabled=false", "loop.tensorboard=false",
    ])  # fmt: skip
    for spec in config.schedule.configurations.values():
        spec.overrides.append("hardware.games_per_device=2")
    with rlloop.Loop(config, run_dir=tmp_path) as loop:
        loop.run()
        picks = loop.scheduler.picks
        traces = {name: dict(lineage.programs.traces) for name, lineage in loop.lineages.items()}
    assert len(traces) == 12 and set(picks) == set(traces), picks
    for name, counts in traces.items():
        assert counts == {"play": 1, "new_games": 1}, (name, counts)
    status = json.loads((tmp_path / "status.json").read_text())
    assert {name: entry["traces"] for name, entry in status["lineages"].items()} == traces
    with Ledger(tmp_path / "ledger.sqlite", readonly=True) as ledger:
        for name in traces:
            assert ledger.champion(name).id == f"{name}/iter-000000"
