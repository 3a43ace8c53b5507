"""The game contract: what every game must do, unbatched and under jit(vmap).

Usable from tests and notebooks::

    from rlloop import games
    games.register("othello6", Othello6)
    games.check_contract(games.make("othello6"))   # raises ContractError naming the property

Random games are played inside compiled programs, not one jitted step at a time: per game,
one unbatched program (a jitted ``lax.while_loop`` of ``game.step``, no vmap) and one
batched program (the same loop over ``jax.vmap(game.step)``, jitted, compiled once per batch
shape, two shapes in all); see ``_programs``. Each loop step records what the checks need (the
action, the new state's scalar fields and rewards, whether the chosen action was legal,
exact integer hashes of the observation, mask and board, ...) into ``[T]``-stacked arrays,
and the assertions run in numpy. The loop makes one extra step on the finished state, so
every game also checks that stepping a finished game is a no-op. The programs and the
games they played are cached per game, so every test of a game reuses them.

Properties checked, for every registered game:

- metadata: ``make`` returns one shared instance per name (the game is registered);
  metadata are sane (players >= 2, actions and max_steps > 0, positive
  int observation dims).
- init: field shapes and dtypes, a non-empty mask, zero rewards, not finished, step 0,
  observation shape/dtype, ``features`` length, ``render`` gives a string; the output
  avals of ``step`` equal its input avals (dtype, shape and weak type).
- random games (uniformly random legal moves, ``GAMES`` games, each played by the unbatched
  and by the batched program): every game ends (terminated or truncated, never both) within
  ``max_steps``; the policy's actions are always legal per the mask; a live state always
  has a legal action; the mask is all False once the game is over; rewards are zero on
  every step but the last and sum to 0 there (zero when truncated); ``step_count`` counts
  the decisions taken; ``current_player`` is in range; observations are finite.
- vmap matches single: the batched program plays step for step the same game as the
  unbatched one (actions, scalar fields, rewards, observation/mask/board hashes), and ends
  in the same final state (every field and board leaf) with the same observation.
- finished games: stepping a finished game (action 0, -1 or ``num_actions``) changes
  nothing but zeroes the rewards; checked in every game played and on its final state.
- illegal actions (-1, ``num_actions``, a masked-out action) forfeit: terminated, mover -1,
  the others +1/(N-1), the position unchanged.
- compilation: the batched program is traced once per batch shape (``chex``, two shapes,
  states fed back call after call; a third shape is proven to raise) and the unbatched
  program once.
- symmetries: identity first with identity permutations, permutations are permutations,
  and replaying the inverse-mapped actions of a random game gives, at every step, the
  transformed observation (hash) and mask (hash) and the same rewards.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any

import chex
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from rlloop.games.base import Game, State, make

__all__ = ["CHECKS", "ContractError", "check_contract"]


class ContractError(AssertionError):
    """A game broke its contract; the message names the property and the game."""


def _require(condition: Any, message: str) -> None:
    if not bool(condition):
        raise ContractError(message)


GAMES = 4  # random games per game, each played by the unbatched and the batched program
TRACE_BATCH = 8  # the second batch shape of the compile-count test (3 steps per call)
NO_FORCE = int(np.iinfo(np.int32).min)  # "choose a random legal action" in `forced`


def _random_legal_action(key: jax.Array, mask: jax.Array) -> jax.Array:
    """A uniformly random legal action, 0 when none is legal (a finished game).

    Integer arithmetic only, so the unbatched and the vmapped programs choose bit-identical
    actions from the same key.
    """
    count = jnp.sum(mask, dtype=jnp.int32)
    k = jax.random.randint(key, (), 0, jnp.maximum(count, 1))
    return jnp.argmax(jnp.cumsum(mask, dtype=jnp.int32) > k).astype(jnp.int32)


def _hash_constants(size: int, salt: int) -> np.ndarray:
    """Odd pseudo-random uint32 weights, one per array element."""
    return np.random.default_rng(salt).integers(0, 2**32, size, dtype=np.uint32) | np.uint32(1)


def _hash(x: jax.Array, constants: np.ndarray) -> jax.Array:
    """Exact, order-free uint32 hash of an array (a weighted sum of its bit patterns)."""
    x = x.reshape(-1)
    if jnp.issubdtype(x.dtype, jnp.floating):
        x = jnp.where(x == 0, jnp.zeros_like(x), x).astype(jnp.float32)  # -0.0 == 0.0
        bits = lax.bitcast_convert_type(x, jnp.uint32)
    elif x.dtype == jnp.uint32:
        bits = x
    else:
        bits = x.astype(jnp.int32).astype(jnp.uint32)
    return jnp.sum(bits * jnp.asarray(constants), dtype=jnp.uint32)


@dataclasses.dataclass(frozen=True)
class Programs:
    single: Any  # jit(while_loop(step)): unbatched, traced once
    batched: Any  # jit(while_loop(vmap(step))): traced once per batch shape (two in all)
    horizon: int  # T: loop steps a whole game can take (max_steps decisions + 1 no-op)


@functools.cache
def _programs(game: Game) -> Programs:
    """The two compiled programs of a game (one per game, shared by every test)."""
    symmetries = game.symmetries()
    obs_size = int(np.prod(game.observation_shape))
    obs_constants = _hash_constants(obs_size, 1)
    mask_constants = _hash_constants(game.num_actions, 2)
    board_shapes = jax.eval_shape(game.init, jax.random.key(0)).board
    leaves = jax.tree.leaves(board_shapes)
    board_constants = [
        _hash_constants(max(1, int(np.prod(x.shape))), 3 + i) for i, x in enumerate(leaves)
    ]

    def board_hash(board: Any) -> jax.Array:
        total = jnp.uint32(0)
        for i, (leaf, c) in enumerate(zip(jax.tree.leaves(board), board_constants, strict=True)):
            total = total * jnp.uint32(0x9E3779B1) + _hash(leaf, c) + jnp.uint32(i)
        return total

    def record(before: State, action: jax.Array, after: State) -> dict[str, jax.Array]:
        observation = game.observe(after, after.current_player)
        obs_hashes, mask_hashes = [], []
        for symmetry in symmetries:
            transformed, mask = symmetry.apply(observation[None], after.legal_action_mask[None])
            obs_hashes.append(_hash(transformed, obs_constants))
            mask_hashes.append(_hash(mask, mask_constants))
        in_range = (action >= 0) & (action < game.num_actions)
        legal = in_range & before.legal_action_mask[jnp.clip(action, 0, game.num_actions - 1)]
        same = [
            jnp.all(x == y)
            for x, y in zip(
                jax.tree.leaves(before.replace(rewards=after.rewards)),
                jax.tree.leaves(after),
                strict=True,
            )
        ]
        return {
            "live": ~(before.terminated | before.truncated),
            "action": action,
            "legal": legal,
            "current_player": after.current_player,
            "terminated": after.terminated,
            "truncated": after.truncated,
            "step_count": after.step_count,
            "rewards": after.rewards,
            "mask_any": after.legal_action_mask.any(),
            "observation_finite": jnp.isfinite(observation).all(),
            "observation_hash": jnp.stack(obs_hashes),
            "mask_hash": jnp.stack(mask_hashes),
            "board_hash": board_hash(after.board),
            # `after` equals `before` in every field but the rewards, which are zero.
            "unchanged": jnp.stack(same).all() & ~after.rewards.any(),
        }

    def decide(before: State, key: jax.Array, forced: jax.Array) -> tuple[State, Any]:
        """One step: ``forced``, or a random legal action where that is ``NO_FORCE``."""
        sampled = _random_legal_action(
            jax.random.fold_in(key, before.step_count), before.legal_action_mask
        )
        action = jnp.where(forced == NO_FORCE, sampled, forced)
        after = game.step(before, action)
        return after, record(before, action, after)

    def run(
        state: State, key: jax.Array, forced: jax.Array, limit: jax.Array, batch: bool
    ) -> tuple[State, dict[str, jax.Array], jax.Array]:
        """Step until every game has made one step on its finished state, or ``limit`` steps.

        ``forced``: int32 [*batch, T]. Batched, the games that are done keep stepping
        (no-ops) until all are. Returns the last states, the per-step records
        [*batch, T, ...] and the number of steps each game made until its first step on
        a finished state, included.
        """
        step = jax.vmap(decide) if batch else decide
        shapes = jax.eval_shape(step, state, key, forced[..., 0])[1]
        records = jax.tree.map(lambda x: jnp.zeros((forced.shape[-1], *x.shape), x.dtype), shapes)
        done = jnp.zeros(forced.shape[:-1], jnp.bool_)  # made its step on a finished state
        steps = jnp.zeros(forced.shape[:-1], jnp.int32)

        def cond(carry: tuple[Any, ...]) -> jax.Array:
            t, _, _, done, _ = carry
            return (t < limit) & ~done.all()

        def body(carry: tuple[Any, ...]) -> tuple[Any, ...]:
            t, before, records, done, steps = carry
            after, made = step(before, key, forced[..., t])
            records = jax.tree.map(lambda r, x: r.at[t].set(x), records, made)
            steps = jnp.where(done, steps, t + 1)
            return t + 1, after, records, done | ~made["live"], steps

        _, state, records, _, steps = lax.while_loop(
            cond, body, (jnp.int32(0), state, records, done, steps)
        )
        if batch:
            records = jax.tree.map(lambda x: jnp.moveaxis(x, 0, 1), records)
        return state, records, steps

    def single(*args: Any) -> Any:
        return run(*args, batch=False)

    def batched(*args: Any) -> Any:
        return run(*args, batch=True)

    # chex counts traces per function footprint (its name and source): a name per game.
    single.__name__ = f"single_{game.name}"
    batched.__name__ = f"batched_{game.name}"
    return Programs(
        single=jax.jit(chex.assert_max_traces(single, n=1)),
        batched=jax.jit(chex.assert_max_traces(batched, n=2)),
        horizon=game.max_steps + 1,
    )


def _forced(programs: Programs, actions: list[int] | np.ndarray = (), batch: int = 0) -> Any:
    forced = np.full(programs.horizon, NO_FORCE, dtype=np.int32)
    forced[: len(actions)] = actions
    return jnp.asarray(np.broadcast_to(forced, (batch, programs.horizon)) if batch else forced)


def _run_single(
    game: Game, state: State, key: jax.Array, actions: Any = (), limit: int | None = None
) -> tuple[State, dict[str, np.ndarray], int]:
    programs = _programs(game)
    limit = programs.horizon if limit is None else limit
    final, records, steps = programs.single(
        state, key, _forced(programs, actions), jnp.int32(limit)
    )
    return final, jax.tree.map(np.asarray, records), int(steps)


def _run_batched(
    game: Game, state: State, keys: jax.Array, limit: int | None = None
) -> tuple[State, dict[str, np.ndarray], np.ndarray]:
    programs = _programs(game)
    limit = programs.horizon if limit is None else limit
    batch = keys.shape[0]
    final, records, steps = programs.batched(
        state, keys, _forced(programs, batch=batch), jnp.int32(limit)
    )
    return final, jax.tree.map(np.asarray, records), np.asarray(steps)


def _index(tree: Any, b: int) -> Any:
    return jax.tree.map(lambda x: np.asarray(x)[b], tree)


@dataclasses.dataclass(frozen=True)
class Played:
    """``GAMES`` random games, played by the unbatched and by the batched program."""

    keys: jax.Array
    single: list[tuple[State, dict[str, np.ndarray], int]]  # per game: final, records, steps
    batched_state: State  # [GAMES, ...] final states
    batched: list[tuple[State, dict[str, np.ndarray], int]]  # per game, as numpy
    batched_steps: int  # steps the batched program made (the longest game's)


@functools.cache
def _played(game: Game) -> Played:
    keys = jax.random.split(jax.random.key(7), GAMES)
    single = [_run_single(game, game.init(k), k) for k in keys]
    final, records, steps = _run_batched(game, jax.vmap(game.init)(keys), keys)
    batched = [(_index(final, b), _index(records, b), int(steps[b])) for b in range(GAMES)]
    return Played(
        keys=keys,
        single=single,
        batched_state=final,
        batched=batched,
        batched_steps=int(steps.max()),
    )




# ---------------------------------------------------------------------------- the checks
def check_metadata(game: Game) -> None:
    """Registered (``make`` gives this very instance) and sane metadata."""
    _require(isinstance(game.name, str), f"game.name must be a str, got {game.name!r}")
    hint = f"register it (rlloop.games.register({game.name!r}, factory))"
    try:
        registered = make(game.name)
    except ValueError as error:
        raise ContractError(f"{game.name!r} is not registered: {hint}") from error
    _require(registered is game, f"games.make({game.name!r}) is another instance: pass "
             f"games.make({game.name!r}) itself, or {hint} under a new name")  # fmt: skip
    _require(game.num_players >= 2, f"{game.name}: num_players={game.num_players}, must be >= 2")
    _require(game.num_actions > 0, f"{game.name}: num_actions={game.num_actions}, must be > 0")
    _require(game.max_steps > 0, f"{game.name}: max_steps={game.max_steps}, must be > 0")
    _require(
        all(isinstance(d, int) and d > 0 for d in game.observation_shape),
        f"{game.name}: observation_shape={game.observation_shape} must be positive ints",
    )


def _avals(tree: Any) -> list[tuple[Any, ...]]:
    avals = [
        x if isinstance(x, jax.ShapeDtypeStruct) else jax.typeof(x) for x in jax.tree.leaves(tree)
    ]
    return [(x.shape, x.dtype, x.weak_type) for x in avals]


def check_init(game: Game) -> None:
    """Field shapes and dtypes of a new game; step keeps its input types."""
    state = game.init(jax.random.key(0))
    name = game.name
    _require(state.current_player.shape == () and state.current_player.dtype == jnp.int32,
             f"{name}: current_player must be int32 [], got {jax.typeof(state.current_player)}")
    _require(state.legal_action_mask.shape == (game.num_actions,)
             and state.legal_action_mask.dtype == jnp.bool_,
             f"{name}: legal_action_mask must be bool [{game.num_actions}], "
             f"got {jax.typeof(state.legal_action_mask)}")  # fmt: skip
    _require(state.legal_action_mask.any(), f"{name}: a new game has no legal action")
    _require(state.rewards.shape == (game.num_players,) and state.rewards.dtype == jnp.float32,
             f"{name}: rewards must be float32 [{game.num_players}], got {jax.typeof(state.rewards)}")
    _require(not state.terminated and not state.truncated and state.step_count == 0,
             f"{name}: a new game must be live at step 0")
    observation = game.observe(state, state.current_player)
    _require(observation.shape == game.observation_shape and observation.dtype == jnp.float32,
             f"{name}: observe must give float32 {game.observation_shape}, got {jax.typeof(observation)}")
    features = game.features(state, jnp.int32(0))
    _require(features.shape == (game.num_features,),
             f"{name}: features has shape {features.shape}, num_features={game.num_features}")
    # Tree models train on replay observations: features must come from the observation alone.
    from_observation = game.observation_features(game.observe(state, jnp.int32(0)))
    _require(bool(jnp.array_equal(features, from_observation)),
             f"{name}: features(state, player) must equal observation_features(observe(state, player))")
    _require(isinstance(game.render(state), str), f"{name}: render must return a str")
    # Feeding step's output back in must not change the program's input types.
    after = jax.eval_shape(game.step, state, jnp.int32(0))
    _require(_avals(after) == _avals(state) and jax.tree.structure(after) == jax.tree.structure(state),
             f"{name}: step changes the state's types (shape, dtype or weak type): "
             f"{_avals(state)} -> {_avals(after)}")  # fmt: skip


def _check_whole_game(game: Game, final: State, records: dict[str, np.ndarray], steps: int) -> None:
    """A random game from the initial position, played to its end plus one no-op step."""
    name = game.name
    decisions = steps - 1
    _require(1 <= decisions <= game.max_steps,
             f"{name}: a random game must end within max_steps={game.max_steps} (took {decisions})")
    live = records["live"][:steps]
    _require(live[:decisions].all() and not live[decisions], f"{name}: one step after the end, then stop")
    r = {key: values[:decisions] for key, values in records.items()}
    _require(r["legal"].all(), f"{name}: the random policy played an action the mask forbids")
    finished = r["terminated"] | r["truncated"]
    _require(not (r["terminated"] & r["truncated"]).any(), f"{name}: terminated and truncated at once")
    _require(not finished[:-1].any() and finished[-1], f"{name}: the game must end on its last decision")
    _require(r["mask_any"][:-1].all(), f"{name}: a live state has no legal action")
    _require(not r["mask_any"][-1], f"{name}: the mask must be all False once the game is over")
    _require(not r["rewards"][:-1].any(), f"{name}: rewards before the final step")
    _require(abs(float(r["rewards"][-1].sum())) <= 1e-6,
             f"{name}: final rewards {r['rewards'][-1].tolist()} must sum to 0")
    if r["truncated"][-1]:
        _require(not r["rewards"][-1].any(), f"{name}: truncation must give zero rewards")
    _require(np.array_equal(r["step_count"], np.arange(1, decisions + 1)),
             f"{name}: step_count must count the decisions taken")
    _require(((r["current_player"] >= 0) & (r["current_player"] < game.num_players)).all(),
             f"{name}: current_player out of range")
    _require(r["observation_finite"].all(), f"{name}: an observation is not finite")
    _require(records["unchanged"][decisions], f"{name}: stepping a finished game must be a no-op")
    _require(int(final.step_count) == decisions, f"{name}: final step_count != decisions")
    _require(bool(final.terminated | final.truncated), f"{name}: the final state is not over")
    _require(not np.asarray(final.legal_action_mask).any(), f"{name}: the final mask is not empty")
    _require(not np.asarray(final.rewards).any(), f"{name}: the no-op step must zero the rewards")


def check_random_games(game: Game) -> None:
    """``GAMES`` random games, unbatched and batched, end with consistent rewards."""
    played = _played(game)
    for final, records, steps in played.single + played.batched:
        _check_whole_game(game, final, records, steps)
    # The batched program kept stepping the games that were over until the last one was.
    for _, records, steps in played.batched:
        after_end = slice(steps - 1, played.batched_steps)
        _require(not records["live"][after_end].any() and records["unchanged"][after_end].all(),
                 f"{game.name}: a finished game changed while the batch played on")


def check_vmapped_matches_single(game: Game) -> None:
    """The batched program plays the same games as the unbatched one, step for step."""
    played = _played(game)
    state = played.batched_state
    batched_observation = jax.vmap(game.observe)(state, state.current_player)
    for b, (
        (single, single_records, steps),
        (batched, batched_records, batched_steps),
    ) in enumerate(zip(played.single, played.batched, strict=True)):
        _require(batched_steps == steps, f"{game.name}: game {b} took {batched_steps} steps "
                 f"batched and {steps} unbatched")  # fmt: skip
        for name, values in single_records.items():
            np.testing.assert_array_equal(batched_records[name][:steps], values[:steps],
                                          f"{game.name}: vmap differs from single in {name}")  # fmt: skip
        for name in ("current_player", "terminated", "truncated", "step_count"):
            _require(int(getattr(batched, name)) == int(getattr(single, name)),
                     f"{game.name}: vmap differs from single in the final {name}")
        np.testing.assert_array_equal(batched.legal_action_mask, single.legal_action_mask)
        np.testing.assert_array_equal(batched.rewards, single.rewards)
        np.testing.assert_array_equal(
            batched_observation[b], game.observe(single, single.current_player)
        )
        jax.tree.map(np.testing.assert_array_equal, batched.board, single.board)


def check_finished_game_noop(game: Game) -> None:
    """Stepping a finished game (action 0, -1 or num_actions) changes nothing but the rewards."""
    played = _played(game)
    for (final, records, steps), key in zip(played.single, played.keys, strict=True):
        _require(records["unchanged"][steps - 1] and not records["live"][steps - 1],
                 f"{game.name}: stepping a finished game must be a no-op")
        for action in (0, -1, game.num_actions):
            after, after_records, after_steps = _run_single(game, final, key, [action])
            _require(after_steps == 1 and after_records["unchanged"][0]
                     and not np.asarray(after.rewards).any()
                     and int(after.step_count) == int(final.step_count),
                     f"{game.name}: action {action} on a finished game changed it")  # fmt: skip
            jax.tree.map(np.testing.assert_array_equal, after.board, final.board)


def check_illegal_action_forfeits(game: Game) -> None:
    """-1, num_actions and a masked-out action end the game: mover -1, others +1/(N-1)."""
    key = jax.random.key(0)
    state = game.init(key)
    mover = int(state.current_player)
    masked_out = np.flatnonzero(~np.asarray(state.legal_action_mask))
    for bad_action in (-1, game.num_actions, *masked_out[:1]):
        after, records, steps = _run_single(game, state, key, [bad_action])
        where = f"{game.name}: illegal action {int(bad_action)}"
        _require(steps == 2, f"{where} must end the game")
        _require(not records["legal"][0] and records["terminated"][0] and bool(after.terminated),
                 f"{where} must terminate the game")
        _require(int(after.step_count) == 1, f"{where}: step_count must be 1")
        _require(not np.asarray(after.legal_action_mask).any(), f"{where}: the mask must be empty")
        rewards = records["rewards"][0]
        _require(rewards[mover] == -1.0, f"{where}: the mover must get -1, got {rewards.tolist()}")
        np.testing.assert_allclose(np.delete(rewards, mover), 1.0 / (game.num_players - 1),
                                   err_msg=f"{where}: the others must get +1/(N-1)")  # fmt: skip
        jax.tree.map(np.testing.assert_array_equal, after.board, state.board)
        _require(records["unchanged"][1], f"{where}: stepping the forfeited game must be a no-op")


def check_compiles_once_per_batch_shape(game: Game) -> None:
    """Two batch shapes (GAMES, also used by the random games, and TRACE_BATCH), three
    calls each with the states fed back: two traces of the batched program in all."""
    for batch in (TRACE_BATCH, GAMES):
        keys = jax.random.split(jax.random.key(batch), batch)
        state = jax.vmap(game.init)(keys)
        for _ in range(3):
            state, _, steps = _run_batched(game, state, keys, limit=3)
            _require(((steps >= 1) & (steps <= 3)).all(), f"{game.name}: steps {steps} outside 1..3")
    # A third batch shape would be a third trace: prove the counter is live.
    state = jax.vmap(game.init)(jax.random.split(jax.random.key(0), 3))
    try:
        _run_batched(game, state, jax.random.split(jax.random.key(0), 3), limit=1)
    except AssertionError as error:
        _require("traced > 2 times" in str(error), f"{game.name}: unexpected error {error}")
    else:
        raise ContractError(f"{game.name}: a third batch shape did not count as a third trace")


def check_symmetries(game: Game) -> None:
    """Playing the transformed moves gives the transformed observation, at every step."""
    symmetries = game.symmetries()
    _require(symmetries[0].name == "identity", f"{game.name}: the first symmetry must be the identity")
    size = int(np.prod(game.observation_shape))
    np.testing.assert_array_equal(symmetries[0].observation_permutation, np.arange(size))
    np.testing.assert_array_equal(symmetries[0].action_permutation, np.arange(game.num_actions))
    played = _played(game)
    key = played.keys[0]
    _, original, steps = played.single[0]
    for k, symmetry in enumerate(symmetries):
        where = f"{game.name}: symmetry {symmetry.name}"
        _require(sorted(symmetry.observation_permutation.tolist()) == list(range(size)),
                 f"{where}: observation_permutation is not a permutation")
        _require(sorted(symmetry.action_permutation.tolist()) == list(range(game.num_actions)),
                 f"{where}: action_permutation is not a permutation")
        inverse = np.argsort(symmetry.action_permutation)
        if k == 0:
            # Replaying the same moves: the batched program already did (same key, and
            # check_vmapped_matches_single checks that it chose the same actions).
            _, mirrored, mirrored_steps = played.batched[0]
        else:
            _, mirrored, mirrored_steps = _run_single(
                game, game.init(key), key, inverse[original["action"][:steps]]
            )
        _require(mirrored_steps == steps, f"{where}: the mirrored game took {mirrored_steps} "
                 f"steps, the original {steps}")  # fmt: skip
        np.testing.assert_array_equal(mirrored["action"][:steps], inverse[original["action"][:steps]])
        np.testing.assert_array_equal(
            mirrored["observation_hash"][:steps, 0], original["observation_hash"][:steps, k],
            f"{where}: the mirrored game's observations are not the transformed ones",
        )
        np.testing.assert_array_equal(
            mirrored["mask_hash"][:steps, 0], original["mask_hash"][:steps, k],
            f"{where}: the mirrored game's masks are not the transformed ones",
        )
        np.testing.assert_array_equal(mirrored["rewards"][:steps], original["rewards"][:steps],
                                      f"{where}: the mirrored game's rewards differ")  # fmt: skip


# Every property, in the order check_contract runs them.
CHECKS: tuple[tuple[str, Callable[[Game], None]], ...] = (
    ("metadata", check_metadata),
    ("init", check_init),
    ("random games", check_random_games),
    ("vmap matches single", check_vmapped_matches_single),
    ("finished games are no-ops", check_finished_game_noop),
    ("illegal actions forfeit", check_illegal_action_forfeits),
    ("one compilation per batch shape", check_compiles_once_per_batch_shape),
    ("symmetries", check_symmetries),
)


def check_contract(game: Game, *, verbose: bool = False) -> list[str]:
    """Check every property of the contract (module doc) on ``game``, a registered game.

    Returns the names of the properties checked (all passed). ``verbose`` prints one line per
    property. Raises :class:`ContractError` (or numpy's AssertionError for array mismatches)
    naming the first property that fails.
    """
    passed = []
    for name, check in CHECKS:
        try:
            check(game)
        except AssertionError as error:
            raise ContractError(f"{game.name} breaks the contract ({name}): {error}") from error
        passed.append(name)
        if verbose:
            print(f"  ok  {name}")
    return passed
