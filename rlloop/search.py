"""mctx search with the game itself as the model.

:func:`make_search` turns a game and a network into a batched search
``search(params, key, states) -> mctx.PolicyOutput`` whose ``action_weights`` [B, A] is the
improved policy (the training target) and whose ``action`` [B] is the searched move.

Two players: a node's value is from its mover's view and ``discount = -1`` whenever the mover
changes (games where a player moves twice in a row keep +1).

More than two players: mctx searches one scalar, so the N-player game is reduced to a
two-team game, *paranoid*: the root's mover against a coalition of all the others. Each node's
value is the root player's predicted value, negated at nodes where a coalition member moves;
``discount = -1`` when the move passes between the root player and the coalition. The network
still predicts one value per player (training targets keep every player's outcome).
``multiplayer="maxn"`` searches those values instead, each player choosing by its own
(:mod:`rlloop.maxn`, a tree with a value per player; Gumbel only).

Large action spaces (RingRift: 5,000-60,000 actions, of which a position has at most a few
hundred legal ones): mctx keeps per-node arrays over every action, which made the tree's
bookkeeping cost more than the game and the network together. With ``max_actions`` = M smaller
than the game's action count, each node's children are the M legal actions of highest prior
("slots"); the search runs over slots and its results are mapped back to the game's actions.
This is exact whenever a position has at most M legal actions (square8/hex8 RingRift: at most
192); beyond that the lowest-prior legal actions are not searched and get no improved-policy
mass.

Forced moves (one legal action; in RingRift nearly half of all decisions are bookkeeping
passes) can be played inside the tree right after the move that leads to them
(``max_forced_moves``), so that no node is one. Off by default: on RingRift square8 it made
search 2.4x slower (every simulation then steps the engine as often as the longest forced chain
in the batch). It makes search much stronger there, though: at 8 simulations the untrained
square8 network with it won 28 of 32 games against itself without it (docs/ringrift.md). By
default forced positions are nodes like any other, and self-play trains the value network on
them (not the policy; see :class:`rlloop.replay.PendingGames`): a network
that never saw them and was asked about them in search misled it (gate score 28% against the
untrained network, 66% with the untrained network's values).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import chex
import jax
import jax.numpy as jnp
import mctx

from rlloop import maxn
from rlloop.games.base import Game, State, play_forced

SearchFn = Callable[[Any, jax.Array, State], mctx.PolicyOutput]
# (params, states[B]) -> (masked prior logits float32 [B, A], mover-relative values float32 [B, N]):
# what search asks of a position. By default the network (:func:`evaluate`); a fixed evaluator
# (e.g. RingRift's heuristic, rlloop.games.ringrift.heuristic_players) can stand in for it.
Evaluator = Callable[[Any, State], tuple[jax.Array, jax.Array]]


@chex.dataclass(frozen=True)
class Embedding:
    """What mctx carries per tree node."""

    state: State  # [B] game states
    root_player: jax.Array  # [B] int32, the searching player (used by the paranoid reduction)
    slots: jax.Array | None = None  # [B, M] int32: the game action of each child slot


def compact_actions(logits: jax.Array, legal: jax.Array, max_actions: int) -> tuple[jax.Array, jax.Array]:
    """The ``max_actions`` legal actions of highest logit per row, for a slot-space search.

    logits float32 [B, A] (already masked), legal bool [B, A]. Returns (slot_logits [B, M],
    slots int32 [B, M]); slots beyond the row's legal actions keep the dtype's minimum logit.
    """
    slot_logits, slots = jax.lax.top_k(jnp.where(legal, logits, -jnp.inf), max_actions)
    slot_legal = jnp.take_along_axis(legal, slots, axis=1)
    floor = jnp.finfo(logits.dtype).min
    return jnp.where(slot_legal, slot_logits, floor), slots.astype(jnp.int32)


def evaluate(network: Any, game: Game, params: Any, states: State) -> tuple[jax.Array, jax.Array]:
    """Network outputs for batched ``states`` from their movers' view.

    Returns (masked policy logits float32 [B, A], mover-relative values float32 [B, N]).
    Illegal actions get the dtype's minimum logit (not -inf, so a finished state with no legal
    action yields a uniform, finite prior).
    """
    observations = jax.vmap(game.observe)(states, states.current_player)
    logits, values = network.apply(params, observations)
    logits = logits - jnp.max(logits, axis=-1, keepdims=True)
    logits = jnp.where(states.legal_action_mask, logits, jnp.finfo(logits.dtype).min)
    return logits, values


def _value_for(values: jax.Array, mover: jax.Array, viewer: jax.Array, num_players: int) -> jax.Array:
    """``viewer``'s value out of mover-relative ``values`` [B, N]. Shape [B]."""
    offset = (viewer - mover) % num_players
    return jnp.take_along_axis(values, offset[:, None], axis=1)[:, 0]


