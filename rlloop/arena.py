"""Batched matches between two players, and gauntlets against fixed baselines.

A *player* is a jittable ``act(params, key, states[B]) -> actions int32 [B]`` plus its
``params`` (a network's parameters, or None for baselines). :func:`play_match` runs many
games at once: they start from shared random openings and are played in pairs with the seats
swapped, so neither side gains from moving first. Finished games wait (their steps are no-ops)
until every game of the batch is over or ``max_steps`` is reached. Forced moves (one legal
action) are played without asking either player.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from rlloop import progress
from rlloop.games.base import Game, State
from rlloop.search import evaluate, greedy_action, make_search
from rlloop.selfplay import new_games, play_forced

# Forced moves (one legal action) played without asking the players after each move.
MAX_FORCED_MOVES = 8

ActFn = Callable[[Any, jax.Array, State], jax.Array]


@dataclasses.dataclass(frozen=True)
class Player:
    """A named way to choose moves. ``act`` must be jittable; ``params`` may be None."""

    name: str
    act: ActFn
    params: Any = None


@dataclasses.dataclass(frozen=True)
class MatchOutcome:
    """Results from player A's side: a win is A finishing strictly first."""

    player_a: str
    player_b: str
    wins_a: int
    draws: int
    wins_b: int
    lengths: np.ndarray  # [games] int32, moves per game

    @property
    def games(self) -> int:
        return self.wins_a + self.draws + self.wins_b

    @property
    def score_a(self) -> float:
        """A's score in [0, 1], draws counting half."""
        return (self.wins_a + 0.5 * self.draws) / max(self.games, 1)


# ------------------------------------------------------------------------- players
def random_player(game: Game) -> Player:
    """Uniformly random legal moves."""

    def act(params: Any, key: jax.Array, states: State) -> jax.Array:
        del params
        return _sample_legal(key, states.legal_action_mask)

    return Player(name="random", act=act)


def _sample_legal(key: jax.Array, mask: jax.Array) -> jax.Array:
    logits = jnp.where(mask, 0.0, -jnp.inf)
    logits = jnp.where(mask.any(axis=-1, keepdims=True), logits, 0.0)
    return jax.random.categorical(key, logits).astype(jnp.int32)


# Beyond this many actions the blocking look-ahead (actions x actions steps) is skipped, and
# beyond GREEDY_MAX_ACTIONS even the one-ply win check (one step per action) is too costly.
GREEDY_BLOCK_MAX_ACTIONS = 64
GREEDY_MAX_ACTIONS = 512


def greedy_preferred(game: Game) -> Callable[[State], jax.Array]:
    """The one-ply greedy player's candidate moves: ``preferred(state) -> bool [A]`` for one
    (unbatched) state, the moves :func:`greedy_player` chooses among uniformly: the moves that
    win at once if there are any; otherwise the legal moves after which the opponent cannot
    win at once (blocking; only for games with at most ``GREEDY_BLOCK_MAX_ACTIONS``
    actions), or every legal move when none is safe. All False when nothing is legal.

    Raises ValueError for games with more than ``GREEDY_MAX_ACTIONS`` actions.
    """
    if game.num_actions > GREEDY_MAX_ACTIONS:
        raise ValueError(
            f"greedy_player needs one step per action per position; {game.name} has "
            f"{game.num_actions} actions (at most {GREEDY_MAX_ACTIONS} supported)"
        )
    block = game.num_actions <= GREEDY_BLOCK_MAX_ACTIONS
    actions = jnp.arange(game.num_actions, dtype=jnp.int32)

    def wins_now(state: State) -> jax.Array:
        """bool [A]: action wins immediately for the mover of ``state``."""
        mover = state.current_player
        after = jax.vmap(game.step, in_axes=(None, 0))(state, actions)
        best_other = jnp.max(
            jnp.where(jnp.arange(game.num_players) == mover, -jnp.inf, after.rewards), axis=-1
        )
        return state.legal_action_mask & after.terminated & (after.rewards[:, mover] > best_other)

    def preferred(state: State) -> jax.Array:
        legal = state.legal_action_mask
        winning = wins_now(state)
        if block:
            after = jax.vmap(game.step, in_axes=(None, 0))(state, actions)
            opponent_wins = jax.vmap(lambda s: jnp.any(wins_now(s)))(after)
            safe = legal & ~opponent_wins
        else:
            safe = legal
        return jnp.where(winning.any(), winning, jnp.where(safe.any(), safe, legal))

    return preferred


def greedy_player(game: Game) -> Player:
    """One-ply greedy: plays a move that wins at once if there is one; otherwise avoids moves
    after which the opponent can win at once (blocking); otherwise random. Ties are random
    (uniform over :func:`greedy_preferred`).

    The blocking look-ahead costs ``num_actions**2`` steps per position, so it is used only
    for games with at most ``GREEDY_BLOCK_MAX_ACTIONS`` actions.
    """
    preferred = greedy_preferred(game)

    def act(params: Any, key: jax.Array, states: State) -> jax.Array:
        del params
        keys = jax.random.split(key, states.current_player.shape[0])
        return jax.vmap(lambda state, k: _sample_legal(k, preferred(state)))(states, keys)

    return Player(name="greedy", act=act)


