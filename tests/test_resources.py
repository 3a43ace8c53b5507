"""The resource guard alone (fake readings) and in the loop (critical disk stops a run after
a final checkpoint)."""

from __future__ import annotations

from pathlib import Path

import pytest

import rlloop
from rlloop import resources
from rlloop.ledger import Ledger
from rlloop.resources import Reading, ResourceGuard

SMOKE = ["game=tictactoe", "loop=smoke", "loop.tensorboard=false", "search.num_simulations=4",
         "train.min_replay_size=16", "train.batch_size=32", "train.steps_per_iteration=2",
         "hardware.games_per_device=16", "gate.enabled=false", "loop.checkpoint_every=100"]  # fmt: skip


def test_levels_follow_the_thresholds_and_changes_are_reported_once(tmp_path: Path) -> None:
    readings = iter([Reading(0.5, 0.5, 0.2), Reading(0.75, 0.5, 2.0), Reading(0.75, 0.5, 2.0),
                     Reading(0.85, 0.72, 0.2), Reading(0.1, 0.1, 0.1)])  # fmt: skip
    guard = ResourceGuard(tmp_path, read=lambda path: next(readings))
    first = guard.check()
    assert first.levels == {"memory": "ok", "disk": "ok", "load": "ok"}
    assert guard.changes(first) == []
    second = guard.check()
    assert second.levels == {"memory": "warn", "disk": "ok", "load": "warn"}
    assert guard.changes(second) == ["memory", "load"]
    assert guard.changes(guard.check()) == []  # the same levels: nothing new to say
    fourth = guard.check()
    assert fourth.levels == {"memory": "critical", "disk": "critical", "load": "ok"}
    assert sorted(guard.changes(fourth)) == ["disk", "load", "memory"]
    assert fourth.describe("disk") == "disk 72% used (critical)"
    assert guard.check().at("ok") == ["memory", "disk", "load"]


def test_thresholds_are_checked(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"resources.disk_warn=0.8 and resources.disk_critical=0.7"):
        ResourceGuard(tmp_path, disk_warn=0.8, disk_critical=0.7)
    with pytest.raises(ValueError, match="load_warn"):
        ResourceGuard(tmp_path, load_warn=0)


def test_measure_reads_this_machine(tmp_path: Path) -> None:
    reading = resources.measure(tmp_path)
    assert 0 < reading.memory < 1 and 0 < reading.disk < 1 and reading.load >= 0


def test_critical_disk_stops_the_loop_after_a_final_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Before iterations 1 and 2: fine (memory warns before 2); before 3: the disk is full.
    readings = iter([Reading(0.5, 0.5, 0.1), Reading(0.75, 0.6, 0.1), Reading(0.75, 0.71, 0.1)])
    monkeypatch.setattr(resources, "measure", lambda path: next(readings))
    config = rlloop.compose([*SMOKE, "loop.iterations=5"])
    with rlloop.Loop(config, run_dir=tmp_path) as loop:
        history = loop.run()
        assert [h["iteration"] for h in history] == [1, 2]
        assert history[-1]["memory_used"] == 0.75 and history[-1]["disk_used"] == 0.6
        assert loop.lineage.checkpoints.latest_step() == 2  # saved on the way out (checkpoint_every=100)
    with Ledger(tmp_path / "ledger.sqlite", readonly=True) as ledger:
        events = [e.payload for e in ledger.events_since(kind="RESOURCE")]
    assert [(e["resource"], e["level"], e["iteration"]) for e in events] == [
        ("memory", "warn", 1), ("disk", "critical", 2)]  # fmt: skip
    # The stopped run resumes where it stopped once the disk has room.
    monkeypatch.setattr(resources, "measure", lambda path: Reading(0.5, 0.5, 0.1))
    with rlloop.Loop(config, run_dir=tmp_path) as loop:
        assert loop.iteration == 2
        assert [h["iteration"] for h in loop.run(iterations=1)] == [3]


def test_the_guard_can_be_turned_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(resources, "measure", lambda path: Reading(0.99, 0.99, 9.0))
    config = rlloop.compose([*SMOKE, "resources.enabled=false"])
    with rlloop.Loop(config, run_dir=tmp_path) as loop:
        assert [h["iteration"] for h in loop.run(iterations=1)] == [1]
        assert "disk_used" not in loop.history[-1]
