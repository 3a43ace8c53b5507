"""Policy-value network options, and process setup (compilation cache)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
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
