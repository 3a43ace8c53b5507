"""Arena players built on RingRift's reference heuristic (:mod:`.heuristic`).

- ``heuristic`` (:func:`one_ply_player`): scores every legal move by the heuristic value of
  the position it leads to, for the mover, and plays the best; ties go to the first legal
  move (lowest action index). A move that ends the game scores +1e9 when the mover wins,
  -1e9 when another player does, 0 without a winner; a move that leaves the position
  unchanged (the no-op ``process_line`` on an overlength line, R42) scores -1e12. This is the
  reference's one-ply player (``one_ply.<config>.json`` in the heuristic fixtures).
- ``heuristic-search`` (:func:`search_player`): mctx search (:func:`rlloop.search.make_search`)
  with a uniform prior and the heuristic as the value function, squashed into [-1, 1] by
  :func:`heuristic_values`.

Both take a weight profile (:data:`rlloop.games.ringrift.heuristic.PROFILES`). Player names
are ``heuristic`` / ``heuristic-search`` for the balanced profile and ``NAME:PROFILE``
otherwise (:func:`player_name`, :func:`parse_name`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from rlloop.games.base import State
from rlloop.games.ringrift.engine import RingRiftBoard, Rules
from rlloop.games.ringrift.game import RingRift
from rlloop.games.ringrift.heuristic import HeuristicWeights, evaluate, profile_weights

Array = jax.Array

KINDS = ("heuristic", "heuristic-search")
WIN_SCORE = 1e9  # a move that ends the game (the reference one-ply player's convention)
NOOP_SCORE = -1e12  # a move that leaves the position unchanged
# Heuristic differences are hundreds of points in play (a near win adds ~20,000): this scale
# maps a 100-point lead to a value of 0.46 and saturates near wins.
VALUE_SCALE = 200.0
SCORE_CHUNK = 64  # moves scored per step of the one-ply player's loop over legal moves

# Fields that a move must leave unchanged to be a no-op (the reference compares the whole
# state but its turn number and pending line reward; our turn flags live in the board too).
_POSITION_FIELDS = ("rings", "height", "marker", "collapsed", "hand", "elim", "terr", "phase",
                    "must_move", "chain_pos", "winner")  # fmt: skip


def player_name(kind: str, profile: str = "balanced") -> str:
    """``kind`` for the balanced profile, ``kind:profile`` otherwise."""
    return kind if profile in ("balanced", "heuristic_v1_balanced") else f"{kind}:{profile}"


def parse_name(name: str) -> tuple[str, str] | None:
    """(kind, profile) of a heuristic player's name, None when ``name`` is not one."""
    kind, _, profile = name.partition(":")
    if kind not in KINDS:
        return None
    profile = profile or "balanced"
    profile_weights(profile)  # raises on an unknown profile
    return kind, profile


def move_score(
    rules: Rules,
    board: RingRiftBoard,
    player: Array,
    action: Array,
    weights: HeuristicWeights,
    marker_order: Array | None = None,
) -> Array:
    """float32 []: the one-ply score of ``action`` for ``player`` (1-based) on ``board``.

    ``marker_order`` (int32 [N1], optional): the markers' insertion order before the move;
    markers the move leaves in place keep theirs, new ones come after every old one.
    """
    after, _, _, terminated = rules.step(board, player, action)
    order = None
    if marker_order is not None:
        kept = (board.marker > 0) & (after.marker > 0)
        order = jnp.where(kept, marker_order, rules.N1 + jnp.arange(rules.N1))
    value = evaluate(rules, after, weights, order)[player - 1]
    winner = after.winner
    end = jnp.where(winner == player, WIN_SCORE, jnp.where(winner == 0, 0.0, -WIN_SCORE))
    unchanged = jnp.all(jnp.stack([
        jnp.array_equal(getattr(board, f), getattr(after, f)) for f in _POSITION_FIELDS]))
    score = jnp.where(terminated, end, jnp.where(unchanged, NOOP_SCORE, value))
    return score.astype(jnp.float32)


