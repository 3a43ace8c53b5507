"""Connect Four on 32-bit bitboards.

- Players: 2; player 0 moves first.
- Actions: 7, the column to drop a stone in (0 = leftmost).
- Observation: float32 [6, 7, 2]; row 0 is the top row; channel 0 the viewer's stones,
  channel 1 the opponent's.
- Rewards: +1 to the player who connects four, -1 to the other; 0 for a draw.
- Termination: four in a row (horizontal, vertical, diagonal) or a full board (42 steps).

Bitboard layout: cell (row, col) with row 0 at the *bottom* is bit ``row * 8 + col`` of a
48-bit number (column 7 of each row is an always-empty guard, so shifts never wrap across
rows). JAX runs in 32-bit by default, so the number is kept as two uint32 words: rows 0-3 in
word 0 and rows 4-5 in word 1. Any four in a row lies within four consecutive rows, so the
win test looks at the three 4-row windows (rows 0-3, 1-4, 2-5) as 32-bit numbers and uses the
classic shift-and test in the four directions (shifts 1, 7, 8, 9).
"""

from __future__ import annotations

import chex
import jax.numpy as jnp
import numpy as np

from rlloop.games.base import Array, Game, PRNGKey, State, Symmetry, grid_symmetry

ROWS = 6
COLUMNS = 7
_DIRECTION_SHIFTS = np.array([1, 7, 8, 9], dtype=np.uint32)  # horizontal, anti-diag, vertical, diag


def _cell_tables() -> tuple[np.ndarray, np.ndarray]:
    """Word index and bit mask of each cell, indexed [row_from_top, col]."""
    word = np.zeros((ROWS, COLUMNS), dtype=np.int32)
    mask = np.zeros((ROWS, COLUMNS), dtype=np.uint32)
    for top_row in range(ROWS):
        row = ROWS - 1 - top_row
        for col in range(COLUMNS):
            word[top_row, col] = row // 4
            mask[top_row, col] = np.uint32(1) << np.uint32((row % 4) * 8 + col)
    return word, mask


CELL_WORD, CELL_MASK = _cell_tables()  # [6, 7] each, top row first
# Bit mask of the cell at height h (0 = bottom) in column c, and which word holds it.
DROP_WORD = CELL_WORD[::-1].copy()  # [6, 7], bottom row first
DROP_MASK = CELL_MASK[::-1].copy()


@chex.dataclass(frozen=True)
class ConnectFourBoard:
    stones: Array  # [2 players, 2 words] uint32 bitboards
    heights: Array  # [7] int32: stones in each column


def has_four(words: Array) -> Array:
    """True when the bitboard ``words`` (uint32 [2]) holds four in a row. Shape []."""
    low, high = words[0], words[1]
    windows = jnp.stack([low, (low >> 8) | (high << 24), (low >> 16) | (high << 16)])  # [3]
    shifts = jnp.asarray(_DIRECTION_SHIFTS)
    pairs = windows[:, None] & (windows[:, None] >> shifts[None, :])  # [3, 4]
    return jnp.any((pairs & (pairs >> (2 * shifts[None, :]))) != 0)


class ConnectFour(Game):
    """Connect Four; see the module docstring for shapes, rewards and the bitboard layout."""

    name = "connect4"
    perfect_play = True  # rlloop.games.connect4_solver and Pons' test sets
    num_players = 2
    num_actions = COLUMNS
    observation_shape = (ROWS, COLUMNS, 2)
    max_steps = ROWS * COLUMNS

    def _init(self, key: PRNGKey) -> State:
        del key  # deterministic start
        return State(
            current_player=jnp.int32(0),
            legal_action_mask=jnp.ones(COLUMNS, dtype=jnp.bool_),
            rewards=jnp.zeros(2, dtype=jnp.float32),
            terminated=jnp.bool_(False),
            truncated=jnp.bool_(False),
            step_count=jnp.int32(0),
            board=ConnectFourBoard(
                stones=jnp.zeros((2, 2), dtype=jnp.uint32),
                heights=jnp.zeros(COLUMNS, dtype=jnp.int32),
            ),
        )

    def _step(self, state: State, action: Array) -> State:
        player = state.current_player
        board = state.board
        height = board.heights[action]
        word = jnp.asarray(DROP_WORD)[height, action]
        bit = jnp.asarray(DROP_MASK)[height, action]
        mine = board.stones[player]
        mine = mine | jnp.where(jnp.arange(2) == word, bit, jnp.uint32(0))
        stones = board.stones.at[player].set(mine)
        heights = board.heights.at[action].add(1)
        won = has_four(mine)
        full = state.step_count + 1 >= ROWS * COLUMNS
        winner_rewards = jnp.where(jnp.arange(2) == player, 1.0, -1.0).astype(jnp.float32)
        return state.replace(
            board=ConnectFourBoard(stones=stones, heights=heights),
            current_player=1 - player,
            legal_action_mask=heights < ROWS,
            rewards=jnp.where(won, winner_rewards, 0.0),
            terminated=won | full,
        )

    def observe(self, state: State, player: Array) -> Array:
        stones = state.board.stones  # [2, 2]
        ordered = jnp.stack([stones[player], stones[1 - player]])  # [2 planes, 2 words]
        words = ordered[:, jnp.asarray(CELL_WORD)]  # [2, 6, 7]
        planes = (words & jnp.asarray(CELL_MASK)[None]) != 0
        return jnp.moveaxis(planes, 0, -1).astype(jnp.float32)

    def render(self, state: State) -> str:
        stones = np.asarray(state.board.stones)
        rows = []
        for top_row in range(ROWS):
            line = []
            for col in range(COLUMNS):
                word, mask = CELL_WORD[top_row, col], CELL_MASK[top_row, col]
                line.append(
                    "X" if stones[0, word] & mask else "O" if stones[1, word] & mask else "."
                )
            rows.append("".join(line))
        rows.append("1234567")
        return "\n".join(rows)

    def symmetries(self) -> tuple[Symmetry, ...]:
        """Identity and the left-right mirror."""
        return tuple(
            grid_symmetry(
                name, height=ROWS, width=COLUMNS, channels=2, cell_map=cell_map,
                action_permutation=actions,
            )
            for name, cell_map, actions in (
                ("identity", lambda r, c: (r, c), np.arange(COLUMNS)),
                ("flip_lr", lambda r, c: (r, COLUMNS - 1 - c), np.arange(COLUMNS)[::-1]),
            )
        )
