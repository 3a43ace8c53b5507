"""Benchmarks: ``python -m rlloop.bench [--suite NAME ...] [--quick]``.

Every measurement is printed as one JSON object per line,
``{"name": ..., "value": ..., "unit": ..., "config": {...}}``, and each rlloop figure is
measured side by side with its reference (pgx, a plain mctx loop, ...) in the same process,
with the ratio printed as its own line. Figures are throughput after compilation; compile time
is reported separately where it matters.

Suites:
  env       random-play environment steps/s for every small game, rlloop vs pgx, at
            batch 1, 64, 1024 and 4096.
  selfplay  Connect Four self-play moves/s and games/s: rlloop's jitted chunk sharded over the
            process's devices vs a plain single-device pgx + mctx Gumbel loop (the way pgx's
            AlphaZero example writes it), same net, parameters, simulations and batch; and a
            sequential baseline (one game at a time, same search). Nets 2x32 and 4x64,
            8 and 32 simulations, batch 64, 256 and 1024. Compile time separately.
  train     train steps/s for the same nets at batch 256 and 1024: rlloop's jitted step called
            K times from Python (as the loop does) and, for the 2x32 net, the K steps in one
            jitted ``lax.scan``; compile time of each.
  devices   rlloop self-play with 1 host device (XLA's intra-op threads) vs N forced host
            devices at the same total batch, each in a fresh subprocess; on N devices also
            rlloop's one-program-per-device chunk (shard_map) vs the same chunk under plain
            jax.jit shardings (XLA's SPMD split). ``--devices-game ringrift_square8_2p`` for
            RingRift (one configuration: 2x32 net, 8 simulations, batch 256).
  ringrift  the 12 RingRift configurations (``--ringrift-configs`` for a subset): random-play
            steps/s at batch 1, 64 and 1024 with compile time and XLA's memory estimate
            (a batch that does not fit is reported as skipped), bytes per game state, the
            mean length of random games (first game of each of 64 slots), and self-play
            with search (2x32 net, 8 simulations, batch 64) in moves/s and games/s
            (= moves/s / that mean length). No reference engine runs in-process.
  side      side trainers (rlloop.side) on the CPU profile's pool (1 worker x 1 thread):
            models/s and seconds per value and move job, default config (100 trees, 3 folds)
            on 20,000 Connect Four positions and a small one (10 trees, 2,000 positions).

GPU sizes (``scripts/gpu_check.sh``): ``--selfplay-config NET:SIMS:BATCH`` (nets 2x32, 4x64,
6x128), ``--train-net/--train-batch/--train-steps``, ``--ringrift-batches`` and
``--ringrift-selfplay``. ``--compile-workers N`` compiles a suite's programs on N threads
before timing any (XLA compiles with the GIL released); ``--budget S`` reports the
configurations not started within S seconds as skipped.

Device count: JAX's host device count is fixed when JAX starts, so ``main`` sets it first
(``--devices``, default ``hardware=cpu``'s ``num_cpu_devices``); rlloop's side of a figure uses
every device, as ``python -m rlloop.run`` does, and a reference uses one, as a user's plain
loop does. When JAX is already running (tests, notebooks), the existing devices are used.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Iterable
from typing import Any

import jax
import jax.numpy as jnp

from rlloop import games
from rlloop.games.base import select_games

Record = dict[str, Any]
# What XLA raises when a program does not fit (allocation failures are runtime errors).
_OUT_OF_RESOURCES = (MemoryError, jax.errors.JaxRuntimeError)
SUITES: dict[str, Callable[[argparse.Namespace], Iterable[Record]]] = {}


def record(name: str, value: float, unit: str, **config: Any) -> Record:
    """One benchmark line."""
    return {"name": name, "value": float(value), "unit": unit, "config": config}


def time_call(fn: Callable[[], Any], *, min_seconds: float, min_repeats: int = 3) -> float:
    """Mean wall seconds per call of ``fn`` (already compiled), blocking on its result."""
    jax.block_until_ready(fn())  # warm-up, and compile if the caller did not
    repeats, start = 0, time.perf_counter()
    while True:
        jax.block_until_ready(fn())
        repeats += 1
        elapsed = time.perf_counter() - start
        if repeats >= min_repeats and elapsed >= min_seconds:
            return elapsed / repeats


def _random_move_with_reset(
    init: Callable[[jax.Array], Any], step: Callable[[Any, jax.Array], Any], batch_size: int
) -> Callable[[Any, jax.Array], tuple[Any, jax.Array, jax.Array]]:
    """``move(states[B], key) -> (states, done [B], length [B])``: one uniformly random legal
    move in every game; a game that ends restarts at once (``length`` is its number of moves,
    0 where no game ended)."""
    batched_init = jax.vmap(init)
    batched_step = jax.vmap(step)

    def move(state: Any, step_key: jax.Array) -> tuple[Any, jax.Array, jax.Array]:
        action_key, reset_key = jax.random.split(step_key)
        mask = state.legal_action_mask
        logits = jnp.where(mask, 0.0, -jnp.inf)
        logits = jnp.where(mask.any(axis=-1, keepdims=True), logits, 0.0)
        action = jax.random.categorical(action_key, logits).astype(jnp.int32)
        state = batched_step(state, action)
        done = state.terminated | state.truncated
        # rlloop states count moves in ``step_count``, pgx states in ``_step_count``.
        count = state.step_count if hasattr(state, "step_count") else state._step_count
        length = jnp.where(done, count, 0)
        fresh = batched_init(jax.random.split(reset_key, batch_size))
        state = select_games(done, fresh, state)  # also fine for pgx states (a pytree)
        return state, done, length

    return move


def make_random_play(
    init: Callable[[jax.Array], Any],
    step: Callable[[Any, jax.Array], Any],
    *,
    batch_size: int,
    num_steps: int,
) -> Callable[[jax.Array], Any]:
    """A jitted run of ``num_steps`` random legal moves in ``batch_size`` games.

    Finished games restart at once, so every step is a real move. Works with any engine whose
    states have ``legal_action_mask``, ``terminated`` and ``truncated`` (rlloop and pgx).
    """
    batched_init = jax.vmap(init)
    move = _random_move_with_reset(init, step, batch_size)

    def run(key: jax.Array) -> Any:
        key, init_key = jax.random.split(key)
        state = batched_init(jax.random.split(init_key, batch_size))

        def body(state: Any, step_key: jax.Array) -> tuple[Any, None]:
            return move(state, step_key)[0], None

        state, _ = jax.lax.scan(body, state, jax.random.split(key, num_steps))
        return state

    return jax.jit(run)


def make_carried_random_play(
    init: Callable[[jax.Array], Any],
    step: Callable[[Any, jax.Array], Any],
    *,
    batch_size: int,
    num_steps: int,
) -> Callable[[Any, jax.Array, jax.Array], tuple[Any, jax.Array]]:
    """:func:`make_random_play` that carries the games from call to call (not jitted).

    ``run(states[B], first_lengths [B] int32, key) -> (states, first_lengths)``:
    ``first_lengths[b]`` is the length of the first game slot ``b`` finished (0 until then).
    All slots start a game at the same time, so once every slot has finished one, those
    lengths are an unbiased sample of random-game lengths (no censoring, no length bias).
    """
    move = _random_move_with_reset(init, step, batch_size)

    def run(state: Any, first_lengths: jax.Array, key: jax.Array) -> tuple[Any, jax.Array]:
        def body(carry: tuple[Any, jax.Array], step_key: jax.Array) -> tuple[Any, None]:
            state, first_lengths = carry
            state, done, length = move(state, step_key)
            first_lengths = jnp.where(done & (first_lengths == 0), length, first_lengths)
            return (state, first_lengths), None

        carry, _ = jax.lax.scan(body, (state, first_lengths), jax.random.split(key, num_steps))
        return carry

    return run


def _env_suite(args: argparse.Namespace) -> Iterable[Record]:
    try:
        import pgx
    except ImportError:  # pgx is a dev extra; without it, report rlloop alone
        pgx = None
    references = {"tictactoe": "tic_tac_toe", "connect4": "connect_four"}
    batch_sizes = (1, 64) if args.quick else (1, 64, 1024, 4096)
    for name, pgx_name in references.items():
        engines: dict[str, tuple[Callable, Callable]] = {
            "rlloop": (games.make(name).init, games.make(name).step)
        }
        if pgx is not None:
            env = pgx.make(pgx_name)
            engines["pgx"] = (env.init, lambda s, a, env=env: env.step(s, a))
        for batch_size in batch_sizes:
            num_steps = 256
            rates = {}
            for engine, (init, step) in engines.items():
                run = make_random_play(init, step, batch_size=batch_size, num_steps=num_steps)
                key = jax.random.key(0)
                start = time.perf_counter()
                jax.block_until_ready(run(key))
                compile_seconds = time.perf_counter() - start
                seconds = time_call(lambda run=run, key=key: run(key), min_seconds=args.seconds)
                rates[engine] = batch_size * num_steps / seconds
                config = {"game": name, "engine": engine, "batch_size": batch_size}
                yield record("env_random_play", rates[engine], "steps/s", **config)
                yield record("env_random_play_compile", compile_seconds, "s", **config)
            if "pgx" in rates:
                yield record(
                    "env_random_play_ratio_vs_pgx",
                    rates["rlloop"] / rates["pgx"],
                    "x",
                    game=name,
                    batch_size=batch_size,
                )


SUITES["env"] = _env_suite


# ---------------------------------------------------------------------------- self-play

# conf/model/tiny.yaml (2 x 32) and conf/model/small.yaml (4 x 64), the CPU grid's nets, and
# 6 x 128, a GPU-sized net (the GPU check's grid; not in the default CPU grid).
NETS: dict[str, dict[str, int]] = {
    "2x32": {"num_blocks": 2, "channels": 32, "value_hidden": 64},
    "4x64": {"num_blocks": 4, "channels": 64, "value_hidden": 128},
    "6x128": {"num_blocks": 6, "channels": 128, "value_hidden": 128},
}
CPU_NETS = ("2x32", "4x64")
TEMPERATURE_MOVES = 10  # conf/loop/default.yaml
# Moves per timed call (all games together): enough work per call to dwarf dispatch, little
# enough that the biggest configuration (4x64, 32 simulations) takes ~20 s a call on 2 cores.
MOVES_PER_CALL_BUDGET = 1024


def moves_per_call(batch_size: int) -> int:
    """Moves every game advances in one timed call: ``MOVES_PER_CALL_BUDGET // batch`` (1..64)."""
    return max(1, min(64, MOVES_PER_CALL_BUDGET // batch_size))


def _compile(jitted: Any, *args: Any) -> tuple[Any, float]:
    """(compiled executable, wall seconds spent tracing and compiling it)."""
    start = time.perf_counter()
    compiled = jitted.lower(*args).compile()
    return compiled, time.perf_counter() - start


class _Lazy:
    """A build run in the caller's thread when its result is first asked for."""

    def __init__(self, build: Callable[[], Any]) -> None:
        self._build, self._done, self._value, self._error = build, False, None, None

    def result(self) -> Any:
        if not self._done:
            try:
                self._value = self._build()
            except BaseException as error:  # kept, and raised to every caller, like a Future
                self._error = error
            self._done = True
        if self._error is not None:
            raise self._error
        return self._value


def build_all(builds: list[Callable[[], Any]], workers: int) -> list[Any]:
    """Run ``builds`` (tracing and compiling programs) and return one handle per build, in
    order; ``handle.result()`` returns the build's value or raises its error.

    With ``workers`` > 1 the builds run on that many daemon threads, taken in order, and this
    returns once all have finished: XLA compiles with the GIL released, so on a many-core
    host (16 cores beside one H200) N programs compile in about the time of the slowest.
    With ``workers`` <= 1 each build runs in the caller's thread when its result is first
    asked for, as the suites always did.
    """
    if workers <= 1:
        return [_Lazy(build) for build in builds]
    import concurrent.futures
    import queue
    import threading

    futures = [concurrent.futures.Future() for _ in builds]
    todo: queue.SimpleQueue = queue.SimpleQueue()
    for item in zip(builds, futures, strict=True):
        todo.put(item)

    def worker() -> None:
        while True:
            try:
                build, future = todo.get_nowait()
            except queue.Empty:
                return
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(build())
            except BaseException as error:
                future.set_exception(error)

    for _ in range(min(workers, len(builds))):
        threading.Thread(target=worker, daemon=True).start()
    # Nothing is timed while programs still compile: on the H200 (2026-12-04) the first
    # configurations, timed beside 16 compiling threads (tracing holds the GIL, autotuning
    # runs on the GPU), came out 5-30x slower than the same work timed afterwards.
    concurrent.futures.wait(futures)
    return futures


def over_budget(args: argparse.Namespace) -> bool:
    """True once ``--budget`` seconds have passed since the bench started (0: no budget)."""
    budget = float(getattr(args, "budget", 0) or 0)
    started = getattr(args, "started", None)
    return bool(budget) and started is not None and time.perf_counter() - started >= budget


def skipped_for_budget(name: str, **config: Any) -> Record:
    """The line for a configuration left out because ``--budget`` was spent."""
    return record(name, 1, "skipped", **config, reason="--budget spent")


def _workers(args: argparse.Namespace) -> int:
    return int(getattr(args, "compile_workers", 1) or 1)


class _Carried:
    """Runs ``step(state, key) -> (state, out)`` over and over, carrying ``state``.

    Self-play continues the same games from call to call (as the loop does), and every call
    gets a fresh key. Returns ``out`` so the timer can block on the whole result.
    """

    def __init__(self, step: Callable[[Any, jax.Array], tuple[Any, Any]], state: Any) -> None:
        self.step, self.state, self.calls = step, state, 0
        self.outputs: list[Any] = []

    def __call__(self) -> Any:
        self.state, out = self.step(self.state, jax.random.fold_in(jax.random.key(1), self.calls))
        self.calls += 1
        self.outputs.append(out)
        return out


def make_rlloop_selfplay(
    network: Any, params: Any, *, num_simulations: int, batch_size: int, num_moves: int, mesh: Any,
    game_name: str = "connect4", program: str = "shard_map", opponent_mix: float = 0.0,
) -> tuple[Callable[[Any, jax.Array], tuple[Any, Any]], Any, float]:  # fmt: skip
    """rlloop's self-play chunk as the loop builds it (:func:`rlloop.programs.build_programs`;
    ``program="shard_map"``: one program per device, ``parallel.jit_selfplay``), or with
    ``program="jit"`` as plain ``jax.jit`` with batch shardings, which leaves the split to
    XLA's SPMD partitioner (the reference in the ``devices`` suite).

    ``opponent_mix`` > 0: the chunk with that share of games against an opponent
    (``programs.play_against``; the opponent a differently initialised network searching
    like the player), its states then (games, seats).

    Returns (``step(states, key) -> (states, chunk)``, the first states, compile seconds).
    """
    from omegaconf import OmegaConf

    from rlloop import parallel
    from rlloop.config import Config
    from rlloop.programs import build_programs
    from rlloop.selfplay import new_games
    from rlloop.train import make_optimizer

    game = games.make(game_name)
    # The loop's own programs (rlloop.programs), from the default config: Gumbel search with
    # 256 slots, TEMPERATURE_MOVES sampled moves, no random openings.
    config = OmegaConf.structured(Config)
    config.search.num_simulations = num_simulations
    config.loop.moves_per_chunk = num_moves
    config.loop.temperature_moves = TEMPERATURE_MOVES
    config.schedule.opponent_mix = opponent_mix
    config.hardware.games_per_device = batch_size // mesh.devices.size
    programs = build_programs(
        game, network, make_optimizer(config.train), config, mesh, batch_size=batch_size
    )
    if program == "shard_map":
        jitted = programs.play
    elif program == "jit":
        by_game = parallel.batch_sharding(mesh)
        jitted = jax.jit(
            programs.play_local,
            in_shardings=(parallel.replicated(mesh), by_game, parallel.replicated(mesh)),
            out_shardings=(by_game, parallel.batch_sharding(mesh, axis=1)),
        )
    else:
        raise ValueError(f"program={program!r}; valid: shard_map, jit")
    params = parallel.put_replicated(params, mesh)
    states = parallel.put_batch(new_games(game, jax.random.key(2), batch_size), mesh)
    if programs.play_against is not None and program == "shard_map":
        from rlloop.selfplay import Opponent

        other = jax.tree.map(lambda x: x[::-1] if x.ndim else x, params)  # another network, same shapes
        opponent = parallel.put_replicated(Opponent(params=other, uniform=jax.numpy.asarray(False)), mesh)
        compiled, seconds = _compile(programs.play_against, params, opponent, states,
                                     programs.new_seats(jax.random.key(3)), jax.random.key(0))  # fmt: skip

        def step_against(carry: Any, key: jax.Array) -> tuple[Any, Any]:
            games_now, seats, chunk = compiled(params, opponent, *carry, key)
            return (games_now, seats), chunk

        return step_against, (states, programs.new_seats(jax.random.key(3))), seconds
    compiled, seconds = _compile(jitted, params, states, jax.random.key(0))

    def step(states: Any, key: jax.Array) -> tuple[Any, Any]:
        return compiled(params, states, key)

    return step, states, seconds


def make_reference_selfplay(
    network: Any, params: Any, *, num_simulations: int, batch_size: int, num_moves: int
) -> tuple[Callable[[Any, jax.Array], tuple[Any, Any]], Any, float]:
    """The reference: plain single-device pgx + mctx Gumbel self-play, written the obvious way.

    Modelled on pgx's AlphaZero example (``examples/alphazero/train.py``): ``vmap`` of
    ``env.step`` inside ``recurrent_fn`` over pgx states, ``mctx.gumbel_muzero_policy`` with its
    default completed-Q transform, ``pgx.experimental.auto_reset`` and a ``lax.scan`` over moves,
    all under one plain ``jax.jit`` (default device, no shardings). Same network and
    parameters as rlloop (pgx's Connect Four observation is also [6, 7, 2], mover's view).
    Returns (``step(states, key) -> (states, data)``, the first states, compile seconds).
    """
    import mctx
    import pgx
    from pgx.experimental import auto_reset

    env = pgx.make("connect_four")
    step_fn = auto_reset(env.step, env.init)

    def forward(params: Any, observation: jax.Array) -> tuple[jax.Array, jax.Array]:
        logits, values = network.apply(params, observation)
        return logits, values[:, 0]  # the mover's value

    def recurrent_fn(params: Any, key: jax.Array, action: jax.Array, state: Any):
        del key
        current_player = state.current_player
        state = jax.vmap(env.step)(state, action)
        logits, value = forward(params, state.observation)
        logits = logits - jnp.max(logits, axis=-1, keepdims=True)
        logits = jnp.where(state.legal_action_mask, logits, jnp.finfo(logits.dtype).min)
        reward = state.rewards[jnp.arange(state.rewards.shape[0]), current_player]
        value = jnp.where(state.terminated, 0.0, value)
        discount = jnp.where(state.terminated, 0.0, -1.0 * jnp.ones_like(value))
        output = mctx.RecurrentFnOutput(
            reward=reward, discount=discount, prior_logits=logits, value=value
        )
        return output, state

    def play(params: Any, state: Any, key: jax.Array) -> tuple[Any, Any]:
        def body(state: Any, key: jax.Array) -> tuple[Any, Any]:
            key1, key2 = jax.random.split(key)
            observation = state.observation
            logits, value = forward(params, observation)
            root = mctx.RootFnOutput(prior_logits=logits, value=value, embedding=state)
            policy_output = mctx.gumbel_muzero_policy(
                params=params,
                rng_key=key1,
                root=root,
                recurrent_fn=recurrent_fn,
                num_simulations=num_simulations,
                invalid_actions=~state.legal_action_mask,
                qtransform=mctx.qtransform_completed_by_mix_value,
                gumbel_scale=1.0,
            )
            actor = state.current_player
            keys = jax.random.split(key2, batch_size)
            state = jax.vmap(step_fn)(state, policy_output.action, keys)
            data = {
                "observation": observation,
                "action_weights": policy_output.action_weights,
                "reward": state.rewards[jnp.arange(batch_size), actor],
                "terminated": state.terminated,
            }
            return state, data

        return jax.lax.scan(body, state, jax.random.split(key, num_moves))

    jitted = jax.jit(play)
    states = jax.vmap(env.init)(jax.random.split(jax.random.key(2), batch_size))
    compiled, seconds = _compile(jitted, params, states, jax.random.key(0))

    def step(states: Any, key: jax.Array) -> tuple[Any, Any]:
        states, data = compiled(params, states, key)
        return states, data

    return step, states, seconds


def make_sequential_selfplay(
    network: Any, params: Any, *, num_simulations: int
) -> tuple[Callable[[jax.Array], int], float]:
    """The sequential baseline: one game at a time, one jitted move (batch 1) per Python step.

    The same rlloop search and move rule as the chunk, without batching: what a user writes
    around a search today. Returns (``play_game(key) -> moves played``, compile seconds).
    """
    from rlloop.search import greedy_action, make_search

    game = games.make("connect4")
    search = make_search(game, network, num_simulations=num_simulations)

    def move(params: Any, states: Any, key: jax.Array) -> Any:
        output = search(params, key, states)
        explore = states.step_count < TEMPERATURE_MOVES
        action = jnp.where(explore, output.action, greedy_action(output))
        return jax.vmap(game.step)(states, action.astype(jnp.int32))

    first = jax.vmap(game.init)(jax.random.split(jax.random.key(2), 1))
    compiled, seconds = _compile(jax.jit(move), params, first, jax.random.key(0))

    def play_game(key: jax.Array) -> int:
        states, moves = first, 0
        while True:
            states = compiled(params, states, jax.random.fold_in(key, moves))
            moves += 1
            if bool(states.terminated[0] | states.truncated[0]):  # one host sync per move
                return moves

    return play_game, seconds


def _selfplay_grid(args: argparse.Namespace) -> list[tuple[str, int, int]]:
    """(net, simulations, batch) configurations of the ``selfplay`` suite."""
    if getattr(args, "selfplay_config", None):
        chosen = []
        for text in args.selfplay_config:
            net, sims, batch = text.split(":")
            if net not in NETS:
                raise SystemExit(f"--selfplay-config {text!r}: net must be one of {', '.join(NETS)}")
            chosen.append((net, int(sims), int(batch)))
        return chosen
    if args.quick:
        return [("2x32", 8, 64)]
    return [(net, sims, batch) for net in CPU_NETS for sims in (8, 32) for batch in (64, 256, 1024)]


def _network_and_params(net: str, game_name: str = "connect4") -> tuple[Any, Any]:
    from rlloop.networks import init_params, make_network

    game = games.make(game_name)
    network = make_network(game, **NETS[net])
    return network, init_params(network, game, jax.random.key(0))


def _time_carried(carried: _Carried, args: argparse.Namespace) -> float:
    """Seconds per call after a warm-up call; a call longer than ``args.seconds`` is timed
    once more only (the big configurations take tens of seconds per call on 2 cores)."""
    return time_interleaved([carried], args)[0]


def time_interleaved(fns: list[Callable[[], Any]], args: argparse.Namespace) -> list[float]:
    """Mean wall seconds per call of each of ``fns``, timed in turns (A B A B ...).

    On a shared machine the load changes from minute to minute; taking turns exposes every
    side of a ratio to the same load. After one warm-up call each, rounds repeat until every
    side has run ``args.seconds`` and at least 3 rounds (1 when a call exceeds the seconds).
    """
    slow = False
    for fn in fns:
        start = time.perf_counter()
        jax.block_until_ready(fn())
        slow = slow or time.perf_counter() - start >= args.seconds
    totals, rounds = [0.0] * len(fns), 0
    while True:
        for index, fn in enumerate(fns):
            start = time.perf_counter()
            jax.block_until_ready(fn())
            totals[index] += time.perf_counter() - start
        rounds += 1
        if rounds >= (1 if slow else 3) and min(totals) >= args.seconds:
            return [total / rounds for total in totals]


def measure_rlloop_selfplay(
    net: str, num_simulations: int, batch_size: int, args: argparse.Namespace, mesh: Any,
    game_name: str = "connect4", program: str = "shard_map",
) -> tuple[float, float]:  # fmt: skip
    """(moves/s, compile seconds) of rlloop's self-play chunk (see make_rlloop_selfplay)."""
    network, params = _network_and_params(net, game_name)
    num_moves = moves_per_call(batch_size)
    step, states, compile_seconds = make_rlloop_selfplay(
        network, params, num_simulations=num_simulations, batch_size=batch_size,
        num_moves=num_moves, mesh=mesh, game_name=game_name, program=program,
    )  # fmt: skip
    seconds = _time_carried(_Carried(step, states), args)
    return batch_size * num_moves / seconds, compile_seconds


def _sequential_records(
    net: str, sims: int, args: argparse.Namespace, built: tuple[Callable[[jax.Array], int], float]
) -> Iterable[Record]:
    """Sequential games/s, moves/s, mean game length and compile time for one search
    (``built``: :func:`make_sequential_selfplay`'s result)."""
    play_game, compile_seconds = built
    # Whole games, enough of them for a mean game length within about a move.
    min_games = 2 if args.quick else int(getattr(args, "sequential_games", 12) or 12)
    play_game(jax.random.key(-1))  # warm-up: the first calls of an executable are slower
    start, games_played, moves_played = time.perf_counter(), 0, 0
    while True:
        moves_played += play_game(jax.random.key(games_played))
        games_played += 1
        elapsed = time.perf_counter() - start
        if games_played >= min_games and elapsed >= args.seconds:
            break
    config = {"game": "connect4", "net": net, "simulations": sims, "batch_size": 1,
              "engine": "sequential", "games": games_played}
    yield record("selfplay_games", games_played / elapsed, "games/s", **config)
    yield record("selfplay_moves", moves_played / elapsed, "moves/s", **config)
    yield record("selfplay_mean_game_length", moves_played / games_played, "moves", **config)
    yield record("selfplay_compile", compile_seconds, "s", **config)


def _selfplay_builds(
    grid: list[tuple[str, int, int]], mesh: Any
) -> tuple[list[Callable[[], Any]], dict[tuple[str, int], int], list[tuple[int, int]]]:
    """The programs of the ``selfplay`` suite in the order they are measured: each (net,
    simulations)'s sequential baseline before its first batch, then rlloop's chunk and the
    reference for every configuration. Returns (builds, sequential build index by (net,
    simulations), (rlloop, reference) build indices by configuration)."""
    builds: list[Callable[[], Any]] = []
    sequential: dict[tuple[str, int], int] = {}
    pairs: list[tuple[int, int]] = []
    for net, sims, batch in grid:
        if (net, sims) not in sequential:
            sequential[(net, sims)] = len(builds)
            builds.append(lambda net=net, sims=sims: make_sequential_selfplay(
                *_network_and_params(net), num_simulations=sims))  # fmt: skip
        num_moves = moves_per_call(batch)

        def rlloop_side(net=net, sims=sims, batch=batch, num_moves=num_moves):
            return make_rlloop_selfplay(
                *_network_and_params(net), num_simulations=sims, batch_size=batch,
                num_moves=num_moves, mesh=mesh,
            )  # fmt: skip

        def reference_side(net=net, sims=sims, batch=batch, num_moves=num_moves):
            return make_reference_selfplay(
                *_network_and_params(net), num_simulations=sims, batch_size=batch,
                num_moves=num_moves,
            )  # fmt: skip

        pairs.append((len(builds), len(builds) + 1))
        builds += [rlloop_side, reference_side]
    return builds, sequential, pairs


def _selfplay_suite(args: argparse.Namespace) -> Iterable[Record]:
    from rlloop import parallel

    mesh = parallel.make_mesh()
    devices = mesh.devices.size
    grid = _selfplay_grid(args)
    builds, sequential_index, pairs = _selfplay_builds(grid, mesh)
    handles = build_all(builds, _workers(args))
    sequential: dict[tuple[str, int], dict[str, float]] = {}
    for position, ((net, sims, batch), (own, ref)) in enumerate(zip(grid, pairs, strict=True)):
        config = {"game": "connect4", "net": net, "simulations": sims, "batch_size": batch}
        if over_budget(args):
            for net_, sims_, batch_ in grid[position:]:
                yield skipped_for_budget("selfplay_skipped", game="connect4", net=net_,
                                         simulations=sims_, batch_size=batch_)  # fmt: skip
            return
        if (net, sims) not in sequential:
            built = handles[sequential_index[(net, sims)]].result()
            lines = list(_sequential_records(net, sims, args, built))
            yield from lines
            sequential[(net, sims)] = {line["name"]: line["value"] for line in lines}
        baseline = sequential[(net, sims)]
        # Batched games/s = moves/s / mean game length, the length measured over the
        # sequential baseline's whole games (same search, net and move rule). A timed batch
        # call is a few moves of every game, too short to count whole games without bias.
        length = baseline["selfplay_mean_game_length"]
        num_moves = moves_per_call(batch)
        try:
            step, states, compile_seconds = handles[own].result()
            ref_step, ref_states, ref_compile = handles[ref].result()
            seconds, ref_seconds = time_interleaved(
                [_Carried(step, states), _Carried(ref_step, ref_states)], args
            )
        except _OUT_OF_RESOURCES as error:
            yield record("selfplay_skipped", 1, "skipped", **config,
                         reason=f"{type(error).__name__}: {str(error)[:200]}")
            continue
        rate, ref_rate = batch * num_moves / seconds, batch * num_moves / ref_seconds
        engine = {"engine": "rlloop", "devices": devices, "moves_per_call": num_moves}
        yield record("selfplay_moves", rate, "moves/s", **config, **engine)
        yield record("selfplay_games", rate / length, "games/s", **config, **engine)
        yield record("selfplay_compile", compile_seconds, "s", **config, **engine)
        reference = {"engine": "pgx+mctx", "devices": 1, "moves_per_call": num_moves}
        yield record("selfplay_moves", ref_rate, "moves/s", **config, **reference)
        yield record("selfplay_games", ref_rate / length, "games/s", **config, **reference)
        yield record("selfplay_compile", ref_compile, "s", **config, **reference)
        yield record("selfplay_ratio_vs_reference", rate / ref_rate, "x", **config)
        yield record(
            "selfplay_games_ratio_vs_sequential", rate / length / baseline["selfplay_games"],
            "x", **config,
        )  # fmt: skip


SUITES["selfplay"] = _selfplay_suite


# ---------------------------------------------------------------------------- train


def _train_grid(args: argparse.Namespace) -> list[tuple[str, int, int]]:
    """(net, batch, steps per call) of the ``train`` suite: ``--train-net`` and
    ``--train-batch`` when given, else 2x32 and 4x64 at 256 and 1024 (2x32 at 64 with
    ``--quick``); ``--train-steps`` steps per call, else 4096 // batch (at least 2)."""
    nets = [name for text in getattr(args, "train_net", None) or [] for name in text.split(",")]
    for net in nets:
        if net not in NETS:
            raise SystemExit(f"--train-net {net!r}: valid: {', '.join(NETS)}")
    batches = [int(b) for text in getattr(args, "train_batch", None) or [] for b in text.split(",")]
    nets = nets or (["2x32"] if args.quick else list(CPU_NETS))
    batches = batches or ([64] if args.quick else [256, 1024])
    fixed = int(getattr(args, "train_steps", 0) or 0)
    return [
        (net, batch, fixed or (2 if args.quick else max(2, 4096 // batch)))
        for net in nets for batch in batches
    ]  # fmt: skip


def _train_suite(args: argparse.Namespace) -> Iterable[Record]:
    import numpy as np

    from rlloop import parallel
    from rlloop.config import compose
    from rlloop.train import init_train_state, make_optimizer, make_train_step, stack_symmetries

    train_config = compose([]).train  # the default optimiser, schedule and augmentation
    game = games.make("connect4")
    mesh = parallel.make_mesh()
    replicated = parallel.replicated(mesh)
    by_step_and_sample = parallel.batch_sharding(mesh, axis=1)
    tables = stack_symmetries(game.symmetries()) if train_config.augment else None
    on_cpu = mesh.devices.flat[0].platform == "cpu"
    grid = _train_grid(args)

    def build(net: str, batch: int, num_steps: int) -> dict[str, Any]:
        network, params = _network_and_params(net)
        optimizer = make_optimizer(train_config)
        train_step = make_train_step(
            network, optimizer,
            value_loss_weight=float(train_config.value_loss_weight), symmetry_tables=tables,
        )  # fmt: skip
        # As the loop does: one jitted step per Python call, batches split on ``data``,
        # state replicated and donated.
        jitted_step = jax.jit(
            train_step,
            in_shardings=(replicated, by_step_and_sample, replicated, replicated),
            out_shardings=(replicated, replicated),
            donate_argnums=(0,),
        )

        def scanned(state: Any, batches: Any, key: jax.Array) -> Any:
            keys = jax.random.split(key, num_steps)
            return jax.lax.scan(
                lambda state, index: train_step(state, batches, index, keys[index]),
                state, jnp.arange(num_steps, dtype=jnp.int32),
            )  # fmt: skip

        # The alternative: the K steps in one jitted ``lax.scan``.
        jitted_scan = jax.jit(
            scanned,
            in_shardings=(replicated, by_step_and_sample, replicated),
            out_shardings=(replicated, replicated),
            donate_argnums=(0,),
        )
        rng = np.random.default_rng(0)
        shape = (num_steps, batch)
        policy = rng.random((*shape, game.num_actions), dtype=np.float32)
        observation = rng.random((*shape, *game.observation_shape)) < 0.3
        batches = {
            "observation": observation.astype(np.float32),
            "policy": policy / policy.sum(-1, keepdims=True),
            "value": rng.choice(np.float32([-1, 0, 1]), (*shape, game.num_players)),
        }
        batches = parallel.put_batch(batches, mesh, axis=1)

        def fresh_state() -> Any:
            # Host copies first: each timed side donates its own state's buffers.
            state = jax.tree.map(np.array, init_train_state(params, optimizer))
            return parallel.put_replicated(state, mesh)

        key = jax.random.key(0)
        step_exe, step_compile = _compile(jitted_step, fresh_state(), batches, jnp.int32(0), key)

        def python_loop(state: Any, key: jax.Array) -> Any:
            keys = jax.random.split(key, num_steps)
            for index in range(num_steps):
                state, metrics = step_exe(state, batches, np.int32(index), keys[index])
            return state, metrics

        sides = [("step", _Carried(python_loop, fresh_state()), step_compile)]
        # On XLA:CPU the scan runs ~15x slower (convolution gradients inside a loop body):
        # the 4x64 net's scan takes minutes a call there, so on CPU only 2x32 compares both.
        if net == "2x32" or not on_cpu:
            scan_exe, scan_compile = _compile(jitted_scan, fresh_state(), batches, key)
            sides.append(("scan", _Carried(lambda state, key: scan_exe(state, batches, key),
                                           fresh_state()), scan_compile))  # fmt: skip
        return {"sides": sides}

    handles = build_all([lambda c=c: build(*c) for c in grid], _workers(args))
    for position, ((net, batch, num_steps), handle) in enumerate(zip(grid, handles, strict=True)):
        config = {"game": "connect4", "net": net, "batch_size": batch,
                  "steps_per_call": num_steps, "devices": mesh.devices.size}
        if over_budget(args):
            for net_, batch_, steps_ in grid[position:]:
                yield skipped_for_budget("train_skipped", game="connect4", net=net_,
                                         batch_size=batch_, steps_per_call=steps_)  # fmt: skip
            return
        try:
            sides = handle.result()["sides"]
            seconds = time_interleaved([carried for _, carried, _ in sides], args)
        except _OUT_OF_RESOURCES as error:
            yield record("train_skipped", 1, "skipped", **config,
                         reason=f"{type(error).__name__}: {str(error)[:200]}")
            continue
        for (style, _, compile_seconds), per_call in zip(sides, seconds, strict=True):
            yield record("train_steps", num_steps / per_call, "steps/s", **config, style=style)
            yield record("train_samples", num_steps * batch / per_call, "samples/s",
                         **config, style=style)
            yield record("train_compile", compile_seconds, "s", **config, style=style)
        if len(seconds) == 2:
            yield record("train_ratio_step_vs_scan", seconds[1] / seconds[0], "x", **config)


SUITES["train"] = _train_suite


# ---------------------------------------------------------------------------- devices


def _devices_grid(args: argparse.Namespace) -> list[tuple[str, int, int]]:
    """(net, simulations, total batch) configurations of the ``devices`` suite."""
    if args.quick or args.devices_game != "connect4":
        return [("2x32", 8, 64 if args.quick else 256)]
    return [("2x32", 8, 256), ("2x32", 32, 256), ("4x64", 32, 256)]


def _devices_child(args: argparse.Namespace) -> Iterable[Record]:
    """Run in a fresh process with ``args.devices_child`` host devices (see ``main``). On
    several devices it also measures the plain-jit program (XLA's SPMD split) side by side."""
    from rlloop import parallel

    mesh = parallel.make_mesh()
    net, sims, batch = args.child_config.split(":")
    processes = jax.process_count()
    config = {"game": args.devices_game, "net": net, "simulations": int(sims),
              "batch_size": int(batch), "devices": mesh.devices.size}  # fmt: skip
    if processes > 1:
        config["processes"] = processes
    programs = ("shard_map", "jit") if mesh.devices.size > 1 and processes == 1 else ("shard_map",)
    rates = {}
    for program in programs:
        rate, compile_seconds = measure_rlloop_selfplay(
            net, int(sims), int(batch), args, mesh, game_name=args.devices_game, program=program
        )
        if processes > 1:  # each timed its own games (its share of the batch): the run's rate is the sum
            rate = float(sum(parallel.gather(rate / processes)))
            compile_seconds = max(parallel.gather(compile_seconds))
            if jax.process_index():
                continue
        rates[program] = rate
        name = "devices_selfplay" if program == "shard_map" else "devices_selfplay_spmd_jit"
        yield record(f"{name}_moves", rate, "moves/s", **config)
        yield record(f"{name}_compile", compile_seconds, "s", **config)
    if len(programs) > 1:
        yield record("devices_shard_map_vs_spmd_jit", rates["shard_map"] / rates["jit"], "x", **config)


def _run_child(command: list[str], timeout: float) -> list[Record]:
    import subprocess

    try:
        done = subprocess.run(command, capture_output=True, text=True, check=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired as error:
        raise RuntimeError(f"{' '.join(command)} did not finish in {error.timeout} s") from error
    except subprocess.CalledProcessError as error:
        raise RuntimeError(f"{' '.join(command)} failed:\n{error.stderr[-2000:]}") from error
    return [json.loads(line) for line in done.stdout.splitlines()]


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _run_children(commands: list[list[str]], timeout: float) -> list[Record]:
    """Run ``commands`` at once (the processes of one multi-process run); process 0's records."""
    import subprocess

    running = [subprocess.Popen(c, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for c in commands]
    outputs = []
    try:
        for command, process in zip(commands, running, strict=True):
            out, err = process.communicate(timeout=timeout)
            if process.returncode:
                raise RuntimeError(f"{' '.join(command)} failed:\n{err[-2000:]}")
            outputs.append(out)
    except subprocess.TimeoutExpired as error:
        raise RuntimeError(f"{' '.join(error.cmd)} did not finish in {error.timeout} s") from error
    finally:
        for process in running:
            if process.poll() is None:
                process.kill()
    # Gloo prints its connection lines to stdout too.
    return [json.loads(line) for line in outputs[0].splitlines() if line.startswith("{")]


def _devices_suite(args: argparse.Namespace) -> Iterable[Record]:
    counts = (1, max(2, args.devices))
    for net, sims, batch in _devices_grid(args):
        rates = {}
        # One fresh process per count and configuration, the counts back to back so that
        # both sides of a ratio see nearly the same machine load.
        for count in counts:
            command = [sys.executable, "-m", "rlloop.bench", "--devices-child", str(count),
                       "--child-config", f"{net}:{sims}:{batch}", "--seconds", str(args.seconds),
                       "--devices-game", args.devices_game]
            for item in _run_child(command, args.child_timeout):
                yield item
                if item["name"] == "devices_selfplay_moves":
                    rates[count] = item["value"]
        yield record(
            "devices_ratio", rates[counts[1]] / rates[1], "x", game=args.devices_game, net=net,
            simulations=sims, batch_size=batch, devices=counts[1], versus=1,
        )  # fmt: skip
        # The same devices as processes: counts[1] processes of one device each, over
        # jax.distributed on 127.0.0.1 (gloo), vs one process of counts[1] devices.
        processes = counts[1]
        port = _free_port()
        children = [
            [sys.executable, "-m", "rlloop.bench", "--devices-child", "1", "--child-config", f"{net}:{sims}:{batch}",
             "--seconds", str(args.seconds), "--devices-game", args.devices_game,
             "--child-processes", str(processes), "--child-process-id", str(index),
             "--child-coordinator", f"127.0.0.1:{port}"]
            for index in range(processes)
        ]  # fmt: skip
        rate = None
        for item in _run_children(children, args.child_timeout):
            yield item
            if item["name"] == "devices_selfplay_moves":
                rate = item["value"]
        yield record(
            "devices_processes_ratio", rate / rates[counts[1]], "x", game=args.devices_game, net=net,
            simulations=sims, batch_size=batch, processes=processes, devices_each=1,
            versus=f"1 process x {counts[1]} devices",
        )  # fmt: skip


SUITES["devices"] = _devices_suite


# ---------------------------------------------------------------------------- ringrift

RINGRIFT_CONFIGS = tuple(
    f"{board}_{players}p"
    for board in ("square8", "hex8", "square19", "hexagonal")
    for players in (2, 3, 4)
)
# Moves per timed random-play call, all games together (batch x steps, steps capped at 256):
# 256 steps at batch 1, 64 at batch 64, 4 at batch 1024.
RINGRIFT_MOVES_PER_CALL = 4096


def state_bytes(states: Any) -> int:
    """Bytes of a ``State`` pytree (arrays or ``jax.ShapeDtypeStruct``s): sum of leaf sizes."""
    return sum(
        int(leaf.size) * jnp.dtype(leaf.dtype).itemsize for leaf in jax.tree.leaves(states)
    )


def _available_memory(device: Any = None) -> int | None:
    """Bytes a program can still get: on an accelerator, its allocator's limit minus what is
    in use (``Device.memory_stats``); on the host, what the OS can hand out
    (``MemAvailable``). None where unknown."""
    if device is not None and device.platform != "cpu":
        stats = device.memory_stats() if hasattr(device, "memory_stats") else None
        if stats and "bytes_limit" in stats:
            return int(stats["bytes_limit"]) - int(stats.get("bytes_in_use", 0))
        return None
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _ringrift_configs(args: argparse.Namespace) -> list[str]:
    """Configurations chosen by ``--ringrift-configs`` (comma-separated, repeatable)."""
    chosen = [
        name.strip().removeprefix("ringrift_")
        for text in getattr(args, "ringrift_configs", None) or []
        for name in text.split(",")
        if name.strip()
    ]
    for name in chosen:
        if name not in RINGRIFT_CONFIGS:
            raise SystemExit(
                f"--ringrift-configs: {name!r} is not a RingRift configuration; valid: "
                f"{', '.join(RINGRIFT_CONFIGS)}"
            )
    if chosen:
        return chosen
    return ["square8_2p"] if args.quick else list(RINGRIFT_CONFIGS)


def _ringrift_random_play_build(game: games.Game, batch: int, args: argparse.Namespace) -> dict:
    """Compile the random-play call of ``batch`` games (see :func:`_ringrift_random_play`)."""
    budget = 256 if args.quick else RINGRIFT_MOVES_PER_CALL
    num_steps = max(1, min(256, budget // batch))
    run = jax.jit(
        make_carried_random_play(game.init, game.step, batch_size=batch, num_steps=num_steps)
    )
    states = jax.vmap(game.init)(jax.random.split(jax.random.key(0), batch))
    first_lengths = jnp.zeros(batch, jnp.int32)
    compiled, compile_seconds = _compile(run, states, first_lengths, jax.random.key(1))
    return {"compiled": compiled, "compile_seconds": compile_seconds, "num_steps": num_steps,
            "states": states, "first_lengths": first_lengths}  # fmt: skip


def _ringrift_random_play(
    game: games.Game, batch: int, args: argparse.Namespace, built: Any, *, length_games: bool
) -> Iterable[Record]:
    """Random-play steps/s and compile time at ``batch`` (and, when ``length_games``, the mean
    length of one whole random game per slot of this batch). ``built``: the handle of
    :func:`_ringrift_random_play_build`'s result."""
    budget = 256 if args.quick else RINGRIFT_MOVES_PER_CALL
    num_steps = max(1, min(256, budget // batch))
    config = {"game": game.name, "batch_size": batch, "steps_per_call": num_steps}
    try:
        built = built.result()
    except _OUT_OF_RESOURCES as error:
        yield record("ringrift_random_play_skipped", 1, "skipped", **config,
                     reason=f"compile failed: {type(error).__name__}: {str(error)[:200]}")
        return
    compiled = built["compiled"]
    yield record("ringrift_random_play_compile", built["compile_seconds"], "s", **config)
    analysis = compiled.memory_analysis() if hasattr(compiled, "memory_analysis") else None
    if analysis is not None:
        needed = sum(
            int(getattr(analysis, field, 0) or 0)
            for field in ("argument_size_in_bytes", "output_size_in_bytes", "temp_size_in_bytes")
        )
        available = _available_memory(jax.devices()[0])
        if available is not None and needed > 0.8 * available:
            yield record("ringrift_random_play_skipped", needed, "bytes", **config,
                         reason=f"needs {needed / 2**30:.1f} GiB, {available / 2**30:.1f} GiB free")
            return
        yield record("ringrift_random_play_memory", needed, "bytes", **config)

    carried = _Carried(lambda carry, key: (lambda out: (out, out[1]))(compiled(*carry, key)),
                       (built["states"], built["first_lengths"]))
    try:
        seconds = time_interleaved([carried], args)[0]
    except _OUT_OF_RESOURCES as error:
        yield record("ringrift_random_play_skipped", 1, "skipped", **config,
                     reason=f"run failed: {type(error).__name__}: {str(error)[:200]}")
        return
    yield record("ringrift_random_play", batch * num_steps / seconds, "steps/s", **config)
    if not length_games:
        return
    # Keep playing until every slot has finished its first game (or the time is up): the
    # first games of all slots started together, so their lengths are an unbiased sample.
    start = time.perf_counter()
    calls_left = game.max_steps // num_steps + 2
    while calls_left and time.perf_counter() - start < args.ringrift_length_seconds:
        lengths = carried.state[1]
        if bool((lengths > 0).all()):
            break
        carried()
        calls_left -= 1
    lengths = jax.device_get(carried.state[1])
    finished = lengths[lengths > 0]
    if finished.size == batch:
        yield record(
            "ringrift_mean_game_length", finished.mean(), "moves", game=game.name,
            games=int(finished.size), unfinished=0,
            source=f"random play, first game of each of {batch} slots",
        )  # fmt: skip
    else:  # not every game ended in time: a mean over the finished ones would be too short
        played = carried.calls * num_steps  # moves every unfinished first game has so far
        bound = (float(finished.sum()) + played * (batch - finished.size)) / batch
        yield record(
            "ringrift_mean_game_length_lower_bound", bound, "moves",
            game=game.name, games=int(finished.size), unfinished=int(batch - finished.size),
            source=f"random play, {batch} slots, not all finished within the time allowed",
        )  # fmt: skip


def _ringrift_selfplay_config(args: argparse.Namespace, mesh: Any) -> tuple[str, int, int, int]:
    """(net, simulations, batch, moves per call) of the suite's self-play figure:
    ``--ringrift-selfplay NET:SIMS:BATCH``, else 2x32, 8 simulations, batch 64, 4 moves."""
    if args.quick:
        return "2x32", 2, 2 * mesh.devices.size, 1
    text = getattr(args, "ringrift_selfplay", None)
    if not text:
        return "2x32", 8, 64, 4
    net, sims, batch = text.split(":")
    if net not in NETS:
        raise SystemExit(f"--ringrift-selfplay {text!r}: net must be one of {', '.join(NETS)}")
    return net, int(sims), int(batch), max(1, min(4, RINGRIFT_MOVES_PER_CALL // int(batch)))


def _ringrift_selfplay(
    game: games.Game, args: argparse.Namespace, mesh: Any, built: Any
) -> Iterable[Record]:
    """Self-play moves/s with search (rlloop's chunk, as the ``selfplay`` suite builds it).
    ``built``: the handle of that chunk's :func:`make_rlloop_selfplay` result."""
    net, sims, batch, num_moves = _ringrift_selfplay_config(args, mesh)
    config = {"game": game.name, "net": net, "simulations": sims, "batch_size": batch,
              "moves_per_call": num_moves, "devices": mesh.devices.size}
    try:
        step, states, compile_seconds = built.result()
        seconds = _time_carried(_Carried(step, states), args)
    except _OUT_OF_RESOURCES as error:
        yield record("ringrift_selfplay_skipped", 1, "skipped", **config,
                     reason=f"{type(error).__name__}: {str(error)[:200]}")
        return
    yield record("ringrift_selfplay_compile", compile_seconds, "s", **config)
    yield record("ringrift_selfplay_moves", batch * num_moves / seconds, "moves/s", **config)


def _ringrift_batches(args: argparse.Namespace) -> tuple[list[int], int]:
    """(random-play batches, the batch whose games give the mean length)."""
    chosen = [int(b) for text in getattr(args, "ringrift_batches", None) or []
              for b in text.split(",") if b.strip()]  # fmt: skip
    if any(batch < 1 for batch in chosen):
        raise SystemExit(f"--ringrift-batches {chosen}: batches must be >= 1")
    batches = chosen or ([8] if args.quick else [1, 64, 1024])
    length_batch = 8 if args.quick else 64
    return batches, length_batch if length_batch in batches else batches[0]


def _ringrift_suite(args: argparse.Namespace) -> Iterable[Record]:
    from rlloop import parallel

    mesh = parallel.make_mesh()
    batches, length_batch = _ringrift_batches(args)
    names = _ringrift_configs(args)
    net, sims, sp_batch, sp_moves = _ringrift_selfplay_config(args, mesh)
    builds: list[Callable[[], Any]] = []
    for name in names:
        game = games.make(f"ringrift_{name}")
        builds += [lambda game=game, batch=batch: _ringrift_random_play_build(game, batch, args)
                   for batch in batches]  # fmt: skip
        builds.append(lambda game=game: make_rlloop_selfplay(
            *_network_and_params(net, game.name), num_simulations=sims, batch_size=sp_batch,
            num_moves=sp_moves, mesh=mesh, game_name=game.name,
        ))  # fmt: skip
    handles = iter(build_all(builds, _workers(args)))
    for position, name in enumerate(names):
        if over_budget(args):
            for name_ in names[position:]:
                yield skipped_for_budget("ringrift_skipped", game=f"ringrift_{name_}")
            return
        game = games.make(f"ringrift_{name}")
        shapes = jax.eval_shape(jax.vmap(game.init), jax.random.split(jax.random.key(0), 2))
        yield record("ringrift_state_bytes", state_bytes(shapes) / 2, "bytes", game=game.name)
        length = None
        for batch in batches:
            for line in _ringrift_random_play(
                game, batch, args, next(handles), length_games=batch == length_batch
            ):
                yield line
                if line["name"] == "ringrift_mean_game_length":
                    length = line
        for line in _ringrift_selfplay(game, args, mesh, next(handles)):
            yield line
            if line["name"] == "ringrift_selfplay_moves" and length is not None:
                # games/s = moves/s / mean length of random games (an untrained net's
                # self-play games are close to random play; trained play may differ).
                yield record(
                    "ringrift_selfplay_games", line["value"] / length["value"], "games/s",
                    **line["config"], mean_game_length=length["value"],
                    length_source=length["config"]["source"],
                )  # fmt: skip


SUITES["ringrift"] = _ringrift_suite


# ---------------------------------------------------------------------------- schedule


def _schedule_suite(args: argparse.Namespace) -> Iterable[Record]:
    """The multi-configuration scheduler's costs: the host time of one pick (twelve RingRift
    configurations, every dependency a cheap callable); replay bytes per sample of every
    RingRift configuration with dense and with sparse policy targets; and the cost of
    switching between two compiled self-play programs from chunk to chunk (tic-tac-toe and
    Connect Four, 2x32 net, 8 simulations), as a share of the chunk time."""
    from rlloop import parallel
    from rlloop.scheduler import Rating, ReplayPressure, SelfplayScheduler

    configs = list(RINGRIFT_CONFIGS)
    pressure = ReplayPressure(4.0, chunk_samples=1024)
    scheduler = SelfplayScheduler(
        configs,
        static_priority={c: 8 - i // 2 for i, c in enumerate(configs)},
        ratings=lambda: {
            c: Rating(elo=10.0 * i, iterations_since_promotion=i) for i, c in enumerate(configs)
        },
        should_stop=pressure.should_stop,
        should_throttle=pressure.should_throttle,
        throttle_factor=pressure.throttle_factor,
    )
    picks = 200 if args.quick else 5000
    start = time.perf_counter()
    for _ in range(picks):
        config = scheduler.pick_weighted_config()
        pressure.added(config, 1024)
        pressure.consumed(config, 4096)
    seconds = time.perf_counter() - start
    yield record("schedule_pick", seconds / picks * 1e6, "us", configs=len(configs), picks=picks)

    # Replay bytes per sample (observation float32, policy target, value per player): dense
    # targets (before 2026-12-04) vs sparse ones (K = 256 slots of int32 action + float32).
    from rlloop.replay import ReplayBuffer
    from rlloop.selfplay import policy_slots

    for name in ["ringrift_square8_2p"] if args.quick else [f"ringrift_{c}" for c in configs]:
        game = games.make(name)
        slots = policy_slots(game.num_actions, 256)
        buffer = ReplayBuffer(1, observation_shape=tuple(game.observation_shape),
                              num_actions=game.num_actions, num_players=game.num_players,
                              policy_slots=slots)  # fmt: skip
        sparse = buffer.bytes_per_sample
        dense = sparse - slots * 8 + game.num_actions * 4
        config = {"game": name, "num_actions": game.num_actions, "policy_slots": slots}
        yield record("schedule_replay_bytes_dense", dense, "bytes/sample", **config)
        yield record("schedule_replay_bytes_sparse", sparse, "bytes/sample", **config)

    mesh = parallel.make_mesh()
    batch = 2 * mesh.devices.size if args.quick else 64
    sims, moves = (2, 4) if args.quick else (8, 8)
    steps = {}
    for game_name in ("tictactoe", "connect4"):
        step, states, _ = make_rlloop_selfplay(
            *_network_and_params("2x32", game_name), num_simulations=sims, batch_size=batch,
            num_moves=moves, mesh=mesh, game_name=game_name,
        )  # fmt: skip
        steps[game_name] = _Carried(step, states)
    a, b = steps["tictactoe"], steps["connect4"]

    def same() -> Any:  # each program twice in a row: no switch between the two calls
        jax.block_until_ready(a())
        jax.block_until_ready(a())
        jax.block_until_ready(b())
        return b()

    def alternating() -> Any:  # the same four calls, switching program at every call
        jax.block_until_ready(a())
        jax.block_until_ready(b())
        jax.block_until_ready(a())
        return b()

    same_seconds, switch_seconds = time_interleaved([same, alternating], args)
    config = {"games": "tictactoe,connect4", "net": "2x32", "simulations": sims,
              "batch_size": batch, "moves_per_chunk": moves}  # fmt: skip
    yield record("schedule_chunk_seconds", same_seconds / 4, "s", **config)
    # Two switches more in the alternating round (a|b|a|b: 3 switches vs a a|b b: 1).
    yield record("schedule_switch_cost", (switch_seconds - same_seconds) / 2 / (same_seconds / 4)
                 * 100, "% of a chunk", **config)  # fmt: skip

    # Asymmetric games (schedule.opponent_mix): the opponent's search runs on its games on
    # top of the player's search on every game, so a chunk should cost about 1 + mix.
    mix = 0.25
    chunks = {}
    for share in (0.0, mix):
        step, states, _ = make_rlloop_selfplay(
            *_network_and_params("2x32", "connect4"), num_simulations=sims, batch_size=batch,
            num_moves=moves, mesh=mesh, game_name="connect4", opponent_mix=share,
        )  # fmt: skip
        chunks[share] = _Carried(step, states)
    plain, against = time_interleaved([chunks[0.0], chunks[mix]], args)
    config = {"game": "connect4", "net": "2x32", "simulations": sims, "batch_size": batch,
              "moves_per_chunk": moves, "opponent_mix": mix}  # fmt: skip
    yield record("schedule_opponent_mix_cost", against / plain, "x self-play chunk", **config)


SUITES["schedule"] = _schedule_suite


# -------------------------------------------------------------------------------- side
def _side_suite(args: argparse.Namespace) -> Iterable[Record]:
    """Side trainers (``rlloop.side``) through a real ``SidePool`` sized as ``hardware=cpu``
    (1 worker x 1 LightGBM thread, niced 10): models/s (boosters fitted per second of job
    wall time: k folds + the final model per job) and seconds per job, for value and move
    jobs, with the default config (100 trees, 3 folds) on the standard snapshot, 20,000
    Connect Four positions of random play (``side.max_samples``), and a small config (10
    trees, 3 folds, 2,000 positions). ``--quick``: 3 trees on 400 positions."""
    import dataclasses
    import tempfile

    import numpy as np

    from rlloop.side.jobs import TrainerSettings, model_jobs
    from rlloop.side.pool import SidePool
    from rlloop.side.snapshot import random_play_samples, snapshot_from_samples

    game = games.make("connect4")
    configs = ([("quick", 400, TrainerSettings(trees=3))] if args.quick else
               [("default", 20_000, TrainerSettings()), ("small", 2_000, TrainerSettings(trees=10))])  # fmt: skip
    largest = max(size for _, size, _ in configs)
    samples = random_play_samples(game, jax.random.key(0), num_games=largest // 20 + 1)
    snapshot = snapshot_from_samples(game, samples, iteration=0)
    repeats = 1 if args.quick else 3
    with tempfile.TemporaryDirectory() as out, SidePool(workers=1, threads=1, nice=10) as pool:
        for label, size, settings in configs:
            cut = np.arange(min(size, snapshot.num_samples))
            part = dataclasses.replace(snapshot, features=snapshot.features[cut],
                                       value=snapshot.value[cut], move=snapshot.move[cut])  # fmt: skip
            for iteration in range(repeats):
                for job in model_jobs(dataclasses.replace(part, iteration=iteration),
                                      lineage=label, out_dir=out, settings=settings,
                                      timeout_seconds=600):  # fmt: skip
                    pool.submit(job)
            results = pool.wait(3600)
            failed = [f"{r.job_id}: {r.reason}" for r in results if not r.ok]
            if failed or len(results) != 2 * repeats:
                raise RuntimeError(f"side suite, {label} config: jobs failed: {failed}")
            for kind in ("value", "move"):
                done = [r for r in results if r.kind == kind]
                seconds = sum(r.seconds for r in done)
                config = {"config": label, "kind": kind, "game": game.name, "samples": len(cut),
                          "trees": settings.trees, "folds": settings.folds, "workers": 1,
                          "threads": 1, "jobs": len(done)}  # fmt: skip
                yield record("side_models_per_second", sum(r.models_trained for r in done) / seconds,
                             "models/s", **config)  # fmt: skip
                yield record("side_job_seconds", seconds / len(done), "s", **config)


SUITES["side"] = _side_suite


def default_devices() -> int:
    """Host devices of ``hardware=cpu`` (conf/hardware/cpu.yaml), rlloop's CPU default."""
    from rlloop.config import compose

    return int(compose(["+hardware=cpu"]).hardware.num_cpu_devices)


def set_host_devices(count: int) -> None:
    """Ask for ``count`` host devices, if JAX has not started yet (else keep what it has)."""
    from rlloop.parallel import _backends_initialized

    if count > 0 and not _backends_initialized():
        jax.config.update("jax_num_cpu_devices", count)


def main(argv: list[str] | None = None) -> int:
    """Run the chosen suites and print one JSON line per measurement."""
    parser = argparse.ArgumentParser(prog="python -m rlloop.bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--suite", action="append", choices=sorted(SUITES),
                        help="suite to run (repeatable; default: all)")
    parser.add_argument("--selfplay-config", action="append", metavar="NET:SIMS:BATCH",
                        help="selfplay suite: measure only these configurations, e.g. 2x32:32:256")
    parser.add_argument("--quick", action="store_true", help="small sizes, for smoke tests")
    parser.add_argument("--ringrift-configs", action="append", metavar="CONFIG[,CONFIG...]",
                        help="ringrift suite: only these configurations, e.g. square8_2p,hex8_3p "
                             "(default: all 12; square8_2p with --quick)")
    parser.add_argument("--ringrift-length-seconds", type=float, default=60.0,
                        help="ringrift suite: seconds of extra random play allowed per "
                             "configuration to finish the games whose mean length is measured")
    parser.add_argument("--ringrift-batches", action="append", metavar="B[,B...]",
                        help="ringrift suite: random-play batches (default 1,64,1024); the mean "
                             "game length is measured at 64 if chosen, else at the first")
    parser.add_argument("--ringrift-selfplay", metavar="NET:SIMS:BATCH",
                        help="ringrift suite: the self-play configuration (default 2x32:8:64)")
    parser.add_argument("--sequential-games", type=int, default=12,
                        help="selfplay suite: whole games the sequential baseline plays at "
                             "least (default 12)")
    parser.add_argument("--train-net", action="append", metavar="NET[,NET...]",
                        help=f"train suite: nets ({', '.join(NETS)}; default 2x32,4x64)")
    parser.add_argument("--train-batch", action="append", metavar="B[,B...]",
                        help="train suite: batch sizes (default 256,1024)")
    parser.add_argument("--train-steps", type=int, default=0,
                        help="train suite: steps per timed call (default 4096 // batch, >= 2)")
    parser.add_argument("--compile-workers", type=int, default=1,
                        help="compile a suite's programs on this many threads up front "
                             "(default 1: one at a time, just before each is timed)")
    parser.add_argument("--budget", type=float, default=0.0,
                        help="seconds for the whole run: once spent, configurations not yet "
                             "started are reported as skipped (default 0: no limit)")
    parser.add_argument("--seconds", type=float, default=1.0,
                        help="minimum timed seconds per measurement (default 1.0)")
    parser.add_argument("--devices", type=int, default=None,
                        help="host devices for rlloop's side (default: hardware=cpu's "
                             "num_cpu_devices); only when JAX has not started yet")
    parser.add_argument("--devices-game", default="connect4",
                        help="devices suite: the game (connect4, or a RingRift configuration "
                             "such as ringrift_square8_2p)")
    parser.add_argument("--child-timeout", type=float, default=1800.0,
                        help="seconds a `devices` subprocess may run (default 1800)")
    # The `devices` suite runs itself in subprocesses with this flag: JAX's host device count
    # can only be chosen before JAX starts, so each count needs a fresh process.
    parser.add_argument("--devices-child", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--child-config", default="2x32:8:64", help=argparse.SUPPRESS)
    # ... and, for its multi-process row, as one of several processes over jax.distributed.
    parser.add_argument("--child-processes", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--child-process-id", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--child-coordinator", default="", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.started = time.perf_counter()
    if args.devices_child:
        set_host_devices(args.devices_child)
        if args.child_processes > 1:
            from rlloop import distributed

            jax.config.update("jax_platforms", "cpu")
            distributed.initialize(distributed.ProcessGroup(
                args.child_coordinator, args.child_processes, args.child_process_id, 120.0,
                ("--child-coordinator", "--child-processes", "--child-process-id"),
            ))  # fmt: skip
        for line in _devices_child(args):
            print(json.dumps(line), flush=True)
        return 0
    if args.devices is None:
        args.devices = default_devices()
    set_host_devices(args.devices)
    from rlloop import progress

    for suite in args.suite or sorted(SUITES):
        for line in progress.each(SUITES[suite](args), f"bench {suite}", unit="figure"):
            print(json.dumps(line), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
