"""Branch-free RingRift rules (RULES.md R1–R83) on fixed-shape arrays.

Everything here is pure ``jax.numpy``; loops are ``lax.fori_loop`` / bounded ``lax.while_loop``
(label propagation, capped at the cell count). One :class:`Rules` object holds the static
configuration of a (board, player count) pair and its geometry tables.

Players are numbered 1..P on the board (0 = none), as in the fixtures; the rlloop ``State``
uses ``current_player = p - 1``.

Action encoding (fixed per configuration; ``N`` cells, ``D`` move directions, ``K`` longest
ray, ``A`` line axes, ``P`` players, ``L`` effective line length):

=========  ==================  =============================================================
kind       size                index / meaning
=========  ==================  =============================================================
PLACE      N * 3               ``cell * 3 + (count - 1)`` — ``place_ring`` (R24)
MOVE       N * D * K           ``(cell * D + d) * K + (k - 1)`` — move or capture from
                               ``cell`` landing ``k`` steps along direction ``d`` (J4);
                               a capture when a stack lies strictly before the landing
RECOVERY   N * D * 4           ``(cell * D + e) * 4 + v`` — ``recovery_slide`` of the marker on
                               ``cell`` towards direction ``e``; ``v`` = 0 line Option 1,
                               1 line Option 2 (generator default window), 2 fallback,
                               3 stack strike (``e`` points at the struck stack)
LINE       A * N * 2           ``(axis * N + cell) * 2 + w`` — ``w = 0``: collapse the whole
                               own line that starts at ``cell`` (``process_line`` on an
                               exact line / ``choose_line_option`` all); ``w = 1``: collapse
                               the ``L`` cells starting at ``cell`` (Option 2 window)
TERRITORY  (P + 1) * N         ``pass * N + rep`` — ``choose_territory_option`` of the region
                               found in detection pass ``pass`` (0..P-1: marker colour
                               pass+1, P: collapsed pass) whose smallest cell is ``rep``;
                               a region found by several passes uses the first
ELIM       N                   ``cell`` — line-reward / territory / recovery-context /
                               forced elimination on that stack (semantics from the phase)
PASS       1                   the phase's bookkeeping move: skip/no placement, skip
                               recovery / no movement, skip capture, no line action (or the
                               no-op ``process_line`` on an overlength line, R42 [EXEC]),
                               skip territory / no territory action
=========  ==================  =============================================================
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from rlloop.games.ringrift.geometry import (
    effective_line_length,
    geometry,
    territory_minimum,
    victory_threshold,
)

Array = jax.Array

# Phases (R18).
PLACEMENT, MOVEMENT, CAPTURE, CHAIN, LINE, TERRITORY, FORCED, GAME_OVER = range(8)
PHASE_NAMES = (
    "ring_placement",
    "movement",
    "capture",
    "chain_capture",
    "line_processing",
    "territory_processing",
    "forced_elimination",
    "game_over",
)
# Action kinds.
K_PLACE, K_MOVE, K_RECOVERY, K_LINE, K_TERRITORY, K_ELIM, K_PASS = range(7)
# Victory reasons.
REASONS = ("", "ring_elimination", "territory_control", "last_player_standing",
           "tiebreaker_by_player_number")


@chex.dataclass(frozen=True)
class RingRiftBoard:
    """The position and turn bookkeeping. ``N1 = N + 1`` (sentinel cell ``N``), ``H`` ring
    slots, ``P`` players (board values 1..P, 0 = none)."""

    rings: Array  # [N1, H] int8: ring owners, bottom first (slot 0 = bottom ring)
    height: Array  # [N1] int8: stack height (0 = no stack)
    marker: Array  # [N1] int8: marker owner (0 = none)
    collapsed: Array  # [N1] int8: collapsed owner (0 = open; sentinel = -1)
    stamp: Array  # [N1] int32: stack insertion order (the reference's Map order, R62)
    next_stamp: Array  # [] int32
    hand: Array  # [P] int32: rings in hand
    elim: Array  # [P] int32: credited eliminated rings (players[].eliminatedRings)
    board_elim: Array  # [P] int32: board.eliminatedRings
    terr: Array  # [P] int32: territorySpaces counters
    tre: Array  # [] int32: totalRingsEliminated
    phase: Array  # [] int32: PLACEMENT..GAME_OVER
    must_move: Array  # [] int32: mustMoveFrom cell (N = none)
    chain_pos: Array  # [] int32: chainCapturePosition (N = none)
    last_move_to: Array  # [] int32: landing of the last move_stack (N = none)
    pending_line: Array  # [] bool: pendingLineRewardElimination (R43)
    pending_terr: Array  # [] bool: territory self-elimination owed (R52)
    acted: Array  # [] bool: a non-bookkeeping move was made this turn (R17)
    recov_turn: Array  # [] bool: a recovery slide was made this turn (R53)
    winner: Array  # [] int32: 0 none, else seat
    reason: Array  # [] int32: index into REASONS
    lps_first: Array  # [] int32: LPS round's first player (0 none) (R68)
    lps_mask: Array  # [P] int8: -1 unset, 0/1 real action available this round
    lps_excl_player: Array  # [] int32 (0 none)
    lps_excl_rounds: Array  # [] int32
    lps_round: Array  # [] int32: roundIndex (informational)
    vt: Array  # [] int32: ring-elimination victory threshold (R10; fixtures may differ)
    tvm: Array  # [] int32: territory victory minimum (R11)


def _materialize(tree, runtime_zero_or_more: Array):
    """``tree`` unchanged, but computed into buffers: passed through a while loop that XLA
    cannot prove runs once (``runtime_zero_or_more`` >= 0 is known only at run time).

    XLA's CPU fusion copies cheap elementwise producers into every consumer, gathers
    included, and does not honour ``lax.optimization_barrier`` there. The board after the
    step's ``lax.switch`` (under vmap: a select over all seven move kinds) fed the ray
    gather (N1*D*K reads of N1 cells), which then recomputed that select once per read."""
    never = runtime_zero_or_more < 0  # False, but not to XLA: the loop must carry the tree

    def body(carry):
        i, t = carry
        return i + 1, jax.tree.map(
            lambda x: x | never if x.dtype == jnp.bool_ else x + never.astype(x.dtype), t)

    once = (~never).astype(jnp.int32)
    return lax.while_loop(lambda c: c[0] < once, body, (jnp.int32(0), tree))[1]


class Rules:
    """Static configuration and pure rule functions for one (board type, player count)."""

    def __init__(self, board_type: str, num_players: int, *, lps_rounds: int = 3):
        g = geometry(board_type)
        self.geo = g
        self.board_type = board_type
        self.P = num_players
        self.N = g.num_cells
        self.N1 = g.num_cells + 1
        self.H = g.max_height
        self.D = g.num_dirs
        self.K = g.max_ray
        self.A = g.num_axes
        self.R = g.rings_per_player
        self.L = effective_line_length(board_type, num_players)
        self.T = max(g.base_line_length, self.L)  # detection length (R9 [EXEC])
        self.base = g.base_line_length
        self.VT = victory_threshold(board_type, num_players)
        self.TVM = territory_minimum(board_type, num_players)
        self.lps_rounds = lps_rounds
        n, d, k, a, p = self.N, self.D, self.K, self.A, self.P
        self.n_place = n * 3
        self.n_move = n * d * k
        self.n_recovery = n * d * 4
        self.n_line = a * n * 2
        self.n_territory = (p + 1) * n
        self.n_elim = n
        sizes = [self.n_place, self.n_move, self.n_recovery, self.n_line, self.n_territory,
                 self.n_elim, 1]
        self.offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int32)
        self.num_actions = int(self.offsets[-1])
        # jnp tables
        self.ray = jnp.asarray(g.ray)
        self.axis_next = jnp.asarray(g.axis_next)
        self.axis_prev = jnp.asarray(g.axis_prev)
        self.tadj = jnp.asarray(g.tadj)
        self.radj = jnp.asarray(g.radj)
        self.badj = jnp.asarray(g.badj)
        self.dir_axis = jnp.asarray(g.dir_axis)
        self.dir_sign = jnp.asarray(g.dir_sign)
        self.rec_axis_order = jnp.asarray(g.rec_axis_order)
        rng = np.random.default_rng(12345)
        self.hash_w = jnp.asarray(rng.integers(1, 2**31 - 1, size=self.N1, dtype=np.int64)
                                  .astype(np.int32))
        self.on_board = jnp.asarray(np.arange(self.N1) < n)

    # ------------------------------------------------------------------ initial state
    def initial_board(self) -> RingRiftBoard:
        n1, p = self.N1, self.P
        collapsed = jnp.zeros(n1, jnp.int8).at[self.N].set(-1)
        zp = jnp.zeros(p, jnp.int32)
        return RingRiftBoard(
            rings=jnp.zeros((n1, self.H), jnp.int8),
            height=jnp.zeros(n1, jnp.int8),
            marker=jnp.zeros(n1, jnp.int8),
            collapsed=collapsed,
            stamp=jnp.zeros(n1, jnp.int32),
            next_stamp=jnp.int32(0),
            hand=jnp.full(p, self.R, jnp.int32),
            elim=zp,
            board_elim=zp,
            terr=zp,
            tre=jnp.int32(0),
            phase=jnp.int32(PLACEMENT),
            must_move=jnp.int32(self.N),
            chain_pos=jnp.int32(self.N),
            last_move_to=jnp.int32(self.N),
            pending_line=jnp.bool_(False),
            pending_terr=jnp.bool_(False),
            acted=jnp.bool_(False),
            recov_turn=jnp.bool_(False),
            winner=jnp.int32(0),
            reason=jnp.int32(0),
            lps_first=jnp.int32(0),
            lps_mask=jnp.full(p, -1, jnp.int8),
            lps_excl_player=jnp.int32(0),
            lps_excl_rounds=jnp.int32(0),
            lps_round=jnp.int32(0),
            vt=jnp.int32(self.VT),
            tvm=jnp.int32(self.TVM),
        )

    # ------------------------------------------------------------------ derived facts
    def stacks(self, b: RingRiftBoard) -> dict:
        """Height, controller, cap height and per-player ring facts of every cell."""
        h = b.height.astype(jnp.int32)  # [N1]
        rings = b.rings.astype(jnp.int32)  # [N1, H]
        slot = jnp.arange(self.H)
        top = jnp.take_along_axis(rings, jnp.clip(h - 1, 0, self.H - 1)[:, None], 1)[:, 0]
        top = jnp.where(h > 0, top, 0)
        breaks = (slot[None, :] < h[:, None]) & (rings != top[:, None])
        last_break = jnp.max(jnp.where(breaks, slot[None, :], -1), axis=1)
        cap = jnp.where(h > 0, h - 1 - last_break, 0)
        players = jnp.arange(1, self.P + 1)
        owned = rings[:, :, None] == players[None, None, :]  # [N1, H, P]
        ring_count = owned.sum(axis=(0, 1))  # [P] rings of each colour on board
        below_top = slot[None, :] < (h[:, None] - 1)
        buried = jnp.any(owned & below_top[:, :, None], axis=1)  # [N1, P]
        return dict(h=h, top=top, cap=cap, is_stack=h > 0, ring_count=ring_count, buried=buried)

    def ray_facts(self, b: RingRiftBoard, s: dict) -> dict:
        """Per (cell, direction): first stop, target cap, free steps (R29, R32)."""
        blocked = b.collapsed != 0  # includes sentinel
        stop_cell = s["is_stack"] | blocked  # [N1]
        stop = stop_cell[self.ray]  # [N1, D, K]
        cs = jnp.cumsum(stop.astype(jnp.int32), axis=-1)
        any_stop = cs[..., -1] > 0
        first = jnp.argmax(stop, axis=-1)  # index of first stop (0-based)
        target = jnp.take_along_axis(self.ray, first[..., None], -1)[..., 0]
        target = jnp.where(any_stop, target, self.N)
        stop_is_stack = any_stop & s["is_stack"][target]
        free_len = jnp.where(any_stop, first, self.K)
        free_after = jnp.sum((cs == 1) & ~stop, axis=-1)
        return dict(stop=stop, cs=cs, first=first, target=target, stop_is_stack=stop_is_stack,
                    free_len=free_len, free_after=free_after, tcap=s["cap"][target])

    def can_act(self, r: dict, h: Array, cap: Array) -> Array:
        """Whether a stack of height ``h`` and cap ``cap`` (shape [N1, ...]) standing on each
        cell has a legal move or capture (R29)."""
        extra = h.ndim - 1
        ex = (lambda x: x.reshape(x.shape + (1,) * extra)) if extra else (lambda x: x)
        fl, fa = ex(r["free_len"]), ex(r["free_after"])
        sis, tc = ex(r["stop_is_stack"]), ex(r["tcap"])
        j = ex(r["first"] + 1)
        hh, cc = h[:, None], cap[:, None]
        mv = fl >= hh
        cp = sis & (fa >= 1) & (j + fa >= hh) & (cc >= tc)
        return jnp.any(mv | cp, axis=1)

    def move_table(self, s: dict, r: dict) -> tuple[Array, Array]:
        """(move_ok, cap_ok): bool [N1, D, K] geometry legality for the stack on each cell."""
        kk = jnp.arange(1, self.K + 1)
        h = s["h"][:, None, None]
        move_ok = (r["cs"] == 0) & (kk >= h) & s["is_stack"][:, None, None]
        cap_ok = ((r["cs"] == 1) & ~r["stop"] & r["stop_is_stack"][..., None] & (kk >= h)
                  & (s["cap"][:, None, None] >= r["tcap"][..., None])
                  & s["is_stack"][:, None, None])
        return move_ok, cap_ok

    def placement_legal(self, b: RingRiftBoard, s: dict, r: dict, p: Array) -> Array:
        """bool [N, 3]: ``place_ring`` of 1..3 rings on each cell by player ``p`` (R24–R25)."""
        cnt = jnp.arange(1, 4)[None, :]
        empty = (~s["is_stack"]) & (b.marker == 0) & (b.collapsed == 0)
        on_stack = s["is_stack"]
        base = (empty[:, None] & (cnt <= 3)) | (on_stack[:, None] & (cnt == 1))
        hand = b.hand[p - 1]
        supply = self.R - s["ring_count"][p - 1]
        ok = base & (cnt <= hand) & (cnt <= supply)
        h2 = s["h"][:, None] + cnt
        cap2 = jnp.where((s["top"] == p)[:, None], s["cap"][:, None] + cnt, cnt)
        acts = self.can_act(r, h2, cap2)  # [N1, 3]
        return (ok & acts)[: self.N]

    def lines(self, b: RingRiftBoard, p: Array) -> dict:
        """Runs of ``p``'s markers along each axis (R39)."""
        m = (b.marker == p) & self.on_board  # [N1]
        mi = m.astype(jnp.int32)
        ax = jnp.arange(self.A)[None, :]

        def run(table):
            def body(_, f):
                return mi[:, None] * (1 + f[table, ax])
            return lax.fori_loop(0, self.K + 1, body, jnp.zeros((self.N1, self.A), jnp.int32))

        fwd = run(self.axis_next)
        bwd = run(self.axis_prev)
        total = jnp.where(m[:, None], fwd + bwd - 1, 0)
        start = m[:, None] & ~m[self.axis_prev]
        all_ok = start & (fwd >= self.T)  # [N1, A]
        window_ok = m[:, None] & (total >= self.T) & (total > self.L) & (fwd >= self.L)
        overlength = jnp.any(all_ok & (fwd > self.L))
        return dict(m=m, fwd=fwd, bwd=bwd, all_ok=all_ok, window_ok=window_ok,
                    has_line=jnp.any(all_ok), overlength=overlength)

    def recovery(self, b: RingRiftBoard, s: dict, ln: dict, p: Array) -> dict:
        """Recovery eligibility (R60) and legal slides (R61): bool [N1, D, 4]."""
        controls = jnp.any(s["is_stack"] & (s["top"] == p))
        has_marker = jnp.any(ln["m"])
        has_buried = jnp.any(s["buried"][:, p - 1])
        eligible = ~controls & has_marker & has_buried
        t = self.radj  # [N1, D]
        t_empty = (~s["is_stack"][t]) & (b.marker[t] == 0) & (b.collapsed[t] == 0)
        ax = jnp.arange(self.A)
        nxt = self.axis_next[t]  # [N1, D, A]
        prv = self.axis_prev[t]
        side_f = ln["fwd"][nxt, ax]  # [N1, D, A]
        side_b = ln["bwd"][prv, ax]
        parallel = self.dir_axis[None, :, None] == ax[None, None, :]
        plus = (self.dir_sign == 1)[None, :, None]
        side_f = jnp.where(parallel & ~plus, 0, side_f)
        side_b = jnp.where(parallel & plus, 0, side_b)
        run = 1 + side_f + side_b
        ell = jnp.max(run, axis=-1)
        src = ln["m"][:, None] & t_empty
        line_ok = src & (ell >= self.L)
        any_line = jnp.any(line_ok)
        fallback = src & ~any_line
        strike = ln["m"][:, None] & s["is_stack"][t] & ~any_line
        legal = jnp.stack([line_ok, line_ok & (ell > self.L), fallback, strike], axis=-1)
        legal = legal & eligible
        return dict(eligible=eligible, legal=legal, run=run)

    def regions(self, b: RingRiftBoard, s: dict) -> dict:
        """Region detection (R46): labels per pass and region flags per (pass, rep cell)."""
        n1, p = self.N1, self.P
        open_ = b.collapsed == 0  # sentinel excluded
        colours = jnp.arange(1, p + 1)
        masks = jnp.concatenate(
            [open_[None, :] & (b.marker[None, :] != colours[:, None]), open_[None, :]], 0
        )  # [P+1, N1]
        idx = jnp.arange(n1)
        big = jnp.int32(n1)

        def label_one(mask):
            lab0 = jnp.where(mask, idx, big)

            def body(carry):
                # a cell outside the mask (the sentinel included) keeps label ``big``
                lab, _ = carry
                new = jnp.where(mask, jnp.minimum(lab, lab[self.tadj].min(axis=1)), big)
                new = jnp.where(mask, new[jnp.clip(new, 0, n1 - 1)], big)  # pointer jumping
                return new, jnp.any(new != lab)

            lab, _ = lax.while_loop(lambda c: c[1], body, (lab0, jnp.bool_(True)))
            return lab

        labels = jax.vmap(label_one)(masks)  # [P+1, N1]
        seg = jnp.where(masks, labels, n1 - 1)  # sentinel cell as dump segment
        ctrl_hot = (s["is_stack"][:, None] & (s["top"][:, None] == colours[None, :]))
        ctrl_hot = ctrl_hot.astype(jnp.int32)  # [N1, P]

        def per_pass(sg, mask):
            rep = jax.ops.segment_max(ctrl_hot * mask[:, None], sg, num_segments=n1)
            rep = jnp.maximum(rep, 0)
            ctrl_in = jax.ops.segment_sum(ctrl_hot * mask[:, None], sg, num_segments=n1)
            bur_in = jax.ops.segment_sum((s["buried"] & s["is_stack"][:, None]).astype(jnp.int32)
                                         * mask[:, None], sg, num_segments=n1)
            hsh = jax.ops.segment_sum(jnp.where(mask, self.hash_w, 0), sg, num_segments=n1)
            size = jax.ops.segment_sum(mask.astype(jnp.int32), sg, num_segments=n1)
            return rep, ctrl_in, bur_in, hsh, size

        rep, ctrl_in, bur_in, hsh, size = jax.vmap(per_pass)(seg, masks)
        rep_count = rep.sum(-1)  # [P+1, N1]
        active = jnp.sum(s["ring_count"] > 0)
        colour_present = jnp.any(b.marker[None, :] == colours[:, None], axis=1)  # [P]
        is_comp = (labels == idx[None, :]) & masks
        is_comp = is_comp & (idx[None, :] < self.N)
        marker_pass = jnp.concatenate([colour_present, jnp.array([False])])[:, None]
        cond_marker = marker_pass & (rep_count < active)
        cond_coll = (jnp.arange(p + 1) == p)[:, None] & (rep_count == 1) & (rep_count < active)
        region = is_comp & (active > 0) & (cond_marker | cond_coll)
        # de-duplicate identical cell sets across passes (keep the first pass)
        same = ((hsh[:, None, :] == hsh[None, :, :]) & (size[:, None, :] == size[None, :, :])
                & region[:, None, :] & region[None, :, :])  # [P+1, P+1, N1]
        earlier = jnp.arange(p + 1)[None, :] < jnp.arange(p + 1)[:, None]  # [b, b'] b' < b
        dup = jnp.any(same & earlier[:, :, None], axis=1)
        region = region & ~dup
        return dict(labels=labels, masks=masks, region=region, ctrl_in=ctrl_in, bur_in=bur_in)

    def component(self, b: RingRiftBoard, pas: Array, rep: Array) -> Array:
        """bool [N1]: the region that detection pass ``pas`` finds around cell ``rep`` (R46):
        ``rep``'s connected component of that pass's mask (``regions``' label ``rep``), by
        flooding from ``rep`` instead of labelling every region of every pass."""
        colour = pas + 1  # pass P (collapsed pass) matches no marker colour
        mask = (b.collapsed == 0) & ((pas == self.P) | (b.marker != colour))
        seed = (jnp.arange(self.N1) == rep) & mask

        def body(carry):
            reach, _ = carry
            new = reach | (mask & jnp.any(reach[self.tadj], axis=1))
            return new, jnp.any(new != reach)

        region, _ = lax.while_loop(lambda c: c[1], body, (seed, jnp.bool_(True)))
        return region

    def processable(self, s: dict, rg: dict, p: Array, recovery_ctx: Array) -> Array:
        """bool [P+1, N1]: regions processable by ``p`` (R48)."""
        ctrl_total = jnp.sum(s["is_stack"] & (s["top"] == p))
        bur_total = jnp.sum(s["buried"][:, p - 1] & s["is_stack"])
        normal = ctrl_total - rg["ctrl_in"][:, :, p - 1] > 0
        recov = bur_total - rg["bur_in"][:, :, p - 1] > 0
        return rg["region"] & jnp.where(recovery_ctx, recov, normal)

    # ------------------------------------------------------------------ analysis + mask
    def analyze_board(self, b: RingRiftBoard) -> dict:
        """Player-independent facts: stacks, rays, move/capture tables, region labels."""
        s = self.stacks(b)
        r = self.ray_facts(b, s)
        move_ok, cap_ok = self.move_table(s, r)
        rg = self.regions(b, s)
        acts = self.can_act(r, s["h"], s["cap"])
        return dict(s=s, r=r, move_ok=move_ok, cap_ok=cap_ok, rg=rg, acts=acts)

    def analyze_player(self, b: RingRiftBoard, p: Array, base: dict) -> dict:
        """Add the facts of player ``p`` (lines, recovery, processable regions) to ``base``."""
        s = base["s"]
        ln = self.lines(b, p)
        rc = self.recovery(b, s, ln, p)
        proc = self.processable(s, base["rg"], p, b.recov_turn)
        mine = s["is_stack"] & (s["top"] == p)
        return dict(base, ln=ln, rc=rc, proc=proc, mine=mine,
                    controls=jnp.any(mine[: self.N]), has_region=jnp.any(proc))

    def analyze(self, b: RingRiftBoard, p: Array) -> dict:
        """Everything the legal mask and the transitions need for player ``p``."""
        return self.analyze_player(b, p, self.analyze_board(b))

    def analyze_move(self, b: RingRiftBoard, p: Array) -> dict:
        """What the move kinds read before the move (stacks, lines, recovery): the whole-board
        ray and region tables of ``analyze`` are left out (a move reads one ray, a territory
        action floods its one region), which halves the cost of a step."""
        s = self.stacks(b)
        ln = self.lines(b, p)
        rc = self.recovery(b, s, ln, p)
        mine = s["is_stack"] & (s["top"] == p)
        return dict(s=s, ln=ln, rc=rc, mine=mine, controls=jnp.any(mine[: self.N]))

    def legal_mask(self, b: RingRiftBoard, p: Array, an: dict) -> Array:
        """bool [num_actions] for player ``p`` in phase ``b.phase`` (R20)."""
        n = self.N
        ph = b.phase
        s, mine = an["s"], an["mine"]
        hand = b.hand[p - 1]
        # placement
        place = self.placement_legal(b, s, an["r"], p)  # [N, 3]
        skip_ok = jnp.any(mine & an["acts"]) | (~an["controls"] & an["rc"]["eligible"])
        place_on = (ph == PLACEMENT) & (hand > 0)
        place_mask = place & place_on
        pass_place = (ph == PLACEMENT) & ((hand <= 0) | skip_ok | ~jnp.any(place))
        # movement / capture / chain
        cells = jnp.arange(self.N1)
        from_ok = mine & jnp.where(b.must_move < n, cells == b.must_move, True)
        mv = an["move_ok"] | an["cap_ok"]
        move_phase = mv & from_ok[:, None, None] & (ph == MOVEMENT)
        cap_from = jnp.where(ph == CAPTURE, b.last_move_to, b.chain_pos)
        cap_phase = an["cap_ok"] & (mine & (cells == cap_from))[:, None, None] & (
            (ph == CAPTURE) | (ph == CHAIN))
        move_mask = (move_phase | cap_phase)[:n]
        rec = an["rc"]["legal"][:n] & (ph == MOVEMENT)
        pass_move = (ph == MOVEMENT) & (an["rc"]["eligible"] | ~(jnp.any(move_phase) | jnp.any(rec)))
        pass_cap = ph == CAPTURE
        # lines
        ln = an["ln"]
        in_line = ph == LINE
        line_mask = jnp.stack([ln["all_ok"], ln["window_ok"]], -1)[:n].transpose(1, 0, 2)
        line_mask = line_mask & in_line  # [A, N, 2]
        elim_line = mine & b.pending_line & in_line
        pass_line = in_line & (ln["overlength"] | ~(ln["has_line"] | b.pending_line))
        # territory
        in_terr = ph == TERRITORY
        terr_mask = an["proc"][:, :n] & in_terr & ~b.pending_terr
        rec_stack = s["buried"][:, p - 1] & s["is_stack"]
        elim_terr = in_terr & b.pending_terr & jnp.where(b.recov_turn, rec_stack, mine)
        pass_terr = in_terr & ~b.pending_terr
        # forced
        elim_forced = (ph == FORCED) & mine
        elim = (elim_line | elim_terr | elim_forced)[:n]
        pass_ok = pass_place | pass_move | pass_cap | pass_line | pass_terr
        return jnp.concatenate([
            place_mask.reshape(-1), move_mask.reshape(-1), rec.reshape(-1),
            line_mask.reshape(-1), terr_mask.reshape(-1), elim, pass_ok[None],
        ])

    # ------------------------------------------------------------------ decoding
    def decode(self, action: Array) -> tuple[Array, Array]:
        """(kind, local index) of a flat action."""
        offs = jnp.asarray(self.offsets)
        kind = jnp.sum(action >= offs[1:]).astype(jnp.int32)
        kind = jnp.minimum(kind, K_PASS)
        return kind, action - offs[kind]

    # ------------------------------------------------------------------ primitive edits
    def _credit(self, b: RingRiftBoard, p: Array, amount: Array, *, tre: bool = True,
                board: bool = True) -> RingRiftBoard:
        onehot = (jnp.arange(self.P) == p - 1).astype(jnp.int32) * amount
        return b.replace(
            elim=b.elim + onehot,
            board_elim=b.board_elim + (onehot if board else 0),
            tre=b.tre + (amount if tre else 0),
        )

    def _pop_top(self, rings: Array, height: Array, c: Array, count: Array):
        """Remove ``count`` top rings of the stack on ``c``."""
        h = height[c].astype(jnp.int32)
        slot = jnp.arange(self.H)
        row = jnp.where(slot >= h - count, 0, rings[c])
        return rings.at[c].set(row.astype(jnp.int8)), height.at[c].set((h - count).astype(jnp.int8))

    def _extract(self, rings: Array, height: Array, c: Array, p: Array):
        """Remove ``p``'s bottom-most ring from the stack on ``c`` (R62 extraction)."""
        row = rings[c]
        slot = jnp.arange(self.H)
        idx = jnp.argmax(row == p)
        shifted = jnp.concatenate([row[1:], jnp.zeros(1, row.dtype)])
        new = jnp.where(slot < idx, row, shifted)
        h = height[c].astype(jnp.int32) - 1
        return rings.at[c].set(new), height.at[c].set(h.astype(jnp.int8))

    def _collapse(self, b: RingRiftBoard, mask: Array, p: Array) -> RingRiftBoard:
        """Collapse every cell of ``mask`` [N1] (markers removed) to ``p``; territory +count."""
        mask = mask & self.on_board
        cnt = jnp.sum(mask)
        terr = b.terr + (jnp.arange(self.P) == p - 1) * cnt
        return b.replace(
            marker=jnp.where(mask, 0, b.marker).astype(jnp.int8),
            collapsed=jnp.where(mask, p, b.collapsed).astype(jnp.int8),
            terr=terr.astype(jnp.int32),
        )

    # ------------------------------------------------------------------ move kinds
    def _apply_place(self, b, an, p, idx, override):
        cell, cnt = idx // 3, idx % 3 + 1
        h = b.height[cell].astype(jnp.int32)
        slot = jnp.arange(self.H)
        row = jnp.where((slot >= h) & (slot < h + cnt), p, b.rings[cell]).astype(jnp.int8)
        new_stack = h == 0
        b = b.replace(
            rings=b.rings.at[cell].set(row),
            height=b.height.at[cell].set((h + cnt).astype(jnp.int8)),
            stamp=jnp.where(new_stack, b.stamp.at[cell].set(b.next_stamp), b.stamp),
            next_stamp=b.next_stamp + new_stack.astype(jnp.int32),
            hand=b.hand - (jnp.arange(self.P) == p - 1) * cnt,
            phase=jnp.int32(MOVEMENT),
            must_move=cell.astype(jnp.int32),
            acted=jnp.bool_(True),
        )
        return b, cell.astype(jnp.int32), jnp.bool_(False)

    def apply_segment(self, b, an, p, frm, d, k):
        """Move or capture (R30, R35) from ``frm`` along ``d`` landing after ``k`` steps.

        Reads only the one ray it moves along (``ray_facts`` of that ray), not ``an``'s
        whole-board tables, so that the step need not analyse the whole board first."""
        del an
        steps = jnp.arange(1, self.K + 1)
        cells = self.ray[frm, d]  # [K]
        stop = (b.height[cells] > 0) | (b.collapsed[cells] != 0)  # sentinel is collapsed
        any_stop = jnp.any(stop)
        first = jnp.argmax(stop)
        target = jnp.where(any_stop, cells[first], self.N)
        j = first + 1
        is_cap = any_stop & (b.height[target] > 0) & (j < k)
        tgt = jnp.where(is_cap, target, self.N)
        to = cells[k - 1]
        on_path = (steps < k) & ~(is_cap & (steps == j))
        path = jnp.zeros(self.N1, bool).at[cells].max(on_path)
        path = path & self.on_board
        mk = b.marker
        flip = path & (mk != 0) & (mk != p)
        coll = path & (mk == p)
        marker = jnp.where(flip, p, mk)
        b = b.replace(marker=marker.astype(jnp.int8))
        b = self._collapse(b, coll, p)
        # departure marker
        b = b.replace(marker=b.marker.at[frm].set(p.astype(jnp.int8)))
        rings, height = b.rings, b.height
        row = rings[frm]
        hf = height[frm].astype(jnp.int32)
        # capture: top ring of target to the bottom of the attacker
        ht = height[tgt].astype(jnp.int32)
        t_top = rings[tgt, jnp.clip(ht - 1, 0, self.H - 1)]
        rings2, height2 = self._pop_top(rings, height, tgt, jnp.int32(1))
        rings = jnp.where(is_cap, rings2, rings)
        height = jnp.where(is_cap, height2, height)
        cap_row = jnp.concatenate([t_top[None], row[:-1]])
        row = jnp.where(is_cap, cap_row, row)
        hf = hf + is_cap.astype(jnp.int32)
        # landing
        on_marker = b.marker[to] != 0
        slot = jnp.arange(self.H)
        row = jnp.where(on_marker & (slot == hf - 1), 0, row).astype(jnp.int8)
        hf = hf - on_marker.astype(jnp.int32)
        rings = rings.at[frm].set(jnp.zeros(self.H, jnp.int8)).at[to].set(row)
        height = height.at[frm].set(0).at[to].set(hf.astype(jnp.int8))
        marker = b.marker.at[to].set(0)
        # stamps: landing inserted first, then a surviving target re-inserted (Map order)
        ns = b.next_stamp
        stamp = b.stamp.at[to].set(ns)
        t_survives = is_cap & (height[tgt] > 0)
        stamp = jnp.where(t_survives, stamp.at[tgt].set(ns + 1), stamp)
        b = b.replace(rings=rings, height=height, marker=marker, stamp=stamp,
                      next_stamp=ns + 1 + t_survives.astype(jnp.int32))
        b = self._credit(b, p, on_marker.astype(jnp.int32))
        return b, to, is_cap

    def _apply_move(self, b, an, p, idx, override):
        frm = idx // (self.D * self.K)
        d = (idx // self.K) % self.D
        k = idx % self.K + 1
        was_move_phase = b.phase == MOVEMENT
        b, to, is_cap = self.apply_segment(b, an, p, frm, d, k)
        must = jnp.where(was_move_phase & (b.must_move == frm), to, b.must_move)
        b = b.replace(acted=jnp.bool_(True), must_move=must,
                      last_move_to=jnp.where(is_cap, b.last_move_to, to))
        return b, to, is_cap

    def _apply_recovery(self, b, an, p, idx, override):
        m = idx // (self.D * 4)
        e = (idx // 4) % self.D
        v = idx % 4
        t = self.radj[m, e]
        s = an["s"]
        slide = v <= 2
        # move / remove the marker
        marker = b.marker.at[m].set(0)
        marker = jnp.where(slide, marker.at[t].set(p.astype(jnp.int8)), marker)
        b = b.replace(marker=marker)
        # line modes: the applier's line is the first axis (R61 order) whose run through t
        # >= base length (R62 [EXEC]). Option 2 collapses the window the generator listed
        # before the slide, the first L cells of the first longest run, whenever the
        # applier's line is overlength; on an exact line it collapses that line (L cells).
        run = an["rc"]["run"][m, e]  # [A]
        ordered = run[self.rec_axis_order]
        first_axis = self.rec_axis_order[jnp.argmax(ordered >= self.base)]
        longest_axis = self.rec_axis_order[jnp.argmax(ordered)]
        axis = jnp.where((v == 1) & (run[first_axis] > self.L), longest_axis, first_axis)
        ell = run[axis]
        # cells of the run: walk back from t along the axis, then forward
        ln = an["ln"]
        back = ln["bwd"][self.axis_prev[t, axis], axis]
        back = jnp.where((self.dir_axis[e] == axis) & (self.dir_sign[e] == 1), 0, back)
        # collect run cells by stepping from the run's first cell
        start = t
        def step_back(i, c):
            return jnp.where(i < back, self.axis_prev[c, axis], c)
        start = lax.fori_loop(0, self.K, step_back, start)
        count = jnp.where(v == 0, ell, self.L)
        def mark(i, acc):
            c, msk = acc
            msk = msk.at[c].set(msk[c] | (i < count))
            return self.axis_next[c, axis], msk
        _, run_mask = lax.fori_loop(0, self.K + 1, mark, (start, jnp.zeros(self.N1, bool)))
        use, cells = override
        run_mask = jnp.where(use & (v == 1), cells, run_mask)  # trusted collapsePositions
        is_line = v <= 1
        b_line = self._collapse(b, run_mask, p)
        b = jax.tree.map(lambda x, y: jnp.where(is_line, x, y), b_line, b)
        # stack strike: struck stack loses its top ring (credited, all counters)
        rings2, height2 = self._pop_top(b.rings, b.height, t, jnp.int32(1))
        strike = v == 3
        b = b.replace(rings=jnp.where(strike, rings2, b.rings),
                      height=jnp.where(strike, height2, b.height))
        b = self._credit(b, p, strike.astype(jnp.int32))
        # extraction (all modes except Option 2): first stack in Map order with a buried p ring
        # on the board *before* the move, as the reference picks it before applying the slide
        # (R62). It differs from the board after only when a strike uncovers p's ring on the
        # first such stack: that stack is still the one, and p's ring now on top is extracted.
        cand = s["buried"][:, p - 1] & s["is_stack"] & self.on_board
        big = jnp.iinfo(jnp.int32).max
        c = jnp.argmin(jnp.where(cand, b.stamp, big))
        extract = (v != 1) & jnp.any(cand)
        rings3, height3 = self._extract(b.rings, b.height, c, p)
        b = b.replace(rings=jnp.where(extract, rings3, b.rings),
                      height=jnp.where(extract, height3, b.height))
        b = self._credit(b, p, extract.astype(jnp.int32), tre=False, board=False)
        b = b.replace(acted=jnp.bool_(True), recov_turn=jnp.bool_(True))
        return b, t, jnp.bool_(False)

    def _apply_line(self, b, an, p, idx, override):
        axis = idx // (self.N * 2)
        cell = (idx // 2) % self.N
        w = idx % 2
        length = jnp.where(w == 0, an["ln"]["fwd"][cell, axis], self.L)

        def mark(i, acc):
            c, msk = acc
            msk = msk.at[c].set(msk[c] | (i < length))
            return self.axis_next[c, axis], msk

        _, mask = lax.fori_loop(0, self.K + 1, mark, (cell, jnp.zeros(self.N1, bool)))
        b = self._collapse(b, mask, p)
        b = b.replace(pending_line=(w == 0) & an["controls"], acted=jnp.bool_(True))
        return b, cell, jnp.bool_(False)

    def _apply_territory(self, b, an, p, idx, override):
        pas = idx // self.N
        rep = idx % self.N
        region = self.component(b, pas, rep)
        use, cells = override
        region = jnp.where(use, cells, region) & self.on_board  # trusted region (R51)
        has_marker = (b.marker != 0) & self.on_board
        touch = jnp.any(region[self.tadj], axis=1)
        seed = has_marker & ~region & touch

        def body(carry):
            bd, _ = carry
            new = bd | (has_marker & ~region & jnp.any(bd[self.badj], axis=1))
            return new, jnp.any(new != bd)

        border, _ = lax.while_loop(lambda c: c[1], body, (seed, jnp.bool_(True)))
        h = b.height.astype(jnp.int32)
        removed = jnp.sum(jnp.where(region, h, 0))
        b = b.replace(
            rings=jnp.where(region[:, None], 0, b.rings).astype(jnp.int8),
            height=jnp.where(region, 0, b.height).astype(jnp.int8),
        )
        b = self._credit(b, p, removed)
        b = self._collapse(b, region | border, p)
        b = b.replace(pending_terr=jnp.bool_(True), acted=jnp.bool_(True))
        return b, rep, jnp.bool_(False)

    def _apply_elim(self, b, an, p, idx, override):
        c = idx
        s = an["s"]
        ph = b.phase
        one = (ph == LINE)
        extract = (ph == TERRITORY) & b.recov_turn
        count = jnp.where(one, 1, s["cap"][c])
        rings1, height1 = self._pop_top(b.rings, b.height, c, count)
        rings2, height2 = self._extract(b.rings, b.height, c, p)
        b = b.replace(rings=jnp.where(extract, rings2, rings1),
                      height=jnp.where(extract, height2, height1))
        b = self._credit(b, p, jnp.where(extract, 1, count))
        b = b.replace(
            pending_line=jnp.where(one, False, b.pending_line),
            pending_terr=jnp.where(ph == TERRITORY, False, b.pending_terr),
            acted=jnp.bool_(True),
        )
        return b, c, jnp.bool_(False)

    def _apply_pass(self, b, an, p, idx, override):
        del idx
        overlength_noop = (b.phase == LINE) & an["ln"]["overlength"]
        # the no-op process_line (R42) is not a bookkeeping move: it counts as acting (R19)
        b = b.replace(pending_line=jnp.where(overlength_noop, False, b.pending_line),
                      acted=b.acted | overlength_noop)
        return b, jnp.int32(self.N), jnp.bool_(False)

    # ------------------------------------------------------------------ step
    def step(self, b: RingRiftBoard, p: Array, action: Array, cells: Array | None = None):
        """Apply a legal flat ``action`` of player ``p`` (1-based). Returns
        (board, next player, legal mask, terminated).

        ``cells`` (bool [N1], optional; all False = not supplied) is the *trusting* path of
        the reference engine for fixtures (R51, R62): a supplied region for a TERRITORY
        action, or the supplied ``collapsePositions`` for a recovery Option-2 action, used as
        given. No legality check is made here (R38); ``Game.step`` checks the mask."""
        if cells is None:
            override = (jnp.bool_(False), jnp.zeros(self.N1, bool))
        else:
            cells = jnp.asarray(cells, bool)
            override = (jnp.any(cells), cells)  # an all-False mask means "not supplied"
        an = self.analyze_move(b, p)
        kind, idx = self.decode(action)
        branches = [self._apply_place, self._apply_move, self._apply_recovery, self._apply_line,
                    self._apply_territory, self._apply_elim, self._apply_pass]
        phase0 = b.phase
        b1, landing, is_cap = lax.switch(
            kind, [lambda bb, i, f=f: f(bb, an, p, i, override) for f in branches], b, idx)
        b1 = _materialize(b1, b.phase)
        base1 = self.analyze_board(b1)  # transitions never change the board contents
        an1 = self.analyze_player(b1, p, base1)
        b2, end_turn = self._transition(b1, an1, p, kind, phase0, landing, is_cap)
        b3, p3 = self._end_turn(b2, p, base1["s"], base1["r"])
        b_out = jax.tree.map(lambda x, y: jnp.where(end_turn, x, y), b3, b2)
        p_out = jnp.where(end_turn, p3, p)
        an_out = self.analyze_player(b_out, p_out, base1)
        mask = self.legal_mask(b_out, p_out, an_out)
        terminated = b_out.winner > 0
        return b_out, p_out, mask & ~terminated, terminated

    def _transition(self, b, an, p, kind, phase0, landing, is_cap):
        """Phase changes of R21 after a move of ``kind`` made in ``phase0``."""
        n = self.N
        cells = jnp.arange(self.N1)
        caps_from = jnp.any(an["cap_ok"] & (an["mine"] & (cells == landing))[:, None, None])
        controls = an["controls"]
        has_region = an["has_region"]
        line_exit = jnp.where(has_region, TERRITORY,
                              jnp.where(~b.acted & controls, FORCED, TERRITORY))
        terr_exit_forced = ~b.acted & controls
        # default: unchanged
        phase = b.phase
        end_turn = jnp.bool_(False)
        line_entry = jnp.bool_(False)
        # placement kinds set MOVEMENT already (place); pass in placement -> movement
        is_pass = kind == K_PASS
        phase = jnp.where(is_pass & (phase0 == PLACEMENT), MOVEMENT, phase)
        must = jnp.where(is_pass & (phase0 == PLACEMENT), n, b.must_move)
        # movement-type moves
        mv = kind == K_MOVE
        to_capture = mv & ~is_cap & caps_from
        to_chain = mv & is_cap & caps_from
        phase = jnp.where(to_capture, CAPTURE, phase)
        phase = jnp.where(to_chain, CHAIN, phase)
        chain_pos = jnp.where(to_chain, landing, b.chain_pos)
        line_entry = line_entry | (mv & ~caps_from)
        line_entry = line_entry | (kind == K_RECOVERY)
        line_entry = line_entry | (is_pass & ((phase0 == MOVEMENT) | (phase0 == CAPTURE)))
        # line phase decisions
        in_line = phase0 == LINE
        line_decided = in_line & ((kind == K_LINE) | is_pass)
        # a line decision stays while lines remain or a reward is owed; no_line_action only
        # looks at the lines (it is never legal while a reward is owed)
        stay_line = an["ln"]["has_line"] | (b.pending_line & (kind == K_LINE))
        line_exit_now = line_decided & ~stay_line
        # (elimination in line phase: stay)
        # territory
        in_terr = phase0 == TERRITORY
        terr_elim = in_terr & (kind == K_ELIM)
        terr_exit = (in_terr & is_pass) | (terr_elim & ~has_region)
        end_turn = end_turn | (terr_exit & ~terr_exit_forced) | (phase0 == FORCED)
        phase = jnp.where(terr_exit & terr_exit_forced, FORCED, phase)
        # apply line entry / exit
        phase = jnp.where(line_entry, LINE, phase)
        must = jnp.where(line_entry, n, must)
        chain_pos = jnp.where(line_entry, n, chain_pos)
        phase = jnp.where(line_exit_now, line_exit, phase)
        b = b.replace(phase=jnp.int32(phase), must_move=jnp.int32(must),
                      chain_pos=jnp.int32(chain_pos))
        return b, end_turn

    def material(self, b: RingRiftBoard, s: dict) -> Array:
        """bool [P]: player owns a ring anywhere (hand or stacks) (R57)."""
        return (b.hand > 0) | (s["ring_count"] > 0)

    def real_actions(self, b: RingRiftBoard, s: dict, r: dict) -> Array:
        """bool [P]: player has a real action (placement, move or capture) available (R58)."""
        def one(q):
            place = jnp.any(self.placement_legal(b, s, r, q)) & (b.hand[q - 1] > 0)
            mv = jnp.any(s["is_stack"] & (s["top"] == q) & self.can_act(r, s["h"], s["cap"]))
            return place | mv
        return jax.vmap(one)(jnp.arange(1, self.P + 1))

    def _victory(self, b: RingRiftBoard, s: dict, r: dict, p: Array):
        """(winner, reason) at END_TURN (R64–R69); winner 0 = game continues."""
        players = jnp.arange(1, self.P + 1)
        ring_win = b.elim >= b.vt
        t = jnp.sum((b.collapsed[None, : self.N] == players[:, None]), axis=1)
        terr_win = (t >= b.tvm) & (t > jnp.sum(t) - t)
        ctrl = jnp.any(s["is_stack"][None, :] & (s["top"][None, :] == players[:, None]), axis=1)
        mat = self.material(b, s)
        struct = (jnp.sum(ctrl) == 1) & jnp.all(ctrl | ~mat)
        any_stack = jnp.any(s["is_stack"])
        empty = (~s["is_stack"]) & (b.marker == 0) & (b.collapsed == 0) & self.on_board
        first_open = b.collapsed[self.radj] == 0  # [N1, D]
        bare_ok = jnp.any(empty & jnp.any(first_open, axis=1))
        can_continue = jnp.any(b.hand > 0) & bare_ok
        stalemate = ~any_stack & ~can_continue

        def unique_max(v):
            mx = jnp.max(v)
            ok = (mx > 0) & (jnp.sum(v == mx) == 1)
            return ok, jnp.argmax(v) + 1

        markers = jnp.sum(b.marker[None, :] == players[:, None], axis=1)
        ok1, w1 = unique_max(t)
        ok2, w2 = unique_max(b.elim + b.hand)
        ok3, w3 = unique_max(markers)
        st_w = jnp.where(ok1, w1, jnp.where(ok2, w2, jnp.where(ok3, w3, p)))
        st_r = jnp.where(ok1, 2, jnp.where(ok2, 1, 3))
        winner = jnp.where(jnp.any(ring_win), jnp.argmax(ring_win) + 1,
                  jnp.where(jnp.any(terr_win), jnp.argmax(terr_win) + 1,
                  jnp.where(struct, jnp.argmax(ctrl) + 1,
                  jnp.where(stalemate, st_w, 0))))
        reason = jnp.where(jnp.any(ring_win), 1,
                  jnp.where(jnp.any(terr_win), 2,
                  jnp.where(struct, 3, jnp.where(stalemate, st_r, 0))))
        return winner.astype(jnp.int32), reason.astype(jnp.int32)

    def _end_turn(self, b: RingRiftBoard, p: Array, s: dict, r: dict):
        """END_TURN (R21): victory, rotation (R71) and the host LPS tracker (R68).
        ``s``/``r``: stack and ray facts of ``b``."""
        winner, reason = self._victory(b, s, r, p)
        mat = self.material(b, s)
        order = (p - 1 + jnp.arange(1, self.P + 1)) % self.P  # 0-based seats after p
        nxt = order[jnp.argmax(mat[order])] + 1
        nxt = jnp.where(jnp.any(mat), nxt, p)
        b2 = b.replace(
            phase=jnp.int32(PLACEMENT), must_move=jnp.int32(self.N),
            chain_pos=jnp.int32(self.N), last_move_to=jnp.int32(self.N),
            pending_line=jnp.bool_(False), pending_terr=jnp.bool_(False),
            acted=jnp.bool_(False), recov_turn=jnp.bool_(False),
        )
        # LPS tracker (host): only when the turn passes to a different player
        real = self.real_actions(b2, s, r)
        seats = jnp.arange(1, self.P + 1)
        first = b.lps_first
        first_in = (first > 0) & mat[jnp.clip(first - 1, 0, self.P - 1)]
        new_cycle = ~first_in
        excl_in = (b.lps_excl_player > 0) & mat[jnp.clip(b.lps_excl_player - 1, 0, self.P - 1)]
        mask_nonempty = jnp.any(b.lps_mask >= 0)
        round_done = first_in & (nxt == first) & mask_nonempty
        xs = (b.lps_mask == 1) & mat
        single = jnp.sum(xs) == 1
        xp = jnp.argmax(xs) + 1
        excl_p = b.lps_excl_player
        excl_r = b.lps_excl_rounds
        excl_p = jnp.where(new_cycle & ~excl_in, 0, excl_p)
        excl_r = jnp.where(new_cycle & ~excl_in, 0, excl_r)
        rd_p = jnp.where(single, xp, 0)
        rd_r = jnp.where(single, jnp.where(xp == b.lps_excl_player, b.lps_excl_rounds + 1, 1), 0)
        excl_p = jnp.where(round_done, rd_p, excl_p)
        excl_r = jnp.where(round_done, rd_r, excl_r)
        clear = new_cycle | round_done
        lmask = jnp.where(clear, -1, b.lps_mask)
        lmask = jnp.where(seats == nxt, real[nxt - 1].astype(jnp.int8), lmask).astype(jnp.int8)
        lfirst = jnp.where(clear, nxt, first)
        lround = b.lps_round + new_cycle.astype(jnp.int32) + round_done.astype(jnp.int32)
        others_real = jnp.any(real & mat & (seats != nxt))
        lps_win = ((excl_r >= self.lps_rounds) & (nxt == excl_p) & real[nxt - 1] & ~others_real)
        update = nxt != p
        b3 = b2.replace(
            lps_first=jnp.where(update, lfirst, b.lps_first).astype(jnp.int32),
            lps_mask=jnp.where(update, lmask, b.lps_mask),
            lps_excl_player=jnp.where(update, excl_p, b.lps_excl_player).astype(jnp.int32),
            lps_excl_rounds=jnp.where(update, excl_r, b.lps_excl_rounds).astype(jnp.int32),
            lps_round=jnp.where(update, lround, b.lps_round).astype(jnp.int32),
        )
        lps_win = update & lps_win
        won = winner > 0
        final_w = jnp.where(won, winner, jnp.where(lps_win, nxt, 0))
        final_r = jnp.where(won, reason, jnp.where(lps_win, 3, 0))
        over = final_w > 0
        b_over = b.replace(phase=jnp.int32(GAME_OVER), winner=final_w, reason=final_r)
        b_cont = b3.replace(winner=final_w, reason=final_r,
                            phase=jnp.where(over, GAME_OVER, b3.phase).astype(jnp.int32))
        out = jax.tree.map(lambda x, y: jnp.where(won, x, y), b_over, b_cont)
        p_out = jnp.where(won, p, nxt)
        return out, p_out

    def ranking_rewards(self, b: RingRiftBoard) -> Array:
        """float32 [P]: rank-based rewards (+1 first … -1 last, ties share the average).
        The winner ranks first; the rest by territory, eliminated rings, then markers."""
        players = jnp.arange(1, self.P + 1)
        markers = jnp.sum(b.marker[None, :] == players[:, None], axis=1)
        key = b.terr * 1_000_000 + b.elim * 1000 + markers
        key = jnp.where(players == b.winner, jnp.iinfo(jnp.int32).max, key)
        better = jnp.sum(key[None, :] > key[:, None], axis=1)
        equal = jnp.sum(key[None, :] == key[:, None], axis=1)
        pos = better + (equal - 1) / 2.0
        return (1.0 - 2.0 * pos / max(self.P - 1, 1)).astype(jnp.float32)
