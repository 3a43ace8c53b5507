"""``python -m rlloop.evaluate`` and the loop's in-run perfect-play scoring."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import rlloop
from rlloop import evaluate
from rlloop.ledger import Ledger
from rlloop.perfect_play import PERFECT_PLAY_EVENT

SMALL = [
    "loop=smoke", "loop.iterations=2", "loop.tensorboard=false", "search.num_simulations=4",
    "train.min_replay_size=16", "train.batch_size=32", "train.steps_per_iteration=2",
    "hardware.games_per_device=16", "gate=smoke", "gate.num_simulations=2", "gate.anchor_games=4",
    "perfect_play.sets=[bundled]", "perfect_play.simulations=[0,2]",
]  # fmt: skip
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def connect4_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("c4run")
    with rlloop.Loop(rlloop.compose(SMALL), run_dir=run_dir) as loop:
        loop.run()
    return run_dir


def test_loop_scores_champions_against_perfect_play(connect4_run: Path) -> None:
    with Ledger(connect4_run / "ledger.sqlite", readonly=True) as ledger:
        events = ledger.events_since(kind=PERFECT_PLAY_EVENT)
        champions = {m.id for m in ledger.models() if m.status == "champion"}
        promoted = {p.model_id for p in ledger.promotions()}
    scored = {e.payload["model_id"] for e in events}
    assert "iter-000000" in scored  # the first champion
    assert promoted <= scored and champions <= scored
    for event in events:
        rows = {(r["set"], r["simulations"]): r for r in event.payload["results"]}
        assert set(rows) == {("bundled", 0), ("bundled", 2)}
        for row in rows.values():
            assert row["positions"] == row["scored"] == 256
            assert 0 <= row["mistake_rate"] <= 1 and 0 <= row["value_accuracy"] <= 1


def test_perfect_play_command_writes_table_json_and_png(
    connect4_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = evaluate.main([
        "perfect-play", str(connect4_run), "--sets", "bundled", "--simulations", "0", "2",
        "--out", str(tmp_path), "--no-cache",
    ])  # fmt: skip
    assert code == 0
    printed = capsys.readouterr().out
    assert "bundled" in printed and "mistakes" in printed
    report = json.loads((tmp_path / "perfect_play.json").read_text())
    (evaluation,) = report["evaluations"]
    assert [(r["set"], r["simulations"]) for r in evaluation["results"]] == [("bundled", 0), ("bundled", 2)]
    assert report["in_run_history"], "the loop's in-run scores belong in the report"
    assert (tmp_path / "perfect_play.png").read_bytes()[:8] == PNG_MAGIC


def test_perfect_play_over_all_champions(connect4_run: Path, tmp_path: Path) -> None:
    code = evaluate.main([
        "perfect-play", str(connect4_run), "--champions", "--sets", "bundled",
        "--simulations", "0", "--limit", "32", "--out", str(tmp_path),
    ])  # fmt: skip
    assert code == 0
    report = json.loads((tmp_path / "perfect_play.json").read_text())
    steps = [e["step"] for e in report["evaluations"]]
    assert steps[0] == 0 and steps == sorted(steps)
    assert all(e["results"][0]["positions"] == 32 for e in report["evaluations"])


def test_gauntlet_and_match(connect4_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = evaluate.main([
        "gauntlet", str(connect4_run), "--games", "4", "--simulations", "2", "--out", str(tmp_path),
    ])  # fmt: skip
    assert code == 0
    report = json.loads((tmp_path / "gauntlet.json").read_text())
    opponents = [row["opponent"] for row in report["opponents"]]
    assert opponents[:2] == ["random", "greedy"] and "champion-0" in opponents
    assert report["elo"]["anchor"] == "random"
    assert report["elo"]["low"] <= report["elo"]["value"] <= report["elo"]["high"]
    for row in report["opponents"]:
        assert row["wins"] + row["draws"] + row["losses"] == 4
    assert (tmp_path / "gauntlet.png").read_bytes()[:8] == PNG_MAGIC

    code = evaluate.main([
        "match", f"{connect4_run}@champion", f"{connect4_run}@latest", "--games", "4",
        "--simulations", "0", "--out", str(tmp_path),
    ])  # fmt: skip
    assert code == 0
    match = json.loads((tmp_path / "match.json").read_text())
    assert match["wins_a"] + match["draws"] + match["wins_b"] == 4
    assert match["a"].endswith(":latest") is False and match["b"].endswith(":latest")
    assert "W-D-L" in capsys.readouterr().out


def test_evaluations_search_as_the_run_does(
    connect4_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """gauntlet and match search with the run's knobs (considered actions, in-tree forced
    moves, ...), only the simulation count from the command line."""
    from rlloop import arena
    from rlloop.agent import load_config
    from rlloop.search import search_knobs

    seen: list[tuple[int, dict | None]] = []
    real = arena.network_player

    def recording(*args, num_simulations, search_knobs=None, **kwargs):
        seen.append((num_simulations, search_knobs))
        return real(*args, num_simulations=num_simulations, search_knobs=search_knobs, **kwargs)

    monkeypatch.setattr(arena, "network_player", recording)
    expected = search_knobs(load_config(connect4_run).search)
    assert evaluate.main([
        "gauntlet", str(connect4_run), "--opponents", "random", "champions", "--games", "2",
        "--simulations", "3", "--out", str(tmp_path),
    ]) == 0  # fmt: skip
    assert evaluate.main([
        "match", f"{connect4_run}@champion", f"{connect4_run}@latest", "--games", "2",
        "--simulations", "3", "--out", str(tmp_path),
    ]) == 0  # fmt: skip
    assert len(seen) >= 4  # gauntlet candidate + champion(s), match A and B
    assert all(sims == 3 and knobs == expected for sims, knobs in seen)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["perfect-play", "{tmp}"], "not an rlloop run directory"),
        (["match", "{run}", "{run}", "--games", "3"], "even number"),
        (["perfect-play", "{run}", "--sets", "end-hard"], "unknown set 'end-hard'"),
        (["perfect-play", "{run}@champion:999"], "no champion checkpoint 999"),
        (["gauntlet", "{run}@sideways"], "after '@'"),
    ],
)
def test_bad_input_exits_2_with_a_message(
    connect4_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    argv = [a.format(tmp=tmp_path, run=connect4_run) for a in argv]
    assert evaluate.main(argv) == evaluate.EXIT_BAD_INPUT
    assert message in capsys.readouterr().err


def test_perfect_play_refuses_another_game(tmp_path: Path) -> None:
    config = rlloop.compose(["game=tictactoe", *SMALL, "gate=disabled"])
    with rlloop.Loop(config, run_dir=tmp_path) as loop:
        loop.run(iterations=1)
    assert not (tmp_path / "ledger.sqlite").is_file() or not Ledger(
        tmp_path / "ledger.sqlite", readonly=True
    ).events_since(kind=PERFECT_PLAY_EVENT)
    result = subprocess.run(
        [sys.executable, "-m", "rlloop.evaluate", "perfect-play", str(tmp_path)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert "needs a Connect Four run" in result.stderr and "Traceback" not in result.stderr
