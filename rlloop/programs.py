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
from rlloop.selfplay import make_selfplay, make_selfplay_against, new_games, new_seats, policy_slots
from rlloop.train import make_train_step, stack_symmetries

__all__ = ["DevicePrograms", "build_programs", "opponent_games"]


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
    - ``play_against(params, opponent, states[B], seats[B], key) -> (states, seats, chunk)``
      and ``new_seats(key) -> seats[B]``: with ``schedule.opponent_mix`` > 0, the chunk in
      which the first ``opponent_games`` games of every device are played against an
      opponent (``selfplay.make_selfplay_against``), jitted over the mesh; else None;
    - ``opponent_games``: asymmetric games per device (:func:`opponent_games`);
    - ``traces``: how often JAX traced each program (``play``, ``train_step``,
      ``new_games``, ``play_against``): once per configuration when shapes stay static, which is what
      compiling once means (tests assert it).
    """

    play: Callable[..., Any]
    play_local: Callable[..., Any]
    train_step: Callable[..., Any]
    new_games: Callable[[jax.Array], Any]
    policy_slots: int
    play_against: Callable[..., Any] | None = None
    new_seats: Callable[[jax.Array], Any] | None = None
    opponent_games: int = 0
    traces: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)


def _counted(traces: collections.Counter[str], name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    """``function``, counting in ``traces[name]`` every time JAX traces it (a Python call
    of a jitted function's body happens only when it is traced)."""

    @functools.wraps(function)
    def traced(*args: Any, **kwargs: Any) -> Any:
        traces[name] += 1
        return function(*args, **kwargs)

    return traced


def opponent_games(config: Any) -> int:
    """Games per device played against an opponent: ``schedule.opponent_mix`` of
    ``hardware.games_per_device``, rounded (at least one when the mix is above 0)."""
    mix = float(config.schedule.opponent_mix)
    if mix <= 0:
        return 0
    per_device = int(config.hardware.games_per_device)
    return min(per_device, max(1, round(mix * per_device)))


def build_programs(
    game: Game, network: Any, optimizer: Any, config: Any, mesh: Any, *, batch_size: int
) -> DevicePrograms:
    """Build (not yet compile: JAX compiles at the first call) one configuration's programs.
    ``config`` needs ``search``, ``loop`` and ``train`` nodes (``rlloop.config.Config``)."""
    slots = policy_slots(game.num_actions, int(config.search.max_actions))
    search = search_from_config(game, network, config.search)
    knobs = dict(
        moves_per_chunk=int(config.loop.moves_per_chunk),
        temperature_moves=int(config.loop.temperature_moves),
        random_opening_moves=int(config.loop.random_opening_moves),
        max_forced_moves=int(config.loop.max_forced_moves),
        policy_slots=slots,
    )
    play = make_selfplay(game, search, **knobs)
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
    against = opponent_games(config)
    play_against = seats = None
    if against:
        per_device = int(config.hardware.games_per_device)
        play_against = parallel.jit_selfplay(
            _counted(traces, "play_against", make_selfplay_against(game, search, opponent_games=against, **knobs)),
            mesh,
            against=True,
        )

        def fresh_seats(key: jax.Array) -> jax.Array:  # every device's first ``against`` games
            keys = jax.random.split(key, mesh.devices.size)
            return jax.vmap(lambda k: new_seats(k, per_device, against, game.num_players))(keys).reshape(-1)

        seats = jax.jit(fresh_seats, out_shardings=parallel.batch_sharding(mesh))
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
        play_against=play_against,
        new_seats=seats,
        opponent_games=against,
        traces=traces,
    )
