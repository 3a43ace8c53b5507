"""``python -m rlloop.plot``: every plot drawn from a run's files, and clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rlloop import plot
from rlloop.ledger import Ledger

PNG = b"\x89PNG\r\n\x1a\n"


def _run(run_dir: Path) -> None:
    """A small gated Connect Four run's files, written by hand."""
    (run_dir / "config.yaml").write_text("game:\n  name: connect4\n")
    with Ledger(run_dir / "ledger.sqlite", config="connect4") as ledger:
        ledger.add_model("random", parent=None, iteration=0, status="baseline")
        ledger.add_model("iter-000000", parent=None, iteration=0, status="champion", checkpoint="champions/0")
        ledger.set_rating("iter-000000", 50.0, 0.0, 100.0)
        parent = "iter-000000"
        for iteration, elo in ((2, 120.0), (4, 90.0), (6, 210.0)):
            model_id = f"iter-{iteration:06d}"
            ledger.add_model(model_id, parent=parent, iteration=iteration, status="candidate")
            ledger.set_rating(model_id, elo, elo - 40, elo + 40)
            if elo > 100:
                ledger.promote(model_id, iteration=iteration, score=0.7, score_low=0.6, score_high=0.8)
                parent = model_id
            else:
                ledger.reject(model_id, iteration=iteration, reason="worse")
        for iteration, rate in ((0, 0.3), (6, 0.1)):
            ledger.add_event("PERFECT_PLAY", {"model_id": f"iter-{iteration:06d}", "iteration": iteration,
                                              "config": "connect4", "results": [
                                                  {"set": "bundled", "simulations": 0, "mistake_rate": rate},
                                                  {"set": "bundled", "simulations": 16, "mistake_rate": rate / 2}]})  # fmt: skip
    rows = [{"iteration": i, "loss": 3.0 - 0.1 * i, "policy_loss": 2.0 - 0.1 * i, "value_loss": 1.0,
             "games_per_second": 50.0 + i, "policy_entropy": 1.5, "prior_entropy": 1.9} for i in range(1, 7)]  # fmt: skip
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows) + '{"iteration": 7, "lo')
    health = [{"iteration": i, "samples_generated_per_second": 900.0, "samples_consumed_per_second": 800.0}
              for i in range(1, 7)]  # fmt: skip
    (run_dir / "learning_health.jsonl").write_text("".join(json.dumps(h) + "\n" for h in health))


def test_every_plot_is_drawn_from_the_runs_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _run(tmp_path)
    assert plot.main([str(tmp_path)]) == 0
    written = {Path(line).name for line in capsys.readouterr().out.split()}
    assert written == {"elo.png", "lineage.png", "losses.png", "throughput.png", "entropy.png", "mistakes.png"}
    for name in written:
        data = (tmp_path / "plots" / name).read_bytes()
        assert data.startswith(PNG) and len(data) > 10_000, name
    assert not list((tmp_path / "plots").glob(".*"))  # no temporary file left


def test_a_run_without_gates_or_perfect_play_gets_the_plots_it_has_data_for(tmp_path: Path) -> None:
    _run(tmp_path)
    for path in tmp_path.glob("ledger.sqlite*"):  # no ledger: no models, matches or scores
        path.unlink()
    drawn = {path.name for path in plot.plot_run(tmp_path, tmp_path / "out")}
    assert drawn == {"losses.png", "throughput.png", "entropy.png"}


def test_errors_name_the_problem(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert plot.main([str(tmp_path / "nowhere")]) == 2
    assert "is not an rlloop run directory" in capsys.readouterr().err
    (tmp_path / "config.yaml").write_text("game:\n  name: connect4\n")
    assert plot.main([str(tmp_path)]) == 1
    assert "nothing to plot yet" in capsys.readouterr().out
