"""RingRift under the rlloop Game protocol: jit(vmap) equals single steps, rewards, masks."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from ringrift_trace_replay import game_for

from rlloop.games.ringrift import convert as cv


def _random_action(key, state):
    logits = jnp.where(state.legal_action_mask, 0.0, -jnp.inf)
    logits = jnp.where(state.legal_action_mask.any(), logits, 0.0)
    return jax.random.categorical(key, logits).astype(jnp.int32)


@pytest.mark.parametrize("config", ["square8_2p",
                                    pytest.param("hex8_3p", marks=pytest.mark.slow)])
def test_vmapped_steps_match_single_steps(config: str) -> None:
    game = game_for(config)
    init, step = game.init, game.step  # jitted once per game
    batch, horizon = 3, 60
    keys = jax.random.split(jax.random.PRNGKey(5), batch)
    singles = [init(k) for k in keys]
    actions = np.zeros((horizon, batch), np.int32)
    for t in range(horizon):
        for b in range(batch):
            a = _random_action(jax.random.fold_in(keys[b], t), singles[b])
            actions[t, b] = int(a)
            singles[b] = step(singles[b], a)
    bstep = jax.jit(jax.vmap(game.step))
    state = jax.vmap(game.init)(keys)
    for t in range(horizon):
        state = bstep(state, jnp.asarray(actions[t]))
    for b in range(batch):
        jax.tree.map(lambda x, y, b=b: np.testing.assert_array_equal(np.asarray(x)[b], y),
                     state, singles[b])
    obs = jax.vmap(game.observe)(state, state.current_player)
    assert obs.shape == (batch, *game.observation_shape) and bool(jnp.isfinite(obs).all())


def test_random_game_ends_with_rank_rewards() -> None:
    game = game_for("square8_2p")
    state = game.init(jax.random.PRNGKey(0))
    total = np.zeros(2)
    for t in range(game.max_steps):
        state = game.step(state, _random_action(jax.random.PRNGKey(t), state))
        total += np.asarray(state.rewards)
        if bool(state.terminated | state.truncated):
            break
    assert bool(state.terminated)
    assert not np.asarray(state.legal_action_mask).any()
    winner = int(state.board.winner)
    assert total[winner - 1] == 1.0 and total[2 - winner] == -1.0


def test_ranking_rewards_share_ties() -> None:
    rules = game_for("square8_4p").rules
    board = rules.initial_board().replace(
        winner=jnp.int32(3), terr=jnp.array([5, 5, 1, 0], jnp.int32),
        elim=jnp.array([2, 2, 0, 9], jnp.int32))
    rewards = np.asarray(rules.ranking_rewards(board))
    # P3 wins; P1 and P2 tie for second/third ((1/3 + -1/3) / 2 = 0); P4 last
    np.testing.assert_allclose(rewards, [0.0, 0.0, 1.0, -1.0], atol=1e-6)


def test_initial_state_matches_rules_parity_fixture() -> None:
    from ringrift_contract_vectors import SHARED

    path = SHARED / "data" / "ringrift" / "rules-parity" / "v1" / \
        "state_only.square8_2p.initial.json"
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    import json

    state = json.loads(path.read_text())["state"]
    game = game_for("square8_2p")
    board, player = cv.board_from_json(game.rules, state)
    fresh = game.init(jax.random.PRNGKey(0)).board
    assert player == 1
    for name in ("rings", "height", "marker", "collapsed", "hand", "elim", "terr", "tre"):
        np.testing.assert_array_equal(getattr(board, name), getattr(fresh, name), name)
