"""Gumbel search with a value per player (*max-n*), for games of more than two players.

mctx backs up one scalar per node. That fits two players (negamax), but with more it forces a
reduction: rlloop's default is *paranoid* (:mod:`rlloop.search`), the root's mover against a
coalition of all the others. Paranoid search assumes that every opponent plays to hurt the
searching player; against opponents who each play for themselves it is timid, and self-play
trained on its choices learns that timidity (three-player RingRift, docs/ringrift.md).

Max-n (Luckhardt and Irani, 1986) keeps every player's value at every node, and the player to
move at a node chooses by its own value. Here the tree is an ``mctx.Tree`` whose value fields
(``raw_values``, ``node_values``, ``children_values``, ``children_rewards``) carry a trailing
player axis ``[..., P]`` in absolute seats. mctx's own Gumbel pieces choose the moves:
``gumbel_muzero_root_action_selection`` (sequential halving over Gumbel-top-k actions) at the
root and ``gumbel_muzero_interior_action_selection`` below it, each applied to the node's
*view* for its mover (the value fields at that player), with the completed-Q transform the
caller picks. Simulation, expansion and backup are written here, because mctx's assume one
scalar per node: a backup adds the move's reward vector to the child's value vector (discount
0 once the game is over) and averages it into the parent's.

With two zero-sum players this is negamax, and the search makes mctx's
``gumbel_muzero_policy`` choices exactly (tests/test_maxn.py). The returned ``search_tree`` is
the root player's view (scalar fields, as mctx's), so code that reads mctx trees reads it too.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import chex
import jax
import jax.numpy as jnp
import mctx

ROOT = mctx.Tree.ROOT_INDEX
UNVISITED = mctx.Tree.UNVISITED
NO_PARENT = mctx.Tree.NO_PARENT


@chex.dataclass(frozen=True)
class VectorStep:
    """What a max-n ``recurrent_fn`` returns for the node a move leads to (batched)."""

    prior_logits: chex.Array  # [B, A] float32
    value: chex.Array  # [B, P] float32: every player's value of the new node (absolute seats)
    reward: chex.Array  # [B, P] float32: every player's reward for the move
    discount: chex.Array  # [B] float32: 0 once the game is over, else 1
    mover: chex.Array  # [B] int32: the player to move at the new node


# (params, key, action [B], embedding [B, ...]) -> (VectorStep, next embedding)
VectorRecurrentFn = Callable[[Any, jax.Array, jax.Array, Any], tuple[VectorStep, Any]]


@chex.dataclass(frozen=True)
class _Search:
    tree: mctx.Tree  # value fields with a trailing player axis
    movers: chex.Array  # [B, N] int32: the player to move at each node


def view(tree: mctx.Tree, player: chex.Array) -> mctx.Tree:
    """``tree`` (unbatched, value fields [..., P]) as the scalar tree ``player`` sees."""
    return tree.replace(
        raw_values=tree.raw_values[..., player],
        node_values=tree.node_values[..., player],
        children_values=tree.children_values[..., player],
        children_rewards=tree.children_rewards[..., player],
    )


def _masked_logits(logits: chex.Array, invalid: chex.Array) -> chex.Array:
    """Logits shifted to a maximum of 0, invalid actions at the dtype's (finite) minimum."""
    logits = logits - jnp.max(logits, axis=-1, keepdims=True)
    return jnp.where(invalid, jnp.finfo(logits.dtype).min, logits)


def _init(logits, value, mover, embedding, num_simulations, invalid, gumbel) -> _Search:
    batch, num_actions = logits.shape
    players = value.shape[-1]
    nodes = num_simulations + 1

    def zeros(*shape, dtype=jnp.float32):
        return jnp.zeros((batch, nodes, *shape), dtype)

    tree = mctx.Tree(
        node_visits=zeros(dtype=jnp.int32).at[:, ROOT].set(1),
        raw_values=zeros(players).at[:, ROOT].set(value),
        node_values=zeros(players).at[:, ROOT].set(value),
        parents=jnp.full((batch, nodes), NO_PARENT, jnp.int32),
        action_from_parent=jnp.full((batch, nodes), NO_PARENT, jnp.int32),
        children_index=jnp.full((batch, nodes, num_actions), UNVISITED, jnp.int32),
        children_prior_logits=zeros(num_actions, dtype=logits.dtype).at[:, ROOT].set(logits),
        children_values=zeros(num_actions, players),
        children_visits=zeros(num_actions, dtype=jnp.int32),
        children_rewards=zeros(num_actions, players),
        children_discounts=zeros(num_actions),
        embeddings=jax.tree.map(
            lambda x: jnp.zeros((batch, nodes, *x.shape[1:]), x.dtype).at[:, ROOT].set(x), embedding
        ),
        root_invalid_actions=invalid,
        extra_data=mctx.GumbelMuZeroExtraData(root_gumbel=gumbel),
    )
    movers = jnp.zeros((batch, nodes), jnp.int32).at[:, ROOT].set(mover)
    return _Search(tree=tree, movers=movers)


def _simulate(key, search: _Search, root_select, interior_select) -> tuple[chex.Array, chex.Array]:
    """From the root down to the first unexpanded move (unbatched). (parent node, action)."""
    tree = search.tree

    def body(carry):
        _, _, node, _ = carry
        seen = view(tree, search.movers[node])
        action = jnp.where(node == ROOT, root_select(key, seen, node),
                           interior_select(key, seen, node, 1))  # fmt: skip
        child = tree.children_index[node, action]
        return node, action, child, child != UNVISITED

    start = (jnp.int32(NO_PARENT), jnp.int32(NO_PARENT), jnp.int32(ROOT), jnp.bool_(True))
    parent, action, _, _ = jax.lax.while_loop(lambda carry: carry[3], body, start)
    return parent, action


