"""RULES.md Part Q worked examples (W1, W3, W5, W6, W9, W10) and two recovery slides checked
against the reference engine's code (issue 24) on hand-built positions.

These need no shared data: positions are written in the fixtures' JSON state format and
loaded with ``convert.board_from_json``.
"""

from __future__ import annotations

import numpy as np
from ringrift_jits import load, play, rules_for

from rlloop.games.ringrift import convert as cv
from rlloop.games.ringrift.engine import (
    CHAIN,
    K_ELIM,
    K_LINE,
    K_MOVE,
    K_PASS,
    K_RECOVERY,
    K_TERRITORY,
    LINE,
    TERRITORY,
)


class _Game:
    """The bits of a configuration the examples need (rules + config name)."""

    def __init__(self, board: str, players: int):
        self.config = f"{board}_{players}p"
        self.rules = rules_for(self.config)


def _state(board="square8", players=2, *, stacks=None, markers=None, collapsed=None,
           hands=None, current=1, phase="movement", elim=None, extra=None):
    game = _Game(board, players)
    hands = hands or [0] * players
    elim = elim or [0] * players
    js = {
        "board": {
            "type": board, "size": game.rules.geo.size,
            "stacks": {k: {"rings": v} for k, v in (stacks or {}).items()},
            "markers": {k: {"player": v} for k, v in (markers or {}).items()},
            "collapsedSpaces": dict(collapsed or {}),
            "eliminatedRings": {str(i + 1): elim[i] for i in range(players)},
        },
        "players": [{"playerNumber": i + 1, "ringsInHand": hands[i], "eliminatedRings": elim[i],
                     "territorySpaces": 0} for i in range(players)],
        "currentPlayer": current, "currentPhase": phase, "gameStatus": "active",
        "totalRingsEliminated": sum(elim),
    }
    js.update(extra or {})
    brd, p = cv.board_from_json(game.rules, js)
    return game, load(game.config, brd, p)


def _legal_moves(game, st) -> list[dict]:
    p = st.current_player + 1
    return [cv.action_to_move(game.rules, st.board, p, int(a))
            for a in np.flatnonzero(st.legal_action_mask)]


def _act(game, st, move: dict):
    p = st.current_player + 1
    a = cv.move_to_action(game.rules, st.board, p, {"player": p, **move})
    assert st.legal_action_mask[a], move
    return play(game.config, st, a)


def _json(game, st) -> dict:
    return cv.board_to_json(game.rules, st.board, st.current_player + 1)


def _kinds(game, st) -> set[int]:
    acts = np.flatnonzero(st.legal_action_mask)
    return {int(np.sum(a >= game.rules.offsets[1:])) for a in acts}


def test_w1_movement_across_markers() -> None:
    game, st = _state(stacks={"2,2": [1, 1], "7,7": [2]}, markers={"2,3": 2, "2,4": 1})
    after = _act(game, st, {"type": "move_stack", "from": {"x": 2, "y": 2},
                            "to": {"x": 2, "y": 5}})
    js = _json(game, after)
    assert js["board"]["markers"]["2,2"]["player"] == 1
    assert js["board"]["markers"]["2,3"]["player"] == 1
    assert js["board"]["collapsedSpaces"] == {"2,4": 1}
    assert js["board"]["stacks"]["2,5"]["rings"] == [1, 1]
    assert js["players"][0]["territorySpaces"] == 1
    # landing on the own marker instead: marker removed, top ring eliminated
    after = _act(game, st, {"type": "move_stack", "from": {"x": 2, "y": 2},
                            "to": {"x": 2, "y": 4}})
    js = _json(game, after)
    assert js["board"]["stacks"]["2,4"]["rings"] == [1]
    assert "2,4" not in js["board"]["markers"] and js["board"]["collapsedSpaces"] == {}
    assert js["players"][0]["eliminatedRings"] == 1 and js["totalRingsEliminated"] == 1


def test_w3_capture_and_compulsory_chain() -> None:
    game, st = _state(stacks={"0,0": [1, 1], "1,1": [2], "2,3": [2]})
    after = _act(game, st, {"type": "overtaking_capture", "from": {"x": 0, "y": 0},
                            "captureTarget": {"x": 1, "y": 1}, "to": {"x": 2, "y": 2}})
    js = _json(game, after)
    assert int(after.board.phase) == CHAIN and js["currentPhase"] == "chain_capture"
    assert js["board"]["stacks"]["2,2"]["rings"] == [1, 1, 2]
    assert js["board"]["markers"]["0,0"]["player"] == 1
    landings = sorted((m["to"]["x"], m["to"]["y"]) for m in _legal_moves(game, after))
    assert landings == [(2, 5), (2, 6), (2, 7)]
    assert _kinds(game, after) == {K_MOVE}  # no skip inside a chain
    done = _act(game, after, {"type": "continue_capture_segment", "from": {"x": 2, "y": 2},
                              "captureTarget": {"x": 2, "y": 3}, "to": {"x": 2, "y": 5}})
    js = _json(game, done)
    assert js["board"]["stacks"]["2,5"]["rings"] == [1, 1, 2, 2]
    assert int(done.board.phase) == LINE


