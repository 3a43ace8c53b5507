"""RingRift's reference heuristic position evaluation, batched and jittable.

The evaluation of the reference engine (synaptent/RingRift ``heuristicEvaluation.ts``,
``evaluateHeuristicState(state, player, weights)``), written from its behaviour for every board
and player count: a weighted sum of twenty hand-made factors of one player's position. Parity:
``tests/ringrift/test_heuristic.py`` against ``../shared/data/ringrift/heuristic/v2``
(docs/ringrift.md, "Heuristic evaluation").

:func:`evaluate` maps one :class:`~rlloop.games.ringrift.engine.RingRiftBoard` to float32 [P],
player 1 first; ``jax.vmap`` it for batches. Weights are a :class:`HeuristicWeights` (a pytree
of floats), one of :data:`PROFILES` by :func:`profile_weights`.

Behaviour of the reference kept on purpose (it is what the fixtures pin down):

- *Adjacency* (threats, mobility, stack mobility, forced-elimination risk, LPS) and *lines of
  sight* (vulnerability, overtake) step along the movement directions and keep a neighbour
  when the reference's bounds test passes. On hex8 that test is the square one,
  ``0 <= x, y < 9`` on the cube coordinates: neighbours with negative ``x`` or ``y`` are
  dropped, and in-bounds cells off the hexagon count as empty, open neighbours.
- Lines of sight stop after 20 steps, at a collapsed cell or at the first stack.
- Centre cells: the 3x3 block around ``(size // 2, size // 2)`` on square boards, the origin
  and its six neighbours on ``hexagonal``, none on hex8 (its 2-D centre keys never match).
- Territory closure averages pairwise distances over the player's *first ten markers in the
  reference's Map insertion order*. The board does not record that order: ``marker_order``
  supplies it (lower = earlier); without it markers count in cell order (a documented
  deviation, measured in docs/ringrift.md).
- The reference's terminal branch tests a status it never sets, so finished positions are
  scored by the ordinary factor sum here too; players that score moves handle wins themselves.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from rlloop.games.ringrift.engine import RingRiftBoard, Rules
from rlloop.games.ringrift.geometry import geometry

Array = jax.Array

LINE_OF_SIGHT_STEPS = 20  # the reference's getVisibleStacks maxDistance
CLOSURE_MARKERS = 10  # territory closure looks at this many of the player's markers


class HeuristicWeights(NamedTuple):
    """One weight per factor (names as in the reference's weight objects)."""

    stackControl: float
    stackHeight: float
    territory: float
    ringsInHand: float
    centerControl: float
    adjacency: float  # present in the reference's profiles, read by no factor
    opponentThreat: float
    mobility: float
    eliminatedRings: float
    linePotential: float
    victoryProximity: float
    markerCount: float
    vulnerability: float
    overtakePotential: float
    territoryClosure: float
    lineConnectivity: float
    territorySafety: float
    stackMobility: float
    opponentVictoryThreat: float
    forcedEliminationRisk: float
    lpsActionAdvantage: float
    multiLeaderThreat: float


BALANCED = HeuristicWeights(
    stackControl=10.0, stackHeight=5.0, territory=8.0, ringsInHand=3.0, centerControl=4.0,
    adjacency=2.0, opponentThreat=6.0, mobility=4.0, eliminatedRings=12.0, linePotential=7.0,
    victoryProximity=20.0, markerCount=1.5, vulnerability=8.0, overtakePotential=8.0,
    territoryClosure=10.0, lineConnectivity=6.0, territorySafety=5.0, stackMobility=4.0,
    opponentVictoryThreat=6.0, forcedEliminationRisk=4.0, lpsActionAdvantage=2.0,
    multiLeaderThreat=2.0,
)  # fmt: skip

# The personas scale some balanced weights (factors of 1.0 in the reference are left out).
_PERSONA_FACTORS = {
    "balanced": {},
    "aggressive": dict(
        eliminatedRings=1.25, overtakePotential=1.25, victoryProximity=1.15, linePotential=1.1,
        vulnerability=0.85, territorySafety=0.85, opponentVictoryThreat=1.1,
        forcedEliminationRisk=0.85, multiLeaderThreat=0.8,
    ),
    "territorial": dict(
        territory=1.25, territoryClosure=1.25, territorySafety=1.2, linePotential=1.15,
        lineConnectivity=1.15, markerCount=1.1, eliminatedRings=0.9, opponentVictoryThreat=1.15,
        lpsActionAdvantage=1.1, multiLeaderThreat=1.25,
    ),
    "defensive": dict(
        stackControl=1.15, stackMobility=1.2, mobility=1.1, vulnerability=1.25,
        territorySafety=1.15, overtakePotential=0.9, eliminatedRings=0.9,
        opponentVictoryThreat=1.05, forcedEliminationRisk=1.3, lpsActionAdvantage=1.2,
        multiLeaderThreat=1.1,
    ),
}  # fmt: skip
PROFILES = tuple(_PERSONA_FACTORS)
PROFILE_IDS = {name: f"heuristic_v1_{name}" for name in PROFILES}  # the reference's ids


def profile_weights(profile: str) -> HeuristicWeights:
    """The weights of ``profile``: one of :data:`PROFILES` or its reference id
    (``heuristic_v1_balanced`` ...)."""
    name = profile.removeprefix("heuristic_v1_")
    if name not in _PERSONA_FACTORS:
        raise ValueError(
            f"unknown heuristic profile {profile!r}; valid: {', '.join(PROFILES)} "
            f"(or {', '.join(PROFILE_IDS.values())})"
        )
    factors = _PERSONA_FACTORS[name]
    return BALANCED._replace(**{k: getattr(BALANCED, k) * f for k, f in factors.items()})


# ------------------------------------------------------------------------------- tables
@dataclasses.dataclass(frozen=True, eq=False)
class Tables:
    """Per-board index tables (numpy, built once). ``N`` cells; index ``N`` stands for "no
    cell" (never a stack, a marker or collapsed)."""

    num_cells: int  # N
    adjacent: np.ndarray  # [N, D] int32: neighbour kept by the bounds test, N when dropped
    adjacent_kept: np.ndarray  # [N, D] bool: the bounds test passed (N = an empty off-board cell)
    ray3: np.ndarray  # [N, D, 3] int32: cells 1..3 steps away (N off the board)
    sight: np.ndarray  # [N, D, S] int32: line-of-sight cells, N past the bounds test
    centre: np.ndarray  # [N] bool
    near1: np.ndarray  # [N, 4] int32: cells at coordinate distance 1 (square only; else N)
    near2: np.ndarray  # [N, 8] int32: cells at coordinate distance 2 (hex: the neighbours)
    coords: np.ndarray  # [N, 3] int32: (x, y, z); z = 0 on square boards


@functools.cache
def tables(board_type: str) -> Tables:
    """The (cached) heuristic tables of ``board_type``."""
    g = geometry(board_type)
    n, dirs = g.num_cells, g.dirs
    xy = g.coords.astype(np.int64)
    z = -xy[:, 0] - xy[:, 1] if g.is_hex else np.zeros(n, np.int64)
    coords = np.stack([xy[:, 0], xy[:, 1], z], axis=1)

    def at(x: int, y: int) -> int:
        return g.index.get((x, y), n)

    def kept(x: int, y: int) -> bool:
        """The reference's isWithinBounds (square test on hex8, cube test on hexagonal)."""
        if board_type == "hexagonal":
            return max(abs(x), abs(y), abs(x + y)) <= g.size // 2
        return 0 <= x < g.size and 0 <= y < g.size

    num_dirs = len(dirs)
    steps = min(g.max_ray, LINE_OF_SIGHT_STEPS)
    adjacent = np.full((n, num_dirs), n, np.int32)
    adjacent_kept = np.zeros((n, num_dirs), bool)
    sight = np.full((n, num_dirs, steps), n, np.int32)
    for c, (x, y) in enumerate(g.coords):
        for d, (dx, dy) in enumerate(dirs):
            adjacent_kept[c, d] = kept(x + dx, y + dy)
            adjacent[c, d] = at(x + dx, y + dy) if adjacent_kept[c, d] else n
            for k in range(steps):
                sx, sy = x + (k + 1) * dx, y + (k + 1) * dy
                if not kept(sx, sy):
                    break
                sight[c, d, k] = at(sx, sy)  # off the board: stays N (a straight ray never
                # comes back, so stopping there sees what the reference sees: nothing)
    ray3 = np.full((n, num_dirs, 3), n, np.int32)
    ray3[:, :, : min(3, g.max_ray)] = g.ray[:n, :, :3]
    centre = np.zeros(n, bool)
    if board_type == "hexagonal":
        centre[[at(0, 0), *(at(int(dx), int(dy)) for dx, dy in dirs)]] = True
    elif not g.is_hex:
        mid = g.size // 2
        for dx in (-1, 0, 1):
            for dy in (-1, 0, 1):
                centre[at(mid + dx, mid + dy)] = True
    manhattan = np.abs(coords[:, None, :] - coords[None, :, :]).sum(-1)  # [N, N]
    near1 = _padded_rows(manhattan == 1, 4, n)
    near2 = _padded_rows(manhattan == 2, 8, n)
    return Tables(n, adjacent, adjacent_kept, ray3, sight, centre, near1, near2,
                  coords.astype(np.int32))  # fmt: skip


def _padded_rows(mask: np.ndarray, width: int, fill: int) -> np.ndarray:
    out = np.full((mask.shape[0], width), fill, np.int32)
    for c, row in enumerate(mask):
        cells = np.nonzero(row)[0]
        out[c, : len(cells)] = cells
    return out


# ---------------------------------------------------------------------------- evaluation
def _pad(x: Array, value) -> Array:
    """``x`` [N] with one more entry, ``value``, for the "no cell" index N."""
    return jnp.concatenate([x, jnp.full((1,), value, x.dtype)])


def victory_proximity(board: RingRiftBoard) -> Array:
    """The reference's unweighted victory-proximity base of every player, float32 [P]."""
    elim = board.elim.astype(jnp.float32)
    terr = board.terr.astype(jnp.float32)
    rings_needed = board.vt.astype(jnp.float32) - elim
    others = jnp.sum(terr) - terr
    terr_needed = jnp.maximum(board.tvm.astype(jnp.float32) - terr, others + 1.0 - terr)
    near = 50.0 / jnp.maximum(1.0, rings_needed) + 50.0 / jnp.maximum(1.0, terr_needed)
    return jnp.where((rings_needed <= 0) | (terr_needed <= 0), 1000.0, near)


def evaluate(
    rules: Rules,
    board: RingRiftBoard,
    weights: HeuristicWeights,
    marker_order: Array | None = None,
) -> Array:
    """Every player's heuristic evaluation of ``board``: float32 [P], player 1 first.

    ``marker_order``: int32 [N1] (or [N]), the reference's marker insertion order (lower =
    earlier; read only where markers are); None = cell order (see the module docstring).
    """
    return jnp.sum(factors(rules, board, weights, marker_order), axis=-1)


FACTOR_NAMES = (
    "stackControl", "territory", "ringsInHand", "centerControl", "opponentThreats", "mobility",
    "eliminatedRings", "linePotential", "victoryProximity", "opponentVictoryThreat",
    "markerCount", "vulnerability", "overtakePotential", "territoryClosure", "lineConnectivity",
    "territorySafety", "stackMobility", "forcedEliminationRisk", "lpsActionAdvantage",
    "multiLeaderThreat",
)  # fmt: skip  (the reference breakdown's keys, in its order)


def factors(
    rules: Rules,
    board: RingRiftBoard,
    weights: HeuristicWeights,
    marker_order: Array | None = None,
) -> Array:
    """The weighted factors of :func:`evaluate`: float32 [P, 20] in :data:`FACTOR_NAMES`
    order (the reference's breakdown; its ``stackControl`` includes height and the
    diversification term)."""
    t = tables(rules.board_type)
    n, num_players = t.num_cells, rules.P
    w = jax.tree.map(lambda v: jnp.asarray(v, jnp.float32), weights)
    stacks = rules.stacks(board)
    height = stacks["h"][:n]
    is_stack = _pad(stacks["is_stack"][:n], False)
    top = _pad(jnp.where(stacks["is_stack"], stacks["top"], 0)[:n].astype(jnp.int32), 0)
    cap = _pad(stacks["cap"][:n].astype(jnp.int32), 0)
    collapsed = _pad(board.collapsed[:n] != 0, False)
    marker = _pad(board.marker[:n].astype(jnp.int32), 0)
    order = jnp.arange(n) if marker_order is None else jnp.asarray(marker_order)[:n]

    adjacent, kept = jnp.asarray(t.adjacent), jnp.asarray(t.adjacent_kept)
    open_adjacent = kept & ~collapsed[adjacent]  # [N, D]
    adj_stack, adj_top, adj_cap = is_stack[adjacent], top[adjacent], cap[adjacent]
    own_cap = cap[:n, None]
    # First stop on each line of sight (N past the bounds test stops too, seeing nothing).
    sight = jnp.asarray(t.sight)
    stop = _pad(is_stack[:n] | collapsed[:n], True)[sight]  # [N, D, S]
    seen = jnp.take_along_axis(sight, jnp.argmax(stop, axis=-1)[..., None], -1)[..., 0]
    seen = jnp.where(jnp.any(stop, axis=-1) & is_stack[seen], seen, n)  # [N, D]
    prox = victory_proximity(board)
    has_empty = jnp.any(~is_stack[:n] & ~collapsed[:n])
    players = jnp.arange(1, num_players + 1)

    def moves_per_stack(p: Array) -> Array:
        """int32 [N]: open neighbours a stack of p could step to or capture on (stackMobility)."""
        target = ~adj_stack | ((adj_top != p) & (own_cap >= adj_cap))
        return jnp.sum(open_adjacent & target, axis=1)

    def actions(p: Array) -> Array:
        mine = is_stack[:n] & (top[:n] == p)
        moves = jnp.sum(mine & (moves_per_stack(p) > 0))
        return moves + ((board.hand[p - 1] > 0) & has_empty).astype(jnp.int32)

    approx_actions = jax.vmap(actions)(players)  # [P]

    def one(p: Array) -> Array:
        i = p - 1
        mine = is_stack[:n] & (top[:n] == p)
        theirs = is_stack[:n] & (top[:n] != p)
        h_eff = jnp.where(height <= 5, height, 5.0 + (height - 5) * 0.1).astype(jnp.float32)
        n_mine, n_theirs = jnp.sum(mine), jnp.sum(theirs)
        spread = jnp.where(n_mine == 0, -50.0, jnp.where(n_mine == 1, -10.0, 2.0 * n_mine))
        stack_control = (spread + (n_mine - n_theirs) * w.stackControl
                         + (jnp.sum(jnp.where(mine, h_eff, 0.0))
                            - jnp.sum(jnp.where(theirs, h_eff, 0.0))) * w.stackHeight)  # fmt: skip
        others = players != p
        territory = (board.terr[i] - jnp.max(jnp.where(others, board.terr, 0))) * w.territory
        rings_in_hand = board.hand[i] * w.ringsInHand
        centre = jnp.asarray(t.centre) & is_stack[:n]
        center_control = jnp.sum(jnp.where(centre, jnp.where(mine, w.centerControl,
                                                             -0.5 * w.centerControl), 0.0))
        hostile = kept & adj_stack & (adj_top != p)  # [N, D]
        threat = jnp.sum(jnp.where(mine[:, None] & hostile, adj_cap - own_cap, 0))
        opponent_threats = -threat * w.opponentThreat * 0.5
        empty_step = open_adjacent & ~adj_stack
        capture = open_adjacent & adj_stack & (own_cap >= adj_cap)
        own_moves = jnp.sum(mine[:, None] & (empty_step | (capture & (adj_top != p))))
        their_moves = jnp.sum(theirs[:, None] & (empty_step | (capture & (adj_top == p))))
        mobility = (own_moves - their_moves) * w.mobility
        eliminated = board.elim[i] * w.eliminatedRings

        my_marker = marker[:n] == p
        ahead = marker[jnp.asarray(t.ray3)] == p  # [N, D, 3]
        m1, m2, m3 = ahead[..., 0], ahead[..., 1], ahead[..., 2]
        line = jnp.where(m1, 1.0 + jnp.where(m2, 2.0 + jnp.where(m3, 5.0, 0.0), 0.0), 0.0)
        line_potential = jnp.sum(jnp.where(my_marker[:, None], line, 0.0)) * w.linePotential
        victory = prox[i] * w.victoryProximity
        best_other = jnp.max(jnp.where(others, prox, 0.0))
        opponent_victory = -jnp.maximum(0.0, jnp.maximum(best_other, 0.0) - prox[i]) * (
            w.opponentVictoryThreat)
        n_markers = jnp.sum(my_marker)
        marker_count = n_markers * w.markerCount

        seen_top, seen_cap = top[seen], cap[seen]
        hostile_seen = mine[:, None] & (seen < n) & (seen_top != p)
        vulnerability = -jnp.sum(jnp.where(hostile_seen, jnp.maximum(seen_cap - own_cap, 0), 0))
        overtake = jnp.sum(jnp.where(hostile_seen, jnp.maximum(own_cap - seen_cap, 0), 0))

        closure = _territory_closure(t, my_marker, order, n_markers) * w.territoryClosure
        first = jnp.asarray(t.ray3)[..., 0]
        gap = m2 & ~m1 & ~collapsed[first] & ~is_stack[first]
        connectivity = jnp.sum(jnp.where(my_marker[:, None], m1 + 0.5 * gap, 0.0))
        their_stack = _pad(theirs, False)
        close1 = jnp.any(their_stack[jnp.asarray(t.near1)], axis=1)
        close2 = jnp.any(their_stack[jnp.asarray(t.near2)], axis=1)
        safety = -jnp.sum(jnp.where(my_marker, jnp.where(close1, 2.0, jnp.where(close2, 1.0, 0.0)),
                                    0.0))  # fmt: skip
        moves = moves_per_stack(p)
        stack_mobility = jnp.sum(jnp.where(mine, moves - 5.0 * (moves == 0), 0.0))
        ratio = approx_actions[i] / jnp.maximum(1, n_mine)
        risk = jnp.where(ratio >= 2.0, 0.0, 2.0 - ratio)
        forced = jnp.where(n_mine == 0, 0.0, -risk * w.forcedEliminationRisk)
        lps, leader = _multiplayer(approx_actions, prox, others, i, num_players)
        return jnp.stack([
            stack_control, territory, rings_in_hand, center_control, opponent_threats, mobility,
            eliminated, line_potential, victory, opponent_victory, marker_count,
            vulnerability * w.vulnerability, overtake * w.overtakePotential, closure,
            connectivity * w.lineConnectivity, safety * w.territorySafety,
            stack_mobility * w.stackMobility, forced, lps * w.lpsActionAdvantage,
            -leader * w.multiLeaderThreat,
        ]).astype(jnp.float32)  # fmt: skip

    return jax.vmap(one)(players)


def _territory_closure(t: Tables, mine: Array, order: Array, count: Array) -> Array:
    """Unweighted closure: 10 / max(1, mean pairwise distance of the first ten markers) plus
    half the marker count; 0 with fewer than two markers."""
    k = min(CLOSURE_MARKERS, t.num_cells)
    rank = jnp.where(mine, order, jnp.iinfo(jnp.int32).max)
    _, first = jax.lax.top_k(-rank, k)
    chosen = mine[first]  # [k]
    xyz = jnp.asarray(t.coords)[first]  # [k, 3]
    dist = jnp.sum(jnp.abs(xyz[:, None, :] - xyz[None, :, :]), axis=-1)  # [k, k]
    both = chosen[:, None] & chosen[None, :] & jnp.triu(jnp.ones((k, k), bool), 1)
    total = jnp.sum(jnp.where(both, dist, 0)).astype(jnp.float32)
    pairs = jnp.sum(both)
    mean = total / jnp.maximum(pairs, 1)
    score = 10.0 / jnp.maximum(1.0, mean) + count * 0.5
    return jnp.where(pairs > 0, score, 0.0)


def _multiplayer(actions: Array, prox: Array, others: Array, i: Array, num_players: int):
    """(LPS action advantage, leader gap), both unweighted; 0 with two players."""
    if num_players <= 2:
        return jnp.float32(0.0), jnp.float32(0.0)
    with_action = jnp.sum(others & (actions > 0))
    advantage = jnp.where(actions[i] > 0, (num_players - 1 - with_action) / (num_players - 1), -1.0)
    opp = jnp.sort(jnp.where(others, prox, -jnp.inf))[::-1]
    return advantage, jnp.maximum(0.0, opp[0] - opp[1])
