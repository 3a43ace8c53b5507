"""Conversions between the fixtures' JSON (FIXTURES.md §1, traces/README.md) and rlloop.

Host-side numpy/Python. ``board_from_json`` builds a :class:`RingRiftBoard` from a serialised
``GameState`` (plus, optionally, the move history that the reference engine reads for its
turn-scoped facts, R17); ``board_to_json`` goes back. ``move_to_action`` maps a reference Move
object onto the fixed action space of :mod:`rlloop.games.ringrift.engine` (several reference
moves can map to one action when their effects are identical, e.g. ``process_line`` and
``choose_line_option``-all on an exact line, or a region listed once per controlling
player); ``action_to_move`` maps back to a canonical Move.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from rlloop.games.ringrift.engine import (
    CAPTURE,
    CHAIN,
    FORCED,
    K_ELIM,
    K_LINE,
    K_MOVE,
    K_PASS,
    K_PLACE,
    K_RECOVERY,
    K_TERRITORY,
    LINE,
    MOVEMENT,
    PHASE_NAMES,
    PLACEMENT,
    REASONS,
    TERRITORY,
    RingRiftBoard,
    Rules,
)

BOOKKEEPING = {
    "skip_placement", "no_placement_action", "skip_capture", "skip_recovery",
    "no_movement_action", "no_line_action", "skip_territory_processing", "no_territory_action",
}
PLACEMENT_PHASE_MOVES = {"place_ring", "skip_placement", "no_placement_action"}
NEVER = 2**30  # a victory threshold that cannot be reached (state without one, R11 note)


def _cell(rules: Rules, pos: Any) -> int:
    """Cell index of a position dict or key string (hex z completed as -x-y)."""
    if isinstance(pos, str):
        parts = [int(v) for v in pos.split(",")]
        x, y = parts[0], parts[1]
        if len(parts) == 3 and parts[0] + parts[1] + parts[2] != 0:
            raise ValueError(f"inconsistent hex key {pos!r}")
    else:
        x, y = int(pos["x"]), int(pos["y"])
        z = pos.get("z")
        if rules.geo.is_hex and z is not None and x + y + int(z) != 0:
            raise ValueError(f"inconsistent hex position {pos!r}")
    try:
        return rules.geo.cell_of(x, y)
    except KeyError:
        raise ValueError(f"off-board position {pos!r} on {rules.board_type}") from None


def _pos(rules: Rules, cell: int) -> dict:
    x, y = (int(v) for v in rules.geo.coords[cell])
    if rules.geo.is_hex:
        return {"x": x, "y": y, "z": -x - y}
    return {"x": x, "y": y}


def turn_facts(state: dict, history: list[dict] | None) -> dict:
    """Turn-scoped fields (R17) derived from the move history as the reference engine does."""
    facts = dict(acted=False, recov_turn=False, pending_terr=False, last_move_to=None)
    if not history:
        return facts
    cur = state["currentPlayer"]
    tail: list[dict] = []
    for mv in reversed(history):
        if mv.get("player") != cur:
            break
        tail.append(mv)
        if mv["type"] in PLACEMENT_PHASE_MOVES:
            break
    tail.reverse()
    if state.get("currentPhase") == "ring_placement":
        tail = []
    facts["acted"] = any(m["type"] not in BOOKKEEPING for m in tail)
    facts["recov_turn"] = any(m["type"] == "recovery_slide" for m in tail)
    if tail:
        last = tail[-1]
        facts["pending_terr"] = last["type"] in ("choose_territory_option",
                                                 "process_territory_region")
        if last["type"] == "move_stack":
            facts["last_move_to"] = last["to"]
    return facts


def board_from_json(rules: Rules, state: dict, history: list[dict] | None = None,
                    lps: dict | None = None) -> tuple[RingRiftBoard, int]:
    """(board, current player 1-based) from a serialised GameState."""
    n1, h_max, p = rules.N1, rules.H, rules.P
    jb = state["board"]
    if jb.get("type", rules.board_type) != rules.board_type:
        raise ValueError(f"board type {jb.get('type')} != {rules.board_type}")
    if len(state["players"]) != p:
        raise ValueError(f"{len(state['players'])} players, expected {p}")
    rings = np.zeros((n1, h_max), np.int8)
    height = np.zeros(n1, np.int8)
    stamp = np.zeros(n1, np.int32)
    for order, (key, st) in enumerate(jb.get("stacks", {}).items()):
        c = _cell(rules, key)
        rs = list(st["rings"])[::-1]  # bottom first
        if len(rs) > h_max:
            raise ValueError(f"stack of height {len(rs)} exceeds {h_max} slots")
        rings[c, : len(rs)] = rs
        height[c] = len(rs)
        stamp[c] = order
    marker = np.zeros(n1, np.int8)
    for key, mk in jb.get("markers", {}).items():
        marker[_cell(rules, key)] = mk["player"]
    collapsed = np.zeros(n1, np.int8)
    collapsed[rules.N] = -1
    for key, owner in jb.get("collapsedSpaces", {}).items():
        collapsed[_cell(rules, key)] = owner
    players = sorted(state["players"], key=lambda q: q["playerNumber"])
    hand = np.array([q["ringsInHand"] for q in players], np.int32)
    elim = np.array([q["eliminatedRings"] for q in players], np.int32)
    terr = np.array([q["territorySpaces"] for q in players], np.int32)
    be = jb.get("eliminatedRings", {}) or {}
    board_elim = np.array([be.get(str(i + 1), 0) for i in range(p)], np.int32)
    tre = state.get("totalRingsEliminated", int(board_elim.sum()))
    phase_name = state["currentPhase"]
    phase = PHASE_NAMES.index(phase_name)
    facts = turn_facts(state, history)

    def opt_cell(v):
        if v is None:
            return rules.N
        return _cell(rules, v)

    winner = state.get("winner") or 0
    lps = lps or {}
    mask = np.full(p, -1, np.int8)
    for k, v in (lps.get("currentRoundActorMask") or {}).items():
        mask[int(k) - 1] = 1 if v else 0
    board = RingRiftBoard(
        rings=jnp.asarray(rings), height=jnp.asarray(height), marker=jnp.asarray(marker),
        collapsed=jnp.asarray(collapsed), stamp=jnp.asarray(stamp),
        next_stamp=jnp.int32(len(jb.get("stacks", {}))),
        hand=jnp.asarray(hand), elim=jnp.asarray(elim), board_elim=jnp.asarray(board_elim),
        terr=jnp.asarray(terr), tre=jnp.int32(tre), phase=jnp.int32(phase),
        must_move=jnp.int32(opt_cell(state.get("mustMoveFromStackKey"))),
        chain_pos=jnp.int32(opt_cell(state.get("chainCapturePosition"))),
        last_move_to=jnp.int32(opt_cell(facts["last_move_to"])),
        pending_line=jnp.bool_(bool(state.get("pendingLineRewardElimination", False))),
        pending_terr=jnp.bool_(facts["pending_terr"]),
        acted=jnp.bool_(facts["acted"]), recov_turn=jnp.bool_(facts["recov_turn"]),
        winner=jnp.int32(winner), reason=jnp.int32(0),
        lps_first=jnp.int32(lps.get("currentRoundFirstPlayer") or 0),
        lps_mask=jnp.asarray(mask),
        lps_excl_player=jnp.int32(lps.get("consecutiveExclusivePlayer") or 0),
        lps_excl_rounds=jnp.int32(lps.get("consecutiveExclusiveRounds") or 0),
        lps_round=jnp.int32(lps.get("roundIndex") or 0),
        vt=jnp.int32(state["victoryThreshold"] if state.get("victoryThreshold") is not None
                     else NEVER),
        tvm=jnp.int32(state.get("territoryVictoryMinimum")
                      or state.get("territoryVictoryThreshold") or rules.TVM),
    )
    return board, int(state["currentPlayer"])


def board_to_json(rules: Rules, board: RingRiftBoard, player: int) -> dict:
    """Serialise a board in the fixtures' GameState shape (stacks in insertion order)."""
    b = jax.tree.map(np.asarray, board)
    stacks = {}
    cells = [c for c in range(rules.N) if b.height[c] > 0]
    for c in sorted(cells, key=lambda c: b.stamp[c]):
        rs = [int(v) for v in b.rings[c, : b.height[c]][::-1]]
        cap = 1
        while cap < len(rs) and rs[cap] == rs[0]:
            cap += 1
        stacks[rules.geo.key(c)] = {"position": _pos(rules, c), "rings": rs,
                                    "stackHeight": len(rs), "capHeight": cap,
                                    "controllingPlayer": rs[0]}
    markers = {rules.geo.key(c): {"position": _pos(rules, c), "player": int(b.marker[c]),
                                  "type": "regular"}
               for c in range(rules.N) if b.marker[c] > 0}
    collapsed = {rules.geo.key(c): int(b.collapsed[c]) for c in range(rules.N)
                 if b.collapsed[c] > 0}
    over = int(b.winner) > 0
    out = {
        "board": {"type": rules.board_type, "size": rules.geo.size, "stacks": stacks,
                  "markers": markers, "collapsedSpaces": collapsed,
                  "eliminatedRings": {str(i + 1): int(b.board_elim[i]) for i in range(rules.P)},
                  "formedLines": [], "territories": {}},
        "players": [{"playerNumber": i + 1, "ringsInHand": int(b.hand[i]),
                     "eliminatedRings": int(b.elim[i]), "territorySpaces": int(b.terr[i]),
                     "isActive": True} for i in range(rules.P)],
        "currentPlayer": int(player),
        "currentPhase": PHASE_NAMES[int(b.phase)],
        "gameStatus": "completed" if over else "active",
        "victoryThreshold": int(b.vt),
        "territoryVictoryThreshold": rules.N // 2 + 1,
        "territoryVictoryMinimum": int(b.tvm),
        "totalRingsEliminated": int(b.tre),
    }
    if int(b.chain_pos) < rules.N:
        out["chainCapturePosition"] = _pos(rules, int(b.chain_pos))
    if int(b.must_move) < rules.N:
        out["mustMoveFromStackKey"] = rules.geo.key(int(b.must_move))
    if bool(b.pending_line):
        out["pendingLineRewardElimination"] = True
    if over:
        out["winner"] = int(b.winner)
        out["victoryReason"] = REASONS[int(b.reason)]
    return out