def test_w3_higher_cap_blocks_chain() -> None:
    game, st = _state(stacks={"0,0": [1, 1], "1,1": [2], "2,3": [2, 2, 2]})
    after = _act(game, st, {"type": "overtaking_capture", "from": {"x": 0, "y": 0},
                            "captureTarget": {"x": 1, "y": 1}, "to": {"x": 2, "y": 2}})
    assert int(after.board.phase) == LINE


def test_w5_overlength_line_choices() -> None:
    markers = {f"{x},0": 1 for x in range(5)}
    game, st = _state(stacks={"5,5": [1]}, markers=markers, phase="line_processing")
    acts = np.flatnonzero(st.legal_action_mask)
    kinds = [int(np.sum(a >= game.rules.offsets[1:])) for a in acts]
    assert sorted(kinds) == [K_LINE, K_LINE, K_LINE, K_PASS]  # all, two windows, no-op
    moves = [m for m in _legal_moves(game, st) if m["type"] == "choose_line_option"]
    sizes = sorted(len(m["collapsedMarkers"]) for m in moves)
    assert sizes == [4, 4, 5]
    everything = next(m for m in moves if len(m["collapsedMarkers"]) == 5)
    after = _act(game, st, everything)
    assert bool(after.board.pending_line)  # reward owed (R43)
    assert _kinds(game, after) == {K_ELIM}
    window = next(m for m in moves if len(m["collapsedMarkers"]) == 4)
    after = _act(game, st, window)
    assert not bool(after.board.pending_line)
    assert len(_json(game, after)["board"]["markers"]) == 1


def test_w6_territory_region_and_self_elimination() -> None:
    game, st = _state(stacks={"0,0": [2], "5,5": [1], "6,6": [2]},
                      markers={"1,0": 1, "0,1": 1}, phase="territory_processing")
    terr = [m for m in _legal_moves(game, st) if m["type"] == "choose_territory_option"]
    assert [[(q["x"], q["y"]) for q in m["disconnectedRegions"][0]["spaces"]] for m in terr] \
        == [[(0, 0)]]
    assert _kinds(game, st) == {K_TERRITORY, K_PASS}
    after = _act(game, st, terr[0])
    js = _json(game, after)
    assert js["board"]["collapsedSpaces"] == {"0,0": 1, "1,0": 1, "0,1": 1}
    assert js["players"][0]["territorySpaces"] == 3
    assert js["players"][0]["eliminatedRings"] == 1
    elims = _legal_moves(game, after)
    assert [(m["type"], m["to"]) for m in elims] == [("eliminate_rings_from_stack",
                                                      {"x": 5, "y": 5})]
    done = _act(game, after, elims[0])
    js = _json(game, done)
    assert js["players"][0]["eliminatedRings"] == 2
    assert "5,5" not in js["board"]["stacks"]


def test_w7_border_expansion_diagonal() -> None:
    game, st = _state(stacks={"0,0": [2], "5,5": [1], "6,6": [2]},
                      markers={"1,0": 1, "0,1": 1, "2,1": 2, "3,2": 1},
                      phase="territory_processing")
    terr = [m for m in _legal_moves(game, st) if m["type"] == "choose_territory_option"]
    region = next(m for m in terr if len(m["disconnectedRegions"][0]["spaces"]) == 1)
    after = _act(game, st, region)
    js = _json(game, after)
    assert set(js["board"]["collapsedSpaces"]) == {"0,0", "1,0", "0,1", "2,1", "3,2"}
    assert js["players"][0]["territorySpaces"] == 5


def test_w9_recovery_exact_line() -> None:
    game, st = _state(players=3, stacks={"4,4": [2, 1, 2], "7,7": [3]},
                      markers={"0,0": 1, "1,0": 1, "2,1": 1}, hands=[0, 5, 5])
    slides = [m for m in _legal_moves(game, st) if m["type"] == "recovery_slide"]
    line = [m for m in slides if m["recoveryMode"] == "line"]
    assert [(m["from"], m["to"], m["option"]) for m in line] == [
        ({"x": 2, "y": 1}, {"x": 2, "y": 0}, 1)]
    assert _kinds(game, st) == {K_RECOVERY, K_PASS}  # slides + skip_recovery
    after = _act(game, st, line[0])
    js = _json(game, after)
    assert set(js["board"]["collapsedSpaces"]) == {"0,0", "1,0", "2,0"}
    assert js["board"]["stacks"]["4,4"]["rings"] == [2, 2]
    assert js["players"][0]["eliminatedRings"] == 1 and js["totalRingsEliminated"] == 0
    assert int(after.board.phase) == LINE


