"""RingRift as SVG: valid XML with one shape per cell, pieces where the arrays have them,
hexagons that touch exactly their six neighbours, and the static action-to-cell tables."""

from __future__ import annotations

import xml.etree.ElementTree as ElementTree

import jax
import numpy as np
import pytest

from rlloop import games
from rlloop.games.ringrift import svg

NS = "{http://www.w3.org/2000/svg}"


def _position(game: games.Game) -> games.State:
    """A hand-made position: a 3-high stack of player 1 on player 2's ring at cell 0 (cap 2),
    a 1-high stack of player 2 at cell 5, markers of players 1 and 2 at cells 7 and 8, a
    collapsed cell of player 1 at cell 9; player 2 to move."""
    board = jax.tree.map(np.asarray, game.rules.initial_board())
    rings, height = board.rings.copy(), board.height.copy()
    rings[0, :3], height[0] = [2, 1, 1], 3
    rings[5, :1], height[5] = [2], 1
    marker, collapsed = board.marker.copy(), board.collapsed.copy()
    marker[7], marker[8], collapsed[9] = 1, 2, 1
    board = board.replace(rings=rings, height=height, marker=marker, collapsed=collapsed)
    return games.State(
        current_player=np.int32(1), legal_action_mask=np.zeros(game.num_actions, bool),
        rewards=np.zeros(game.num_players, np.float32), terminated=np.bool_(False),
        truncated=np.bool_(False), step_count=np.int32(12), board=board,
    )  # fmt: skip


@pytest.mark.parametrize("name", ["ringrift_square8_2p", "ringrift_hex8_3p"])
def test_svg_draws_every_cell_and_piece(name: str) -> None:
    game = games.make(name)
    state = _position(game)
    rules = game.rules
    n = rules.N
    policy = np.zeros(rules.num_actions)
    policy[rules.offsets[0] + 3 * 4] = 0.75  # place one ring on cell 4
    policy[rules.offsets[0] + 3 * 6 + 2] = 0.25  # three on cell 6
    move = rules.offsets[1] + (0 * rules.D + 0) * rules.K  # cell 0 one step in direction 0
    root = ElementTree.fromstring(svg.to_svg(game, state, cell_weights=svg.policy_by_cell(game, policy),
                                             action=move))  # fmt: skip
    shape = "polygon" if rules.geo.is_hex else "rect"
    cells = root.findall(f"{NS}{shape}")
    board_cells = [c for c in cells if c.get("fill") != "black"]
    assert len(board_cells) == n
    assert [c.get("fill") for c in board_cells].count(svg.PLAYER_COLOURS[0]) == 1  # collapsed
    heat = [float(c.get("fill-opacity")) for c in cells if c.get("fill") == "black"]
    assert sorted(heat) == pytest.approx([0.55 / 3, 0.55], abs=1e-3)
    circles = root.findall(f"{NS}circle")
    discs = [c.get("fill") for c in circles if c.get("stroke") == "black" and c.get("fill") != "none"]
    assert discs == [svg.PLAYER_COLOURS[0], svg.PLAYER_COLOURS[1]]  # the top ring's colour
    caps = [c for c in circles if c.get("stroke") == "white"]
    assert len(caps) == 1  # only the mixed stack shows its cap
    markers = [c.get("stroke") for c in circles if c.get("fill") == "none" and c.get("stroke") in svg.PLAYER_COLOURS]
    assert markers == list(svg.PLAYER_COLOURS[:2])
    texts = [t.text for t in root.findall(f"{NS}text")]
    assert texts[:2] == ["3", "1"]
    assert texts[2].startswith("to move: player 2 (blue), phase ring_placement, step 12")
    line = root.find(f"{NS}line")
    centres = svg._centres(game, 36.0)
    _, target = svg.action_cells(rules)
    assert (float(line.get("x1")), float(line.get("y1"))) == pytest.approx(tuple(centres[0]), abs=0.06)
    assert (float(line.get("x2")), float(line.get("y2"))) == pytest.approx(tuple(centres[target[move]]), abs=0.06)


def test_hexagons_touch_their_neighbours_only() -> None:
    game = games.make("ringrift_hex8_2p")
    centres = svg._centres(game, 10.0)
    geo = game.rules.geo
    distances = np.linalg.norm(centres[:, None] - centres[None], axis=-1)
    for cell in range(geo.num_cells):
        neighbours = {int(c) for c in geo.tadj[cell] if c < geo.num_cells}
        close = set(np.flatnonzero(np.isclose(distances[cell], 10.0)).tolist())
        assert close == neighbours
        assert distances[cell][distances[cell] > 0].min() == pytest.approx(10.0)


def test_action_cells_follow_the_encoding() -> None:
    game = games.make("ringrift_square8_2p")
    rules = game.rules
    origin, target = svg.action_cells(rules)
    assert origin.shape == target.shape == (rules.num_actions,)
    # Placement of 2 rings on cell 10; moving from cell 9 three steps in direction 2 (+y).
    assert target[rules.offsets[0] + 10 * 3 + 1] == 10 and origin[rules.offsets[0] + 31] == rules.N
    move = rules.offsets[1] + (9 * rules.D + 2) * rules.K + 2
    assert origin[move] == 9 and target[move] == rules.geo.cell_of(1, 4)
    assert target[rules.num_actions - 1] == rules.N  # PASS
    policy = np.full(rules.num_actions, 1.0 / rules.num_actions)
    assert svg.policy_by_cell(game, policy).sum() < 1.0
