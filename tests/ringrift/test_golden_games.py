"""Golden games (FIXTURES.md §5): every recorded move is legal and replays, up to the
documented anomalies, which are asserted to behave as the executable rules say."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from ringrift_jits import play, rules_for, start

from rlloop.games.ringrift import convert as cv
from rlloop.games.ringrift.engine import K_TERRITORY, TERRITORY

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared"
GOLDEN = SHARED / "data" / "ringrift" / "golden-games"
pytestmark = pytest.mark.skipif(not GOLDEN.is_dir(), reason=f"{SHARED} is absent")


def _replay(name: str, upto: int | None = None):
    """Replay the first ``upto`` moves; returns (rules, position, record)."""
    record = json.loads((GOLDEN / name).read_text())
    config = f"{record['boardType']}_{record['numPlayers']}p"
    rules = rules_for(config)
    pos = start(config)
    for i, mv in enumerate(record["moves"][:upto]):
        p = pos.current_player + 1
        assert mv["player"] == p, (name, i, mv)
        a = cv.move_to_action(rules, pos.board, p, mv)
        assert pos.legal_action_mask[a], (name, i + 1, mv)
        pos = play(config, pos, a)
    return rules, pos, record


@pytest.mark.parametrize("name", ["captures_square8_2p_8840e2e0.json",
                                  "smoke_hex8_2p_mjk8qhtj.json"])
def test_clean_golden_games_replay(name: str) -> None:
    _, pos, record = _replay(name)
    assert len(record["moves"]) > 0
    assert not pos.terminated  # truncated records: the game is still running


@pytest.mark.parametrize(("name", "first_violation"),
                         [("captures_square8_2p_272ed96f.json", 15),
                          ("captures_square8_2p_8916c9a6.json", 11)])
def test_must_move_violations_are_illegal(name: str, first_violation: int) -> None:
    rules, pos, record = _replay(name, first_violation - 1)
    mv = record["moves"][first_violation - 1]
    a = cv.move_to_action(rules, pos.board, pos.current_player + 1, mv)
    assert int(pos.board.must_move) < rules.N  # a placement set the must-move stack (R31)
    assert not pos.legal_action_mask[a]


def test_full_hex8_game_prefix_and_region_at_move_111() -> None:
    rules, pos, record = _replay("fullgame_hex8_2p_f6bb4e8e.json", 111)
    # R46/R48: after move 111 (no_line_action) the executable rules find a region processable
    # by player 1 that the (Python-engine) record ignores: it continues with a forced
    # elimination at move 112 (FIXTURES.md §5.2). LINE_EXIT therefore enters territory (R21).
    assert pos.current_player == 0
    assert int(pos.board.phase) == TERRITORY
    mv112 = record["moves"][111]
    assert mv112["type"] == "forced_elimination"
    assert not pos.legal_action_mask[cv.move_to_action(rules, pos.board, 1, mv112)]
    acts = np.flatnonzero(pos.legal_action_mask)
    kinds = {int(np.sum(a >= rules.offsets[1:])) for a in acts}
    assert K_TERRITORY in kinds
    sizes = []
    for a in acts:
        mv = cv.action_to_move(rules, pos.board, 1, int(a))
        if mv["type"] == "choose_territory_option":
            sizes.append(len(mv["disconnectedRegions"][0]["spaces"]))
    assert 34 in sizes
