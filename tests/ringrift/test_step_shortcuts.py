"""The step's shortcuts agree with the whole-board analysis they replace.

``Rules.step`` does not analyse the whole board before a move: a territory action floods
its one region (``Rules.component``) instead of reading ``Rules.regions``' labels. Here,
on positions of random play with cells collapsed at random, the flood of every region's
smallest cell in every detection pass must be exactly that region's cells.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rlloop.games.ringrift import RingRift


def random_positions(game: RingRift, batch: int, moves: int, seed: int):
    """Boards [moves // 20, batch] every 20 uniformly random legal moves (finished games
    keep their last position)."""

    def one(state, key):
        logits = jnp.where(state.legal_action_mask, 0.0, -jnp.inf)
        action = jax.random.categorical(key, logits)
        played = game.step(state, action)
        done = state.terminated | state.truncated
        state = jax.tree.map(lambda old, new: jnp.where(done, old, new), state, played)
        return state, None

    @jax.jit
    def play(key):
        states = jax.vmap(game.init)(jax.random.split(key, batch))

        def chunk(states, key):
            keys = jax.random.split(key, 20 * batch).reshape(20, batch)
            states, _ = jax.lax.scan(lambda s, k: jax.vmap(one)(s, k), states, keys)
            return states, states.board

        return jax.lax.scan(chunk, states, jax.random.split(key, moves // 20))[1]

    return play(jax.random.key(seed))


@pytest.mark.parametrize(
    "board_type, players",
    [("square8", 2), pytest.param("hex8", 3, marks=pytest.mark.slow)],
)
def test_component_is_the_region_label(board_type: str, players: int) -> None:
    game = RingRift(board_type, players)
    rules = game.rules
    boards = random_positions(game, batch=16, moves=120, seed=3)
    boards = jax.tree.map(lambda x: x.reshape((-1, *x.shape[2:])), boards)
    # Random play seldom splits the board, so collapse a random third of the open cells and
    # recolour a third of the markers: detection passes then find several regions.
    k1, k2, k3 = jax.random.split(jax.random.key(4), 3)
    shape = boards.collapsed.shape
    owner = jax.random.randint(k1, shape, 1, players + 1).astype(jnp.int8)
    open_ = boards.collapsed == 0
    collapsed = jnp.where(open_ & (jax.random.uniform(k2, shape) < 0.3), owner, boards.collapsed)
    marker = jnp.where(collapsed == 0, boards.marker, 0)
    recolour = (marker != 0) & (jax.random.uniform(k3, shape) < 0.3)
    boards = boards.replace(collapsed=collapsed, marker=jnp.where(recolour, owner, marker))
    cells = jnp.arange(rules.N)
    passes = jnp.arange(rules.P + 1)

    @jax.jit
    def check(b):
        rg = rules.regions(b, rules.stacks(b))
        labelled = (rg["labels"][:, None, :] == cells[None, :, None]) & rg["masks"][:, None, :]
        flooded = jax.vmap(lambda q: jax.vmap(lambda c: rules.component(b, q, c))(cells))(passes)
        root = rg["labels"][:, : rules.N] == cells[None, :]  # [P+1, N]: smallest cell of a region
        agree = jnp.all(labelled == flooded, axis=-1)  # [P+1, N]
        return jnp.all(agree | ~root), jnp.sum(root, axis=-1)

    ok, regions = jax.vmap(check)(boards)
    ok, regions = np.asarray(ok), np.asarray(regions)
    assert ok.all(), f"{(~ok).sum()} of {ok.size} positions disagree"
    # the positions must exercise the flood: passes split into several regions
    assert (regions.max(axis=-1) >= 2).sum() >= ok.size // 2, regions.max(axis=-1)