def test_stack_strike_extracts_from_the_stack_chosen_before_the_strike() -> None:
    # P1 controls no stack; "1,1" (first in stack order) and "5,5" each bury a P1 ring under
    # a P2 ring. Striking "1,1" uncovers that ring; the reference picks the extraction stack
    # (the first holding a buried P1 ring) before the strike, so it is "1,1" and the stack
    # vanishes. Chosen after the strike, it would be "5,5" and leave a P1 stack on "1,1".
    game, st = _state(stacks={"1,1": [2, 1], "5,5": [2, 1], "7,7": [2]},
                      markers={"0,0": 1, "6,6": 1}, hands=[0, 5])
    strike = {"type": "recovery_slide", "from": {"x": 0, "y": 0}, "to": {"x": 1, "y": 1},
              "recoveryMode": "stack_strike", "extractionStacks": []}
    js = _json(game, _act(game, st, strike))
    assert {k: v["rings"] for k, v in js["board"]["stacks"].items()} == {
        "5,5": [2, 1], "7,7": [2]}
    assert js["players"][0]["eliminatedRings"] == 2  # the struck ring and the extracted one
    assert js["totalRingsEliminated"] == 1 and js["board"]["eliminatedRings"]["1"] == 1
    # striking the second stack leaves the first one the extraction stack
    js = _json(game, _act(game, st, {**strike, "from": {"x": 6, "y": 6},
                                     "to": {"x": 5, "y": 5}}))
    assert {k: v["rings"] for k, v in js["board"]["stacks"].items()} == {
        "1,1": [2], "5,5": [1], "7,7": [2]}


def test_recovery_option2_collapses_the_window_listed_before_the_slide() -> None:
    # Sliding P1's marker 4,3 -> 3,2 makes a 5-run along (1,0) (x = 1..5, y = 2) and a 6-run
    # along (0,1) (x = 3, y = 0..5). The reference lists Option 2 with the generator's window
    # on the longest run, its first L = 4 cells (3,0)..(3,3) (RecoveryAggregate
    # enumerateRecoverySlideTargets / getValidMoves), and the applier collapses exactly those
    # because its own line, the first axis >= base length, (1,0), is overlength too. Option 1
    # collapses that first-axis 5-run and pays one extraction (R62 [EXEC]).
    markers = {f"{x},2": 1 for x in (1, 2, 4, 5)} | {f"3,{y}": 1 for y in (0, 1, 3, 4, 5)}
    game, st = _state(stacks={"7,7": [2, 1], "6,0": [2]}, markers={**markers, "4,3": 1},
                      hands=[0, 5])
    slide = {"type": "recovery_slide", "from": {"x": 4, "y": 3}, "to": {"x": 3, "y": 2},
             "recoveryMode": "line", "extractionStacks": []}
    listed = [m for m in _legal_moves(game, st) if m["type"] == "recovery_slide"
              and m["from"] == slide["from"] and m["to"] == slide["to"]]
    assert sorted(m["option"] for m in listed) == [1, 2]
    js = _json(game, _act(game, st, {**slide, "option": 2}))
    assert set(js["board"]["collapsedSpaces"]) == {"3,0", "3,1", "3,2", "3,3"}
    assert js["players"][0]["territorySpaces"] == 4
    assert js["players"][0]["eliminatedRings"] == 0  # Option 2 is free
    js = _json(game, _act(game, st, {**slide, "option": 1}))
    assert set(js["board"]["collapsedSpaces"]) == {f"{x},2" for x in range(1, 6)}
    assert js["players"][0]["eliminatedRings"] == 1
    assert js["board"]["stacks"]["7,7"]["rings"] == [2]


def test_w10_placement_legality() -> None:
    around = {f"{x},{y}": 2 for x in (2, 3, 4) for y in (2, 3, 4) if (x, y) != (3, 3)}
    game, st = _state(collapsed=around, hands=[5, 5], phase="ring_placement",
                      stacks={"7,7": [2, 2]})
    places = {((m["to"]["x"], m["to"]["y"]), m["placementCount"])
              for m in _legal_moves(game, st) if m["type"] == "place_ring"}
    assert not any(cell == (3, 3) for cell, _ in places)
    assert ((7, 7), 1) in places and ((7, 7), 2) not in places
    # on an open board corner all three counts are legal
    assert {((0, 0), k) for k in (1, 2, 3)} <= places


def test_territory_phase_without_regions_only_passes() -> None:
    game, st = _state(stacks={"5,5": [1], "6,6": [2]}, phase="territory_processing")
    assert _kinds(game, st) == {K_PASS}
    assert int(st.board.phase) == TERRITORY
