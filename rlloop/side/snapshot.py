"""Replay snapshots for the side trainers, built in the parent process (this module uses JAX).

Features are computed here, on the device, by one jitted and vmapped
``Game.observation_features`` (the function behind ``Game.features``), so that a game's
features may use anything JAX offers while the workers stay JAX-free and receive plain numpy
arrays. Observations go through in fixed-size batches (the last one padded): one compilation
per game whatever the snapshot's size.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping

import jax
import jax.numpy as jnp
import numpy as np

from rlloop.games.base import Game
from rlloop.replay import ReplayBuffer
from rlloop.side.jobs import SideSnapshot

FEATURE_BATCH = 1024


@functools.lru_cache(maxsize=32)
def feature_function(game: Game) -> Callable[[np.ndarray], np.ndarray]:
    """``observations [M, *observation_shape]`` -> float32 features [M, num_features]
    (numpy in and out; compiled once per game)."""
    batched = jax.jit(jax.vmap(game.observation_features))

    def features(observations: np.ndarray) -> np.ndarray:
        count = len(observations)
        out = np.empty((count, game.num_features), dtype=np.float32)
        for start in range(0, count, FEATURE_BATCH):
            part = np.asarray(observations[start : start + FEATURE_BATCH], dtype=np.float32)
            padded = np.zeros((FEATURE_BATCH, *part.shape[1:]), dtype=np.float32)
            padded[: len(part)] = part
            out[start : start + len(part)] = np.asarray(batched(jnp.asarray(padded)))[: len(part)]
        return out

    return features


def preferred_moves(policy_actions: np.ndarray, policy_weights: np.ndarray) -> np.ndarray:
    """The action search preferred per sample: int32 [M] from the sparse targets [M, K]
    (ties: the first slot), -1 where the target is all zero (a forced move)."""
    best = np.argmax(policy_weights, axis=1)
    moves = np.take_along_axis(policy_actions, best[:, None], axis=1)[:, 0].astype(np.int32)
    return np.where(policy_weights.max(axis=1) > 0, moves, -1).astype(np.int32)


def snapshot_from_samples(game: Game, samples: Mapping[str, np.ndarray], *,
                          iteration: int) -> SideSnapshot:  # fmt: skip
    """A snapshot of replay samples (``observation``, ``policy_actions``,
    ``policy_weights``, ``value`` as :class:`rlloop.replay.ReplayBuffer` holds them)."""
    observations = np.asarray(samples["observation"])
    if observations.shape[1:] != tuple(game.observation_shape):
        raise ValueError(
            f"samples have observations of shape {observations.shape[1:]}; {game.name} "
            f"observes {tuple(game.observation_shape)}"
        )
    return SideSnapshot(
        game=game.name, iteration=iteration, num_actions=game.num_actions,
        features=feature_function(game)(observations),
        value=np.asarray(samples["value"])[:, 0].astype(np.float32),
        move=preferred_moves(np.asarray(samples["policy_actions"]),
                             np.asarray(samples["policy_weights"])),
    )  # fmt: skip


def snapshot_from_replay(game: Game, replay: ReplayBuffer, rng: np.random.Generator, *,
                         max_samples: int, iteration: int) -> SideSnapshot:  # fmt: skip
    """Up to ``max_samples`` distinct samples of ``replay`` (without replacement)."""
    return snapshot_from_samples(game, replay.snapshot(rng, max_samples=max_samples),
                                 iteration=iteration)  # fmt: skip


def random_play_samples(game: Game, key: jax.Array, *, num_games: int) -> dict[str, np.ndarray]:
    """Replay-like samples of ``num_games`` games of uniformly random legal moves, each
    position labelled with its game's final outcome from the mover's view, and the move
    played as a one-hot policy target (for tests and ``python -m rlloop.bench --suite side``:
    a snapshot without a network). Truncated games count as draws. Fields as
    :class:`rlloop.replay.ReplayBuffer` holds them ([M, ...], M = the positions played)."""
    observations, movers, actions, live, totals = _play_randomly(game, key, num_games)
    observations, movers, actions, live, totals = jax.device_get(
        (observations, movers, actions, live, totals))
    steps, games = live.shape
    outcome = np.take_along_axis(
        np.broadcast_to(totals[None], (steps, games, game.num_players)),
        movers[..., None], axis=2)[..., 0]  # fmt: skip
    keep = live.reshape(-1)
    num_players = game.num_players
    value = np.zeros((int(keep.sum()), num_players), np.float32)
    value[:, 0] = outcome.reshape(-1)[keep]
    return {
        "observation": observations.reshape(steps * games, *game.observation_shape)[keep],
        "policy_actions": actions.reshape(-1)[keep][:, None].astype(np.int32),
        "policy_weights": np.ones((int(keep.sum()), 1), np.float32),
        "value": value,
    }


@functools.partial(jax.jit, static_argnums=(0, 2))
def _play_randomly(game: Game, key: jax.Array, num_games: int) -> tuple[jax.Array, ...]:
    init_key, play_key = jax.random.split(key)
    states = jax.vmap(game.init)(jax.random.split(init_key, num_games))

    def step(carry: tuple, key: jax.Array) -> tuple:
        states, totals = carry
        live = ~(states.terminated | states.truncated)
        logits = jnp.where(states.legal_action_mask, 0.0, -jnp.inf)
        logits = jnp.where(live[:, None], logits, 0.0)
        action = jax.random.categorical(key, logits).astype(jnp.int32)
        observation = jax.vmap(game.observe)(states, states.current_player)
        record = (observation, states.current_player, action, live)
        states = jax.vmap(game.step)(states, action)
        return (states, totals + states.rewards), record

    totals = jnp.zeros((num_games, game.num_players), jnp.float32)
    (_, totals), (observations, movers, actions, live) = jax.lax.scan(
        step, (states, totals), jax.random.split(play_key, game.max_steps))
    return observations, movers, actions, live, totals