def _expand(params, key, search: _Search, recurrent_fn: VectorRecurrentFn, parent, action, index) -> _Search:
    """Evaluate ``action`` from node ``parent`` into the new node ``index`` (batched)."""
    tree = search.tree
    rows = jnp.arange(parent.shape[0])
    embedding = jax.tree.map(lambda x: x[rows, parent], tree.embeddings)
    step, embedding = recurrent_fn(params, key, action, embedding)
    tree = tree.replace(
        node_visits=tree.node_visits.at[rows, index].set(1),
        raw_values=tree.raw_values.at[rows, index].set(step.value),
        node_values=tree.node_values.at[rows, index].set(step.value),
        parents=tree.parents.at[rows, index].set(parent),
        action_from_parent=tree.action_from_parent.at[rows, index].set(action),
        children_index=tree.children_index.at[rows, parent, action].set(index),
        children_prior_logits=tree.children_prior_logits.at[rows, index].set(step.prior_logits),
        children_rewards=tree.children_rewards.at[rows, parent, action].set(step.reward),
        children_discounts=tree.children_discounts.at[rows, parent, action].set(step.discount),
        embeddings=jax.tree.map(lambda t, s: t.at[rows, index].set(s), tree.embeddings, embedding),
    )
    return _Search(tree=tree, movers=search.movers.at[rows, index].set(step.mover))


def _backward(search: _Search, leaf: chex.Array) -> _Search:
    """Average the new leaf's value vector into every node above it (unbatched)."""

    def body(carry):
        tree, value, node = carry
        parent, action = tree.parents[node], tree.action_from_parent[node]
        count = tree.node_visits[parent]
        value = tree.children_rewards[parent, action] + tree.children_discounts[parent, action] * value
        tree = tree.replace(
            node_values=tree.node_values.at[parent].set((tree.node_values[parent] * count + value) / (count + 1.0)),
            node_visits=tree.node_visits.at[parent].set(count + 1),
            children_values=tree.children_values.at[parent, action].set(tree.node_values[node]),
            children_visits=tree.children_visits.at[parent, action].add(1),
        )
        return tree, value, parent

    tree = search.tree
    tree, _, _ = jax.lax.while_loop(lambda carry: carry[2] != ROOT, body, (tree, tree.node_values[leaf], leaf))
    return search.replace(tree=tree)


def gumbel_maxn_policy(
    params: Any,
    rng_key: jax.Array,
    *,
    prior_logits: chex.Array,
    value: chex.Array,
    mover: chex.Array,
    embedding: Any,
    recurrent_fn: VectorRecurrentFn,
    num_simulations: int,
    invalid_actions: chex.Array,
    max_num_considered_actions: int = 16,
    gumbel_scale: float = 1.0,
    qtransform: Callable = mctx.qtransform_completed_by_mix_value,
) -> mctx.PolicyOutput:
    """Gumbel MuZero search with max-n backups. Batched: ``prior_logits`` [B, A] and
    ``invalid_actions`` bool [B, A] at the roots, ``value`` [B, P] every player's value of the
    root (absolute seats), ``mover`` int32 [B] the root's player.

    Returns an ``mctx.PolicyOutput`` as ``mctx.gumbel_muzero_policy`` does (``action`` [B],
    ``action_weights`` [B, A] the improved policy, ``search_tree`` the root player's view),
    using the random key the same way.
    """
    batch = prior_logits.shape[0]
    logits = _masked_logits(prior_logits, invalid_actions)
    rng_key, gumbel_key = jax.random.split(rng_key)
    gumbel = gumbel_scale * jax.random.gumbel(gumbel_key, logits.shape, logits.dtype)
    search = _init(logits, value, mover, embedding, num_simulations, invalid_actions, gumbel)
    simulate = jax.vmap(functools.partial(
        _simulate,
        root_select=functools.partial(
            mctx.gumbel_muzero_root_action_selection, num_simulations=num_simulations,
            max_num_considered_actions=max_num_considered_actions, qtransform=qtransform),
        interior_select=functools.partial(mctx.gumbel_muzero_interior_action_selection, qtransform=qtransform),
    ))  # fmt: skip

    def body(sim, carry):
        rng_key, search = carry
        rng_key, simulate_key, expand_key = jax.random.split(rng_key, 3)
        parent, action = simulate(jax.random.split(simulate_key, batch), search)
        # Every simulation ends on an unexpanded move, so its node is always a new one.
        index = jnp.full((batch,), sim + 1, jnp.int32)
        search = _expand(params, expand_key, search, recurrent_fn, parent, action, index)
        return rng_key, jax.vmap(_backward)(search, index)

    _, search = jax.lax.fori_loop(0, num_simulations, body, (rng_key, search))
    tree = jax.vmap(view)(search.tree, mover)  # the root player's view
    visits = tree.children_visits[:, ROOT]
    completed_q = jax.vmap(qtransform, in_axes=[0, None])(tree, ROOT)
    # Sequential halving's survivors (the most visited), the best by Gumbel + logits + Q.
    score = jnp.maximum(-1e9, gumbel + logits + completed_q)
    score = jnp.where(visits == jnp.max(visits, axis=-1, keepdims=True), score, -jnp.inf)
    action = jnp.argmax(jnp.where(invalid_actions, -jnp.inf, score), axis=-1).astype(jnp.int32)
    action_weights = jax.nn.softmax(_masked_logits(logits + completed_q, invalid_actions))
    return mctx.PolicyOutput(action=action, action_weights=action_weights, search_tree=tree)
