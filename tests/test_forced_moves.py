"""Forced moves (one legal action) are played without search, in self-play and in the arena."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from rlloop import games
from rlloop.arena import play_match, random_player
from rlloop.networks import init_params, make_network
from rlloop.search import make_search
from rlloop.selfplay import make_selfplay, new_games, play_forced


def _play(game, moves: list[int]):
    state = game.init(jax.random.key(0))
    for move in moves:
        state = game.step(state, move)
    return state


def test_play_forced_plays_only_single_choice_positions_and_keeps_final_rewards() -> None:
    game = games.make("tictactoe")
    # Cells 0..8; X plays first. After these eight moves only cell 8 is empty (forced), and
    # X completes the diagonal 0-4-8 with it.
    last = _play(game, [0, 1, 4, 2, 5, 3, 6, 7])
    assert int(last.legal_action_mask.sum()) == 1
    open_position = _play(game, [0, 1])  # seven legal moves: untouched
    states = jax.tree.map(lambda *xs: jnp.stack(xs), last, open_position)
    after = play_forced(game, states, 8)
    expected = game.step(last, 8)
    assert bool(after.terminated[0])
    np.testing.assert_array_equal(after.rewards[0], expected.rewards)
    assert int(after.step_count[0]) == 9
    for got, want in zip(jax.tree.leaves(after.board), jax.tree.leaves(open_position.board), strict=True):
        np.testing.assert_array_equal(got[1], want)
    assert int(after.step_count[1]) == 2
    # max_moves = 0 changes nothing
    same = play_forced(game, states, 0)
    np.testing.assert_array_equal(same.step_count, states.step_count)


def test_ringrift_selfplay_searches_only_real_choices() -> None:
    game = games.make("ringrift_square8_2p")
    network = make_network(game, num_blocks=1, channels=8, value_hidden=16)
    params = init_params(network, game, jax.random.key(0))
    search = make_search(game, network, num_simulations=2, max_num_considered_actions=2)
    fractions = {}
    for max_forced in (0, 8):
        play = jax.jit(make_selfplay(game, search, moves_per_chunk=24, temperature_moves=30,
                                     max_forced_moves=max_forced))  # fmt: skip
        states = new_games(game, jax.random.key(1), 8)
        _, chunk = play(params, states, jax.random.key(2))
        fractions[max_forced] = float(np.asarray(chunk.forced).mean())
    # about 45% of RingRift decisions are forced; with auto-play almost none reach the search
    assert fractions[0] > 0.2
    assert fractions[8] < 0.02


def test_arena_games_end_with_forced_moves_counted() -> None:
    """A forced move that ends the game is scored (tic-tac-toe's last cell)."""
    game = games.make("tictactoe")
    outcome = play_match(game, random_player(game), random_player(game), num_games=64,
                         key=jax.random.key(3), opening_moves=0)  # fmt: skip
    assert outcome.wins_a + outcome.draws + outcome.wins_b == 64
    # random tic-tac-toe: the first player wins ~58%, draws ~13%: both kinds of result appear,
    # and games that fill the board (9 moves, the last one forced) are finished, not cut.
    assert outcome.draws > 0
    assert int(np.asarray(outcome.lengths).max()) == 9
