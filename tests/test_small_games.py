"""Tic-tac-toe and Connect Four rules on hand-drawn positions."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rlloop import games
from rlloop.games.base import State


def play(name: str, moves: str) -> State:
    """Play ``moves`` (one digit per action; Connect Four columns 1-7, tic-tac-toe cells 0-8)."""
    game = games.make(name)
    offset = 1 if name == "connect4" else 0
    state = game.init(jax.random.key(0))
    for move in moves:
        state = game.step(state, jnp.int32(int(move) - offset))
    return state


def board(text: str) -> str:
    return "\n".join(line.strip() for line in text.strip().splitlines())


@pytest.mark.parametrize(
    ("moves", "picture", "winner"),
    [
        (  # horizontal, bottom row
            "1122334",
            """.......
               .......
               .......
               .......
               OOO....
               XXXX...
               1234567""",
            0,
        ),
        (  # vertical in the last column, second player
            "17172737",
            """.......
               .......
               ......O
               ......O
               X.....O
               XXX...O
               1234567""",
            1,
        ),
        (  # one move short of a diagonal: not over
            "1223433454",
            """.......
               .......
               .......
               ..XO...
               .XOO...
               XOOXX..
               1234567""",
            None,
        ),
        (  # diagonal rising to the right
            "12234334544",
            """.......
               .......
               ...X...
               ..XO...
               .XOO...
               XOOXX..
               1234567""",
            0,
        ),
        (  # diagonal rising to the left, second player wins
            "176654554344",
            """.......
               .......
               ...O...
               ...XO..
               ...XXO.
               X.OOXXO
               1234567""",
            1,
        ),
    ],
)
def test_connect4_positions(moves: str, picture: str, winner: int | None) -> None:
    state = play("connect4", moves)
    assert games.make("connect4").render(state) == board(picture)
    if winner is None:
        assert not bool(state.terminated)
        assert not np.asarray(state.rewards).any()
    else:
        assert bool(state.terminated)
        expected = np.array([-1.0, -1.0])
        expected[winner] = 1.0
        np.testing.assert_array_equal(state.rewards, expected)


def test_connect4_full_column_is_illegal_and_forfeits() -> None:
    state = play("connect4", "444444")
    assert not bool(state.legal_action_mask[3]) and bool(state.legal_action_mask.sum() == 6)
    forfeited = games.make("connect4").step(state, jnp.int32(3))
    assert bool(forfeited.terminated)
    np.testing.assert_array_equal(forfeited.rewards, [-1.0, 1.0])


def test_connect4_draw_on_full_board() -> None:
    # Columns filled in the order 1,2,3 / 5,6,7 / 4 pattern that avoids four in a row.
    moves = "121212" "343434" "565656" "717171" "232323" "454545" "676767"
    moves = "".join(moves)
    state = play("connect4", moves[:41])
    assert not bool(state.terminated), games.make("connect4").render(state)
    state = games.make("connect4").step(state, jnp.int32(int(moves[41]) - 1))
    assert bool(state.terminated) and int(state.step_count) == 42
    np.testing.assert_array_equal(state.rewards, [0.0, 0.0])


def test_connect4_observation_is_from_viewer() -> None:
    game = games.make("connect4")
    state = play("connect4", "4")
    mine = game.observe(state, jnp.int32(0))
    theirs = game.observe(state, jnp.int32(1))
    assert mine[5, 3, 0] == 1 and mine[5, 3, 1] == 0
    np.testing.assert_array_equal(mine[..., ::-1], theirs)


def test_tictactoe_win_and_draw() -> None:
    game = games.make("tictactoe")
    won = play("tictactoe", "03142")  # X: 0,1,2
    assert game.render(won) == board("XXX\nOO.\n...")
    np.testing.assert_array_equal(won.rewards, [1.0, -1.0])
    drawn = play("tictactoe", "012453678")  # X O X / O X X / O X O
    assert bool(drawn.terminated)
    np.testing.assert_array_equal(drawn.rewards, [0.0, 0.0])


def test_tictactoe_jit_vmap_over_positions() -> None:
    game = games.make("tictactoe")
    step = jax.jit(jax.vmap(game.step))
    state = jax.vmap(game.init)(jax.random.split(jax.random.key(0), 9))
    state = step(state, jnp.arange(9, dtype=jnp.int32))
    # Each game has exactly its own cell taken.
    np.testing.assert_array_equal(~state.legal_action_mask, np.eye(9, dtype=bool))
