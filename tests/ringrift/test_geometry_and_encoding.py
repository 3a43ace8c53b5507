"""Geometry tables (R1–R7), the action encoding and the JSON conversions (no shared data)."""

from __future__ import annotations

import jax
import numpy as np
import pytest
from ringrift_jits import play, rules_for, start

from rlloop.games.ringrift import BOARD_TYPES, RingRift
from rlloop.games.ringrift import convert as cv
from rlloop.games.ringrift.geometry import (
    effective_line_length,
    geometry,
    territory_minimum,
    victory_threshold,
)


@pytest.mark.parametrize(("board", "cells", "ray"),
                         [("square8", 64, 7), ("square19", 361, 18), ("hex8", 61, 8),
                          ("hexagonal", 469, 24)])
def test_cell_counts_and_rays(board: str, cells: int, ray: int) -> None:
    g = geometry(board)
    assert g.num_cells == cells and g.max_ray == ray
    assert g.ray.shape == (cells + 1, g.num_dirs, ray)
    assert (g.ray[cells] == cells).all()  # the sentinel stays the sentinel
    # every ray leaves the board at most once and never comes back
    off = g.ray[:cells] == cells
    assert (np.diff(off.astype(int), axis=-1) >= 0).all()
    # the longest ray exists (corner to corner / edge to edge)
    assert (~off).all(axis=-1).any()


def test_canonical_order_r3() -> None:
    sq = geometry("square8")
    assert sq.cell_of(0, 0) == 0 and sq.cell_of(0, 7) == 7 and sq.cell_of(1, 0) == 8
    hx = geometry("hex8")
    assert tuple(hx.coords[0]) == (-4, 0)  # x = -4: y from max(-4, 0) = 0 to min(4, 8) = 4
    assert tuple(hx.coords[4]) == (-4, 4) and tuple(hx.coords[5]) == (-3, -1)
    assert hx.keys[0] == "-4,0,4"


def test_adjacency_tables() -> None:
    sq = geometry("square8")
    c = sq.cell_of(3, 3)
    assert sorted(tuple(sq.coords[n]) for n in sq.tadj[c]) == [(2, 3), (3, 2), (3, 4), (4, 3)]
    assert (sq.badj[c] < sq.num_cells).sum() == 8
    hx = geometry("hex8")
    c = hx.cell_of(0, 0)
    assert (hx.tadj[c] < hx.num_cells).sum() == 6
    # R7 [EXEC]: hex8 border expansion uses the square offsets: (1,1) and (-1,-1) included
    expanded = {tuple(hx.coords[n]) for n in hx.badj[c] if n < hx.num_cells}
    assert (1, 1) in expanded and (-1, -1) in expanded and (1, -1) in expanded
    big = geometry("hexagonal")
    assert (big.badj == big.num_cells).all()  # no expansion on hexagonal


def test_parameters_r9_r10_r11() -> None:
    assert [effective_line_length("square8", n) for n in (2, 3, 4)] == [4, 3, 3]
    assert [victory_threshold("square19", n) for n in (2, 3, 4)] == [72, 96, 120]
    assert [territory_minimum("hexagonal", n) for n in (2, 3, 4)] == [235, 157, 118]


@pytest.mark.parametrize("board", BOARD_TYPES)
def test_action_layout(board: str) -> None:
    game = RingRift(board, 2)
    r = game.rules
    n, d, k, a = r.N, r.D, r.K, r.A
    assert game.num_actions == n * 3 + n * d * k + n * d * 4 + a * n * 2 + 3 * n + n + 1
    assert r.offsets[-1] == game.num_actions


def test_initial_position_and_json_round_trip() -> None:
    game = RingRift("square8", 2)
    st = game.init(jax.random.PRNGKey(0))
    mask = np.asarray(st.legal_action_mask)
    assert mask.sum() == 64 * 3  # every cell, 1–3 rings; no skip without stacks
    js = cv.board_to_json(game.rules, st.board, 1)
    back, player = cv.board_from_json(game.rules, js)
    assert player == 1
    jax.tree.map(np.testing.assert_array_equal, back, st.board)


def test_actions_round_trip_through_moves() -> None:
    config = "hex8_3p"
    rules = rules_for(config)
    pos = start(config)
    rng = np.random.default_rng(1)
    for _ in range(40):
        p = pos.current_player + 1
        legal = np.flatnonzero(pos.legal_action_mask)
        for a in legal:
            mv = cv.action_to_move(rules, pos.board, p, int(a))
            assert cv.move_to_action(rules, pos.board, p, mv) == a, mv
        pos = play(config, pos, int(rng.choice(legal)))
        if pos.terminated:
            break
        js = cv.board_to_json(rules, pos.board, pos.current_player + 1)
        assert cv.compare_board(rules, pos.board, pos.current_player + 1, js) == []


def test_compare_board_detects_differences() -> None:
    game = RingRift("square8", 2)
    st = game.init(jax.random.PRNGKey(0))
    js = cv.board_to_json(game.rules, st.board, 1)
    js["board"]["markers"]["3,3"] = {"player": 2}
    js["players"][1]["ringsInHand"] = 17
    diffs = cv.compare_board(game.rules, st.board, 1, js)
    assert "marker" in diffs and "hand" in diffs


def test_invalid_coordinates_rejected() -> None:
    rules = RingRift("hexagonal", 2).rules
    with pytest.raises(ValueError):
        cv._cell(rules, "3,3,0")
    with pytest.raises(ValueError):
        cv._cell(rules, {"x": 7, "y": 7, "z": -14})
