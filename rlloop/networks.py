"""Flax policy-value networks.

A network maps observations float32 [B, *observation_shape] to
``(policy_logits float32 [B, num_actions], values float32 [B, num_players])``.

Values are **relative to the player to move**: ``values[:, 0]`` is the mover's expected
outcome in [-1, 1], ``values[:, k]`` that of the player ``k`` seats after the mover. This keeps
the value head consistent with observations, which are also drawn from the mover's view.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from rlloop.games.base import Game


class ResidualBlock(nn.Module):
    """Two 3x3 convolutions with LayerNorm and a skip connection."""

    channels: int
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        y = nn.Conv(self.channels, (3, 3), dtype=self.dtype)(x)
        y = nn.relu(nn.LayerNorm(dtype=self.dtype)(y))
        y = nn.Conv(self.channels, (3, 3), dtype=self.dtype)(y)
        y = nn.LayerNorm(dtype=self.dtype)(y)
        return nn.relu(x + y)


class PolicyValueNet(nn.Module):
    """AlphaZero-style ResNet for grid observations [B, H, W, C], or an MLP.

    The MLP (``architecture="mlp"``, and always for flat observations [B, F]) flattens the
    observation; it is far cheaper on CPU for tiny boards such as tic-tac-toe.

    Attributes:
      architecture: ``resnet`` or ``mlp``.
      num_actions: policy logits per observation.
      num_players: values per observation (mover first).
      num_blocks: residual blocks (grid) or hidden layers (flat).
      channels: convolution channels (grid) or hidden width (flat).
      value_hidden: width of the value head's hidden layer.
      value_pooling: (grid observations) also feed the value head the board-wide means of the
        observation's planes and of the trunk's channels (global average pooling), so
        game-wide counters (RingRift's eliminated rings, territory, rings in hand, broadcast
        as constant planes) reach it directly instead of through one 1x1-convolution channel.
      value_prior: optional fixed evaluation ``observations [B, ...] -> [B, num_players]``
        (mover-relative, like the values; a game's :meth:`~rlloop.games.base.Game.value_prior`)
        added to the value head's pre-tanh output, scaled by ``value_prior_weight``: the head
        then learns a correction to a known evaluation instead of the whole value from scratch
        (see ``docs/design.md``). Without it (or at weight 0) the head is the plain one.
      value_prior_weight: scale of ``value_prior`` in the value logits.
      separate_value_trunk: (grid observations) the value head has its own trunk of the same
        size instead of sharing the policy's (as AlphaGo's separate policy and value networks):
        the policy loss then never changes the value's features, and with
        ``train.value_loss_weight=0`` the values stay exactly those of the initial network.
      value_zero_init: the value head's output layer starts at zero, so an untrained network's
        values are exactly ``tanh(value_prior_weight * value_prior)`` (0 without a prior)
        instead of a random function of the position; with ``train.value_loss_weight=0`` they
        stay so.
      dtype: activation dtype (parameters stay float32).
    """

    num_actions: int
    num_players: int
    architecture: str = "resnet"
    num_blocks: int = 2
    channels: int = 32
    value_hidden: int = 64
    value_pooling: bool = False
    value_prior: Callable[[jax.Array], jax.Array] | None = None
    value_prior_weight: float = 0.0
    value_zero_init: bool = False
    separate_value_trunk: bool = False
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, observations: jax.Array) -> tuple[jax.Array, jax.Array]:
        x = observations.astype(self.dtype)
        if x.ndim == 4 and self.architecture == "resnet":
            planes = x

            def trunk(h: jax.Array) -> jax.Array:
                h = nn.relu(nn.Conv(self.channels, (3, 3), dtype=self.dtype)(h))
                for _ in range(self.num_blocks):
                    h = ResidualBlock(self.channels, dtype=self.dtype)(h)
                return h

            x = trunk(planes)
            policy = nn.relu(nn.Conv(2, (1, 1), dtype=self.dtype)(x))
            xv = trunk(planes) if self.separate_value_trunk else x
            value = nn.relu(nn.Conv(1, (1, 1), dtype=self.dtype)(xv))
            policy = policy.reshape((policy.shape[0], -1))
            value = value.reshape((value.shape[0], -1))
            if self.value_pooling:
                value = jnp.concatenate([value, planes.mean(axis=(1, 2)), xv.mean(axis=(1, 2))], -1)
        else:
            x = x.reshape((x.shape[0], -1))
            for _ in range(self.num_blocks):
                x = nn.relu(nn.LayerNorm(dtype=self.dtype)(nn.Dense(self.channels, dtype=self.dtype)(x)))
            policy = value = x
        logits = nn.Dense(self.num_actions, dtype=self.dtype)(policy)
        value = nn.relu(nn.Dense(self.value_hidden, dtype=self.dtype)(value))
        zero_kernel = {"kernel_init": nn.initializers.zeros} if self.value_zero_init else {}
        value_logits = nn.Dense(self.num_players, dtype=self.dtype, **zero_kernel)(value)  # bias: 0
        if self.value_prior is not None and self.value_prior_weight:
            prior = self.value_prior(observations).astype(value_logits.dtype)
            value_logits = value_logits + self.value_prior_weight * prior
        values = jnp.tanh(value_logits)
        return logits.astype(jnp.float32), values.astype(jnp.float32)


def make_network(
    game: Game,
    *,
    num_blocks: int,
    channels: int,
    value_hidden: int,
    architecture: str = "resnet",
    dtype: str = "float32",
    value_pooling: bool = False,
    value_prior_weight: float = 0.0,
    value_zero_init: bool = False,
    separate_value_trunk: bool = False,
) -> PolicyValueNet:
    """The policy-value network for ``game`` with the given sizes.

    ``value_prior_weight`` != 0 adds ``game.value_prior`` to the value logits (the game must
    define one)."""
    if architecture not in ("resnet", "mlp"):
        raise ValueError(f"model architecture {architecture!r} is unknown; valid: resnet, mlp")
    value_prior_weight = float(value_prior_weight)
    if not np.isfinite(value_prior_weight):
        raise ValueError(f"model value_prior_weight must be finite, got {value_prior_weight}")
    if value_prior_weight and game.value_prior is None:
        raise ValueError(
            f"model value_prior_weight={value_prior_weight} needs a game with a value prior; "
            f"{game.name} has none (set model.value_prior_weight=0)"
        )
    return PolicyValueNet(
        num_actions=game.num_actions,
        num_players=game.num_players,
        architecture=architecture,
        num_blocks=num_blocks,
        channels=channels,
        value_hidden=value_hidden,
        value_pooling=bool(value_pooling),
        value_prior=game.value_prior if value_prior_weight else None,
        value_prior_weight=value_prior_weight,
        value_zero_init=bool(value_zero_init),
        separate_value_trunk=bool(separate_value_trunk),
        dtype=jnp.dtype(dtype),
    )


def network_from_config(game: Game, model_config: Any) -> PolicyValueNet:
    """The network described by a ``model`` config node."""
    return make_network(
        game,
        num_blocks=int(model_config.num_blocks),
        channels=int(model_config.channels),
        value_hidden=int(model_config.value_hidden),
        architecture=str(model_config.architecture),
        dtype=str(model_config.dtype),
        value_pooling=bool(getattr(model_config, "value_pooling", False)),  # older runs: off
        value_prior_weight=float(getattr(model_config, "value_prior_weight", 0.0)),
        value_zero_init=bool(getattr(model_config, "value_zero_init", False)),
        separate_value_trunk=bool(getattr(model_config, "separate_value_trunk", False)),
    )


def init_params(network: PolicyValueNet, game: Game, key: jax.Array) -> Any:
    """Fresh parameters for ``network`` (a pytree of float32 arrays)."""
    dummy = jnp.zeros((1, *game.observation_shape), dtype=jnp.float32)
    return network.init(key, dummy)