def best_move(score: Callable[[Array], Array], legal: Array,
              chunk: int = SCORE_CHUNK) -> tuple[Array, Array]:
    """(action int32 [], score float32 []): the legal action of highest ``score(action)``
    (float32 []), the first (lowest action) of equal ones; action 0 and -inf when nothing is
    legal. ``legal``: bool [A].

    Actions are scored ``chunk`` at a time (``score`` vmapped) in a loop over the legal list,
    so the cost follows the number of legal actions, not the size of the action space."""
    num_actions = legal.shape[0]
    count = jnp.sum(legal)
    listed = jnp.nonzero(legal, size=num_actions + chunk, fill_value=0)[0].astype(jnp.int32)
    score_all = jax.vmap(score)

    def body(carry):
        start, best_score, best_action = carry
        actions = jax.lax.dynamic_slice(listed, (start,), (chunk,))
        scores = score_all(actions)
        scores = jnp.where(start + jnp.arange(chunk) < count, scores, -jnp.inf)
        j = jnp.argmax(scores)  # first of equal scores
        better = scores[j] > best_score
        return (start + chunk, jnp.where(better, scores[j], best_score),
                jnp.where(better, actions[j], best_action))

    carry = (jnp.int32(0), jnp.float32(-jnp.inf), jnp.int32(0))
    _, best, action = jax.lax.while_loop(lambda c: c[0] < count, body, carry)
    return action, best


def choose(rules: Rules, board: RingRiftBoard, player: Array, legal: Array,
           weights: HeuristicWeights) -> Array:
    """int32 []: the one-ply move of ``player`` (1-based) on ``board``; ``legal`` bool [A]."""
    return best_move(lambda a: move_score(rules, board, player, a, weights), legal)[0]


def one_ply_player(game: RingRift, profile: str = "balanced") -> Any:
    """The ``heuristic`` player (module docstring) of ``game`` with weight ``profile``."""
    from rlloop.arena import Player

    rules, weights = _rules(game), profile_weights(profile)

    def act(params: Any, key: Array, states: State) -> Array:
        del params, key  # deterministic
        return jax.vmap(lambda state: choose(rules, state.board, state.current_player + 1,
                                             state.legal_action_mask, weights))(states)

    return Player(name=player_name("heuristic", profile), act=act)


def heuristic_values(rules: Rules, boards: RingRiftBoard, movers: Array,
                     weights: HeuristicWeights) -> Array:
    """float32 [B, P], mover-relative (column k = the player k seats after the mover): each
    player's heuristic lead over the mean of the others, ``tanh(lead / VALUE_SCALE)``."""
    h = jax.vmap(lambda b: evaluate(rules, b, weights))(boards)  # [B, P], player 1 first
    num_players = rules.P
    lead = h - (jnp.sum(h, axis=1, keepdims=True) - h) / (num_players - 1)
    seats = (movers[:, None] + jnp.arange(num_players)[None, :]) % num_players
    return jnp.tanh(jnp.take_along_axis(lead, seats, axis=1) / VALUE_SCALE)


def heuristic_evaluator(game: RingRift, profile: str = "balanced"):
    """An :data:`rlloop.search.Evaluator`: uniform prior over legal moves, heuristic values."""
    rules, weights = _rules(game), profile_weights(profile)

    def evaluator(params: Any, states: State) -> tuple[Array, Array]:
        del params
        legal = states.legal_action_mask
        logits = jnp.where(legal, 0.0, jnp.finfo(jnp.float32).min).astype(jnp.float32)
        values = heuristic_values(rules, states.board, states.current_player, weights)
        return logits, values

    return evaluator


def search_player(game: RingRift, profile: str = "balanced", *, num_simulations: int,
                  search_knobs: dict[str, Any] | None = None) -> Any:
    """The ``heuristic-search`` player: search's greedy move (as for networks) with
    :func:`heuristic_evaluator` in place of a network."""
    from rlloop.arena import Player
    from rlloop.search import greedy_action, make_search

    if num_simulations < 1:
        raise ValueError(f"heuristic-search needs num_simulations >= 1, got {num_simulations}")
    search = make_search(game, None, num_simulations=num_simulations,
                         evaluator=heuristic_evaluator(game, profile), **(search_knobs or {}))

    def act(params: Any, key: Array, states: State) -> Array:
        return greedy_action(search(params, key, states))

    return Player(name=player_name("heuristic-search", profile), act=act)


def make_player(game: Any, name: str, *, num_simulations: int,
                search_knobs: dict[str, Any] | None = None) -> Any:
    """The heuristic player called ``name`` (``heuristic[-search][:PROFILE]``) for ``game``."""
    parsed = parse_name(name)
    if parsed is None:
        raise ValueError(f"{name!r} is not a heuristic player; valid: "
                         f"{', '.join(KINDS)}, optionally followed by :PROFILE")
    kind, profile = parsed
    if kind == "heuristic":
        return one_ply_player(game, profile)
    return search_player(game, profile, num_simulations=num_simulations, search_knobs=search_knobs)


def _rules(game: Any) -> Rules:
    rules = getattr(game, "rules", None)
    if not isinstance(rules, Rules):
        raise ValueError(f"heuristic players need a RingRift game; {getattr(game, 'name', game)!r} "
                         "is not one")
    return rules
