"""Benchmarks: ``python -m rlloop.bench [--suite NAME ...] [--quick]``.

Every measurement is printed as one JSON object per line,
``{"name": ..., "value": ..., "unit": ..., "config": {...}}``, and each rlloop figure is
measured side by side with its reference (pgx, a plain mctx loop, ...) in the same process,
with the ratio printed as its own line. Figures are throughput after compilation; compile time
is reported separately where it matters.

Suites:
  env   random-play environment steps/s for every small game, rlloop vs pgx, at
        batch 1, 64, 1024 and 4096.
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

Record = dict[str, Any]
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
    batched_step = jax.vmap(step)

    def run(key: jax.Array) -> Any:
        key, init_key = jax.random.split(key)
        state = batched_init(jax.random.split(init_key, batch_size))

        def body(state: Any, step_key: jax.Array) -> tuple[Any, None]:
            action_key, reset_key = jax.random.split(step_key)
            mask = state.legal_action_mask
            logits = jnp.where(mask, 0.0, -jnp.inf)
            logits = jnp.where(mask.any(axis=-1, keepdims=True), logits, 0.0)
            action = jax.random.categorical(action_key, logits).astype(jnp.int32)
            state = batched_step(state, action)
            done = state.terminated | state.truncated
            fresh = batched_init(jax.random.split(reset_key, batch_size))
            state = jax.tree.map(
                lambda new, old: jnp.where(
                    done.reshape(done.shape + (1,) * (old.ndim - 1)), new, old
                ),
                fresh,
                state,
            )
            return state, None

        state, _ = jax.lax.scan(body, state, jax.random.split(key, num_steps))
        return state

    return jax.jit(run)


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


def main(argv: list[str] | None = None) -> int:
    """Run the chosen suites and print one JSON line per measurement."""
    parser = argparse.ArgumentParser(prog="python -m rlloop.bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--suite", action="append", choices=sorted(SUITES),
                        help="suite to run (repeatable; default: all)")
    parser.add_argument("--quick", action="store_true", help="small sizes, for smoke tests")
    parser.add_argument("--seconds", type=float, default=1.0,
                        help="minimum timed seconds per measurement (default 1.0)")
    args = parser.parse_args(argv)
    for suite in args.suite or sorted(SUITES):
        for line in SUITES[suite](args):
            print(json.dumps(line), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
