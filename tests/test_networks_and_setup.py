"""Policy-value network options, and process setup (compilation cache)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from omegaconf import OmegaConf

from rlloop import games
from rlloop.networks import init_params, make_network, network_from_config


def _value_kernel_rows(params) -> int:
    """Input width of the value head's hidden layer (the first Dense after the trunk)."""
    dense = params["params"]
    names = sorted((k for k in dense if k.startswith("Dense_")), key=lambda k: int(k.split("_")[1]))
    return int(dense[names[1]]["kernel"].shape[0])  # Dense_0: policy logits, Dense_1: value hidden


def test_value_pooling_feeds_plane_and_channel_means_to_the_value_head() -> None:
    game = games.make("connect4")
    rows, cols, planes = game.observation_shape
    plain = make_network(game, num_blocks=1, channels=8, value_hidden=16)
    pooled = make_network(game, num_blocks=1, channels=8, value_hidden=16, value_pooling=True)
    p_plain = init_params(plain, game, jax.random.key(0))
    p_pooled = init_params(pooled, game, jax.random.key(0))
    assert _value_kernel_rows(p_plain) == rows * cols
    assert _value_kernel_rows(p_pooled) == rows * cols + planes + 8
    _, values = pooled.apply(p_pooled, jnp.zeros((1, rows, cols, planes)))
    assert values.shape == (1, game.num_players) and np.all(np.isfinite(values))


def test_network_from_config_reads_value_pooling_and_old_configs_default_to_off() -> None:
    game = games.make("tictactoe")
    node = OmegaConf.create({"num_blocks": 1, "channels": 8, "value_hidden": 16,
                             "architecture": "resnet", "dtype": "float32"})  # fmt: skip
    assert network_from_config(game, node).value_pooling is False  # a run saved before the key
    node.value_pooling = True
    assert network_from_config(game, node).value_pooling is True


def test_compilation_cache_is_off_for_ringrift_on_several_virtual_cpu_devices(tmp_path) -> None:
    """Cached sharded RingRift programs deadlocked on XLA:CPU with two virtual devices (see
    rlloop.parallel.configure_jax); one device, or another game, keeps the cache."""
    from rlloop import parallel

    before = jax.config.jax_compilation_cache_dir
    try:
        cases = ((2, "ringrift_square8_2p", before), (1, "ringrift_square8_2p", "one"),
                 (2, "connect4", "two"))  # fmt: skip
        for devices, game, expected in cases:
            jax.config.update("jax_compilation_cache_dir", before)
            hardware = OmegaConf.create({
                "memory_fraction": 0, "compilation_cache": True, "num_cpu_devices": devices,
                "platform": "cpu", "coordinator_address": "",
            })  # fmt: skip
            folder = tmp_path / (expected if expected in ("one", "two") else "x")
            parallel.configure_jax(hardware, cache_dir=folder, game=game)
            want = str(folder) if expected in ("one", "two") else before
            assert jax.config.jax_compilation_cache_dir == want, (devices, game)
    finally:
        jax.config.update("jax_compilation_cache_dir", before)


def test_value_prior_is_added_to_the_value_logits_with_its_weight() -> None:
    """values = tanh(head + w * game.value_prior(obs)), with the same parameters as w = 0."""
    game = games.make("ringrift_square8_2p")
    plain = make_network(game, num_blocks=1, channels=8, value_hidden=16, value_pooling=True)
    primed = make_network(game, num_blocks=1, channels=8, value_hidden=16, value_pooling=True,
                          value_prior_weight=2.0)  # fmt: skip
    params = init_params(plain, game, jax.random.key(0))
    state = game.init(jax.random.key(0))
    board = state.board.replace(elim=jnp.array([9, 3], jnp.int32), terr=jnp.array([0, 5], jnp.int32))
    observations = jnp.stack([game.observe(state.replace(board=board), jnp.int32(p)) for p in (0, 1)])
    _, v_plain = plain.apply(params, observations)
    _, v_primed = primed.apply(params, observations)
    # Progress = eliminated / VT + territory / TVM: seat 1 9/18, seat 2 3/18 + 5/33; each
    # viewer's prior is its own progress minus the other's (index 0), and the negation (1).
    lead = 9 / 18 - (3 / 18 + 5 / 33)
    expected = np.array([[lead], [-lead]])
    expected = np.concatenate([expected, -expected], axis=1)
    np.testing.assert_allclose(game.value_prior(observations), expected, atol=1e-5)
    np.testing.assert_allclose(np.arctanh(v_primed) - np.arctanh(v_plain), 2.0 * expected, atol=1e-4)


