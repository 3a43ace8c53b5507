"""The device programs of one game configuration, built in one place.

:func:`build_programs` turns a configuration (game, network, optimiser, ``search``,
``loop`` and ``train`` config, mesh, batch) into the jitted programs a run calls: the
self-play chunk (one program per device, ``parallel.jit_selfplay``), the train step (state
replicated and donated, batches split on ``data``) and fresh games. The loop builds its
programs with it, and tests use the same object instead of the loop's internals.
"""

from __future__ import annotations

import collections
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
    - ``policy_slots``: entries kept of each policy target (``selfplay.policy_slots``);
    - ``traces``: how often JAX traced each program (``play``, ``train_step``,
      ``new_games``): once per configuration when shapes stay static, which is what
      compiling once means (tests assert it).
    """

    play: Callable[..., Any]
    play_local: Callable[..., Any]
    train_step: Callable[..., Any]
    new_games: Callable[[jax.Array], Any]
    policy_slots: int
    traces: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)


def _counted(traces: collections.Counter[str], name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    """``function``, counting in ``traces[name]`` every time JAX traces it (a Python call
    of a jitted function's body happens only when it is traced)."""

    @functools.wraps(function)
    def traced(*args: Any, **kwargs: Any) -> Any:
        traces[name] += 1
        return function(*args, **kwargs)

    return traced


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
    traces: collections.Counter[str] = collections.Counter()
    fresh = functools.partial(
        new_games, game, batch_size=batch_size, random_opening_moves=int(config.loop.random_opening_moves)
    )
    return DevicePrograms(
        play=parallel.jit_selfplay(_counted(traces, "play", play), mesh),
        play_local=play,
        train_step=jax.jit(
            _counted(traces, "train_step", train_step),
            in_shardings=(replicated, parallel.batch_sharding(mesh, axis=1), replicated, replicated),
            out_shardings=(replicated, replicated),
            donate_argnums=(0,),
        ),
        new_games=jax.jit(_counted(traces, "new_games", fresh), out_shardings=parallel.batch_sharding(mesh)),
        policy_slots=slots,
        traces=traces,
    )
