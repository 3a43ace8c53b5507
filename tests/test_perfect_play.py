"""Perfect-play scoring of Connect Four agents (rlloop.perfect_play)."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rlloop import games
from rlloop import perfect_play as pp
from rlloop.games import connect4_solver as solver

GAME = games.make("connect4")
OBSERVE = jax.jit(jax.vmap(GAME.observe))


@dataclasses.dataclass
class ScriptedAgent:
    """An 'agent' whose moves and values come from the labelled scores: ``mode`` best plays a
    best-outcome move, worst plays a worst-outcome move; values are the exact outcome (times
    ``value_sign``)."""

    positions: pp.PositionSet
    mode: str = "best"
    value_sign: float = 1.0
    game: object = GAME

    def _rows(self, states) -> np.ndarray:
        # Identify each state's position by its observation (the agent sees only states).
        keys = [o.tobytes() for o in np.asarray(OBSERVE(states, states.current_player))]
        return np.array([self._index[k] for k in keys])

    def __post_init__(self) -> None:
        encoded = pp.encode_positions(GAME, self.positions.moves)
        obs = np.asarray(OBSERVE(encoded, encoded.current_player))
        self._index = {o.tobytes(): i for i, o in enumerate(obs)}

    def act(self, states, key, num_simulations=0):
        rows = self._rows(states)
        scores = np.sign(self.positions.move_scores[rows])  # NaN (full column) stays NaN
        pick = np.nanargmax if self.mode == "best" else np.nanargmin
        return jnp.asarray(pick(scores, axis=1), jnp.int32)

    def value(self, states):
        rows = self._rows(states)
        own = self.value_sign * np.sign(self.positions.scores[rows]).astype(np.float32)
        mover = np.asarray(states.current_player)
        values = np.zeros((len(rows), 2), np.float32)
        values[np.arange(len(rows)), mover] = own
        values[np.arange(len(rows)), 1 - mover] = -own
        return jnp.asarray(values)


def test_encode_positions_replays_moves() -> None:
    states = pp.encode_positions(GAME, ["4", "44", "1234567", ""])
    np.testing.assert_array_equal(np.asarray(states.step_count), [1, 2, 7, 0])
    np.testing.assert_array_equal(np.asarray(states.current_player), [1, 0, 1, 0])
    first = jax.tree.map(lambda x: x[2], states)
    # "1234567": X in 1, 3, 5, 7 and O in 2, 4, 6 on the bottom row.
    assert GAME.render(first).splitlines()[5] == "XOXOXOX"
    centre = jax.tree.map(lambda x: x[1], states)
    assert GAME.render(centre).splitlines()[4:6] == ["...O...", "...X..."]


@pytest.mark.parametrize(
    ("moves", "message"),
    [("1111111", "full column"), ("1212121", "finished game"), ("12a", "column digit")],
)
def test_encode_positions_names_bad_positions(moves: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        pp.encode_positions(GAME, ["44", moves])


def test_bundled_set_loads_with_move_scores() -> None:
    positions = pp.load_set(pp.BUNDLED)
    assert len(positions) == 256 and positions.move_scores is not None
    # Each position's score is its best move's.
    np.testing.assert_array_equal(np.nanmax(positions.move_scores, axis=1), positions.scores)
    assert pp.BUNDLED in pp.available_sets()
    with pytest.raises(ValueError, match="unknown Connect Four position set"):
        pp.load_set("end-hard")


def test_perfect_agent_makes_no_mistakes_and_worst_agent_does() -> None:
    positions = pp.load_set(pp.BUNDLED, limit=64)
    best = pp.evaluate_agent(ScriptedAgent(positions, "best"), [positions], simulations=(0,))
    assert best[0].mistakes == 0 and best[0].scored == 64 and best[0].value_accuracy == 1.0
    worst = pp.evaluate_agent(ScriptedAgent(positions, "worst", value_sign=-1.0), [positions])
    signs = np.sign(positions.move_scores)
    expected = int(np.sum(np.nanmin(signs, axis=1) < np.nanmax(signs, axis=1)))
    assert expected > 10
    assert worst[0].mistakes == expected
    assert worst[0].mistake_rate == pytest.approx(expected / 64)
    assert worst[0].mistake_low < worst[0].mistake_rate < worst[0].mistake_high
    decisive = np.mean(np.sign(positions.scores) != 0)
    assert worst[0].value_accuracy == pytest.approx(1.0 - decisive)  # only draws still agree


def test_mistakes_from_the_solver_match_known_move_scores(tmp_path: Path) -> None:
    """Without move scores the solver decides each move; the counts must agree."""
    positions = pp.load_set(pp.BUNDLED)
    late = [i for i, m in enumerate(positions.moves) if len(m) >= 26][:40]
    subset = pp.PositionSet("late", tuple(positions.moves[i] for i in late), positions.scores[late])
    rng = np.random.default_rng(0)
    chosen = np.array([
        rng.choice(np.flatnonzero(~np.isnan(positions.move_scores[i]))) for i in late
    ])  # fmt: skip
    oracle = pp.MoveOutcomes(tmp_path / "cache.txt")
    mistakes, scored = pp.count_mistakes(subset, chosen, oracle)
    known = pp.PositionSet("late", subset.moves, subset.scores, positions.move_scores[late])
    assert (mistakes, scored) == pp.count_mistakes(known, chosen, None)
    assert scored == 40 and mistakes > 0


def test_move_outcomes_cache_persists_and_survives_a_torn_line(tmp_path: Path) -> None:
    path = tmp_path / "outcomes.txt"
    oracle = pp.MoveOutcomes(path)
    bundled = pp.load_set(pp.BUNDLED)
    row = next(i for i, m in enumerate(bundled.moves) if len(m) >= 28 and not np.isnan(bundled.move_scores[i]).any())
    position = bundled.moves[row]
    outcomes = [oracle.outcome(position, c) for c in range(7)]
    assert outcomes == list(np.sign(bundled.move_scores[row]).astype(int))
    assert outcomes == solver.analyze(position, weak=True)
    assert oracle.solved == 7
    with path.open("a") as handle:
        handle.write(position + "1")  # a write cut short by a crash
    again = pp.MoveOutcomes(path)
    assert [again.outcome(position, c) for c in range(7)] == outcomes
    assert again.solved == 0, "answers should come from the cache"


def test_solver_budget_leaves_positions_unscored(tmp_path: Path) -> None:
    positions = pp.load_set(pp.BUNDLED)
    won = [i for i in range(len(positions)) if positions.scores[i] >= 0 and len(positions.moves[i]) >= 24][:6]
    subset = pp.PositionSet("late", tuple(positions.moves[i] for i in won), positions.scores[won])
    chosen = np.nanargmax(positions.move_scores[won], axis=1)
    mistakes, scored = pp.count_mistakes(subset, chosen, pp.MoveOutcomes(), budget_seconds=0.0)
    assert (mistakes, scored) == (0, 0)  # the budget is checked before each solver call
    mistakes, scored = pp.count_mistakes(subset, chosen, pp.MoveOutcomes(), budget_seconds=None)
    assert (mistakes, scored) == (0, 6)


def test_shared_end_easy_solver_agrees_with_file(shared_dir: Path) -> None:
    positions = pp.load_set("end-easy", data_dir=shared_dir / "data" / "connect4", limit=100)
    analysed = np.array([[np.nan if s is None else s for s in solver.analyze(m)] for m in positions.moves])
    labelled = pp.PositionSet("end-easy", positions.moves, positions.scores, analysed)
    best = pp.evaluate_agent(ScriptedAgent(labelled, "best"), [positions], oracle=pp.MoveOutcomes())
    assert best[0].mistakes == 0 and best[0].scored == 100


def test_monitor_scores_in_the_background() -> None:
    positions = pp.load_set(pp.BUNDLED, limit=32)
    monitor = pp.PerfectPlayMonitor(
        lambda params: ScriptedAgent(positions, params), ["end-easy", pp.BUNDLED, "nope-set"],
        simulations=[0], data_dir="/nonexistent",
    )  # fmt: skip
    assert [s.name for s in monitor.sets] == [pp.BUNDLED]
    assert "end-easy" in monitor.skipped_sets
    monitor.sets = [positions]
    monitor.submit("iter-000003", 3, "worst")
    deadline = time.monotonic() + 60
    done = []
    while not done and time.monotonic() < deadline:
        done = monitor.poll()
        time.sleep(0.05)
    monitor.close()
    (model_id, iteration, results, _), = done
    assert (model_id, iteration) == ("iter-000003", 3)
    metrics = pp.metrics_of(results)
    assert metrics["perfect_play/bundled/mistakes_0sims"] == results[0].mistake_rate > 0
    assert "bundled" in pp.summary(results)


def test_games_say_whether_they_can_be_scored_against_perfect_play() -> None:
    """The loop attaches the perfect-play scorer by this flag, not by the game's name."""
    from rlloop import games

    assert games.make("connect4").perfect_play is True
    assert games.make("tictactoe").perfect_play is False
    assert games.make("ringrift_square8_2p").perfect_play is False