def _advance(game: Game, evaluator: Evaluator, max_actions: int, max_forced_moves: int,
             params: Any, action: jax.Array, embedding: Embedding):
    """Play ``action`` (a slot when ``max_actions``) and the forced moves after it; evaluate.

    Returns (next states, prior logits [B, A or M], mover-relative values [B, N], slots or None).
    """
    if max_actions:
        action = jnp.take_along_axis(embedding.slots, action[:, None], axis=1)[:, 0]
    next_state = jax.vmap(game.step)(embedding.state, action)
    next_state = play_forced(game, next_state, max_forced_moves)
    logits, values = evaluator(params, next_state)
    slots = None
    if max_actions:
        logits, slots = compact_actions(logits, next_state.legal_action_mask, max_actions)
    return next_state, logits, values, slots


def make_recurrent_fn(
    network: Any, game: Game, max_actions: int = 0, max_forced_moves: int = 0,
    evaluator: Evaluator | None = None,
) -> Callable:
    """The mctx ``recurrent_fn``: step the game, evaluate the network, reduce to one scalar.

    ``max_actions`` > 0: mctx's actions are slots of ``embedding.slots`` (see the module doc).
    ``max_forced_moves`` > 0: after the step, forced moves are played (see the module doc).
    ``evaluator``: evaluates positions instead of ``network`` (default: the network).
    """
    num_players = game.num_players
    evaluator = evaluator or functools.partial(evaluate, network, game)

    def recurrent_fn(params: Any, key: jax.Array, action: jax.Array, embedding: Embedding):
        del key  # the game and the network are deterministic
        state, root = embedding.state, embedding.root_player
        mover = state.current_player
        next_state, logits, values, slots = _advance(
            game, evaluator, max_actions, max_forced_moves, params, action, embedding)
        next_mover = next_state.current_player
        done = next_state.terminated | next_state.truncated
        if num_players == 2:
            reward = jnp.take_along_axis(next_state.rewards, mover[:, None], axis=1)[:, 0]
            value = values[:, 0]
            discount = jnp.where(next_mover == mover, 1.0, -1.0)
        else:
            root_side = jnp.where(mover == root, 1.0, -1.0)
            next_side = jnp.where(next_mover == root, 1.0, -1.0)
            root_reward = jnp.take_along_axis(next_state.rewards, root[:, None], axis=1)[:, 0]
            reward = root_side * root_reward
            value = next_side * _value_for(values, next_mover, root, num_players)
            discount = root_side * next_side
        output = mctx.RecurrentFnOutput(
            reward=reward.astype(jnp.float32),
            discount=jnp.where(done, 0.0, discount).astype(jnp.float32),
            prior_logits=logits,
            value=jnp.where(done, 0.0, value).astype(jnp.float32),
        )
        return output, Embedding(state=next_state, root_player=root, slots=slots)

    return recurrent_fn


def absolute_values(values: jax.Array, mover: jax.Array) -> jax.Array:
    """Mover-relative ``values`` [B, N] (column k: the player k seats after the mover) in
    absolute seats (column j: player j). [B, N]."""
    num_players = values.shape[-1]
    index = (jnp.arange(num_players)[None, :] - mover[:, None]) % num_players
    return jnp.take_along_axis(values, index, axis=1)


def make_maxn_recurrent_fn(
    network: Any, game: Game, max_actions: int = 0, max_forced_moves: int = 0,
    evaluator: Evaluator | None = None,
) -> maxn.VectorRecurrentFn:
    """The ``recurrent_fn`` of :func:`rlloop.maxn.gumbel_maxn_policy`: every player's reward
    and value (absolute seats) instead of one scalar. Arguments as :func:`make_recurrent_fn`."""
    evaluator = evaluator or functools.partial(evaluate, network, game)

    def recurrent_fn(params: Any, key: jax.Array, action: jax.Array, embedding: Embedding):
        del key
        next_state, logits, values, slots = _advance(
            game, evaluator, max_actions, max_forced_moves, params, action, embedding)
        done = next_state.terminated | next_state.truncated
        value = absolute_values(values, next_state.current_player)
        step = maxn.VectorStep(
            prior_logits=logits,
            value=jnp.where(done[:, None], 0.0, value).astype(jnp.float32),
            reward=next_state.rewards.astype(jnp.float32),
            discount=jnp.where(done, 0.0, 1.0).astype(jnp.float32),
            mover=next_state.current_player.astype(jnp.int32),
        )
        return step, Embedding(state=next_state, root_player=embedding.root_player, slots=slots)

    return recurrent_fn


