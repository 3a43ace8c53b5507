"""Side trainers in the loop: a stream of tree models per lineage, the tree player as a gate
anchor, the network's overfitting check and calibration per champion, telemetry, resume."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import rlloop
from rlloop import status
from rlloop.ledger import Ledger

# End-to-end runs of a minute or more together: `make test-long`.
pytestmark = pytest.mark.long

SIDE = ["game=tictactoe", "model=mlp", "loop=smoke", "gate=smoke", "perfect_play.enabled=false",
        "loop.tensorboard=false", "hardware.compilation_cache=false", "side.enabled=true", "side.every=2",
        "side.trees=10", "side.max_samples=4000"]  # fmt: skip


@pytest.fixture(scope="module")
def side_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict]]:
    run_dir = tmp_path_factory.mktemp("side") / "run"
    with rlloop.Loop(rlloop.compose([*SIDE, "loop.iterations=6"]), run_dir=run_dir) as loop:
        history = loop.run()
        assert loop.side is not None and not loop.side.pool.busy  # the run waited for its last jobs
    return run_dir, history


def test_each_snapshot_gives_a_value_and_a_move_model_and_a_ledger_event(side_run: tuple[Path, list[dict]]) -> None:
    run_dir, history = side_run
    side_dir = run_dir / "lineages" / "tictactoe" / "side"
    with Ledger(run_dir / "ledger.sqlite", readonly=True) as ledger:
        events = [e.payload for e in ledger.events_since(kind="SIDE_MODEL")]
    assert all(e["status"] == "ok" and "overfit_gap" in e["metrics"] for e in events)
    snapshots = sorted({e["iteration"] for e in events})
    # Every second play, unless the previous snapshot still waited for the worker then.
    assert snapshots[0] == 2 and set(snapshots) <= {2, 4, 6}
    assert sorted((e["kind"], e["iteration"]) for e in events) == sorted(
        (kind, it) for kind in ("value", "move") for it in snapshots)
    for kind in ("value", "move"):
        for iteration in snapshots:
            assert (side_dir / f"{kind}-{iteration}.txt").is_file()
            report = json.loads((side_dir / f"{kind}-{iteration}.json").read_text())
            assert report["metrics"] and report["importances"]
    assert all(e["models_trained"] == 4 for e in events)  # 3 folds + the final model per job
    trained = [row["side/models_trained"] for row in history]
    assert trained == sorted(trained) and trained[-1] >= 4  # the last jobs end after the last row
    assert history[-1]["side/jobs_failed"] == 0 and history[-1]["side/models_per_second"] > 0
    checks = [row for row in history if "side/network_overfit_gap" in row]
    assert [row["iteration"] for row in checks] == snapshots  # measured with each snapshot
    assert all(row["side/network_holdout_mse"] - row["side/network_train_mse"]
               == pytest.approx(row["side/network_overfit_gap"]) for row in checks)  # fmt: skip


def test_the_tree_player_anchors_the_gates_elo_fit(side_run: tuple[Path, list[dict]]) -> None:
    run_dir, _ = side_run
    with Ledger(run_dir / "ledger.sqlite", readonly=True) as ledger:
        trees = [m for m in ledger.models("baseline") if m.id.startswith("tree-")]
        matches = [m for m in ledger.matches() if m.model_b.startswith("tree-")]
    assert trees and matches, "the gate never played the tree player"
    assert all(m.stage == "anchor" for m in matches)
    assert any(tree.elo is not None for tree in trees)  # rated in the same fit as the networks


def test_health_status_and_calibration_show_the_side_trainers(side_run: tuple[Path, list[dict]]) -> None:
    run_dir, history = side_run
    health = json.loads((run_dir / "learning_health.json").read_text())
    assert health["models_trained_total"] == history[-1]["side/models_trained"]
    assert health["inner_episode_throughput"] > 0
    assert health["side_training_time_avg_ms"] > 0
    assert health["side_models_newest"]["tictactoe"]["value"].endswith(".txt")
    assert "side trainers:" in status.render(status.gather(run_dir))
    promoted = [row["iteration"] for row in history if row.get("gate_promoted")]
    side_dir = run_dir / "lineages" / "tictactoe" / "side"
    first = json.loads((side_dir / "calibration-1.json").read_text())  # the first champion's
    assert first["model_id"] == "iter-000000" and set(first["reports"]) == {"network iter-000000"}
    for iteration in promoted:  # every champion gets its calibration beside the tree model's
        report = json.loads((side_dir / f"calibration-{iteration}.json").read_text())
        assert report["model_id"] == f"iter-{iteration:06d}"
        assert (side_dir / f"calibration-{iteration}.png").read_bytes().startswith(b"\x89PNG")
        row = next(r for r in history if r["iteration"] == iteration)
        assert 0 <= row["calibration/network_ece"] <= 1


def test_a_resumed_run_carries_on_the_stream(side_run: tuple[Path, list[dict]]) -> None:
    run_dir, _ = side_run
    with rlloop.Loop(rlloop.compose([*SIDE, "loop.iterations=8"]), run_dir=run_dir) as loop:
        newest = max(int(p.stem.split("-")[1]) for p in (run_dir / "lineages/tictactoe/side").glob("value-*.txt"))
        assert loop.side.pool.newest_models()["tictactoe"]["value"].endswith(f"value-{newest}.txt")
        loop.run()
    assert (run_dir / "lineages" / "tictactoe" / "side" / "value-8.txt").is_file()
    with Ledger(run_dir / "ledger.sqlite", readonly=True) as ledger:
        assert {e.payload["iteration"] for e in ledger.events_since(kind="SIDE_MODEL")} >= {8}
