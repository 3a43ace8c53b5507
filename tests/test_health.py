"""Learning health (``rlloop.health``): hand-computed fields, and a writer SIGKILLed at random
points always leaves a document that reads."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rlloop.health import FIELDS, LINEAGE_FIELDS, LearningHealth, read_history, reward_trend
from rlloop.ledger import Ledger


def test_reward_trend_is_the_change_in_percent_of_the_first_margin() -> None:
    assert reward_trend([100.0, 120.0, 150.0]) == pytest.approx(50.0)
    assert reward_trend([400.0, 300.0]) == pytest.approx(-25.0)
    assert reward_trend([None, 0.0, 80.0]) == pytest.approx(80.0)  # a margin under 100 counts as 100
    assert reward_trend([-200.0, -100.0]) == pytest.approx(50.0)
    assert reward_trend([50.0]) is None and reward_trend([None, None]) is None


def _ledger(path: Path) -> Ledger:
    ledger = Ledger(path, config="c4")
    ledger.add_model("random", parent=None, iteration=0, status="baseline", config="c4")
    ledger.add_model("iter-000000", parent=None, iteration=0, status="champion",
                     checkpoint="champions/0", config="c4")  # fmt: skip
    ledger.add_model("iter-000002", parent="iter-000000", iteration=2, status="candidate", config="c4")
    ledger.add_model("iter-000004", parent="iter-000002", iteration=4, status="candidate", config="c4")
    ledger.set_rating("iter-000000", 100.0, 50.0, 150.0)
    ledger.set_rating("iter-000002", 250.0, 200.0, 300.0)
    ledger.promote("iter-000002", iteration=2, score=0.7, score_low=0.6, score_high=0.8)
    return ledger


def test_fields_are_computed_from_the_window_and_the_ledger(tmp_path: Path) -> None:
    health = LearningHealth(tmp_path, window=2)
    facts = {"champion": "iter-000002", "replay": 250, "capacity": 1000, "batch_size": 8,
             "samples_added": 400, "samples_trained": 600}  # fmt: skip
    rows = [
        {"games_this_iteration": 999, "moves_this_iteration": 999, "samples_added": 999},  # leaves the window
        {"games_this_iteration": 10, "moves_this_iteration": 90, "samples_added": 90, "train_steps": 4,
         "train_seconds": 0.2, "loss": 2.0, "policy_entropy": 1.0, "prior_entropy": 2.0},
        {"games_this_iteration": 30, "moves_this_iteration": 110, "samples_added": 110, "train_steps": 1,
         "train_seconds": 0.05, "loss": 1.0, "policy_entropy": 0.5, "prior_entropy": 1.5},
    ]  # fmt: skip
    with _ledger(tmp_path / "ledger.sqlite") as ledger:
        for iteration, row in enumerate(rows, start=3):
            health.record("c4", row)
            document = health.write(iteration, seconds=5.0, lineages={"c4": facts}, ledger=ledger, now=1e9)
    c4 = document["configurations"]["c4"]
    assert c4["selfplay_games_per_second"] == pytest.approx(40 / 10)
    assert c4["selfplay_moves_per_second"] == pytest.approx(200 / 10)
    assert c4["samples_generated_per_second"] == pytest.approx(200 / 10)
    assert c4["samples_consumed_per_second"] == pytest.approx(5 * 8 / 10)
    assert c4["training_time_avg_ms"] == pytest.approx(250 / 5)
    assert c4["loss"] == pytest.approx((2.0 * 4 + 1.0) / 5)  # per step
    assert c4["policy_entropy"] == pytest.approx(0.75) and c4["raw_policy_entropy"] == pytest.approx(1.75)
    assert c4["replay_ratio"] == pytest.approx(1.5) and c4["replay_fill"] == pytest.approx(0.25)
    assert c4["current_best_policy"] == "iter-000002" and c4["champion_elo"] == 250.0
    assert c4["recent_reward_trend"] == pytest.approx(150.0)  # 100 -> 250 Elo
    assert c4["promotions"] == 1 and c4["iterations_since_promotion"] == 5 - 2
    assert c4["candidates_gated"] == 2
    assert document["iteration"] == 5 and document["current_best_policy"] == {"c4": "iter-000002"}
    assert document["selfplay_games_per_second"] == c4["selfplay_games_per_second"]
    assert document["inner_episode_throughput"] is None and document["models_trained_total"] is None
    assert document["side_models_newest"] is None
    assert set(document) == set(FIELDS) and set(c4) == set(LINEAGE_FIELDS)
    on_disk = json.loads((tmp_path / "learning_health.json").read_text())
    assert on_disk == json.loads(json.dumps(document))
    assert [d["iteration"] for d in read_history(tmp_path)] == [3, 4, 5]


def test_side_trainer_fields_and_a_cut_history_line(tmp_path: Path) -> None:
    health = LearningHealth(tmp_path)
    with _ledger(tmp_path / "ledger.sqlite") as ledger:
        document = health.write(1, seconds=1.0, lineages={"c4": {"champion": ""}}, ledger=ledger,
                                side={"models_per_second": 2.5, "models_trained": 40, "mean_ms": 380.0,
                                      "newest": {"c4": {"value": "side/value-5.txt"}}})  # fmt: skip
    assert document["inner_episode_throughput"] == 2.5 and document["models_trained_total"] == 40
    assert document["side_training_time_avg_ms"] == 380.0
    assert document["side_models_newest"] == {"c4": {"value": "side/value-5.txt"}}
    with (tmp_path / "learning_health.jsonl").open("a") as history:
        history.write('{"schema_version": 1, "iter')  # a kill mid-append
    assert [d["iteration"] for d in read_history(tmp_path)] == [1]
    with pytest.raises(ValueError, match="window=0"):
        LearningHealth(tmp_path, window=0)


def test_a_writer_killed_at_random_points_leaves_a_document_that_reads(tmp_path: Path) -> None:
    writer = Path(__file__).with_name("health_writer.py")
    rng = random.Random(5)
    path = tmp_path / "learning_health.json"
    for _ in range(12):
        process = subprocess.Popen([sys.executable, str(writer), str(tmp_path)], stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True)  # fmt: skip
        try:
            assert process.stdout.readline().strip() == "ready", process.stderr.read()[-2000:]
            time.sleep(rng.uniform(0.0, 0.4))
        finally:
            process.send_signal(signal.SIGKILL)
            process.wait()
        document = json.loads(path.read_text())  # never half a file
        assert document["schema_version"] == 1 and document["iteration"] >= 1
        assert read_history(tmp_path)  # the history reads too (a cut last line is skipped)
