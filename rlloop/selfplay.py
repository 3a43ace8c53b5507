"""Jitted batched self-play: ``lax.scan`` over moves, ``vmap`` over games.

:func:`make_selfplay` builds ``play(params, states, key) -> (states, SelfplayChunk)``: every
game of the batch advances ``moves_per_chunk`` moves chosen by search. A game that ends is
restarted in place at once, and a game still running at the end of the chunk is carried to the
next chunk in ``states``, so no game is cut or lost. Value targets are only known when a game
ends, possibly chunks later; :class:`rlloop.replay.PendingGames` joins them on the host.

Forced moves (one legal action: in RingRift nearly half of all decisions are bookkeeping
passes) are searched and recorded like any other by default (they train the value network,
not the policy). With ``max_forced_moves`` > 0 they are instead played without search after
every searched move and not recorded, so a chunk's T moves are T decisions with a choice.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import chex
import jax
import jax.numpy as jnp

from rlloop.games.base import Game, State, play_forced, select_games
from rlloop.search import SearchFn, greedy_action

__all__ = ["Opponent", "SelfplayChunk", "dense_policy", "entropy", "make_selfplay",
           "make_selfplay_against", "new_games", "new_seats", "play_forced", "policy_slots", "random_opening",
           "reset_finished", "sparse_policy"]


@chex.dataclass(frozen=True)
class SelfplayChunk:
    """Samples of one chunk, time-major: every field is [T, B, ...] with T = moves_per_chunk."""

    observation: jax.Array  # [T, B, *observation_shape] float32, the mover's view
    # Search's policy target (its action_weights) as its K largest entries: K =
    # ``policy_slots`` (the search's slots; every action when the game has no more), which
    # holds every non-zero weight, so the target is exact. Dense [A] targets for square19
    # (~69k actions) would be ~277 KB a sample.
    policy_actions: jax.Array  # [T, B, K] int32
    policy_weights: jax.Array  # [T, B, K] float32 (0 where the target has fewer actions)
    player: jax.Array  # [T, B] int32, the mover
    root_value: jax.Array  # [T, B] float32, search's value of the root
    done: jax.Array  # [T, B] bool, the game ended with this move
    final_rewards: jax.Array  # [T, B, N] float32, the ending move's rewards (0 unless done)
    game_length: jax.Array  # [T, B] int32, moves in the game that ended (0 unless done)
    terminated: jax.Array  # [T, B] bool, ended by the rules (not truncation)
    forced: jax.Array  # [T, B] bool, the mover had one legal action (no choice to learn)
    # The network's seat in an asymmetric game against an opponent (make_selfplay_against),
    # -1 in self-play.
    seat: jax.Array  # [T, B] int32
    # Entropy (nats) of search's improved policy and of the network's own policy at the root
    # (its prior over the searched actions; PUCT's Dirichlet noise included): learning health.
    policy_entropy: jax.Array  # [T, B] float32
    prior_entropy: jax.Array  # [T, B] float32


def policy_slots(num_actions: int, max_actions: int) -> int:
    """Entries kept of a policy target: the search's slots (``search.max_actions``), or every
    action when that is 0 or the game has no more (see :func:`rlloop.search.make_search`)."""
    return num_actions if max_actions <= 0 or num_actions <= max_actions else max_actions


def sparse_policy(weights: jax.Array, slots: int) -> tuple[jax.Array, jax.Array]:
    """``weights [..., A]`` -> ``(actions [..., K], weights [..., K])``, its ``slots`` largest
    entries (with ``slots`` = A: every action, in order)."""
    num_actions = weights.shape[-1]
    if slots >= num_actions:
        actions = jnp.broadcast_to(jnp.arange(num_actions, dtype=jnp.int32), weights.shape)
        return actions, weights
    values, actions = jax.lax.top_k(weights, slots)
    return actions.astype(jnp.int32), values


def dense_policy(actions: jax.Array, weights: jax.Array, num_actions: int) -> jax.Array:
    """The inverse of :func:`sparse_policy`: ``[..., K]`` pairs -> ``[..., num_actions]``."""
    flat_actions = actions.reshape(-1, actions.shape[-1])
    flat_weights = weights.reshape(-1, weights.shape[-1])
    rows = jnp.arange(flat_actions.shape[0])[:, None]
    dense = jnp.zeros((flat_actions.shape[0], num_actions), weights.dtype)
    dense = dense.at[rows, flat_actions].add(flat_weights)
    return dense.reshape(*actions.shape[:-1], num_actions)


def random_opening(game: Game, states: State, key: jax.Array, max_moves: int) -> State:
    """Play a uniform number in [0, max_moves] of uniformly random legal moves in each game.

    A move that would end the game is not played, so every game stays live. Openings widen
    the positions self-play visits (and learns from) beyond the lines of its own best play.
    """
    if max_moves <= 0:
        return states
    batch = states.current_player.shape[0]
    count_key, key = jax.random.split(key)
    counts = jax.random.randint(count_key, (batch,), 0, max_moves + 1)

    def body(index: int, states: State) -> State:
        move_key = jax.random.fold_in(key, index)
        mask = states.legal_action_mask
        logits = jnp.where(mask.any(axis=-1, keepdims=True), jnp.where(mask, 0.0, -jnp.inf), 0.0)
        actions = jax.random.categorical(move_key, logits).astype(jnp.int32)
        played = jax.vmap(game.step)(states, actions)
        keep = (index < counts) & ~(played.terminated | played.truncated)
        return select_games(keep, played, states)

    return jax.lax.fori_loop(0, max_moves, body, states)


def new_games(game: Game, key: jax.Array, batch_size: int, *, random_opening_moves: int = 0) -> State:
    """``batch_size`` fresh games, each after its random opening. State [batch_size]."""
    init_key, opening_key = jax.random.split(key)
    states = jax.vmap(game.init)(jax.random.split(init_key, batch_size))
    return random_opening(game, states, opening_key, random_opening_moves)


def reset_finished(
    game: Game, states: State, key: jax.Array, *, random_opening_moves: int = 0
) -> State:
    """Replace finished games of the batch with new ones (branch-free)."""
    done = states.terminated | states.truncated
    fresh = new_games(game, key, done.shape[0], random_opening_moves=random_opening_moves)
    return select_games(done, fresh, states)


def make_selfplay(
    game: Game,
    search: SearchFn,
    *,
    moves_per_chunk: int,
    temperature_moves: int,
    random_opening_moves: int = 0,
    max_forced_moves: int = 0,
    policy_slots: int | None = None,
) -> Callable[[Any, State, jax.Array], tuple[State, SelfplayChunk]]:
    """Self-play chunk ``play(params, states[B], key) -> (states[B], SelfplayChunk)``.

    Moves before ``temperature_moves`` (counted from each game's start) use the search's own
    sampled choice (Gumbel noise, or visit counts at temperature 1 for PUCT); later moves are
    search's choice without the noise (:func:`rlloop.search.greedy_action`). New games start
    after a random opening of up to ``random_opening_moves`` uniformly random moves (see
    :func:`random_opening`). After each
    searched move up to ``max_forced_moves`` forced moves are played (:func:`play_forced`);
    a game that ends there ends with the searched move's row.
    Policy targets keep ``policy_slots`` entries (:func:`sparse_policy`; default every
    action): pass :func:`policy_slots` of the search's ``max_actions``.
    Not jitted here: the caller jits it with its shardings.
    """
    mover = _Mover(game, search, temperature_moves, random_opening_moves, max_forced_moves,
                   _checked_slots(game, policy_slots))  # fmt: skip

    def one_move(params: Any, states: State, key: jax.Array) -> tuple[State, SelfplayChunk]:
        search_key, reset_key = jax.random.split(key)
        output, action = mover.search(params, states, search_key)
        next_states, sample = mover.step(states, output, action)
        return mover.reset(next_states, reset_key), sample

    def play(params: Any, states: State, key: jax.Array) -> tuple[State, SelfplayChunk]:
        def body(states: State, move_key: jax.Array) -> tuple[State, SelfplayChunk]:
            return one_move(params, states, move_key)

        return jax.lax.scan(body, states, jax.random.split(key, moves_per_chunk))

    return play


@chex.dataclass(frozen=True)
class Opponent:
    """Who the network plays in asymmetric games (:func:`make_selfplay_against`)."""

    params: Any  # an earlier network's parameters (ignored when ``uniform``)
    uniform: jax.Array  # [] bool: play uniformly random legal moves instead of searching


def new_seats(key: jax.Array, batch_size: int, opponent_games: int, num_players: int) -> jax.Array:
    """Seats of a fresh batch (:func:`make_selfplay_against`): the network's seat, uniform,
    in each of the first ``opponent_games`` games, -1 (self-play) in the rest. int32 [B]."""
    seats = jax.random.randint(key, (batch_size,), 0, num_players, dtype=jnp.int32)
    return jnp.where(jnp.arange(batch_size) < opponent_games, seats, -1)


def make_selfplay_against(
    game: Game,
    search: SearchFn,
    *,
    opponent_games: int,
    moves_per_chunk: int,
    temperature_moves: int,
    random_opening_moves: int = 0,
    max_forced_moves: int = 0,
    policy_slots: int | None = None,
) -> Callable[..., tuple[State, jax.Array, SelfplayChunk]]:
    """Self-play in which the first ``opponent_games`` games of the batch are asymmetric:
    ``play(params, opponent, states[B], seats[B], key) -> (states, seats, SelfplayChunk)``.

    In game ``b`` < ``opponent_games`` the network (``params``) plays seat ``seats[b]`` and
    the :class:`Opponent` every other seat (an earlier champion searching with the same
    search, or uniformly random moves); the other games are self-play as in
    :func:`make_selfplay`, whose knobs this takes. A finished asymmetric game restarts with
    a new uniform seat, so the network plays every seat equally often (``seats`` are
    carried to the next chunk with the games).

    Every position is searched with ``params`` and recorded with that search's policy and
    root value, also where the opponent moves (the network's search ran there too: its
    target is as good as at its own moves); the value target is the game's outcome.
    ``SelfplayChunk.seat`` says which games were asymmetric. The opponent's search runs on
    the first ``opponent_games`` games only: a chunk costs ``B + opponent_games`` searches.
    """
    mover = _Mover(game, search, temperature_moves, random_opening_moves, max_forced_moves,
                   _checked_slots(game, policy_slots))  # fmt: skip
    asymmetric = int(opponent_games)

    def opponent_action(opponent: Opponent, states: State, key: jax.Array) -> jax.Array:
        def uniform(states: State) -> jax.Array:
            mask = states.legal_action_mask
            logits = jnp.where(mask.any(axis=-1, keepdims=True), jnp.where(mask, 0.0, -jnp.inf), 0.0)
            return jax.random.categorical(key, logits).astype(jnp.int32)

        def searched(states: State) -> jax.Array:
            return mover.search(opponent.params, states, key)[1]

        return jax.lax.cond(opponent.uniform, uniform, searched, states)

    def one_move(params: Any, opponent: Opponent, carry: tuple[State, jax.Array], key: jax.Array):
        states, seats = carry
        search_key, opponent_key, reset_key, seat_key = jax.random.split(key, 4)
        output, action = mover.search(params, states, search_key)
        head = jax.tree.map(lambda x: x[:asymmetric], states)
        theirs = opponent_action(opponent, head, opponent_key)
        opponent_moves = (seats[:asymmetric] >= 0) & (head.current_player != seats[:asymmetric])
        action = action.at[:asymmetric].set(jnp.where(opponent_moves, theirs, action[:asymmetric]))
        next_states, sample = mover.step(states, output, action)
        sample = sample.replace(seat=seats)
        done = next_states.terminated | next_states.truncated
        fresh = new_seats(seat_key, seats.shape[0], asymmetric, game.num_players)
        seats = jnp.where(done & (seats >= 0), fresh, seats)
        return (mover.reset(next_states, reset_key), seats), sample

    def play(params: Any, opponent: Opponent, states: State, seats: jax.Array, key: jax.Array):
        def body(carry: tuple[State, jax.Array], move_key: jax.Array):
            return one_move(params, opponent, carry, move_key)

        (states, seats), chunk = jax.lax.scan(body, (states, seats), jax.random.split(key, moves_per_chunk))
        return states, seats, chunk

    return play


def entropy(logits: jax.Array) -> jax.Array:
    """Entropy in nats of ``softmax(logits)`` over the last axis ([..., A] -> [...]); logits
    at the dtype's minimum (masked actions) count as probability 0."""
    log_p = jax.nn.log_softmax(logits, axis=-1)
    p = jnp.exp(log_p)
    return -jnp.sum(jnp.where(p > 0, p * log_p, 0.0), axis=-1)


def _checked_slots(game: Game, policy_slots: int | None) -> int:
    slots = game.num_actions if policy_slots is None else int(policy_slots)
    if not 1 <= slots <= game.num_actions:
        raise ValueError(f"policy_slots={policy_slots} must be in [1, {game.num_actions}]")
    return slots


class _Mover:
    """The parts of one self-play move both chunk programs share: search and choose, step
    and record, restart finished games."""

    def __init__(self, game: Game, search: SearchFn, temperature_moves: int, random_opening_moves: int,
                 max_forced_moves: int, slots: int) -> None:  # fmt: skip
        self.game, self.search_fn, self.slots = game, search, slots
        self.temperature_moves = temperature_moves
        self.random_opening_moves = random_opening_moves
        self.max_forced_moves = max_forced_moves

    def search(self, params: Any, states: State, key: jax.Array) -> tuple[Any, jax.Array]:
        """(search output, the move: sampled before ``temperature_moves``, greedy after)."""
        output = self.search_fn(params, key, states)
        # Both mctx policies already sample ``action`` (Gumbel noise; visit counts at
        # temperature 1 for PUCT): that is the exploratory move.
        explore = states.step_count < self.temperature_moves
        return output, jnp.where(explore, output.action, greedy_action(output)).astype(jnp.int32)

    def step(self, states: State, output: Any, action: jax.Array) -> tuple[State, SelfplayChunk]:
        game = self.game
        policy_actions, policy_weights = sparse_policy(output.action_weights, self.slots)
        observation = jax.vmap(game.observe)(states, states.current_player)
        next_states = jax.vmap(game.step)(states, action)
        next_states = play_forced(game, next_states, self.max_forced_moves)
        done = next_states.terminated | next_states.truncated
        sample = SelfplayChunk(
            observation=observation,
            policy_actions=policy_actions,
            policy_weights=policy_weights,
            player=states.current_player,
            root_value=output.search_tree.node_values[:, 0],
            done=done,
            final_rewards=next_states.rewards,
            game_length=jnp.where(done, next_states.step_count, 0),
            terminated=next_states.terminated,
            forced=jnp.sum(states.legal_action_mask, axis=-1) <= 1,
            seat=jnp.full(done.shape, -1, jnp.int32),
            policy_entropy=entropy(jnp.log(jnp.maximum(output.action_weights, 1e-30))),
            prior_entropy=entropy(output.search_tree.children_prior_logits[:, 0]),
        )
        return next_states, sample

    def reset(self, states: State, key: jax.Array) -> State:
        return reset_finished(self.game, states, key, random_opening_moves=self.random_opening_moves)
