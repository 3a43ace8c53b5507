"""Sparse policy targets (issue 21): chunks and replay carry search's policy as K (action,
weight) pairs and the train step densifies them; training on them equals training on the
dense targets."""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rlloop import games
from rlloop.networks import init_params, make_network
from rlloop.replay import ReplayBuffer, sparse_from_dense
from rlloop.search import make_search
from rlloop.selfplay import dense_policy, make_selfplay, new_games, policy_slots, sparse_policy
from rlloop.train import init_train_state, make_optimizer, make_train_step, stack_symmetries


def test_sparse_policy_round_trips_and_keeps_the_largest_entries() -> None:
    weights = jnp.array([[0.0, 0.5, 0.0, 0.2, 0.3, 0.0], [1.0, 0.0, 0.0, 0.0, 0.0, 0.0]])
    actions, values = sparse_policy(weights, 3)
    assert actions.shape == values.shape == (2, 3) and actions.dtype == jnp.int32
    np.testing.assert_array_equal(dense_policy(actions, values, 6), weights)
    assert set(np.asarray(actions[0]).tolist()) == {1, 3, 4}
    every, same = sparse_policy(weights, 6)  # as many slots as actions: every action, in order
    np.testing.assert_array_equal(every, np.broadcast_to(np.arange(6), (2, 6)))
    np.testing.assert_array_equal(dense_policy(every, same, 6), weights)
    host_actions, host_values = sparse_from_dense(np.asarray(weights), 3)
    np.testing.assert_array_equal(dense_policy(jnp.asarray(host_actions), jnp.asarray(host_values), 6),
                                  weights)  # fmt: skip
    assert policy_slots(69_000, 256) == 256 and policy_slots(7, 256) == 7 and policy_slots(9, 0) == 9


@pytest.mark.parametrize("game_name", ["tictactoe", "connect4"])
def test_sparse_targets_train_exactly_as_dense_ones(game_name: str) -> None:
    """The same batches, dense and sparse (K = 3 < A slots holding every non-zero weight),
    give the same parameters after training steps with symmetry augmentation."""
    game = games.make(game_name)
    network = make_network(game, num_blocks=1, channels=8, value_hidden=16)
    params = init_params(network, game, jax.random.key(0))
    rng = np.random.default_rng(0)
    steps, batch = 3, 16
    observation = (rng.random((steps, batch, *game.observation_shape)) < 0.3).astype(np.float32)
    dense = np.zeros((steps, batch, game.num_actions), np.float32)
    for index in np.ndindex(steps, batch):  # three non-zero weights per target
        chosen = rng.choice(game.num_actions, 3, replace=False)
        dense[index][chosen] = rng.dirichlet(np.ones(3))
    value = rng.choice(np.float32([-1, 0, 1]), (steps, batch, game.num_players))
    actions, weights = sparse_from_dense(dense, 3)
    from rlloop.config import compose

    optimizer = make_optimizer(compose([]).train)
    tables = stack_symmetries(game.symmetries())
    step = jax.jit(make_train_step(network, optimizer, value_loss_weight=1.0,
                                   symmetry_tables=tables, num_actions=game.num_actions))  # fmt: skip
    results = []
    for batches in (
        {"observation": observation, "policy": dense, "value": value},
        {"observation": observation, "policy_actions": actions, "policy_weights": weights,
         "value": value},
    ):  # fmt: skip
        state = init_train_state(params, optimizer)
        for index in range(steps):
            state, metrics = step(state, batches, jnp.int32(index), jax.random.key(index))
        results.append((state.params, metrics))
    (dense_params, dense_metrics), (sparse_params, sparse_metrics) = results
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6),
                 dense_params, sparse_params)  # fmt: skip
    assert float(sparse_metrics["policy_loss"]) == pytest.approx(float(dense_metrics["policy_loss"]), rel=1e-5)
    # Without num_actions a sparse batch is refused with a message that says what is missing.
    plain = make_train_step(network, optimizer, value_loss_weight=1.0, symmetry_tables=None)
    sparse = {"observation": observation, "policy_actions": actions, "policy_weights": weights,
              "value": value}  # fmt: skip
    with pytest.raises(ValueError, match="num_actions"):
        plain(init_train_state(params, optimizer), sparse, jnp.int32(0), jax.random.key(0))


def test_selfplay_chunks_carry_the_search_targets_sparsely() -> None:
    game = games.make("connect4")
    network = make_network(game, num_blocks=1, channels=8, value_hidden=16)
    params = init_params(network, game, jax.random.key(0))
    search = make_search(game, network, num_simulations=4)
    states = new_games(game, jax.random.key(1), 8)
    key = jax.random.key(2)
    full = make_selfplay(game, search, moves_per_chunk=3, temperature_moves=10)
    narrow = make_selfplay(game, search, moves_per_chunk=3, temperature_moves=10, policy_slots=4)
    _, every = jax.jit(full)(params, states, key)
    _, top = jax.jit(narrow)(params, states, key)
    assert every.policy_actions.shape == (3, 8, 7) and top.policy_actions.shape == (3, 8, 4)
    dense = dense_policy(every.policy_actions, every.policy_weights, 7)
    np.testing.assert_allclose(jnp.sum(dense, axis=-1), 1.0, atol=1e-5)
    # The narrow chunk keeps each target's 4 largest weights of the same search.
    expected = jnp.sort(dense, axis=-1)[..., -4:]
    np.testing.assert_allclose(jnp.sort(top.policy_weights, axis=-1), expected, atol=1e-6)
    with pytest.raises(ValueError, match="policy_slots=8"):
        make_selfplay(game, search, moves_per_chunk=3, temperature_moves=10, policy_slots=8)


def test_replay_written_with_dense_targets_loads_sparse(tmp_path: Path) -> None:
    """A replay file from before sparse targets (a dense ``policy`` field) still resumes."""
    rng = np.random.default_rng(0)
    dense = np.zeros((6, 9), np.float32)
    for row in dense:
        row[rng.choice(9, 2, replace=False)] = [0.75, 0.25]
    np.savez(tmp_path / "old.npz", size=6, cursor=6, total_added=6,
             observation=np.ones((6, 3, 3, 2), np.float32), policy=dense,
             value=np.zeros((6, 2), np.float32))  # fmt: skip
    buffer = ReplayBuffer(8, observation_shape=(3, 3, 2), num_actions=9, num_players=2,
                          policy_slots=2)  # fmt: skip
    buffer.load(tmp_path / "old.npz")
    assert len(buffer) == 6 and buffer.total_added == 6
    batch = buffer.sample(np.random.default_rng(1), batch_size=6, num_batches=1)
    assert batch["policy_actions"].shape == (1, 6, 2)
    restored = np.asarray(dense_policy(jnp.asarray(buffer._data["policy_actions"][:6]),
                                       jnp.asarray(buffer._data["policy_weights"][:6]), 9))  # fmt: skip
    np.testing.assert_array_equal(restored, dense)
    other = ReplayBuffer(8, observation_shape=(3, 3, 2), num_actions=7, num_players=2)
    with pytest.raises(ValueError, match=r"field 'policy' has sample shape \(9,\)"):
        other.load(tmp_path / "old.npz")
    with pytest.raises(ValueError, match="policy_slots=10"):
        ReplayBuffer(8, observation_shape=(3, 3, 2), num_actions=9, num_players=2, policy_slots=10)
