"""The reference heuristic (rlloop.games.ringrift.heuristic) and its players against the
fixtures of ``../shared/data/ringrift/heuristic/v2`` (README there; docs/ringrift.md).

Values are float32 here and float64 in the reference: a value matches when it is within a few
float32 roundings of the terms summed (``ULPS`` x eps32 x the sum of the factors' sizes).
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rlloop.games.ringrift import convert as cv
from rlloop.games.ringrift import heuristic as hz
from rlloop.games.ringrift import heuristic_players as hp
from rlloop.games.ringrift.engine import Rules

FIXTURES = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "ringrift" / "heuristic" / "v2"
EVALUATION_CONFIGS = ("square8_2p", "square8_3p", "square8_4p", "hex8_2p", "hex8_3p", "hex8_4p",
                      "square19_2p", "hexagonal_2p")  # fmt: skip
ONE_PLY_CONFIGS = ("square8_2p", "square8_3p", "hex8_2p")
EPS32 = float(np.finfo(np.float32).eps)
ULPS = 4


def _fixture(name: str) -> dict:
    path = FIXTURES / name
    if not path.is_file():
        pytest.skip(f"heuristic fixture {path} is absent")
    return json.loads(path.read_text())


@functools.cache
def _rules(config: str) -> Rules:
    board, players = config.rsplit("_", 1)
    return Rules(board, int(players[0]))


def _marker_order(rules: Rules, state: dict) -> np.ndarray:
    """The reference's marker insertion order: the JSON key order."""
    order = np.zeros(rules.N1, np.int32)
    for rank, key in enumerate(state["board"]["markers"]):
        order[cv._cell(rules, key)] = rank
    return order


def _stack(boards: list) -> object:
    return jax.tree.map(lambda *x: np.stack(x), *[jax.tree.map(np.asarray, b) for b in boards])


@functools.cache
def _factors_fn(config: str):
    """jit: (boards [B], weights, marker orders [B, N1] or None) -> factors [B, P, 20]."""
    rules = _rules(config)
    return jax.jit(jax.vmap(lambda b, w, o: hz.factors(rules, b, w, o), in_axes=(0, None, 0)))


def test_profiles_are_the_references_weights() -> None:
    data = _fixture("evaluations.square8_2p.json")
    assert tuple(data["profiles"]) == tuple(hz.PROFILE_IDS.values())
    for profile_id, weights in data["weights"].items():
        ours = hz.profile_weights(profile_id)._asdict()
        assert ours == weights, profile_id  # exactly: the same doubles
    with pytest.raises(ValueError, match="valid: balanced"):
        hz.profile_weights("greedy")


def test_the_cli_offers_every_profile() -> None:
    from rlloop.evaluate import build_parser

    gauntlet = build_parser()._subparsers._group_actions[0].choices["gauntlet"]
    (option,) = [a for a in gauntlet._actions if a.dest == "heuristic_profile"]
    assert tuple(option.choices) == hz.PROFILES


@pytest.mark.parametrize("config", EVALUATION_CONFIGS)
def test_evaluations_match_the_reference(config: str) -> None:
    """Every state, player and profile; the balanced breakdown factor by factor; and the size of
    the deviation when the marker order is not known (cell order instead)."""
    data = _fixture(f"evaluations.{config}.json")
    rules = _rules(config)
    states = data["states"]
    boards = _stack([cv.board_from_json(rules, e["state"])[0] for e in states])
    orders = np.stack([_marker_order(rules, e["state"]) for e in states])
    run = _factors_fn(config)
    worst = 0.0
    for profile_id in data["profiles"]:
        factors = np.asarray(run(boards, hz.profile_weights(profile_id), orders), np.float64)
        ours = factors.sum(-1)
        reference = np.array([e["evaluations"][profile_id] for e in states])
        scale = np.abs(factors).sum(-1)
        error = np.abs(ours - reference)
        assert np.all(error <= ULPS * EPS32 * scale), (profile_id, error.max())
        worst = max(worst, float(error.max()))
        if profile_id == hz.PROFILE_IDS["balanced"]:
            breakdown = np.array([[[row[k] for k in hz.FACTOR_NAMES] for row in e["breakdownBalanced"]]
                                  for e in states])  # fmt: skip
            factor_error = np.abs(factors - breakdown)
            # Factors are differences of larger terms (e.g. two victory proximities): within
            # float32 precision of the evaluation's size.
            assert np.all(factor_error <= ULPS * EPS32 * scale[..., None]), (
                hz.FACTOR_NAMES[int(np.argmax(factor_error.max(axis=(0, 1))))])
    print(f"{config}: {len(states)} states, max |error| {worst:.2e}")
    # Without the insertion order only territory closure can differ, and only for a player
    # with more than ten markers.
    cell_order = np.asarray(run(boards, hz.BALANCED, np.tile(np.arange(rules.N1), (len(states), 1))))
    exact = np.asarray(run(boards, hz.BALANCED, orders))
    closure = hz.FACTOR_NAMES.index("territoryClosure")
    others = np.delete(np.arange(len(hz.FACTOR_NAMES)), closure)
    np.testing.assert_array_equal(cell_order[..., others], exact[..., others])
    markers = np.asarray(boards.marker)[:, None, : rules.N] == np.arange(1, rules.P + 1)[None, :, None]
    few = markers.sum(-1) <= hz.CLOSURE_MARKERS
    np.testing.assert_array_equal(cell_order[..., closure][few], exact[..., closure][few])


