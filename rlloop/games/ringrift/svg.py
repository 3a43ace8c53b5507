"""RingRift positions as SVG (square and hex boards), for notebooks and reports.

``to_svg(game, state)`` draws one unbatched state from its arrays:

- cells: squares at ``(x, y)`` (row ``y`` from the top), or pointy-top hexagons at the
  axial coordinates ``(q, r) = (x, y)`` of :mod:`rlloop.games.ringrift.geometry`;
- collapsed cells (territory) filled with their owner's colour, markers as hollow rings,
  stacks as discs in the colour of the top ring (the controller) with the height written on
  them and the cap (top rings of one colour) as an inner ring;
- optionally ``cell_weights`` [N] (e.g. :func:`policy_by_cell`) as a grey heat under the
  pieces, and ``action`` drawn as an arrow from its origin to its destination;
- a caption: the player to move, the phase, rings in hand, eliminated and territory.

Display in Jupyter with ``IPython.display.SVG(to_svg(game, state))``.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np

from rlloop.games.base import State
from rlloop.games.ringrift.engine import PHASE_NAMES, Rules
from rlloop.games.ringrift.game import RingRift

__all__ = ["PLAYER_COLOURS", "action_cells", "policy_by_cell", "to_svg"]

# Seats 1..4 of the rules (current_player 0..3).
PLAYER_COLOURS = ("#d62728", "#1f77b4", "#2ca02c", "#ff9f1c")
_BOARD_FILL = "#f4efe3"
_LINE = "#8c8579"


@functools.cache
def action_cells(rules: Rules) -> tuple[np.ndarray, np.ndarray]:
    """Static (origin, destination) cell of every action: int32 [A] each, ``N`` where an
    action has none (placements have no origin; PASS neither). Origins: the moving stack or
    recovering marker; destinations: the placement, landing or recovery cell, the line's or
    region's first cell, the eliminated stack."""
    geo, n, d, k = rules.geo, rules.N, rules.D, rules.K
    origin = np.full(rules.num_actions, n, np.int32)
    target = np.full(rules.num_actions, n, np.int32)
    offsets = rules.offsets
    place = np.arange(rules.n_place)
    target[offsets[0] + place] = place // 3
    move = np.arange(rules.n_move)
    cell, direction, step = move // (d * k), (move // k) % d, move % k
    origin[offsets[1] + move] = cell
    target[offsets[1] + move] = geo.ray[cell, direction, step]
    recovery = np.arange(rules.n_recovery)
    cell, direction = recovery // (d * 4), (recovery // 4) % d
    origin[offsets[2] + recovery] = cell
    target[offsets[2] + recovery] = geo.radj[cell, direction]
    line = np.arange(rules.n_line)
    target[offsets[3] + line] = (line // 2) % n
    territory = np.arange(rules.n_territory)
    target[offsets[4] + territory] = territory % n
    target[offsets[5] + np.arange(n)] = np.arange(n)
    return origin, target


def policy_by_cell(game: RingRift, policy: Any) -> np.ndarray:
    """Move probabilities [A] summed onto each action's destination cell: float [N]
    (PASS and off-board destinations dropped)."""
    _, target = action_cells(game.rules)
    weights = np.bincount(target, weights=np.asarray(policy, np.float64), minlength=game.rules.N + 1)
    return weights[: game.rules.N]


def _centres(game: RingRift, cell_size: float) -> np.ndarray:
    """Pixel centres [N, 2] of every cell, the board's top-left corner at the origin."""
    coords = game.rules.geo.coords.astype(np.float64)
    if not game.rules.geo.is_hex:
        return (coords + 0.5) * cell_size
    radius = cell_size / math.sqrt(3)  # corner distance of a hexagon `cell_size` wide
    x = cell_size * (coords[:, 0] + coords[:, 1] / 2)
    y = 1.5 * radius * coords[:, 1]
    return np.stack([x - x.min() + cell_size / 2, y - y.min() + radius], axis=1)


def _cell_shape(game: RingRift, centre: np.ndarray, cell_size: float, style: str) -> str:
    cx, cy = centre
    if not game.rules.geo.is_hex:
        half = cell_size / 2
        return f'<rect x="{cx - half:.1f}" y="{cy - half:.1f}" width="{cell_size:.1f}" height="{cell_size:.1f}" {style}/>'
    radius = cell_size / math.sqrt(3)
    corners = [(cx + radius * math.cos(math.radians(60 * i - 30)),
                cy + radius * math.sin(math.radians(60 * i - 30))) for i in range(6)]  # fmt: skip
    points = " ".join(f"{x:.1f},{y:.1f}" for x, y in corners)
    return f'<polygon points="{points}" {style}/>'


def to_svg(
    game: RingRift,
    state: State,
    *,
    cell_size: float = 36.0,
    cell_weights: Any = None,
    action: int | None = None,
) -> str:
    """An SVG picture of one unbatched ``state`` of ``game`` (module doc)."""
    rules = game.rules
    board = {name: np.asarray(value) for name, value in state.board.items()}
    n = rules.N
    centres = _centres(game, cell_size)
    width = float(centres[:, 0].max() + cell_size / 2) + 2
    height = float(centres[:, 1].max() + cell_size / 1.6) + 2
    caption_height = 18 * 2
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" '
             f'height="{height + caption_height:.0f}" font-family="sans-serif">']  # fmt: skip
    weights = None if cell_weights is None else np.asarray(cell_weights, np.float64)[:n]
    top_weight = float(weights.max()) if weights is not None and weights.max() > 0 else 1.0
    for cell in range(n):
        owner = int(board["collapsed"][cell])
        fill = PLAYER_COLOURS[owner - 1] if owner > 0 else _BOARD_FILL
        opacity = 0.45 if owner > 0 else 1.0
        parts.append(_cell_shape(game, centres[cell], cell_size,
                                 f'fill="{fill}" fill-opacity="{opacity}" stroke="{_LINE}" stroke-width="1"'))  # fmt: skip
        if weights is not None and weights[cell] > 0:
            shade = weights[cell] / top_weight
            parts.append(_cell_shape(game, centres[cell], cell_size * 0.9,
                                     f'fill="black" fill-opacity="{0.55 * shade:.3f}" stroke="none"'))  # fmt: skip
    for cell in range(n):
        cx, cy = centres[cell]
        marker = int(board["marker"][cell])
        if marker > 0:
            parts.append(f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="{cell_size * 0.3:.1f}" fill="none" '
                         f'stroke="{PLAYER_COLOURS[marker - 1]}" stroke-width="{cell_size * 0.09:.1f}"/>')  # fmt: skip
        stack = int(board["height"][cell])
        if stack > 0:
            rings = board["rings"][cell, :stack]  # bottom first
            top = int(rings[-1])
            cap = int(np.argmax(rings[::-1] != top)) if (rings != top).any() else stack
            parts.append(f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="{cell_size * 0.36:.1f}" '
                         f'fill="{PLAYER_COLOURS[top - 1]}" stroke="black" stroke-width="1"/>')  # fmt: skip
            if cap < stack:  # rings of other colours under the cap: an inner ring shows the cap
                parts.append(f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="{cell_size * 0.24:.1f}" fill="none" '
                             f'stroke="white" stroke-width="1.5"/>')  # fmt: skip
            parts.append(f'<text x="{cx:.1f}" y="{cy + cell_size * 0.13:.1f}" font-size="{cell_size * 0.36:.0f}" '
                         f'text-anchor="middle" fill="white" font-weight="bold">{stack}</text>')  # fmt: skip
    if action is not None:
        parts.append(_arrow(game, centres, int(action), cell_size))
    player = int(state.current_player)
    phase = PHASE_NAMES[int(board["phase"])]
    captions = [
        f"to move: player {player + 1} ({_colour_name(player)}), phase {phase}, step {int(state.step_count)}",
        f"hand {board['hand'].tolist()}  eliminated {board['elim'].tolist()}  territory {board['terr'].tolist()}",
    ]
    for line, text in enumerate(captions):
        parts.append(f'<text x="4" y="{height + 14 + 18 * line:.0f}" font-size="13">{text}</text>')
    parts.append("</svg>")
    return "\n".join(parts)


def _colour_name(player: int) -> str:
    return ("red", "blue", "green", "amber")[player]


def _arrow(game: RingRift, centres: np.ndarray, action: int, cell_size: float) -> str:
    """The action as an arrow from origin to destination (a circle where it has no origin)."""
    origin, target = action_cells(game.rules)
    n = game.rules.N
    if target[action] >= n:
        return ""
    tx, ty = centres[target[action]]
    if origin[action] >= n or origin[action] == target[action]:
        return (f'<circle cx="{tx:.1f}" cy="{ty:.1f}" r="{cell_size * 0.45:.1f}" fill="none" '
                f'stroke="black" stroke-width="3" stroke-dasharray="4 3"/>')  # fmt: skip
    ox, oy = centres[origin[action]]
    return (
        '<defs><marker id="head" markerWidth="6" markerHeight="6" refX="3" refY="3" orient="auto">'
        '<path d="M0,0 L6,3 L0,6 z" fill="black"/></marker></defs>'
        f'<line x1="{ox:.1f}" y1="{oy:.1f}" x2="{tx:.1f}" y2="{ty:.1f}" stroke="black" '
        'stroke-width="3" marker-end="url(#head)"/>'
    )
