"""Arena matches and baselines on the small games."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rlloop import arena, games


def test_random_against_itself_is_even_and_counts_add_up() -> None:
    game = games.make("connect4")
    player = arena.random_player(game)
    outcome = arena.play_match(game, player, player, num_games=256, key=jax.random.key(0))
    assert outcome.games == 256 and outcome.lengths.shape == (256,)
    assert 0.4 < outcome.score_a < 0.6
    assert np.all((outcome.lengths >= 7) & (outcome.lengths <= 42))


@pytest.mark.parametrize("name", ["tictactoe", "connect4"])
def test_greedy_beats_random(name: str) -> None:
    game = games.make(name)
    outcome = arena.play_match(
        game, arena.greedy_player(game), arena.random_player(game), num_games=256, key=jax.random.key(1)
    )
    assert outcome.score_a > 0.8, outcome


def test_greedy_wins_when_it_can_and_blocks_when_it_must() -> None:
    game = games.make("connect4")
    greedy = arena.greedy_player(game)
    step = jax.jit(game.step)

    def position(moves: str):  # type: ignore[no-untyped-def]
        state = game.init(jax.random.key(0))
        for move in moves:
            state = step(state, jnp.int32(int(move) - 1))
        return jax.tree.map(lambda x: x[None], state)

    # X to move with three in the bottom row (columns 1-3): 4 wins.
    for seed in range(5):
        assert int(greedy.act(None, jax.random.key(seed), position("112233"))[0]) == 3
    # O to move; X threatens column 4 on the bottom row: O must block there.
    for seed in range(5):
        assert int(greedy.act(None, jax.random.key(seed), position("11223"))[0]) == 3
    # Without a threat the choice is spread over several columns.
    choices = {int(greedy.act(None, jax.random.key(s), position("4"))[0]) for s in range(12)}
    assert len(choices) > 1


def test_match_needs_an_even_number_of_games() -> None:
    game = games.make("tictactoe")
    player = arena.random_player(game)
    with pytest.raises(ValueError, match="even number"):
        arena.play_match(game, player, player, num_games=3, key=jax.random.key(0))


def test_seats_are_swapped_in_pairs() -> None:
    """A player who always takes the first free cell wins every game it starts (tic-tac-toe
    against a passive opponent), so swapped seats must give exactly half the wins."""
    game = games.make("tictactoe")

    def first_free(params, key, states):  # type: ignore[no-untyped-def]
        return jnp.argmax(states.legal_action_mask, axis=-1).astype(jnp.int32)

    a = arena.Player("first_free_a", first_free)
    b = arena.Player("first_free_b", first_free)
    outcome = arena.play_match(game, a, b, num_games=64, key=jax.random.key(0), opening_moves=0)
    assert outcome.wins_a == outcome.wins_b == 32