def make_search(
    game: Game,
    network: Any,
    *,
    algorithm: str = "gumbel",
    num_simulations: int = 32,
    max_num_considered_actions: int = 16,
    gumbel_scale: float = 1.0,
    value_scale: float = 0.1,
    maxvisit_init: float = 50.0,
    rescale_values: bool = True,
    dirichlet_alpha: float = 0.3,
    dirichlet_fraction: float = 0.25,
    pb_c_init: float = 1.25,
    pb_c_base: float = 19652.0,
    max_actions: int = 256,
    max_forced_moves: int = 0,
    multiplayer: str = "paranoid",
    evaluator: Evaluator | None = None,
) -> SearchFn:
    """Batched search ``(params, key, states[B]) -> mctx.PolicyOutput`` (not jitted itself).

    ``algorithm``: ``"gumbel"`` (mctx.gumbel_muzero_policy, completed-Q transform) or
    ``"puct"`` (mctx.muzero_policy with Dirichlet noise). Illegal actions are masked at the root
    (``invalid_actions``) and through the prior below it.
    ``max_actions``: search over at most this many legal actions per node, those of highest
    prior (see the module doc); 0, or a game with no more actions, searches every action.
    The output's ``action`` and ``action_weights`` [B, num_actions] are always game actions;
    its ``search_tree`` is in slot space when slots are used.
    ``max_forced_moves``: forced moves played after each move in the tree (0 = none).
    ``multiplayer``: how more than two players are searched: ``"paranoid"`` (one scalar, the
    root's mover against the coalition of the others; see the module doc) or ``"maxn"``
    (:mod:`rlloop.maxn`: a value per player, each player choosing by its own; Gumbel only).
    With two players ``"maxn"`` uses each player's own value head, ``"paranoid"`` the mover's.
    ``evaluator``: prior and values of a position instead of ``network``'s (see
    :data:`Evaluator`; ``network`` is then unused).
    """
    if algorithm not in ("gumbel", "puct"):
        raise ValueError(f"search algorithm {algorithm!r} is unknown; valid: gumbel, puct")
    if max_actions < 0:
        raise ValueError(f"search max_actions must be >= 0 (0 = every action), got {max_actions}")
    if max_forced_moves < 0:
        raise ValueError(f"search max_forced_moves must be >= 0, got {max_forced_moves}")
    if multiplayer not in ("paranoid", "maxn"):
        raise ValueError(f"search multiplayer {multiplayer!r} is unknown; valid: paranoid, maxn")
    if multiplayer == "maxn" and algorithm != "gumbel":
        raise ValueError(f"search multiplayer 'maxn' needs algorithm 'gumbel', got {algorithm!r}")
    compact = max_actions if 0 < max_actions < game.num_actions else 0
    evaluator = evaluator or functools.partial(evaluate, network, game)
    recurrent_fn = make_recurrent_fn(network, game, compact, max_forced_moves, evaluator)
    maxn_recurrent_fn = make_maxn_recurrent_fn(network, game, compact, max_forced_moves, evaluator)

    def search(params: Any, key: jax.Array, states: State) -> mctx.PolicyOutput:
        output = _search(params, key, states)
        if not compact:
            return output
        slots = output.search_tree.embeddings.slots[:, 0]  # the root's slots [B, M]
        rows = jnp.arange(slots.shape[0])[:, None]
        weights = jnp.zeros(states.legal_action_mask.shape, output.action_weights.dtype)
        weights = weights.at[rows, slots].add(output.action_weights)
        action = jnp.take_along_axis(slots, output.action[:, None], axis=1)[:, 0]
        return output.replace(action=action, action_weights=weights)

    def _search(params: Any, key: jax.Array, states: State) -> mctx.PolicyOutput:
        logits, values = evaluator(params, states)
        legal = states.legal_action_mask
        slots = None
        if compact:
            logits, slots = compact_actions(logits, legal, compact)
            legal = jnp.take_along_axis(legal, slots, axis=1)
        invalid = ~legal
        # A finished root has no legal action; let search run on a uniform prior instead of NaN.
        invalid = jnp.where(invalid.all(axis=-1, keepdims=True), False, invalid)
        qtransform = functools.partial(
            mctx.qtransform_completed_by_mix_value,
            value_scale=value_scale, maxvisit_init=maxvisit_init, rescale_values=rescale_values,
        )  # fmt: skip
        embedding = Embedding(state=states, root_player=states.current_player, slots=slots)
        if multiplayer == "maxn":
            return maxn.gumbel_maxn_policy(
                params, key,
                prior_logits=logits,
                value=absolute_values(values, states.current_player),
                mover=states.current_player,
                embedding=embedding,
                recurrent_fn=maxn_recurrent_fn,
                num_simulations=num_simulations,
                invalid_actions=invalid,
                max_num_considered_actions=max_num_considered_actions,
                gumbel_scale=gumbel_scale,
                qtransform=qtransform,
            )  # fmt: skip
        root = mctx.RootFnOutput(prior_logits=logits, value=values[:, 0], embedding=embedding)
        if algorithm == "gumbel":
            return mctx.gumbel_muzero_policy(
                params, key, root, recurrent_fn,
                num_simulations=num_simulations,
                invalid_actions=invalid,
                max_num_considered_actions=max_num_considered_actions,
                gumbel_scale=gumbel_scale,
                qtransform=qtransform,
            )  # fmt: skip
        return mctx.muzero_policy(
            params, key, root, recurrent_fn,
            num_simulations=num_simulations,
            invalid_actions=invalid,
            dirichlet_alpha=dirichlet_alpha,
            dirichlet_fraction=dirichlet_fraction,
            pb_c_init=pb_c_init,
            pb_c_base=pb_c_base,
        )  # fmt: skip

    return search