# ---------------------------------------------------------------------- moves <-> actions
@functools.cache
def _regions_fn(rules: Rules):
    def f(board):
        s = rules.stacks(board)
        rg = rules.regions(board, s)
        return rg["labels"], rg["masks"], rg["region"]
    return jax.jit(f)


def _direction(rules: Rules, frm: int, to: int) -> tuple[int, int]:
    (fx, fy), (tx, ty) = rules.geo.coords[frm], rules.geo.coords[to]
    dx, dy = int(tx - fx), int(ty - fy)
    k = (abs(dx) + abs(dy) + abs(dx + dy)) // 2 if rules.geo.is_hex else max(abs(dx), abs(dy))
    if k == 0:
        raise ValueError("zero-length move")
    for d, (ux, uy) in enumerate(rules.geo.dirs):
        if ux * k == dx and uy * k == dy:
            return d, k
    raise ValueError(f"no straight direction from {frm} to {to}")


def _run_start(rules: Rules, cells: list[int]) -> tuple[int, int]:
    """(axis, first cell) of a set of cells consecutive along one line axis."""
    cs = set(cells)
    g = rules.geo
    for a in range(rules.A):
        starts = [c for c in cs if g.axis_prev[c, a] not in cs]
        if len(starts) != 1:
            continue
        c, seen = starts[0], 0
        while c in cs:
            seen += 1
            c = int(g.axis_next[c, a])
        if seen == len(cs):
            return a, starts[0]
    raise ValueError(f"cells {sorted(cs)} are not a straight run")