BASELINES = ("random", "greedy")  # the fixed players every gate and gauntlet can use


def baseline_players(game: Game, *, prefix: str = "") -> dict[str, Player]:
    """The fixed baselines for ``game`` by name: ``random`` always, ``greedy`` where its
    one-ply check is affordable (at most ``GREEDY_MAX_ACTIONS`` actions; not RingRift).
    ``prefix`` goes before each player's name (a run's lineages name theirs apart)."""
    players = {"random": random_player(game)}
    if game.num_actions <= GREEDY_MAX_ACTIONS:
        players["greedy"] = greedy_player(game)
    return {name: dataclasses.replace(player, name=prefix + name) for name, player in players.items()}


def anchor_players(
    game: Game,
    names: list[str] | tuple[str, ...] = BASELINES,
    *,
    prefix: str = "",
    num_simulations: int = 16,
    search_knobs: dict[str, Any] | None = None,
) -> dict[str, Player]:
    """The fixed players called ``names``, by name: the :data:`BASELINES` (as
    :func:`baseline_players`: ``greedy`` is left out where unaffordable) and, for RingRift,
    the heuristic players ``heuristic[-search][:PROFILE]``
    (:mod:`rlloop.games.ringrift.heuristic_players`; ``heuristic-search`` searches with
    ``num_simulations`` and ``search_knobs``). ``prefix`` goes before each player's name."""
    baselines = baseline_players(game, prefix=prefix)
    players: dict[str, Player] = {}
    for name in names:
        if name in BASELINES:
            if name in baselines:
                players[name] = baselines[name]
            continue
        from rlloop.games.ringrift import heuristic_players

        if heuristic_players.parse_name(name) is None:
            raise ValueError(
                f"unknown anchor player {name!r}; valid: {', '.join(BASELINES)}, "
                f"{', '.join(heuristic_players.KINDS)} (RingRift; optionally NAME:PROFILE)"
            )
        player = heuristic_players.make_player(
            game, name, num_simulations=num_simulations, search_knobs=search_knobs
        )
        players[name] = dataclasses.replace(player, name=prefix + player.name)
    return players


def network_player(
    name: str,
    game: Game,
    network: Any,
    params: Any,
    *,
    num_simulations: int,
    search_knobs: dict[str, Any] | None = None,
) -> Player:
    """A network's greedy move: search's choice without its noise (``num_simulations`` > 0,
    :func:`rlloop.search.greedy_action`) or the raw policy's argmax (0)."""
    if num_simulations == 0:

        def act(params: Any, key: jax.Array, states: State) -> jax.Array:
            del key
            return jnp.argmax(evaluate(network, game, params, states)[0], axis=-1).astype(jnp.int32)

    else:
        search = make_search(game, network, num_simulations=num_simulations, **(search_knobs or {}))

        def act(params: Any, key: jax.Array, states: State) -> jax.Array:
            return greedy_action(search(params, key, states))

    return Player(name=name, act=act, params=params)


# ------------------------------------------------------------------------- matches
@functools.lru_cache(maxsize=64)
def _compiled_match(
    game: Game, act_a: ActFn, act_b: ActFn, num_games: int, opening_moves: int
) -> Callable[[Any, Any, jax.Array], tuple[jax.Array, jax.Array]]:
    """One compiled match per (game, players' act functions, batch, opening) — params are
    arguments, so a new champion or candidate reuses the program."""
    num_players = game.num_players
    pairs = num_games // 2

    def run(params_a: Any, params_b: Any, key: jax.Array) -> tuple[jax.Array, jax.Array]:
        opening_key, play_key = jax.random.split(key)
        openings = new_games(game, opening_key, pairs, random_opening_moves=opening_moves)
        states = jax.tree.map(lambda x: jnp.concatenate([x, x]), openings)
        # Two players: A sits in seat 0 in the first half and seat 1 in the second, so every
        # opening is played from both sides. More players: A rotates through the seats.
        index = jnp.arange(2 * pairs, dtype=jnp.int32)
        seat_a = index // pairs if num_players == 2 else index % num_players
        totals = jnp.zeros((2 * pairs, num_players), jnp.float32)

        def cond(carry: tuple) -> jax.Array:
            states, _, step, _ = carry
            return (step < game.max_steps) & ~jnp.all(states.terminated | states.truncated)

        def body(carry: tuple) -> tuple:
            states, totals, step, key = carry
            key, key_a, key_b = jax.random.split(key, 3)
            action_a = act_a(params_a, key_a, states)
            action_b = act_b(params_b, key_b, states)
            action = jnp.where(states.current_player == seat_a, action_a, action_b)
            states = jax.vmap(game.step)(states, action)
            # Forced moves need no player (nor its search); a game ending there keeps its rewards.
            states = play_forced(game, states, MAX_FORCED_MOVES)
            return states, totals + states.rewards, step + 1, key

        states, totals, _, _ = jax.lax.while_loop(cond, body, (states, totals, 0, play_key))
        reward_a = jnp.take_along_axis(totals, seat_a[:, None], axis=1)[:, 0]
        best_other = jnp.max(
            jnp.where(jnp.arange(num_players)[None, :] == seat_a[:, None], -jnp.inf, totals), axis=1
        )
        # +1 A strictly ahead of everyone, -1 someone strictly ahead of A, 0 otherwise.
        result = jnp.sign(reward_a - best_other).astype(jnp.int32)
        return result, states.step_count

    return jax.jit(run)


