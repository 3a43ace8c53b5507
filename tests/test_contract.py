"""One contract every registered game passes, unbatched and under jit(vmap)."""

from __future__ import annotations

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rlloop import games
from rlloop.games.base import State

# Every RingRift configuration compiles large programs (about 3 minutes of this contract per
# configuration on 2 cores): `-m slow` checks all twelve; the default run covers RingRift's
# protocol in tests/ringrift.
NAMES = [
    pytest.param(name, marks=pytest.mark.slow)
    if name.startswith("ringrift_")
    else name
    for name in games.names()
]


def _random_legal_action(key: jax.Array, state: State) -> jax.Array:
    logits = jnp.where(state.legal_action_mask, 0.0, -jnp.inf)
    # A finished game has no legal action; any action is a no-op there.
    logits = jnp.where(state.legal_action_mask.any(), logits, 0.0)
    return jax.random.categorical(key, logits).astype(jnp.int32)


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
    assert isinstance(game.render(state), str)


@functools.cache
def _random_step(game: games.Game):  # type: ignore[no-untyped-def]
    """One jitted program per game: a random legal action and the step it makes."""

    def play(state: State, key: jax.Array) -> tuple[State, jax.Array]:
        action = _random_legal_action(key, state)
        return game.step(state, action), action

    return jax.jit(play)


def _play_single(game: games.Game, key: jax.Array) -> tuple[list[State], list[int]]:
    play = _random_step(game)
    state = game.init(key)
    states, actions = [state], []
    for t in range(game.max_steps + 1):
        if state.terminated or state.truncated:
            break
        state, action = play(state, jax.random.fold_in(key, t))
        states.append(state)
        actions.append(int(action))
    return states, actions


def test_random_games_end_with_consistent_rewards(game: games.Game) -> None:
    for seed in range(5):
        states, _ = _play_single(game, jax.random.key(seed))
        final = states[-1]
        assert bool(final.terminated | final.truncated)
        assert not final.legal_action_mask.any(), "mask must be all False once the game is over"
        for before in states[:-1]:
            assert not np.asarray(before.rewards).any(), "rewards only on the final step"
        np.testing.assert_allclose(np.asarray(final.rewards).sum(), 0.0, atol=1e-6)
        assert int(final.step_count) == len(states) - 1


def test_vmapped_matches_single(game: games.Game) -> None:
    batch = 4
    keys = jax.random.split(jax.random.key(7), batch)
    trajectories = [_play_single(game, k) for k in keys]
    longest = max(len(actions) for _, actions in trajectories)
    # Pad finished games with action 0 (a no-op on a finished game).
    actions = np.zeros((longest, batch), dtype=np.int32)
    for b, (_, acts) in enumerate(trajectories):
        actions[: len(acts), b] = acts

    batched_step = jax.jit(jax.vmap(game.step))
    state = jax.jit(jax.vmap(game.init))(keys)
    for t in range(longest):
        state = batched_step(state, jnp.asarray(actions[t]))
    for b, (states, _) in enumerate(trajectories):
        single = states[-1]
        for name in ("current_player", "terminated", "truncated", "step_count"):
            assert int(getattr(state, name)[b]) == int(getattr(single, name)), name
        batched_observation = jax.vmap(game.observe)(state, state.current_player)[b]
        np.testing.assert_array_equal(
            batched_observation, game.observe(single, single.current_player)
        )
        jax.tree.map(
            lambda x, y, b=b: np.testing.assert_array_equal(np.asarray(x)[b], np.asarray(y)),
            state.board,
            single.board,
        )


def test_step_on_finished_game_is_noop(game: games.Game) -> None:
    states, _ = _play_single(game, jax.random.key(3))
    final = states[-1]
    after = game.step(final, jnp.int32(0))
    assert not np.asarray(after.rewards).any()
    assert int(after.step_count) == int(final.step_count)
    jax.tree.map(np.testing.assert_array_equal, after.board, final.board)


def test_illegal_action_forfeits(game: games.Game) -> None:
    state = game.init(jax.random.key(0))
    mover = int(state.current_player)
    for bad_action in (-1, game.num_actions):
        after = game.step(state, jnp.int32(bad_action))
        assert bool(after.terminated)
        rewards = np.asarray(after.rewards)
        assert rewards[mover] == -1.0
        np.testing.assert_allclose(np.delete(rewards, mover), 1.0 / (game.num_players - 1))
        jax.tree.map(np.testing.assert_array_equal, after.board, state.board)
    masked_out = np.flatnonzero(~np.asarray(state.legal_action_mask))
    if masked_out.size:
        after = game.step(state, jnp.int32(masked_out[0]))
        assert bool(after.terminated) and np.asarray(after.rewards)[mover] == -1.0


def test_step_compiles_once_per_batch_shape(game: games.Game) -> None:
    @jax.jit
    @chex.assert_max_traces(n=2)
    def batched_step(state: State, action: jax.Array) -> State:
        return jax.vmap(game.step)(state, action)

    for batch in (8, 16):
        keys = jax.random.split(jax.random.key(batch), batch)
        state = jax.vmap(game.init)(keys)
        for t in range(3):
            action_keys = jax.random.split(jax.random.key(t), batch)
            action = jax.vmap(_random_legal_action)(action_keys, state)
            state = batched_step(state, action)
    # A third batch shape would be a third trace: prove the counter is live.
    state = jax.vmap(game.init)(jax.random.split(jax.random.key(0), 4))
    with pytest.raises(AssertionError):
        batched_step(state, jnp.zeros(4, jnp.int32))
    chex.clear_trace_counter()


def test_symmetries_map_games_to_games(game: games.Game) -> None:
    """Playing the transformed moves gives the transformed observation, at every step."""
    symmetries = game.symmetries()
    assert symmetries[0].name == "identity"
    size = int(np.prod(game.observation_shape))
    np.testing.assert_array_equal(symmetries[0].observation_permutation, np.arange(size))
    states, actions = _play_single(game, jax.random.key(11))
    step = jax.jit(game.step)
    for symmetry in symmetries:
        assert sorted(symmetry.observation_permutation.tolist()) == list(range(size))
        assert sorted(symmetry.action_permutation.tolist()) == list(range(game.num_actions))
        inverse = np.argsort(symmetry.action_permutation)
        mirrored = game.init(jax.random.key(11))
        for original, action in zip(states[1:], actions, strict=True):
            mirrored = step(mirrored, jnp.int32(inverse[action]))
            expected_observation, expected_mask = symmetry.apply(
                game.observe(original, original.current_player)[None],
                original.legal_action_mask[None],
            )
            np.testing.assert_array_equal(
                game.observe(mirrored, mirrored.current_player), expected_observation[0]
            )
            np.testing.assert_array_equal(mirrored.legal_action_mask, expected_mask[0])
            np.testing.assert_array_equal(mirrored.rewards, original.rewards)