def move_to_action(rules: Rules, board: RingRiftBoard, player: int, move: dict) -> int:
    """Flat action index of a reference Move (raises ValueError for unsupported moves)."""
    t = move["type"]
    off = rules.offsets
    if t in BOOKKEEPING:
        return int(off[K_PASS])
    if t == "place_ring":
        c = _cell(rules, move["to"])
        return int(off[K_PLACE] + c * 3 + int(move.get("placementCount") or 1) - 1)
    if t in ("move_stack", "overtaking_capture", "continue_capture_segment",
             "continue_capture", "move_ring", "build_stack"):
        f, to = _cell(rules, move["from"]), _cell(rules, move["to"])
        d, k = _direction(rules, f, to)
        if k > rules.K:
            raise ValueError("move longer than any ray")
        return int(off[K_MOVE] + (f * rules.D + d) * rules.K + k - 1)
    if t == "recovery_slide":
        f, to = _cell(rules, move["from"]), _cell(rules, move["to"])
        d, k = _direction(rules, f, to)
        if k != 1:
            raise ValueError("recovery slide must be to an adjacent cell")
        mode = move.get("recoveryMode") or "line"
        v = {"fallback": 2, "stack_strike": 3}.get(mode)
        if v is None:
            v = 1 if int(move.get("option") or 1) == 2 else 0
        return int(off[K_RECOVERY] + (f * rules.D + d) * 4 + v)
    if t in ("process_line", "choose_line_option", "choose_line_reward"):
        if not move.get("formedLines"):
            raise ValueError(f"{t} without formedLines")
        line = [_cell(rules, q) for q in move["formedLines"][0]["positions"]]
        axis, start = _run_start(rules, line)
        if t == "process_line":
            if len(line) > rules.L:
                return int(off[K_PASS])  # R42 [EXEC]: no-op on an overlength line
            return int(off[K_LINE] + (axis * rules.N + start) * 2)
        chosen = move.get("collapsedMarkers") or []
        cells = [_cell(rules, q) for q in chosen]
        if not cells or set(cells) == set(line):
            return int(off[K_LINE] + (axis * rules.N + start) * 2)
        axis, start = _run_start(rules, cells)
        if len(cells) != rules.L:
            raise ValueError("Option-2 collapse must list exactly L cells")
        return int(off[K_LINE] + (axis * rules.N + start) * 2 + 1)
    if t in ("choose_territory_option", "process_territory_region"):
        if not move.get("disconnectedRegions"):
            raise ValueError(f"{t} without disconnectedRegions")
        cells = sorted({_cell(rules, q) for q in move["disconnectedRegions"][0]["spaces"]})
        labels, masks, region = (np.asarray(x) for x in _regions_fn(rules)(board))
        rep = cells[0]
        target = np.zeros(rules.N1, bool)
        target[cells] = True
        for pas in range(rules.P + 1):
            comp = (labels[pas] == rep) & masks[pas]
            if region[pas, rep] and np.array_equal(comp, target):
                return int(off[K_TERRITORY] + pas * rules.N + rep)
        raise ValueError("territory region not found by detection (R46)")
    if t in ("eliminate_rings_from_stack", "forced_elimination"):
        return int(off[K_ELIM] + _cell(rules, move["to"]))
    raise ValueError(f"unsupported move type {t!r}")


