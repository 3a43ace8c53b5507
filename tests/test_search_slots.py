"""Search over slots (``max_actions``): the M legal actions of highest prior per node.

Exact when no position has more than M legal actions; otherwise only the M best-prior legal
actions are searched. Checked on tic-tac-toe (9 actions, at most 8 legal after the first move)
against the full-action search with the randomness switched off, and on RingRift square8.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rlloop import games
from rlloop.networks import init_params, make_network
from rlloop.search import compact_actions, evaluate, make_search
from rlloop.selfplay import new_games


def _positions(game, batch: int, moves: int, seed: int = 0):
    states = new_games(game, jax.random.key(seed), batch, random_opening_moves=moves)
    return states


def _net(game, seed: int = 0):
    network = make_network(game, num_blocks=1, channels=8, value_hidden=16)
    return network, init_params(network, game, jax.random.key(seed))


@pytest.mark.parametrize("algorithm", ["gumbel", "puct"])
def test_slots_equal_full_search_when_every_legal_action_fits(algorithm: str) -> None:
    game = games.make("tictactoe")
    network, params = _net(game)
    states = _positions(game, 32, 4)
    # at least one move played in every game (so at most 8 legal actions)
    states = jax.vmap(game.step)(states, jnp.argmax(states.legal_action_mask, axis=-1))
    assert int(states.legal_action_mask.sum(-1).max()) <= 8
    knobs = dict(algorithm=algorithm, num_simulations=16, max_num_considered_actions=9,
                 gumbel_scale=0.0, dirichlet_fraction=0.0)  # fmt: skip
    full = make_search(game, network, max_actions=0, **knobs)
    slots = make_search(game, network, max_actions=8, **knobs)
    out_full = jax.jit(full)(params, jax.random.key(1), states)
    out_slots = jax.jit(slots)(params, jax.random.key(1), states)
    assert out_slots.action_weights.shape == (32, game.num_actions)
    live = ~np.asarray(states.terminated | states.truncated)  # finished roots: no legal action
    assert live.sum() >= 16
    np.testing.assert_allclose(
        np.asarray(out_slots.action_weights)[live], np.asarray(out_full.action_weights)[live],
        atol=1e-5)
    if algorithm == "gumbel":  # puct samples its action from the visits (a key over [B, M])
        np.testing.assert_array_equal(
            np.asarray(out_slots.action)[live], np.asarray(out_full.action)[live])
    np.testing.assert_allclose(
        np.asarray(out_slots.search_tree.node_values[:, 0])[live],
        np.asarray(out_full.search_tree.node_values[:, 0])[live], atol=1e-5)


def test_slots_keep_the_highest_prior_legal_actions() -> None:
    game = games.make("tictactoe")
    network, params = _net(game, seed=3)
    states = _positions(game, 16, 0)  # empty boards: 9 legal actions, 4 slots
    logits, _ = evaluate(network, game, params, states)
    _, slots = compact_actions(logits, states.legal_action_mask, 4)
    expected = np.sort(np.argsort(-np.asarray(logits), axis=1)[:, :4], axis=1)
    np.testing.assert_array_equal(np.sort(np.asarray(slots), axis=1), expected)
    search = jax.jit(make_search(game, network, num_simulations=8, max_num_considered_actions=4,
                                 max_actions=4))  # fmt: skip
    out = search(params, jax.random.key(0), states)
    weights = np.asarray(out.action_weights)
    np.testing.assert_allclose(weights.sum(-1), 1.0, atol=1e-5)
    outside = np.ones_like(weights, dtype=bool)
    np.put_along_axis(outside, expected, False, axis=1)
    assert np.all(weights[outside] == 0.0)  # unsearched actions get no mass
    chosen = np.asarray(out.action)
    assert np.all(np.take_along_axis(~outside, chosen[:, None], axis=1))


def test_slots_fewer_legal_actions_than_slots_are_never_chosen_illegally() -> None:
    game = games.make("tictactoe")
    network, params = _net(game)
    states = _positions(game, 32, 7, seed=5)  # late positions: few legal actions, 8 slots
    search = jax.jit(make_search(game, network, num_simulations=8, max_num_considered_actions=8,
                                 max_actions=8))  # fmt: skip
    out = search(params, jax.random.key(2), states)
    live = ~np.asarray(states.terminated | states.truncated)
    legal = np.asarray(states.legal_action_mask)
    weights = np.asarray(out.action_weights)
    assert np.all(weights[live][~legal[live]] == 0.0)
    assert np.all(legal[live, np.asarray(out.action)[live]])


def test_negative_max_actions_is_refused() -> None:
    game = games.make("tictactoe")
    network, _ = _net(game)
    with pytest.raises(ValueError, match="max_actions"):
        make_search(game, network, max_actions=-1)


def test_ringrift_square8_slot_search_is_exact() -> None:
    """square8 has 6,593 actions and at most 192 legal ones: 256 slots change nothing."""
    game = games.make("ringrift_square8_2p")
    network, params = _net(game)
    states = _positions(game, 8, 40, seed=1)
    knobs = dict(num_simulations=4, max_num_considered_actions=4, gumbel_scale=0.0)
    out_full = jax.jit(make_search(game, network, max_actions=0, **knobs))(
        params, jax.random.key(0), states)
    out_slots = jax.jit(make_search(game, network, max_actions=256, **knobs))(
        params, jax.random.key(0), states)
    np.testing.assert_allclose(out_slots.action_weights, out_full.action_weights, atol=1e-5)
    np.testing.assert_array_equal(out_slots.action, out_full.action)
