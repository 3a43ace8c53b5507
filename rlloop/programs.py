"""The device programs of one game configuration, built in one place.

:func:`build_programs` turns a configuration (game, network, optimiser, ``search``,
``loop`` and ``train`` config, mesh, batch) into the jitted programs a run calls: the
self-play chunk (one program per device, ``parallel.jit_selfplay``), the train step (state
replicated and donated, batches split on ``data``) and fresh games. The loop builds its
programs with it, and tests use the same object instead of the loop's internals.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any

import jax

from rlloop import parallel
from rlloop.games.base import Game
from rlloop.search import search_from_config
from rlloop.selfplay import make_selfplay, new_games, policy_slots
from rlloop.train import make_train_step, stack_symmetries

__all__ = ["DevicePrograms", "build_programs"]


@dataclasses.dataclass(frozen=True)
class DevicePrograms:
    """What :func:`build_programs` returns.

    - ``play(params, states[B], key) -> (states, chunk [T, B])``: jitted over the mesh;
    - ``play_local``: the same chunk as one device's program, not jitted (tests compare the
      sharded run with it);
    - ``train_step(state, batches [K, B], index, key) -> (state, metrics)``: jitted, state
      donated;
    - ``new_games(key) -> states[B]``: jitted, games split over the mesh;
    - ``policy_slots``: entries kept of each policy target (``selfplay.policy_slots``).
    """

    play: Callable[..., Any]
    play_local: Callable[..., Any]
    train_step: Callable[..., Any]
    new_games: Callable[[jax.Array], Any]
    policy_slots: int


def build_programs(
    game: Game, network: Any, optimizer: Any, config: Any, mesh: Any, *, batch_size: int
) -> DevicePrograms:
    """Build (not yet compile: JAX compiles at the first call) one configuration's programs.
    ``config`` needs ``search``, ``loop`` and ``train`` nodes (``rlloop.config.Config``)."""
    slots = policy_slots(game.num_actions, int(config.search.max_actions))
    search = search_from_config(game, network, config.search)
    play = make_selfplay(
        game,
        search,
        moves_per_chunk=int(config.loop.moves_per_chunk),
        temperature_moves=int(config.loop.temperature_moves),
        random_opening_moves=int(config.loop.random_opening_moves),
        max_forced_moves=int(config.loop.max_forced_moves),
        policy_slots=slots,
    )
    replicated = parallel.replicated(mesh)
    tables = stack_symmetries(game.symmetries()) if config.train.augment else None
    train_step = make_train_step(
        network,
        optimizer,
        value_loss_weight=float(config.train.value_loss_weight),
        symmetry_tables=tables,
        num_actions=game.num_actions,
    )
    return DevicePrograms(
        play=parallel.jit_selfplay(play, mesh),
        play_local=play,
        train_step=jax.jit(
            train_step,
            in_shardings=(replicated, parallel.batch_sharding(mesh, axis=1), replicated, replicated),
            out_shardings=(replicated, replicated),
            donate_argnums=(0,),
        ),
        new_games=jax.jit(
            functools.partial(
                new_games,
                game,
                batch_size=batch_size,
                random_opening_moves=int(config.loop.random_opening_moves),
            ),
            out_shardings=parallel.batch_sharding(mesh),
        ),
        policy_slots=slots,
    )
