"""RingRift as an rlloop :class:`~rlloop.games.base.Game`.

- Players: 2, 3 or 4; seat 1 of the rules is ``current_player == 0``.
- Actions: the fixed per-board encoding documented in :mod:`rlloop.games.ringrift.engine`
  (placements, moves/captures, recovery slides, line choices, territory regions,
  eliminations, one bookkeeping PASS). Every recorded decision of the reference engine,
  bookkeeping moves included, is one action.
- Observation: float32 [rows, cols, 8P + 13] on the board's grid (hex boards use the axial
  embedding ``row = y + r``, ``col = x + r``; off-board cells are zero and flagged by the
  on-board plane). Players are ordered from the viewer's seat onwards. Channels per player:
  controlled-stack height / H, cap / H, rings of that colour in the stack / H, marker,
  collapsed; then on-board, 7 phase planes, per-player hand / R, eliminated / VT,
  territory / TVM (broadcast), the focus cell (must-move / chain / last move) and four
  turn flags (pending line reward, pending territory elimination, acted, recovery turn).
- Rewards: rank-based at the end of the game (+1 first … -1 last; ties share the average;
  the winner ranks first, the rest by territory, eliminated rings, markers).
- Termination: the reference victory conditions (R64–R69) and the host LPS rule (R68).
  Truncation at the R83 operational caps (600/900/1400 decisions on the small boards).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from rlloop.games.base import Array, Game, PRNGKey, State
from rlloop.games.ringrift.engine import PHASE_NAMES, RingRiftBoard, Rules

MAX_STEPS = {
    "square8": (600, 900, 1400),
    "hex8": (600, 900, 1400),
    "square19": (2400, 3000, 3600),
    "hexagonal": (3600, 4200, 4800),
}


class RingRift(Game):
    """RingRift on ``board_type`` with ``num_players`` players (see the module docstring)."""

    def __init__(self, board_type: str = "square8", num_players: int = 2):
        if num_players not in (2, 3, 4):
            raise ValueError("RingRift needs 2, 3 or 4 players")
        self.rules = Rules(board_type, num_players)
        self.board_type = board_type
        self.name = f"ringrift_{board_type}_{num_players}p"
        self.num_players = num_players
        self.num_actions = self.rules.num_actions
        gh, gw = self.rules.geo.grid_shape
        self.num_channels = 8 * num_players + 13
        self.observation_shape = (gh, gw, self.num_channels)
        self.max_steps = MAX_STEPS[board_type][num_players - 2]
        self._grid = self.rules.geo.grid
        # The rules are large: calling them op by op (outside jit) takes seconds per step.
        # The public functions are therefore jitted once per game; inside a caller's
        # jit/vmap the inner jit is simply inlined, so semantics and batching are unchanged.
        self._jit_step = jax.jit(super().step)
        self._jit_init = jax.jit(super().init)
        self._jit_observe = jax.jit(self._observe)
        self._init_mask: np.ndarray | None = None

    def init(self, key: PRNGKey) -> State:
        """See :meth:`rlloop.games.base.Game.init` (jitted once per game)."""
        return self._jit_init(key)

    def step(self, state: State, action: Array) -> State:
        """See :meth:`rlloop.games.base.Game.step` (jitted once per game)."""
        return self._jit_step(state, jnp.asarray(action, dtype=jnp.int32))

    def observe(self, state: State, player: Array) -> Array:
        """float32 [rows, cols, 8P + 13] from ``player``'s seat (see the module docstring)."""
        return self._jit_observe(state, jnp.asarray(player, dtype=jnp.int32))

    # ------------------------------------------------------------------ protocol
    def _initial_mask(self) -> np.ndarray:
        """Legal mask of the opening position, computed once (host-side constant).

        Evaluated eagerly even when ``init`` is being traced, and with the board passed as
        an argument, so XLA does not constant-fold the whole rule analysis into ``init``.
        """
        if self._init_mask is None:
            rules = self.rules
            fn = jax.jit(lambda b: rules.legal_mask(b, jnp.int32(1), rules.analyze(b, 1)))
            with jax.ensure_compile_time_eval():
                board = jax.tree.map(np.asarray, rules.initial_board())
                self._init_mask = np.asarray(fn(board))
        return self._init_mask

    def _init(self, key: PRNGKey) -> State:
        del key  # deterministic start
        board = self.rules.initial_board()
        mask = jnp.asarray(self._initial_mask())
        return State(
            current_player=jnp.int32(0),
            legal_action_mask=mask,
            rewards=jnp.zeros(self.num_players, jnp.float32),
            terminated=jnp.bool_(False),
            truncated=jnp.bool_(False),
            step_count=jnp.int32(0),
            board=board,
        )

    def _step(self, state: State, action: Array) -> State:
        rules = self.rules
        board, p, mask, terminated = rules.step(state.board, state.current_player + 1, action)
        rewards = jnp.where(terminated, rules.ranking_rewards(board), 0.0).astype(jnp.float32)
        return state.replace(
            board=board,
            current_player=(p - 1).astype(jnp.int32),
            legal_action_mask=mask,
            rewards=rewards,
            terminated=terminated,
        )

    def _observe(self, state: State, player: Array) -> Array:
        rules = self.rules
        b: RingRiftBoard = state.board
        n, pp, hh = rules.N, self.num_players, float(rules.H)
        seats = (jnp.asarray(player) + jnp.arange(pp)) % pp + 1  # viewer first, 1-based
        s = rules.stacks(b)
        h = s["h"][:n].astype(jnp.float32)
        top = s["top"][:n]
        colour = jnp.sum(b.rings[:n, :, None].astype(jnp.int32) == seats[None, None, :], axis=1)
        planes = []
        for i in range(pp):
            q = seats[i]
            ctl = (top == q) & (h > 0)
            planes += [
                jnp.where(ctl, h / hh, 0.0),
                jnp.where(ctl, s["cap"][:n] / hh, 0.0),
                colour[:, i] / hh,
                (b.marker[:n] == q).astype(jnp.float32),
                (b.collapsed[:n] == q).astype(jnp.float32),
            ]
        ones = jnp.ones(n, jnp.float32)
        planes.append(ones)
        planes += [ones * (b.phase == k) for k in range(len(PHASE_NAMES) - 1)]
        for i in range(pp):
            q = seats[i] - 1
            planes += [ones * b.hand[q] / rules.R, ones * b.elim[q] / rules.VT,
                       ones * b.terr[q] / rules.TVM]
        cells = jnp.arange(n)
        focus = (cells == b.must_move) | (cells == b.chain_pos) | (cells == b.last_move_to)
        planes.append(focus.astype(jnp.float32))
        planes += [ones * b.pending_line, ones * b.pending_terr, ones * b.acted,
                   ones * b.recov_turn]
        feats = jnp.stack([jnp.asarray(x, jnp.float32) for x in planes], axis=-1)  # [N, C]
        gh, gw, c = self.observation_shape
        out = jnp.zeros((gh, gw, c), jnp.float32)
        return out.at[self._grid[:, 0], self._grid[:, 1]].set(feats)

    def value_prior(self, observations: Array) -> Array:
        """Progress towards the two win conditions, each player against the others' mean.

        A player's progress is ``eliminated / VT + territory / TVM`` (credited eliminations
        R16/R65, collapsed cells R66), read from the observation's broadcast counter planes;
        the prior of player k (viewer-relative) is k's progress minus the mean of the other
        players'. [B, P], in [-2, 2]. Used as ``model.value_prior_weight`` x prior in the
        value logits: search then prefers moves that credit eliminations or territory from
        the first iteration, and the network learns the correction to that.
        """
        pp = self.num_players
        base = 5 * pp + 8  # per-player counter planes: hand, eliminated, territory
        counters = jnp.max(observations[..., base: base + 3 * pp], axis=(1, 2))  # [B, 3P]
        counters = counters.reshape(counters.shape[0], pp, 3)
        progress = counters[..., 1] + counters[..., 2]  # elim / VT + terr / TVM, [B, P]
        others = (jnp.sum(progress, axis=-1, keepdims=True) - progress) / (pp - 1)
        return (progress - others).astype(jnp.float32)

    def render(self, state: State) -> str:
        rules = self.rules
        b = jax.tree.map(np.asarray, state.board)
        gh, gw = rules.geo.grid_shape
        grid = [["  ."] * gw for _ in range(gh)]
        for c in range(rules.N):
            r_, c_ = rules.geo.grid[c]
            if b.height[c] > 0:
                rs = b.rings[c, : b.height[c]][::-1]
                grid[r_][c_] = f"{rs[0]}{b.height[c]:>2}"[-3:].rjust(3)
            elif b.marker[c] > 0:
                grid[r_][c_] = f" m{b.marker[c]}"
            elif b.collapsed[c] > 0:
                grid[r_][c_] = f" #{b.collapsed[c]}"
            else:
                grid[r_][c_] = "  ."
        lines = ["".join(row) for row in grid]
        lines.append(
            f"player {int(state.current_player) + 1} phase {PHASE_NAMES[int(b.phase)]} "
            f"hand {b.hand.tolist()} elim {b.elim.tolist()} terr {b.terr.tolist()}"
        )
        return "\n".join(lines)