def field_size(game: Game) -> int:
    """How many copies of B every match game seats against A: ``num_players - 1`` (B fills
    every seat A does not), the ``field`` of :mod:`rlloop.ratings`."""
    return int(game.num_players) - 1


def play_match(
    game: Game,
    player_a: Player,
    player_b: Player,
    *,
    num_games: int,
    key: jax.Array,
    opening_moves: int = 2,
) -> MatchOutcome:
    """Play ``num_games`` (even) games of A against B with seats swapped in pairs.

    With more than two players, B fills every seat that A does not (A against the field).
    ``opening_moves``: each pair starts after up to this many uniformly random moves, so that
    deterministic players do not repeat one game.
    """
    if num_games < 2 or num_games % 2:
        raise ValueError(f"num_games must be an even number >= 2, got {num_games}")
    run = _compiled_match(game, player_a.act, player_b.act, num_games, opening_moves)
    result, lengths = jax.device_get(run(player_a.params, player_b.params, key))
    return _outcome(player_a, player_b, np.asarray(result), np.asarray(lengths))


def _outcome(player_a: Player, player_b: Player, result: np.ndarray, lengths: np.ndarray) -> MatchOutcome:
    """Counts of per-game results (+1 A won, 0 a draw, -1 B won) as a :class:`MatchOutcome`."""
    return MatchOutcome(
        player_a=player_a.name,
        player_b=player_b.name,
        wins_a=int((result > 0).sum()),
        draws=int((result == 0).sum()),
        wins_b=int((result < 0).sum()),
        lengths=lengths,
    )


def match_slices(num_games: int, slices: int) -> list[int]:
    """Games of each of ``slices`` slices of a match of ``num_games`` (even): pairs dealt as
    evenly as possible, the first slices one pair more."""
    pairs, extra = divmod(num_games // 2, slices)
    return [2 * (pairs + (index < extra)) for index in range(slices)]


def play_match_slices(
    game: Game,
    player_a: Player,
    player_b: Player,
    *,
    num_games: int,
    key: jax.Array,
    opening_moves: int = 2,
    slices: int = 1,
    local: list[int] | None = None,
) -> MatchOutcome:
    """The part of a match of ``num_games`` that slices ``local`` play: the match is cut into
    ``slices`` slices (:func:`match_slices`), slice ``i`` played with ``key`` folded with ``i``
    (one slice: ``key`` itself, :func:`play_match`). The slices of a match depend only on its
    size, key and slice count, so a match split over the processes of a run (each plays the
    slices of its devices, the counts are summed) gives the games a one-process run plays.
    Every slice is dispatched before any result is fetched."""
    if num_games < 2 or num_games % 2:
        raise ValueError(f"num_games must be an even number >= 2, got {num_games}")
    if slices == 1:
        return play_match(game, player_a, player_b, num_games=num_games, key=key, opening_moves=opening_moves)
    sizes = match_slices(num_games, slices)
    running = []
    for index in range(slices) if local is None else local:
        if sizes[index]:
            run = _compiled_match(game, player_a.act, player_b.act, sizes[index], opening_moves)
            running.append(run(player_a.params, player_b.params, jax.random.fold_in(key, index)))
    fetched = jax.device_get(running)
    result = np.concatenate([np.asarray(r) for r, _ in fetched]) if fetched else np.zeros(0)
    lengths = np.concatenate([np.asarray(n) for _, n in fetched]) if fetched else np.zeros(0, np.int32)
    return _outcome(player_a, player_b, result, lengths)


def gauntlet(
    game: Game,
    candidate: Player,
    opponents: list[Player],
    *,
    num_games: int,
    key: jax.Array,
    opening_moves: int = 2,
) -> list[MatchOutcome]:
    """The candidate against each opponent in turn (e.g. random, greedy, earlier champions)."""
    return [
        play_match(
            game, candidate, opponent, num_games=num_games, key=jax.random.fold_in(key, index),
            opening_moves=opening_moves,
        )
        for index, opponent in enumerate(progress.each(opponents, f"{candidate.name} vs", unit="match"))
    ]