def action_to_move(rules: Rules, board: RingRiftBoard, player: int, action: int) -> dict:
    """A canonical reference Move for a flat action in the position ``board``."""
    b = jax.tree.map(np.asarray, board)
    kind = int(np.sum(action >= rules.offsets[1:]))
    idx = int(action - rules.offsets[kind])
    phase = int(b.phase)
    mv: dict = {"player": int(player)}
    if kind == K_PLACE:
        mv.update(type="place_ring", to=_pos(rules, idx // 3), placementCount=idx % 3 + 1)
    elif kind == K_MOVE:
        f, d, k = idx // (rules.D * rules.K), (idx // rules.K) % rules.D, idx % rules.K + 1
        cells = rules.geo.ray[f, d, :k]
        stack_steps = [i for i in range(k - 1) if b.height[cells[i]] > 0]
        to = int(cells[k - 1])
        mv.update(**{"from": _pos(rules, f)}, to=_pos(rules, to))
        if stack_steps:
            mv["captureTarget"] = _pos(rules, int(cells[stack_steps[0]]))
            mv["type"] = "continue_capture_segment" if phase == CHAIN else "overtaking_capture"
        else:
            mv["type"] = "move_stack"
    elif kind == K_RECOVERY:
        m, e, v = idx // (rules.D * 4), (idx // 4) % rules.D, idx % 4
        to = int(rules.geo.radj[m, e])
        mode = ("line", "line", "fallback", "stack_strike")[v]
        mv.update(type="recovery_slide", to=_pos(rules, to), recoveryMode=mode,
                  extractionStacks=[], **{"from": _pos(rules, m)})
        if v <= 1:
            mv["option"] = v + 1
    elif kind == K_LINE:
        axis, cell, w = idx // (rules.N * 2), (idx // 2) % rules.N, idx % 2
        cells, c = [], cell
        while c < rules.N and b.marker[c] == player:
            cells.append(c)
            c = int(rules.geo.axis_next[c, axis])
        start = cell
        while True:
            prev = int(rules.geo.axis_prev[start, axis])
            if prev < rules.N and b.marker[prev] == player:
                start = prev
            else:
                break
        line, c = [], start
        while c < rules.N and b.marker[c] == player:
            line.append(c)
            c = int(rules.geo.axis_next[c, axis])
        chosen = line if w == 0 else cells[: rules.L]
        mv.update(type="choose_line_option", to=_pos(rules, line[0]),
                  formedLines=[{"positions": [_pos(rules, q) for q in line],
                                "player": int(player), "length": len(line)}],
                  collapsedMarkers=[_pos(rules, q) for q in chosen])
    elif kind == K_TERRITORY:
        labels, masks, _ = (np.asarray(x) for x in _regions_fn(rules)(board))
        pas, rep = idx // rules.N, idx % rules.N
        cells = np.nonzero((labels[pas] == rep) & masks[pas])[0]
        mv.update(type="choose_territory_option", to=_pos(rules, rep),
                  disconnectedRegions=[{"spaces": [_pos(rules, int(q)) for q in cells],
                                        "controllingPlayer": int(player),
                                        "isDisconnected": True}])
    elif kind == K_ELIM:
        if phase == FORCED:
            mv.update(type="forced_elimination", to=_pos(rules, idx))
        else:
            ctx = "line" if phase == LINE else ("recovery" if bool(b.recov_turn) else "territory")
            mv.update(type="eliminate_rings_from_stack", to=_pos(rules, idx),
                      eliminationContext=ctx)
    else:
        name = {
            PLACEMENT: "no_placement_action", MOVEMENT: "no_movement_action",
            CAPTURE: "skip_capture", LINE: "no_line_action",
            TERRITORY: "no_territory_action",
        }.get(phase, "no_line_action")
        mv.update(type=name, to={"x": 0, "y": 0})
    return mv


def compare_board(rules: Rules, mine: RingRiftBoard, player: int, ref: dict,
                  *, check_stamps: bool = True) -> list[str]:
    """Differences between an engine board and a reference serialised state (empty = equal)."""
    other, ref_player = board_from_json(rules, ref)
    a = jax.tree.map(np.asarray, mine)
    o = jax.tree.map(np.asarray, other)
    diffs = []
    completed = ref.get("gameStatus") == "completed"
    for name in ("rings", "height", "marker", "collapsed", "hand", "elim", "board_elim",
                 "terr", "tre"):
        if not np.array_equal(getattr(a, name), getattr(o, name)):
            diffs.append(name)
    if completed:
        if int(a.winner) != int(ref.get("winner") or 0):
            diffs.append(f"winner {int(a.winner)} != {ref.get('winner')}")
    else:
        if int(a.winner) != 0:
            diffs.append("game over early")
        if int(a.phase) != int(o.phase):
            diffs.append(f"phase {PHASE_NAMES[int(a.phase)]} != {ref['currentPhase']}")
        if int(player) != ref_player:
            diffs.append(f"player {player} != {ref_player}")
        if int(a.chain_pos) != int(o.chain_pos) and int(a.phase) == CHAIN:
            diffs.append("chain_pos")
        if int(a.phase) == MOVEMENT and int(a.must_move) != int(o.must_move):
            diffs.append("must_move")
        if "pendingLineRewardElimination" in ref and bool(a.pending_line) != bool(
                ref["pendingLineRewardElimination"]):
            diffs.append("pending_line")
    if check_stamps:
        cells = [c for c in range(rules.N) if a.height[c] > 0]
        mine_order = sorted(cells, key=lambda c: a.stamp[c])
        ref_order = [_cell(rules, k) for k in ref["board"]["stacks"]]
        if mine_order != ref_order:
            diffs.append("stack order")
    return diffs
