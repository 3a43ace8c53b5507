"""Heuristic players as gauntlet opponents and gate anchors (rlloop.games.ringrift.heuristic_players)."""

from __future__ import annotations

import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rlloop import evaluate
from rlloop.arena import anchor_players
from rlloop.config import compose
from rlloop.games.base import make
from rlloop.games.ringrift import heuristic as hz
from rlloop.games.ringrift import heuristic_players as hp
from rlloop.games.ringrift.engine import Rules
from rlloop.networks import init_params, make_network


def test_anchor_names_and_profiles() -> None:
    game = make("ringrift_square8_2p")
    players = anchor_players(game, ["random", "greedy", "heuristic", "heuristic-search:territorial"],
                             prefix="sq/", num_simulations=2)  # fmt: skip
    # greedy is unaffordable on RingRift and left out, as in baseline_players
    assert list(players) == ["random", "heuristic", "heuristic-search:territorial"]
    assert [p.name for p in players.values()] == ["sq/random", "sq/heuristic",
                                                  "sq/heuristic-search:territorial"]
    assert hp.parse_name("heuristic:defensive") == ("heuristic", "defensive")
    assert hp.parse_name("champion") is None
    with pytest.raises(ValueError, match="unknown heuristic profile"):
        hp.parse_name("heuristic:reckless")
    with pytest.raises(ValueError, match="unknown anchor player 'minimax'"):
        anchor_players(game, ["random", "minimax"])
    with pytest.raises(ValueError, match="need a RingRift game"):
        anchor_players(make("tictactoe"), ["heuristic"])


def test_gate_anchors_must_keep_random() -> None:
    assert list(compose([]).gate.anchors) == ["random", "greedy"]
    with pytest.raises(ValueError, match="must include random"):
        compose(["gate.anchors=[heuristic]"])


def test_heuristic_values_are_mover_relative_leads() -> None:
    """tanh(lead / VALUE_SCALE), the lead over the mean of the others, column k = k seats on."""
    rules = Rules("square8", 3)
    board = rules.initial_board().replace(elim=jnp.array([6, 0, 3], jnp.int32))
    boards = jax.tree.map(lambda x: jnp.stack([x, x]), board)
    h = np.asarray(jax.jit(lambda b: hz.evaluate(rules, b, hz.BALANCED))(board), np.float64)
    lead = h - (h.sum() - h) / 2
    values = np.asarray(jax.jit(lambda b, m: hp.heuristic_values(rules, b, m, hz.BALANCED))(
        boards, jnp.array([0, 2])))
    np.testing.assert_allclose(values[0], np.tanh(lead / hp.VALUE_SCALE), rtol=1e-5)
    np.testing.assert_allclose(values[1], np.tanh(lead[[2, 0, 1]] / hp.VALUE_SCALE), rtol=1e-5)
    assert values[0, 0] > 0 > values[0, 1]  # player 1 eliminated most: ahead


class _Agent:
    """What the gauntlet command needs of a loaded agent: an untrained tiny network."""

    def __init__(self, game) -> None:
        self.game = game
        self.network = make_network(game, num_blocks=1, channels=8, value_hidden=16)
        self.params = init_params(self.network, game, jax.random.key(0))
        self.search_config = compose(["search.max_num_considered_actions=4"]).search


@pytest.mark.long
def test_gauntlet_against_heuristic_players(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    game = make("ringrift_square8_2p")
    monkeypatch.setattr(evaluate, "load", lambda spec: (_Agent(game), "tiny"))
    monkeypatch.setattr(evaluate, "_champion_elos", lambda run_dir, lineage=None: [])  # no run
    code = evaluate.main([
        "gauntlet", str(tmp_path / "run"), "--opponents", "random", "heuristic", "heuristic-search",
        "--games", "4", "--simulations", "2", "--out", str(tmp_path),
    ])  # fmt: skip
    assert code == 0
    report = json.loads((tmp_path / "gauntlet.json").read_text())
    rows = {row["opponent"]: row for row in report["opponents"]}
    assert list(rows) == ["random", "heuristic", "heuristic-search"]
    assert report["elo"]["anchor"] == "random" and rows["random"]["opponent_elo"] == 0.0
    for row in rows.values():  # one Bradley-Terry fit: every rating on the random = 0 scale
        assert row["wins"] + row["draws"] + row["losses"] == 4
        assert np.isfinite(row["opponent_elo"])
