"""RunDir's layout, the atomic writers and the one JSON encoder (rlloop/runs.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from rlloop.runs import RunDir, atomic_savez, atomic_write_json, atomic_write_text, json_default


def test_run_dir_names_every_path(tmp_path: Path) -> None:
    run = RunDir(tmp_path)
    lineage = run.lineage("connect4")
    home = tmp_path / "lineages" / "connect4"
    assert lineage.replay_file(30) == home / "replay" / "replay-30.npz"
    assert lineage.pending_file(30) == home / "replay" / "pending-30.npz"
    assert lineage.train_checkpoints == home / "checkpoints" / "train"
    assert lineage.champion_checkpoints == home / "checkpoints" / "champions"
    assert lineage.config == home / "config.yaml"
    assert run.lineage_names() == []
    lineage.train_checkpoints.mkdir(parents=True)
    assert run.lineage_names() == ["connect4"] and not run.is_legacy()
    assert run.ledger.name == "ledger.sqlite" and run.status.name == "status.json"
    assert not run.is_run()
    run.config.write_text("game: {}\n")
    assert run.is_run()


def test_a_run_written_before_lineages_keeps_its_files_at_the_top(tmp_path: Path) -> None:
    (tmp_path / "checkpoints" / "train").mkdir(parents=True)
    run = RunDir(tmp_path)
    assert run.is_legacy()
    lineage = run.lineage("connect4")
    assert lineage.train_checkpoints == tmp_path / "checkpoints" / "train"
    assert lineage.replay_file(3) == tmp_path / "replay" / "replay-3.npz"


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    path = tmp_path / "report.json"
    atomic_write_json(path, {"elo": np.float32(12.5), "counts": np.arange(3)})
    assert json.loads(path.read_text()) == {"elo": 12.5, "counts": [0, 1, 2]}
    with pytest.raises(TypeError, match="of type object is not JSON data"):
        atomic_write_json(path, {"bad": object()})
    assert json.loads(path.read_text())["elo"] == 12.5
    atomic_write_text(path, "replaced\n")
    assert path.read_text() == "replaced\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.json"]


def test_atomic_savez_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "replay-3.npz"
    atomic_savez(path, size=2, data=np.ones((2, 3)))
    with np.load(path) as data:
        assert int(data["size"]) == 2 and data["data"].shape == (2, 3)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["replay-3.npz"]


def test_json_default_encodes_numpy_and_refuses_the_rest() -> None:
    assert json.dumps({"a": np.int64(3), "b": np.array([1.5])}, default=json_default) == (
        '{"a": 3, "b": [1.5]}'
    )
    with pytest.raises(TypeError, match="set is not JSON data"):
        json_default({1})
