"""Tic-tac-toe on bitmasks.

- Players: 2; player 0 (X) moves first.
- Actions: 9, the cell ``row * 3 + col`` (row 0 at the top).
- Observation: float32 [3, 3, 2]; channel 0 the viewer's stones, channel 1 the opponent's.
- Rewards: +1 to the player who completes a line, -1 to the other; 0 for a draw.
- Termination: a completed line or a full board (at most 9 steps).
"""

from __future__ import annotations

import chex
import jax.numpy as jnp
import numpy as np

from rlloop.games.base import Array, Game, PRNGKey, State, Symmetry, grid_symmetry

_LINES = [
    (0, 1, 2), (3, 4, 5), (6, 7, 8),  # rows
    (0, 3, 6), (1, 4, 7), (2, 5, 8),  # columns
    (0, 4, 8), (2, 4, 6),  # diagonals
]  # fmt: skip
LINE_MASKS = np.array([sum(1 << c for c in line) for line in _LINES], dtype=np.uint32)
FULL = np.uint32(0x1FF)
CELL_BITS = np.left_shift(np.uint32(1), np.arange(9, dtype=np.uint32))


@chex.dataclass(frozen=True)
class TicTacToeBoard:
    stones: Array  # [2] uint32: bit c set when the player holds cell c


class TicTacToe(Game):
    """Tic-tac-toe; see the module docstring for shapes and rewards."""

    name = "tictactoe"
    num_players = 2
    num_actions = 9
    observation_shape = (3, 3, 2)
    max_steps = 9

    def _init(self, key: PRNGKey) -> State:
        del key  # deterministic start
        return State(
            current_player=jnp.int32(0),
            legal_action_mask=jnp.ones(9, dtype=jnp.bool_),
            rewards=jnp.zeros(2, dtype=jnp.float32),
            terminated=jnp.bool_(False),
            truncated=jnp.bool_(False),
            step_count=jnp.int32(0),
            board=TicTacToeBoard(stones=jnp.zeros(2, dtype=jnp.uint32)),
        )

    def _step(self, state: State, action: Array) -> State:
        player = state.current_player
        mine = state.board.stones[player] | jnp.asarray(CELL_BITS)[action]
        stones = state.board.stones.at[player].set(mine)
        won = jnp.any((mine & LINE_MASKS) == LINE_MASKS)
        occupied = stones[0] | stones[1]
        full = occupied == FULL
        winner_rewards = jnp.where(jnp.arange(2) == player, 1.0, -1.0).astype(jnp.float32)
        return state.replace(
            board=TicTacToeBoard(stones=stones),
            current_player=1 - player,
            legal_action_mask=(occupied & CELL_BITS) == 0,
            rewards=jnp.where(won, winner_rewards, 0.0),
            terminated=won | full,
        )

    def observe(self, state: State, player: Array) -> Array:
        stones = state.board.stones
        ordered = jnp.stack([stones[player], stones[1 - player]])  # [2]
        planes = (ordered[:, None] & CELL_BITS[None, :]) != 0  # [2, 9]
        return planes.T.reshape(3, 3, 2).astype(jnp.float32)

    def render(self, state: State) -> str:
        stones = np.asarray(state.board.stones)
        cells = []
        for cell in range(9):
            bit = 1 << cell
            cells.append("X" if stones[0] & bit else "O" if stones[1] & bit else ".")
        rows = ["".join(cells[r * 3 : r * 3 + 3]) for r in range(3)]
        return "\n".join(rows)

    def symmetries(self) -> tuple[Symmetry, ...]:
        """The 8 symmetries of the square (identity first)."""
        maps = {
            "identity": lambda r, c: (r, c),
            "rot90": lambda r, c: (2 - c, r),
            "rot180": lambda r, c: (2 - r, 2 - c),
            "rot270": lambda r, c: (c, 2 - r),
            "flip_lr": lambda r, c: (r, 2 - c),
            "flip_ud": lambda r, c: (2 - r, c),
            "transpose": lambda r, c: (c, r),
            "anti_transpose": lambda r, c: (2 - c, 2 - r),
        }
        result = []
        for name, cell_map in maps.items():
            actions = np.array(
                [cell_map(a // 3, a % 3)[0] * 3 + cell_map(a // 3, a % 3)[1] for a in range(9)]
            )
            result.append(
                grid_symmetry(
                    name, height=3, width=3, channels=2, cell_map=cell_map,
                    action_permutation=actions,
                )
            )
        return tuple(result)

