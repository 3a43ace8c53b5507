"""``python -m rlloop.run``: the main job.

Until the self-play loop lands this runs a short demo: batched random self-play on Connect
Four, with a progress line and a games/s figure.
"""

from __future__ import annotations

import sys
import time

import jax
import jax.numpy as jnp

from rlloop import games


def main(game_name: str = "connect4", batch_size: int = 1024, chunks: int = 10) -> int:
    game = games.make(game_name)
    batched_init, batched_step = jax.vmap(game.init), jax.vmap(game.step)

    @jax.jit
    def chunk(state, key):  # type: ignore[no-untyped-def]
        def body(carry, step_key):  # type: ignore[no-untyped-def]
            state, finished = carry
            action_key, reset_key = jax.random.split(step_key)
            logits = jnp.where(state.legal_action_mask, 0.0, -jnp.inf)
            action = jax.random.categorical(action_key, logits).astype(jnp.int32)
            state = batched_step(state, action)
            done = state.terminated | state.truncated
            fresh = batched_init(jax.random.split(reset_key, batch_size))
            state = jax.tree.map(
                lambda n, o: jnp.where(done.reshape(done.shape + (1,) * (o.ndim - 1)), n, o),
                fresh,
                state,
            )
            return (state, finished + done.sum()), None

        (state, finished), _ = jax.lax.scan(
            body, (state, jnp.int32(0)), jax.random.split(key, game.max_steps)
        )
        return state, finished

    key = jax.random.key(0)
    state = batched_init(jax.random.split(key, batch_size))
    total_games, start = 0, time.perf_counter()
    for index in range(chunks):
        state, finished = chunk(state, jax.random.fold_in(key, index))
        total_games += int(finished)
        elapsed = time.perf_counter() - start
        print(
            f"[demo {game_name}] chunk {index + 1}/{chunks}  games {total_games}  "
            f"{total_games / elapsed:,.0f} games/s (random play, batch {batch_size})",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