def _one_ply_case(config: str):
    """(data, decision boards, movers, per-move (decision, action, marker order, score))."""
    data = _fixture(f"one_ply.{config}.json")
    rules = _rules(config)
    boards, movers, owner, actions, orders, scores = [], [], [], [], [], []
    for i, decision in enumerate(data["decisions"]):
        board, mover = cv.board_from_json(rules, decision["state"], decision["history"], decision["lps"])
        assert mover == decision["mover"]
        boards.append(board)
        movers.append(mover)
        order = _marker_order(rules, decision["state"])
        for move, score in zip(decision["legalMoves"], decision["scores"], strict=True):
            owner.append(i)
            actions.append(cv.move_to_action(rules, board, mover, move))
            orders.append(order)
            scores.append(np.nan if score is None else score)
    return (data, _stack(boards), np.array(movers, np.int32), np.array(owner), np.array(actions, np.int32),
            np.stack(orders), np.array(scores))  # fmt: skip


@pytest.mark.parametrize("config", ONE_PLY_CONFIGS)
def test_one_ply_scores_match_the_reference(config: str) -> None:
    """The score of every legal move (the reference's legal list mapped onto our actions), with
    the markers' order carried through the move; the legal lists cover the same actions."""
    data, boards, movers, owner, actions, orders, reference = _one_ply_case(config)
    rules = _rules(config)
    score = jax.jit(jax.vmap(lambda b, p, a, o: hp.move_score(rules, b, p, a, hz.BALANCED, o)))
    per_move = jax.tree.map(lambda x: x[owner], boards)
    ours = np.asarray(score(per_move, movers[owner], actions, orders), np.float64)
    kinds = [k for d in data["decisions"] for k in d["outcomeKinds"]]
    assert set(kinds) <= {"evaluated", "terminal"}, "no-op or rejected moves need their own check"
    terminal = np.array([k == "terminal" for k in kinds])
    np.testing.assert_array_equal(ours[terminal], reference[terminal])
    # The largest term is victoryProximity's 1000 x 20; the sum is within a few of its ulps.
    error = np.abs(ours - reference)[~terminal]
    assert error.max() <= ULPS * EPS32 * 2 * 20_000, error.max()
    print(f"{config}: {len(ours)} moves, max |error| {error.max():.2e}")


@pytest.mark.long
@pytest.mark.parametrize("config", ONE_PLY_CONFIGS)
def test_one_ply_player_picks_a_best_move(config: str) -> None:
    """The player's own loop over the legal mask (markers in cell order) chooses a move of the
    reference's best score; where the best is unique, the reference's move. The legal mask
    holds exactly the reference's legal list (mapped onto actions)."""
    data, boards, movers, owner, actions, _, _ = _one_ply_case(config)
    rules = _rules(config)

    def run(board, mover):
        legal = rules.legal_mask(board, mover, rules.analyze(board, mover))
        return legal, hp.choose(rules, board, mover, legal, hz.BALANCED)

    legal, chosen = jax.device_get(jax.jit(jax.vmap(run))(boards, jnp.asarray(movers)))
    for i, decision in enumerate(data["decisions"]):
        mine = actions[owner == i]
        assert set(np.nonzero(legal[i])[0]) == set(mine), decision["id"]
        best_actions = {int(mine[j]) for j in decision["maxScoreIndices"]}
        assert int(chosen[i]) in best_actions, decision["id"]
        if len(best_actions) == 1:
            assert int(chosen[i]) == int(mine[decision["chosenIndex"]])


@pytest.mark.parametrize("chunk", [1, 3, 64])
def test_best_move_takes_the_first_best_legal_action(chunk: int) -> None:
    """A toy score over 10 actions: illegal actions never win, ties go to the lowest action,
    the loop covers legal lists longer than a chunk."""
    scores = jnp.array([9.0, 1.0, 5.0, 2.0, 5.0, 7.0, 5.0, 0.0, 7.0, 3.0])
    legal = jnp.array([False, True, True, True, True, False, True, True, False, True])
    run = jax.jit(lambda legal: hp.best_move(lambda a: scores[a], legal, chunk))
    action, best = run(legal)
    assert (int(action), float(best)) == (2, 5.0)  # 0, 5 and 8 score more but are illegal
    action, best = run(legal.at[8].set(True))
    assert (int(action), float(best)) == (8, 7.0)  # the last legal action, past the first chunk
    action, best = run(jnp.zeros(10, bool))
    assert int(action) == 0 and best == -jnp.inf
    batched = jax.jit(jax.vmap(lambda legal: hp.best_move(lambda a: scores[a], legal, chunk)[0]))
    np.testing.assert_array_equal(batched(jnp.stack([legal, ~legal])), [2, 0])