def greedy_action(output: mctx.PolicyOutput) -> jax.Array:
    """Search's move without exploration noise, in game actions. int32 [B].

    Among the root actions with the most visits (Gumbel: the survivors of sequential halving;
    PUCT: the most visited), the one of highest improved policy: mctx's own choice with the
    Gumbel noise left out. ``output`` comes from :func:`make_search`.

    Not the argmax of the improved policy over all actions: Gumbel's completed-Q transform
    gives every unvisited action the root's mixed value, so when no visited action beats it,
    that argmax is the unsearched action of highest prior. With 8 simulations over 8
    considered actions on RingRift square8 that was the move played in 54% of positions
    (64 x 4 positions after random openings, untrained network): half the moves were
    the raw policy's, not search's.
    """
    tree = output.search_tree
    visits = tree.children_visits[:, 0]  # [B, children] (slots when the search used them)
    slots = tree.embeddings.slots
    if slots is None:
        weights = output.action_weights
    else:
        weights = jnp.take_along_axis(output.action_weights, slots[:, 0], axis=1)
    survivor = (visits == jnp.max(visits, axis=-1, keepdims=True)) & (visits > 0)
    # A root with no visit at all (no legal action) falls back to the improved policy's argmax.
    survivor = jnp.where(survivor.any(axis=-1, keepdims=True), survivor, True)
    child = jnp.argmax(jnp.where(survivor, weights, -1.0), axis=-1)
    if slots is None:
        return child.astype(jnp.int32)
    return jnp.take_along_axis(slots[:, 0], child[:, None], axis=1)[:, 0].astype(jnp.int32)


def search_knobs(search_config: Any) -> dict[str, Any]:
    """The :func:`make_search` keyword arguments of a ``search`` config node, all but
    ``num_simulations`` (so that evaluations at another simulation count search alike)."""
    multiplayer = getattr(search_config, "multiplayer", "paranoid")  # runs older than the knob
    return {
        "algorithm": getattr(search_config.algorithm, "value", search_config.algorithm),
        "max_num_considered_actions": int(search_config.max_num_considered_actions),
        "gumbel_scale": float(search_config.gumbel_scale),
        "value_scale": float(search_config.value_scale),
        "maxvisit_init": float(search_config.maxvisit_init),
        "rescale_values": bool(search_config.rescale_values),
        "dirichlet_alpha": float(search_config.dirichlet_alpha),
        "dirichlet_fraction": float(search_config.dirichlet_fraction),
        "pb_c_init": float(search_config.pb_c_init),
        "pb_c_base": float(search_config.pb_c_base),
        "max_actions": int(getattr(search_config, "max_actions", 256)),
        "max_forced_moves": int(getattr(search_config, "max_forced_moves", 0)),
        "multiplayer": getattr(multiplayer, "value", multiplayer),
    }


def search_from_config(game: Game, network: Any, search_config: Any, **overrides: Any) -> SearchFn:
    """:func:`make_search` with the knobs of a ``search`` config node (``overrides`` win)."""
    knobs = {"num_simulations": int(search_config.num_simulations), **search_knobs(search_config)}
    knobs.update(overrides)
    return make_search(game, network, **knobs)
