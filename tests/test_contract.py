"""One contract every registered game passes, unbatched and under jit(vmap).

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

- registry: an unknown name raises and lists the valid names; ``make`` returns one shared
  instance per name; metadata are sane (players >= 2, actions and max_steps > 0, positive
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
from typing import Any

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from rlloop import games
from rlloop.games.base import State

# Timings (`pytest -m '' tests/test_contract.py -k ringrift --durations=0`, 2 cores, cold
# compilation). Each RingRift configuration compiles three programs (the unbatched game loop
# and the batched one at two batch shapes, ~10-20 s each) and plays GAMES whole random games
# twice (unbatched and batched). Shared with a training run (load ~3.7, niced): square8/hex8
# 41-50 s per configuration, square19 68-88 s, hexagonal 86-120 s; all twelve pass in 14 min
# (before: ~50-720 s on the small boards, ~37 min for hexagonal 2p alone). At load ~1:
# square8 2p 39 s, hexagonal 4p 79 s. Tic-tac-toe and Connect Four take seconds. The small
# boards run by default (~4-5 min together). square19 and hexagonal stay `slow`: their random
# games are long (600-1,450 decisions, ~300 steps/s on this CPU, and vmap does not make a step
# cheaper per game here), so the eight plays alone take 20-60 s a configuration.
# To keep the default run under 15 minutes, it checks RingRift on square8 2p only; the other
# eleven configurations are `slow`, and CI runs all twelve after the default run
# (`make test-contract`, about 10-14 minutes).
DEFAULT_RINGRIFT = ("ringrift_square8_2p",)
NAMES = [
    pytest.param(name, marks=pytest.mark.slow)
    if name.startswith("ringrift_") and name not in DEFAULT_RINGRIFT
    else name
    for name in games.names()
]

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
def _programs(game: games.Game) -> Programs:
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
    game: games.Game, state: State, key: jax.Array, actions: Any = (), limit: int | None = None
) -> tuple[State, dict[str, np.ndarray], int]:
    programs = _programs(game)
    limit = programs.horizon if limit is None else limit
    final, records, steps = programs.single(
        state, key, _forced(programs, actions), jnp.int32(limit)
    )
    return final, jax.tree.map(np.asarray, records), int(steps)


def _run_batched(
    game: games.Game, state: State, keys: jax.Array, limit: int | None = None
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
def _played(game: games.Game) -> Played:
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


@pytest.fixture(scope="module", params=NAMES)
def game(request: pytest.FixtureRequest) -> games.Game:
    return games.make(request.param)


def test_registry_lists_names_on_unknown() -> None:
    with pytest.raises(ValueError, match=r"unknown game 'chess'.*connect4"):
        games.make("chess")


def test_metadata(game: games.Game) -> None:
    assert isinstance(game.name, str) and games.make(game.name) is game
    assert game.num_players >= 2
    assert game.num_actions > 0 and game.max_steps > 0
    assert all(isinstance(d, int) and d > 0 for d in game.observation_shape)


def _avals(tree: Any) -> list[tuple[Any, ...]]:
    avals = [
        x if isinstance(x, jax.ShapeDtypeStruct) else jax.typeof(x) for x in jax.tree.leaves(tree)
    ]
    return [(x.shape, x.dtype, x.weak_type) for x in avals]


def test_init_fields(game: games.Game) -> None:
    state = game.init(jax.random.key(0))
    assert state.current_player.shape == () and state.current_player.dtype == jnp.int32
    assert state.legal_action_mask.shape == (game.num_actions,)
    assert state.legal_action_mask.dtype == jnp.bool_
    assert state.legal_action_mask.any()
    assert state.rewards.shape == (game.num_players,) and state.rewards.dtype == jnp.float32
    assert not state.terminated and not state.truncated and state.step_count == 0
    observation = game.observe(state, state.current_player)
    assert observation.shape == game.observation_shape and observation.dtype == jnp.float32
    assert game.features(state, jnp.int32(0)).shape == (game.num_features,)
    # Tree models train on replay observations: features must come from the observation alone.
    np.testing.assert_array_equal(
        game.features(state, jnp.int32(0)), game.observation_features(game.observe(state, jnp.int32(0)))
    )
    assert isinstance(game.render(state), str)
    # Feeding step's output back in must not change the program's input types.
    after = jax.eval_shape(game.step, state, jnp.int32(0))
    assert _avals(after) == _avals(state)
    assert jax.tree.structure(after) == jax.tree.structure(state)


def _check_whole_game(
    game: games.Game, final: State, records: dict[str, np.ndarray], steps: int
) -> None:
    """A random game from the initial position, played to its end plus one no-op step."""
    decisions = steps - 1
    assert 1 <= decisions <= game.max_steps, "the game must end within max_steps"
    live = records["live"][:steps]
    assert live[:decisions].all() and not live[decisions], "one step after the end, then stop"
    r = {name: values[:decisions] for name, values in records.items()}
    assert r["legal"].all(), "the random policy only plays actions the mask allows"
    finished = r["terminated"] | r["truncated"]
    assert not (r["terminated"] & r["truncated"]).any()
    assert not finished[:-1].any() and finished[-1], "the game ends on its last decision"
    assert r["mask_any"][:-1].all(), "a live state has a legal action"
    assert not r["mask_any"][-1], "mask must be all False once the game is over"
    assert not r["rewards"][:-1].any(), "rewards only on the final step"
    np.testing.assert_allclose(r["rewards"][-1].sum(), 0.0, atol=1e-6)
    if r["truncated"][-1]:
        assert not r["rewards"][-1].any(), "truncation gives zero rewards"
    np.testing.assert_array_equal(r["step_count"], np.arange(1, decisions + 1))
    assert ((r["current_player"] >= 0) & (r["current_player"] < game.num_players)).all()
    assert r["observation_finite"].all()
    assert records["unchanged"][decisions], "stepping a finished game is a no-op"
    assert int(final.step_count) == decisions
    assert bool(final.terminated | final.truncated)
    assert not np.asarray(final.legal_action_mask).any()
    assert not np.asarray(final.rewards).any(), "the no-op step zeroes the rewards"


def test_random_games_end_with_consistent_rewards(game: games.Game) -> None:
    played = _played(game)
    for final, records, steps in played.single + played.batched:
        _check_whole_game(game, final, records, steps)
    # The batched program kept stepping the games that were over until the last one was.
    for _, records, steps in played.batched:
        after_end = slice(steps - 1, played.batched_steps)
        assert not records["live"][after_end].any() and records["unchanged"][after_end].all()


def test_vmapped_matches_single(game: games.Game) -> None:
    played = _played(game)
    state = played.batched_state
    batched_observation = jax.vmap(game.observe)(state, state.current_player)
    for b, (
        (single, single_records, steps),
        (batched, batched_records, batched_steps),
    ) in enumerate(zip(played.single, played.batched, strict=True)):
        assert batched_steps == steps
        for name, values in single_records.items():
            np.testing.assert_array_equal(batched_records[name][:steps], values[:steps], name)
        for name in ("current_player", "terminated", "truncated", "step_count"):
            assert int(getattr(batched, name)) == int(getattr(single, name)), name
        np.testing.assert_array_equal(batched.legal_action_mask, single.legal_action_mask)
        np.testing.assert_array_equal(batched.rewards, single.rewards)
        np.testing.assert_array_equal(
            batched_observation[b], game.observe(single, single.current_player)
        )
        jax.tree.map(np.testing.assert_array_equal, batched.board, single.board)


def test_step_on_finished_game_is_noop(game: games.Game) -> None:
    played = _played(game)
    for (final, records, steps), key in zip(played.single, played.keys, strict=True):
        assert records["unchanged"][steps - 1] and not records["live"][steps - 1]
        for action in (0, -1, game.num_actions):
            after, after_records, after_steps = _run_single(game, final, key, [action])
            assert after_steps == 1 and after_records["unchanged"][0]
            assert not np.asarray(after.rewards).any()
            assert int(after.step_count) == int(final.step_count)
            jax.tree.map(np.testing.assert_array_equal, after.board, final.board)


def test_illegal_action_forfeits(game: games.Game) -> None:
    key = jax.random.key(0)
    state = game.init(key)
    mover = int(state.current_player)
    masked_out = np.flatnonzero(~np.asarray(state.legal_action_mask))
    for bad_action in (-1, game.num_actions, *masked_out[:1]):
        after, records, steps = _run_single(game, state, key, [bad_action])
        assert steps == 2, "the forfeit ends the game"
        assert not records["legal"][0] and records["terminated"][0]
        assert bool(after.terminated) and int(after.step_count) == 1
        assert not np.asarray(after.legal_action_mask).any()
        rewards = records["rewards"][0]
        assert rewards[mover] == -1.0
        np.testing.assert_allclose(np.delete(rewards, mover), 1.0 / (game.num_players - 1))
        jax.tree.map(np.testing.assert_array_equal, after.board, state.board)
        assert records["unchanged"][1]


def test_step_compiles_once_per_batch_shape(game: games.Game) -> None:
    """Two batch shapes (GAMES, also used by the random games, and TRACE_BATCH), three
    calls each with the states fed back: two traces of the batched program in all."""
    for batch in (TRACE_BATCH, GAMES):
        keys = jax.random.split(jax.random.key(batch), batch)
        state = jax.vmap(game.init)(keys)
        for _ in range(3):
            state, _, steps = _run_batched(game, state, keys, limit=3)
            assert ((steps >= 1) & (steps <= 3)).all()
    # A third batch shape would be a third trace: prove the counter is live.
    state = jax.vmap(game.init)(jax.random.split(jax.random.key(0), 3))
    with pytest.raises(AssertionError, match="traced > 2 times"):
        _run_batched(game, state, jax.random.split(jax.random.key(0), 3), limit=1)


def test_symmetries_map_games_to_games(game: games.Game) -> None:
    """Playing the transformed moves gives the transformed observation, at every step."""
    symmetries = game.symmetries()
    assert symmetries[0].name == "identity"
    size = int(np.prod(game.observation_shape))
    np.testing.assert_array_equal(symmetries[0].observation_permutation, np.arange(size))
    np.testing.assert_array_equal(symmetries[0].action_permutation, np.arange(game.num_actions))
    played = _played(game)
    key = played.keys[0]
    _, original, steps = played.single[0]
    for k, symmetry in enumerate(symmetries):
        assert sorted(symmetry.observation_permutation.tolist()) == list(range(size))
        assert sorted(symmetry.action_permutation.tolist()) == list(range(game.num_actions))
        inverse = np.argsort(symmetry.action_permutation)
        if k == 0:
            # Replaying the same moves: the batched program already did (same key, and
            # test_vmapped_matches_single checks that it chose the same actions).
            _, mirrored, mirrored_steps = played.batched[0]
        else:
            _, mirrored, mirrored_steps = _run_single(
                game, game.init(key), key, inverse[original["action"][:steps]]
            )
        assert mirrored_steps == steps
        np.testing.assert_array_equal(
            mirrored["action"][:steps], inverse[original["action"][:steps]]
        )
        np.testing.assert_array_equal(
            mirrored["observation_hash"][:steps, 0], original["observation_hash"][:steps, k]
        )
        np.testing.assert_array_equal(
            mirrored["mask_hash"][:steps, 0], original["mask_hash"][:steps, k]
        )
        np.testing.assert_array_equal(mirrored["rewards"][:steps], original["rewards"][:steps])
