"""Search's greedy move (``rlloop.search.greedy_action``): what the arena, agents and late
self-play moves play.

It must be an action the search visited: the argmax of Gumbel's improved policy over *all*
actions is often an unvisited one (the completed-Q transform gives unvisited actions the
root's mixed value), i.e. the raw policy's move rather than search's.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rlloop import games
from rlloop.arena import network_player
from rlloop.networks import init_params, make_network
from rlloop.search import greedy_action, make_search
from rlloop.selfplay import new_games


def _setup(seed: int = 0):
    game = games.make("tictactoe")
    network = make_network(game, num_blocks=1, channels=8, value_hidden=16)
    params = init_params(network, game, jax.random.key(seed))
    states = new_games(game, jax.random.key(seed), 64, random_opening_moves=3)
    live = ~np.asarray(states.terminated | states.truncated)
    return game, network, params, states, live


def _root_visits_by_action(output, num_actions: int) -> np.ndarray:
    """Root visit counts [B, num_actions] in game actions (slot searches mapped back)."""
    visits = np.asarray(output.search_tree.children_visits[:, 0])
    slots = output.search_tree.embeddings.slots
    if slots is None:
        return visits
    by_action = np.zeros((visits.shape[0], num_actions), visits.dtype)
    np.put_along_axis(by_action, np.asarray(slots[:, 0]), visits, axis=1)
    return by_action


@pytest.mark.parametrize("max_actions", [0, 6])
def test_greedy_action_is_mctx_choice_without_noise(max_actions: int) -> None:
    """With the Gumbel noise off, mctx's own action *is* the noiseless choice; the greedy move
    must equal it, with and without slots, and be among the most visited root actions."""
    game, network, params, states, live = _setup()
    search = make_search(game, network, num_simulations=4, max_num_considered_actions=2,
                         gumbel_scale=0.0, max_actions=max_actions)  # fmt: skip
    output = jax.jit(search)(params, jax.random.key(1), states)
    greedy = np.asarray(jax.jit(greedy_action)(output))
    np.testing.assert_array_equal(greedy[live], np.asarray(output.action)[live])
    visits = _root_visits_by_action(output, game.num_actions)
    rows = np.arange(len(greedy))
    assert (visits[rows, greedy] == visits.max(axis=1))[live].all()
    # The old rule, argmax of the improved policy, picks unvisited actions on these positions:
    # without this the test could not tell the two rules apart.
    old = np.asarray(jnp.argmax(output.action_weights, axis=-1))
    assert (visits[rows, old] == 0)[live].any()


def test_greedy_action_with_noise_plays_a_most_visited_action() -> None:
    """With Gumbel noise (self-play's and the arena's setting) the greedy move is still one of
    the most visited root actions, and it is legal."""
    game, network, params, states, live = _setup(seed=3)
    search = make_search(game, network, num_simulations=8, max_num_considered_actions=4,
                         max_actions=6)  # fmt: skip
    output = jax.jit(search)(params, jax.random.key(2), states)
    greedy = np.asarray(greedy_action(output))
    visits = _root_visits_by_action(output, game.num_actions)
    rows = np.arange(len(greedy))
    assert (visits[rows, greedy] == visits.max(axis=1))[live].all()
    assert np.asarray(states.legal_action_mask)[rows, greedy][live].all()


def test_arena_player_plays_the_greedy_action() -> None:
    game, network, params, states, live = _setup(seed=5)
    knobs = dict(max_num_considered_actions=2, gumbel_scale=0.0, max_actions=0)
    player = network_player("net", game, network, params, num_simulations=4, search_knobs=knobs)
    moves = np.asarray(jax.jit(player.act)(params, jax.random.key(4), states))
    output = make_search(game, network, num_simulations=4, **knobs)(params, jax.random.key(4), states)
    np.testing.assert_array_equal(moves[live], np.asarray(output.action)[live])
