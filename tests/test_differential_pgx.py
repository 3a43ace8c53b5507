"""rlloop's tic-tac-toe and Connect Four against pgx, an independent engine.

Thousands of random games are played in both engines with the same action sequences; at
every step the legal-action mask, the player to move, termination, rewards and the mover's
observation must agree. About 2% of actions are deliberately illegal, which both engines must
treat as a forfeit by the mover.

pgx picks the first mover at random and numbers players by seat; rlloop's player 0 always moves
first. So rlloop's player ``i`` is pgx's player ``(first + i) % 2``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import pytest

from rlloop import games

pgx = pytest.importorskip("pgx")

NUM_GAMES = 10_000
ILLEGAL_PROBABILITY = 0.02


def _disagreements(rlloop_name: str, pgx_name: str, seed: int) -> dict[str, int]:
    game = games.make(rlloop_name)
    reference = pgx.make(pgx_name)

    def compare(ours, theirs, first):  # type: ignore[no-untyped-def]
        live = ~(theirs.terminated | theirs.truncated)
        theirs_player = (first + ours.current_player) % 2
        seat_order = (first + jnp.arange(2)) % 2
        return {
            "terminated": ours.terminated != theirs.terminated,
            "current_player": live & (theirs_player != theirs.current_player),
            "rewards": jnp.any(ours.rewards != theirs.rewards[seat_order]),
            "legal_action_mask": jnp.where(
                live,
                jnp.any(ours.legal_action_mask != theirs.legal_action_mask),
                jnp.any(ours.legal_action_mask),  # ours is all False once over
            ),
            "observation": live
            & jnp.any(
                game.observe(ours, ours.current_player)
                != reference.observe(theirs).astype(jnp.float32)
            ),
        }

    def one_game(key):  # type: ignore[no-untyped-def]
        init_key, play_key = jax.random.split(key)
        ours = game.init(init_key)
        theirs = reference.init(init_key)
        first = theirs.current_player
        counts = jax.tree.map(lambda x: x.astype(jnp.int32), compare(ours, theirs, first))

        def body(carry, step_key):  # type: ignore[no-untyped-def]
            ours, theirs, counts = carry
            choice_key, illegal_key, coin_key = jax.random.split(step_key, 3)
            mask = ours.legal_action_mask
            legal = jax.random.categorical(choice_key, jnp.where(mask, 0.0, -jnp.inf))
            illegal = jax.random.categorical(illegal_key, jnp.where(mask, -jnp.inf, 0.0))
            use_illegal = (~mask).any() & (jax.random.uniform(coin_key) < ILLEGAL_PROBABILITY)
            action = jnp.where(use_illegal, illegal, legal).astype(jnp.int32)
            action = jnp.where(mask.any(), action, 0)  # finished game: any action
            ours = game.step(ours, action)
            theirs = reference.step(theirs, action)
            found = compare(ours, theirs, first)
            counts = jax.tree.map(lambda c, f: c + f.astype(jnp.int32), counts, found)
            return (ours, theirs, counts), ours.terminated

        keys = jax.random.split(play_key, game.max_steps)
        (_, _, counts), _ = jax.lax.scan(body, (ours, theirs, counts), keys)
        return counts

    keys = jax.random.split(jax.random.key(seed), NUM_GAMES)
    counts = jax.jit(jax.vmap(one_game))(keys)
    return {name: int(value.sum()) for name, value in counts.items()}


@pytest.mark.parametrize(
    ("rlloop_name", "pgx_name"), [("tictactoe", "tic_tac_toe"), ("connect4", "connect_four")]
)
def test_agrees_with_pgx_on_10000_random_games(rlloop_name: str, pgx_name: str) -> None:
    disagreements = _disagreements(rlloop_name, pgx_name, seed=2026)
    assert disagreements == dict.fromkeys(disagreements, 0)
