"""Contract vectors v2 (FIXTURES.md §2) run through the engine, following the project runner's
procedure (§2.5) with the engine's *trusting* application path (R38, R51, R62).

``run_vector(vector)`` returns a :class:`Outcome`: whether the reference engine's phase /
player checks refuse the move (the ``REJ`` verdict), the engine-computed values of every
assertion key the vector lists, whether the move was also *legal* in the strict sense (in the
engine's legal-action mask), and the board-level subset of assertions.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from ringrift_jits import legal_fn, rules_for, trusting_step

from rlloop.games.ringrift import convert as cv
from rlloop.games.ringrift.engine import (
    FORCED,
    K_LINE,
    K_PASS,
    K_TERRITORY,
    LINE,
    PHASE_NAMES,
    REASONS,
    TERRITORY,
    Rules,
)

__all__ = ["legal_fn", "rules_for", "trusting_step"]

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared"
VECTORS = SHARED / "data" / "ringrift" / "contract-vectors" / "v2"

# FIXTURES.md §2.7 verdicts for every vector that is not plain OK / OK*.
REJ = {
    "chain_capture.depth3.segment2.hexagonal",
    "forced_elimination.monotone_chain.step2.square8",
    "forced_elimination.monotone_chain.final.square8",
    "meta.swap_sides.after_p1_first_move.square8",
    "territory.forced_elimination.simple_square8",
    "territory.forced_elimination.simple_hexagonal",
    "territory.hex_region_then_elim.step2_elim",
    "territory.square_region_then_elim.step2_elim",
    "territory.square_two_regions_then_elim.step2_regionA",
    "territory.square19_two_regions_then_elim.step2_regionA",
    "territory.hex_two_regions_then_elim.step2_regionA",
}
DIFF = {
    "multiplayer.line.2marker_no_line_3p",
    "recovery.exact_length_option1",
    "recovery.overlength_option1",
    "recovery.fallback_reposition",
    "territory.hex_region_then_elim.step1_region",
    "territory.hex_two_regions_then_elim.step1_regionB",
    "territory_line.overlong_line.step1.square8",
}
NOOP = -1  # a non-bookkeeping move that changes nothing: PASS, but it counts as acting (R19)
BOARD_KEYS = ("stackCount", "markerCount", "collapsedCount", "sInvariantDelta",
              "RingsInHand", "EliminatedRings", "TerritorySpaces")

PHASE_MOVES = {
    "ring_placement": {"place_ring", "skip_placement", "no_placement_action"},
    "movement": {"move_stack", "overtaking_capture", "recovery_slide", "skip_recovery",
                 "no_movement_action"},
    "capture": {"overtaking_capture", "skip_capture"},
    "chain_capture": {"continue_capture_segment", "continue_capture"},
    "line_processing": {"process_line", "choose_line_option", "choose_line_reward",
                        "eliminate_rings_from_stack", "no_line_action"},
    "territory_processing": {"choose_territory_option", "process_territory_region",
                             "eliminate_rings_from_stack", "skip_territory_processing",
                             "no_territory_action"},
    "forced_elimination": {"forced_elimination"},
}


def load_vectors() -> list[dict]:
    """Every vector of the runnable files (the reference-only file excluded)."""
    out = []
    for path in sorted(VECTORS.glob("*.vectors.json")):
        out.extend(json.loads(path.read_text())["vectors"])
    return out


def verdict(vector: dict) -> str:
    vid = vector["id"]
    if vector.get("skip") or "expectedPhaseSequence" in vector["input"]:
        return "SKIP"
    if len(vector["input"]["state"]["players"]) == 1:
        return "1P"  # one-player fixture states: not an rlloop configuration
    if vid in REJ:
        return "REJ"
    if vid in DIFF:
        return "DIFF"
    return "OK"


class Refused(ValueError):
    """The reference engine refuses this move in this state (player or phase mismatch)."""


def check_allowed(state: dict, move: dict) -> None:
    """Raise :class:`Refused` as the reference engine does (FIXTURES.md §2.5 step 2)."""
    if move.get("player") != state["currentPlayer"]:
        raise Refused(f"move by player {move.get('player')} while player "
                      f"{state['currentPlayer']} is to move")
    if move["type"] not in PHASE_MOVES.get(state["currentPhase"], set()):
        raise Refused(f"move type {move['type']} not allowed in phase {state['currentPhase']}")


@dataclasses.dataclass
class Outcome:
    refused: str | None = None
    actual: dict = dataclasses.field(default_factory=dict)
    strict_legal: bool = True
    status: str = ""  # after the runner's auto-completion
    status_before: str = ""  # right after the vector's move(s)


def _facts(rules: Rules, board) -> dict:
    b = jax.tree.map(np.asarray, board)
    n = rules.N
    return dict(stacks=int((b.height[:n] > 0).sum()), markers=int((b.marker[:n] > 0).sum()),
                collapsed=int((b.collapsed[:n] > 0).sum()), tre=int(b.tre))


def _to_action(rules: Rules, board, player: int, move: dict, legal: np.ndarray):
    """(action, cells override) for the trusting application of ``move``."""
    cells = np.zeros(rules.N1, bool)
    t = move["type"]
    if t in ("choose_territory_option", "process_territory_region"):
        regions = move.get("disconnectedRegions") or []
        terr = [a for a in np.flatnonzero(legal)
                if rules.offsets[K_TERRITORY] <= a < rules.offsets[K_TERRITORY + 1]]
        if regions:
            ids = [cv._cell(rules, q) for q in regions[0]["spaces"]]
            cells[ids] = True
            if not _processable(rules, board, player, cells):
                return NOOP, np.zeros(rules.N1, bool)  # R51 no-op
            return int(rules.offsets[K_TERRITORY] + min(ids)), cells
        # R51 fallback: the only processable region, or the one whose first cell is `to`
        if not terr:
            return NOOP, cells
        if len(terr) == 1:
            return int(terr[0]), cells
        to = cv._cell(rules, move["to"])
        match = [a for a in terr if (a - rules.offsets[K_TERRITORY]) % rules.N == to]
        return int(match[0] if match else terr[0]), cells
    if t == "process_line" and not move.get("formedLines"):
        # R42: the player's first detected line; a no-op when it is overlength
        lines = rules.lines(board, jnp.int32(player))
        starts = np.argwhere(np.asarray(lines["all_ok"])[: rules.N])  # (cell, axis) pairs
        if not len(starts):
            return int(rules.offsets[K_PASS]), cells
        cell, axis = (int(v) for v in starts[0])
        length = int(np.asarray(lines["fwd"])[cell, axis])
        if length > rules.L:
            return NOOP, cells
        return int(rules.offsets[K_LINE] + (axis * rules.N + cell) * 2), cells
    action = cv.move_to_action(rules, board, player, move)
    if t == "recovery_slide" and move.get("collapsePositions"):
        cells[[cv._cell(rules, q) for q in move["collapsePositions"]]] = True
    return action, cells


def _processable(rules: Rules, board, player: int, region: np.ndarray) -> bool:
    """R48 (normal context): ``player`` controls a stack outside ``region``."""
    b = jax.tree.map(np.asarray, board)
    for c in range(rules.N):
        h = int(b.height[c])
        if h and not region[c] and int(b.rings[c, h - 1]) == player:
            return True
    return False


def load_for_move(rules: Rules, state: dict, move: dict):
    """(board, player) of a fixture state, with the turn fields of FIXTURES.md §8 step 6."""
    history = state.get("moveHistory") or []
    board, player = cv.board_from_json(rules, state, history)
    phase = state["currentPhase"]
    ctx = move.get("eliminationContext") or "territory"
    if phase == "capture" and int(board.last_move_to) == rules.N and not history:
        board = board.replace(last_move_to=jnp.int32(cv._cell(rules, move["from"])))
    if phase == "chain_capture" and int(board.chain_pos) == rules.N and history:
        board = board.replace(chain_pos=jnp.int32(cv._cell(rules, history[-1]["to"])))
    if move["type"] == "eliminate_rings_from_stack":
        if phase == "territory_processing" and ctx != "line":
            board = board.replace(pending_terr=jnp.bool_(True))
        if phase == "line_processing" and ctx == "line":
            board = board.replace(pending_line=jnp.bool_(True))
    return board, player


def apply_trusting(config: str, board, player: int, move: dict):
    """Apply ``move`` with the trusting path; returns (board, player, strictly legal)."""
    rules = rules_for(config)
    mask = np.asarray(legal_fn(config)(board, jnp.int32(player)))
    action, cells = _to_action(rules, board, player, move, mask)
    try:
        strict = bool(mask[cv.move_to_action(rules, board, player, move)])
    except ValueError:
        strict = False
    if action == NOOP:
        action = int(rules.offsets[K_PASS])
        board = board.replace(acted=jnp.bool_(True))
    b2, p2, _, _ = trusting_step(config)(board, jnp.int32(player), jnp.int32(action),
                                         jnp.asarray(cells))
    return b2, int(p2), strict


def run_vector(vector: dict) -> Outcome:
    state = vector["input"]["state"]
    players = len(state["players"])
    config = f"{state['board']['type']}_{players}p"
    rules = rules_for(config)
    move = vector["input"].get("move") or vector["input"]["initialMove"]
    out = Outcome()
    try:
        check_allowed(state, move)
    except Refused as err:
        out.refused = str(err)
        return out
    board, player = load_for_move(rules, state, move)
    before = _facts(rules, board)

    def apply(board, player, mv):
        b2, p2, strict = apply_trusting(config, board, player, mv)
        out.strict_legal = out.strict_legal and strict
        return b2, p2

    mover = player
    board, player = apply(board, player, move)
    segments = 1
    for seg in vector["input"].get("expectedChainSequence", [])[1:]:
        cont = {"type": "continue_capture_segment", "player": mover, "from": seg["from"],
                "captureTarget": seg["captureTarget"], "to": seg["landing"]}
        board, player = apply(board, player, cont)
        segments += 1
    after_chain = board
    decision = (PHASE_NAMES.index("chain_capture"), LINE, TERRITORY, FORCED)
    awaiting = (int(board.winner) == 0 and int(board.phase) in decision and player == mover)
    out.status = out.status_before = "awaiting_decision" if awaiting else "complete"
    if vector["expectedOutput"].get("status") == "complete" and awaiting:
        for _ in range(10):  # §2.5 step 3: the runner's auto-completion
            if int(board.winner) or int(board.phase) not in (LINE, TERRITORY):
                break
            board, player = apply(board, player, {"type": "no_line_action", "player": player})
        awaiting = (int(board.winner) == 0 and int(board.phase) in decision
                    and player == mover)
        out.status = "awaiting_decision" if awaiting else "complete"
    after = _facts(rules, board)
    b = jax.tree.map(np.asarray, board)
    over = int(b.winner) > 0
    actual = {
        "currentPlayer": player,
        "currentPhase": "game_over" if over else PHASE_NAMES[int(b.phase)],
        "gameStatus": "completed" if over else "active",
        "stackCount": after["stacks"], "markerCount": after["markers"],
        "collapsedCount": after["collapsed"],
        "sInvariantDelta": (after["markers"] + after["collapsed"] + after["tre"])
        - (before["markers"] + before["collapsed"] + before["tre"]),
        "victoryWinner": int(b.winner) if over else None,
        "victoryReason": REASONS[int(b.reason)] if over else None,
    }
    for i in range(players):
        actual[f"player{i + 1}RingsInHand"] = int(b.hand[i])
        actual[f"player{i + 1}EliminatedRings"] = int(b.elim[i])
        actual[f"player{i + 1}TerritorySpaces"] = int(b.terr[i])
    if int(b.phase) == LINE and not over:
        lines = rules.lines(board, jnp.int32(player))
        if bool(lines["has_line"]):
            actual["pendingDecisionType"] = "select_line_to_process"
    if "expectedChainSequence" in vector["input"]:
        seq = vector["input"]["expectedChainSequence"]
        fin = jax.tree.map(np.asarray, after_chain)
        land = cv._cell(rules, seq[-1]["landing"])
        h = int(fin.height[land])
        targets = {cv._cell(rules, s["captureTarget"]) for s in seq}
        actual.update(
            totalCapturesInChain=segments,
            finalStackHeight=h,
            finalStackController=int(fin.rings[land, h - 1]) if h else None,
            targetStacksRemaining=sum(int(fin.height[t] > 0) for t in targets),
            markersCreated=_facts(rules, after_chain)["markers"] - before["markers"],
        )
        actual["_finalMarkers"] = sorted(rules.geo.keys[c] for c in range(rules.N)
                                         if fin.marker[c] > 0)
    if move["type"] == "recovery_slide":
        actual["extractionCount"] = int(b.elim[mover - 1]) - int(
            state["players"][mover - 1]["eliminatedRings"]) - (
            1 if move.get("recoveryMode") == "stack_strike" else 0)
        actual["noLineCollapse"] = after["collapsed"] == before["collapsed"]
    out.actual = actual
    return out