def test_value_zero_init_starts_at_the_prior_and_stays_there_without_a_value_loss() -> None:
    """value_zero_init: untrained values are exactly tanh(w * prior); training with value
    loss weight 0 moves the trunk and the policy but never the value head's output layer."""
    import optax

    from rlloop.train import init_train_state, make_train_step

    game = games.make("ringrift_square8_2p")
    net = make_network(game, num_blocks=1, channels=8, value_hidden=16, value_pooling=True,
                       value_prior_weight=2.0, value_zero_init=True)  # fmt: skip
    params = init_params(net, game, jax.random.key(0))
    state = game.init(jax.random.key(0))
    board = state.board.replace(elim=jnp.array([9, 3], jnp.int32), terr=jnp.array([0, 5], jnp.int32))
    observations = jnp.stack([game.observe(state.replace(board=board), jnp.int32(p)) for p in (0, 1)])
    prior = np.tanh(2.0 * np.asarray(game.value_prior(observations)))
    assert np.abs(prior).max() > 0.3  # the check below can tell a prior from zeros
    np.testing.assert_allclose(net.apply(params, observations)[1], prior, atol=1e-6)
    # A random network (the default) does not start at the prior.
    plain = make_network(game, num_blocks=1, channels=8, value_hidden=16, value_pooling=True,
                         value_prior_weight=2.0)  # fmt: skip
    random_values = plain.apply(init_params(plain, game, jax.random.key(0)), observations)[1]
    assert np.abs(np.asarray(random_values) - prior).max() > 1e-3

    optimizer = optax.adam(1e-2)
    step = jax.jit(make_train_step(net, optimizer, value_loss_weight=0.0, symmetry_tables=None))
    policy = jax.nn.one_hot(jnp.array([3, 5]), game.num_actions)
    batches = {"observation": observations[None], "policy": policy[None],
               "value": jnp.array([[[1.0, -1.0], [1.0, -1.0]]])}  # fmt: skip
    train_state = init_train_state(params, optimizer)
    for _ in range(3):
        train_state, _ = step(train_state, batches, jnp.int32(0), jax.random.key(1))
    logits_before = net.apply(params, observations)[0]
    logits_after, values_after = net.apply(train_state.params, observations)
    assert np.abs(np.asarray(logits_after - logits_before)).max() > 1e-3  # the trunk trained
    np.testing.assert_allclose(values_after, prior, atol=1e-6)


def test_separate_value_trunk_keeps_the_values_when_only_the_policy_trains() -> None:
    """separate_value_trunk: the value head reads its own trunk, so policy-only training
    (value loss weight 0) changes the logits and not a single value; the shared trunk does
    change the values."""
    import optax

    from rlloop.train import init_train_state, make_train_step

    game = games.make("connect4")
    states = jax.vmap(game.init)(jax.random.split(jax.random.key(0), 4))
    for moves in ([0, 1, 2, 3], [3, 3, 6, 5], [4, 0, 6, 2]):
        states = jax.vmap(game.step)(states, jnp.array(moves))
    observations = jax.vmap(game.observe)(states, states.current_player)
    batches = {"observation": observations[None],
               "policy": jax.nn.one_hot(jnp.array([0, 1, 2, 3]), game.num_actions)[None],
               "value": jnp.ones((1, 4, 2))}  # fmt: skip
    changes = {}
    for separate in (True, False):
        net = make_network(game, num_blocks=1, channels=8, value_hidden=16, value_pooling=True,
                           separate_value_trunk=separate)  # fmt: skip
        params = init_params(net, game, jax.random.key(0))
        optimizer = optax.adam(1e-2)
        step = jax.jit(make_train_step(net, optimizer, value_loss_weight=0.0, symmetry_tables=None))
        train_state = init_train_state(params, optimizer)
        for _ in range(3):
            train_state, _ = step(train_state, batches, jnp.int32(0), jax.random.key(1))
        logits0, values0 = net.apply(params, observations)
        logits1, values1 = net.apply(train_state.params, observations)
        assert np.abs(np.asarray(logits1 - logits0)).max() > 1e-3
        changes[separate] = float(np.abs(np.asarray(values1 - values0)).max())
    assert changes[True] == 0.0
    assert changes[False] > 1e-4


def test_value_prior_needs_a_game_that_has_one_and_old_configs_default_to_none() -> None:
    game = games.make("connect4")
    with pytest.raises(ValueError, match=r"value_prior_weight=1\.5 needs a game with a value prior"):
        make_network(game, num_blocks=1, channels=8, value_hidden=16, value_prior_weight=1.5)
    node = OmegaConf.create({"num_blocks": 1, "channels": 8, "value_hidden": 16,
                             "architecture": "resnet", "dtype": "float32"})  # fmt: skip
    assert network_from_config(game, node).value_prior is None  # a run saved before the key
    node.value_prior_weight = 0.5
    rr = games.make("ringrift_square8_2p")
    assert network_from_config(rr, node).value_prior_weight == 0.5
