"""Sweeps: a Hydra multirun end to end, and ``python -m rlloop.tune`` (Optuna): its spec
checks and results table on a hand-made study, a whole smoke study, and a study killed with
SIGKILL that resumes from its SQLite storage."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from omegaconf import OmegaConf
from optuna.trial import TrialState

from rlloop import tune

ROOT = Path(__file__).resolve().parents[1]
SMOKE = ["loop=smoke", "train.min_replay_size=16", "train.batch_size=32",
         "train.steps_per_iteration=4", "hardware.games_per_device=16"]  # fmt: skip


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT)}


def test_hydra_multirun_of_two_values(tmp_path: Path) -> None:
    """``python -m rlloop.run -m search.num_simulations=4,8``: two runs, each with its value,
    two iterations and its own ledger."""
    sweep = tmp_path / "multirun"
    command = [sys.executable, "-m", "rlloop.run", "-m", "game=tictactoe", *SMOKE,
               "search.num_simulations=4,8", f"hydra.sweep.dir={sweep}"]  # fmt: skip
    result = subprocess.run(command, cwd=tmp_path, env=_env(), capture_output=True, text=True,
                            timeout=600)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert sorted(p.name for p in sweep.iterdir() if p.is_dir()) == ["0", "1"]
    for job, simulations in (("0", 4), ("1", 8)):
        run = sweep / job
        config = OmegaConf.load(run / "config.yaml")
        assert config.search.num_simulations == simulations
        rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
        assert [row["iteration"] for row in rows] == [1, 2]
        assert rows[-1]["games"] > 0
        assert (run / "ledger.sqlite").is_file()
        assert f"search=gumbelx{simulations} " in result.stdout
    overrides = OmegaConf.load(sweep / "multirun.yaml").hydra.overrides.task
    assert "search.num_simulations=4,8" in overrides


# ----------------------------------------------------------------------------- rlloop.tune
def test_load_spec_checks_and_overrides(tmp_path: Path) -> None:
    spec = tune.load_spec("smoke", ["trials=9"])
    assert spec.trials == 9 and spec.iterations == 2 and len(spec.knobs) >= 2
    assert spec.knobs["train.learning_rate"].log
    assert tune.load_spec("tictactoe").knobs["search.num_simulations"].type == "int"
    with pytest.raises(ValueError, match=r"objective.games=7 must be even"):
        tune.load_spec("smoke", ["objective.games=7"])
    bad = tmp_path / "bad.yaml"
    bad.write_text("knobs:\n  search.num_simulations: {type: bool}\n  train.learning_rate: {low: 1, high: 0}\n")
    with pytest.raises(ValueError, match=r"type='bool'; valid: int, float, categorical.*low=1.0 must be below"):
        tune.load_spec(str(bad))
    with pytest.raises(FileNotFoundError, match=r"known: .*smoke"):
        tune.load_spec("nonesuch")


@pytest.mark.parametrize("name", sorted(p.stem for p in (ROOT / "conf" / "tune").glob("*.yaml")))
def test_every_tune_spec_composes_with_its_knobs(name: str) -> None:
    """Each spec's base overrides compose, and each knob is a key of that config."""
    import rlloop

    spec = tune.load_spec(name)
    config = rlloop.compose(list(spec.overrides))
    for key in spec.knobs:
        assert OmegaConf.select(config, key) is not None, f"{name}: no config key {key}"


def test_results_table_ranks_complete_trials_and_keeps_pruned(tmp_path: Path) -> None:
    """The table from a hand-made study: best complete trial first, pruned trials with
    their last reported Elo, every knob a column; the plot is written."""
    spec = tune.load_spec("smoke")
    study = optuna.create_study(direction="maximize")
    distributions = {
        "search.num_simulations": optuna.distributions.IntDistribution(4, 12, step=4),
        "train.learning_rate": optuna.distributions.FloatDistribution(1e-4, 1e-2, log=True),
    }
    for elo, state, simulations in ((120.0, TrialState.COMPLETE, 4), (300.0, TrialState.COMPLETE, 8),
                                    (None, TrialState.PRUNED, 12)):  # fmt: skip
        study.add_trial(optuna.trial.create_trial(
            params={"search.num_simulations": simulations, "train.learning_rate": 1e-3},
            distributions=distributions, value=elo, state=state,
            intermediate_values={1: elo - 10, 2: elo} if elo else {1: 15.0},
            user_attrs={"iterations": 2 if elo else 1, "run_dir": f"trials/{simulations}"},
        ))  # fmt: skip
    sweep = tune.Sweep(tmp_path)
    tune.write_results(study, spec, sweep)
    rows = _csv(sweep.results("csv"))
    assert [(r["trial"], r["state"], float(r["elo"])) for r in rows] == [
        ("0", "COMPLETE", 120.0), ("1", "COMPLETE", 300.0), ("2", "PRUNED", 15.0)]  # fmt: skip
    assert rows[2]["search.num_simulations"] == "12" and rows[2]["iterations"] == "1"
    table = sweep.results("md").read_text()
    assert "Best: trial 1, Elo 300 with search.num_simulations=8" in table
    body = [line for line in table.splitlines() if line.startswith("| ") and "trial" not in line]
    assert [line.split("|")[1].strip() for line in body] == ["1", "0", "2"]
    assert sweep.results("png").stat().st_size > 10_000


def test_a_sweep_folder_in_use_is_refused(tmp_path: Path) -> None:
    sweep = tune.Sweep(tmp_path)
    sweep.pid.write_text(f"{os.getppid()}\n")  # a live process that is not this one
    with pytest.raises(RuntimeError, match=r"in use by tune process"):
        tune.tune(tune.load_spec("smoke"), tmp_path)


def _csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def _tune(sweep: Path, *overrides: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "rlloop.tune", "smoke", *overrides, "--dir", str(sweep)],
        cwd=sweep.parent, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip


def _study(sweep: Path) -> optuna.Study:
    return optuna.load_study(study_name="smoke", storage=tune.Sweep(sweep).storage)


def _check_pruned_below_median(study: optuna.Study) -> None:
    """MedianPruner's rule, recomputed: a pruned trial's last value is below the median of
    the trials completed before it at the same iteration."""
    for trial in study.trials:
        if trial.state != TrialState.PRUNED:
            continue
        step = max(trial.intermediate_values)
        earlier = sorted(t.intermediate_values[step] for t in study.trials
                         if t.state == TrialState.COMPLETE and t.number < trial.number
                         and step in t.intermediate_values)  # fmt: skip
        assert len(earlier) >= 2, f"trial {trial.number} pruned during the startup trials"
        middle = len(earlier) // 2
        median = earlier[middle] if len(earlier) % 2 else (earlier[middle - 1] + earlier[middle]) / 2
        assert trial.intermediate_values[step] < median


@pytest.mark.long
def test_optuna_smoke_study_completes(tmp_path: Path) -> None:
    """Six trials over two knobs: each reports its Elo per iteration, finishes complete or
    pruned by the median rule, and the results table, CSV and plot list all six."""
    sweep = tmp_path / "sweep"
    process = _tune(sweep)
    output, _ = process.communicate(timeout=900)
    assert process.returncode == 0, output[-3000:]
    study = _study(sweep)
    spec = tune.load_spec("smoke")
    assert len(study.trials) == 6
    assert {t.state for t in study.trials} <= {TrialState.COMPLETE, TrialState.PRUNED}
    assert any(t.state == TrialState.COMPLETE for t in study.trials)
    for trial in study.trials:
        assert trial.params["search.num_simulations"] in (4, 8, 12)
        assert 1e-4 <= trial.params["train.learning_rate"] <= 1e-2
        assert 1 in trial.intermediate_values
        if trial.state == TrialState.COMPLETE:
            assert sorted(trial.intermediate_values) == [1, 2]
            assert trial.value == trial.intermediate_values[2]
        run = Path(trial.user_attrs["run_dir"])
        iterations = len((run / "metrics.jsonl").read_text().splitlines())
        assert iterations == max(trial.intermediate_values)
        config = OmegaConf.load(run / "config.yaml")
        assert config.search.num_simulations == trial.params["search.num_simulations"]
    _check_pruned_below_median(study)
    rows = _csv(sweep / "results.csv")
    assert [int(r["trial"]) for r in rows] == list(range(6))
    assert all(r["elo"] for r in rows)
    assert f"Elo after {spec.iterations} iterations" in (sweep / "results.md").read_text()
    assert (sweep / "results.png").stat().st_size > 10_000
    # Run again: nothing left to do, the study is unchanged.
    again = _tune(sweep)
    output, _ = again.communicate(timeout=300)
    assert again.returncode == 0 and "6 of 6 trials finished" in output, output[-2000:]
    assert len(_study(sweep).trials) == 6


@pytest.mark.long
def test_killed_study_resumes_from_sqlite(tmp_path: Path) -> None:
    """SIGKILL in the middle of a trial; the same command resumes: finished trials stay as
    they were, the killed one is marked FAIL and retried with its knobs, and the study
    finishes its trials."""
    sweep = tmp_path / "sweep"
    process = _tune(sweep, "trials=4")
    deadline = time.monotonic() + 600
    finished: list[optuna.trial.FrozenTrial] = []
    while time.monotonic() < deadline and process.poll() is None:
        time.sleep(1.0)
        if not (sweep / "study.sqlite").is_file():
            continue
        try:
            trials = _study(sweep).trials
        except KeyError:  # the study is being created
            continue
        finished = [t for t in trials if t.state.is_finished()]
        running = [t for t in trials if t.state == TrialState.RUNNING]
        if len(finished) >= 2 and running and running[0].params:
            break
    assert process.poll() is None, "the study ended before it could be killed"
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
    trials = _study(sweep).trials
    killed = [t for t in trials if t.state == TrialState.RUNNING]
    assert len(killed) == 1 and len([t for t in trials if t.state.is_finished()]) < 4
    before = {t.number: (t.state, t.value, t.datetime_complete) for t in trials if t.state.is_finished()}

    resumed = _tune(sweep, "trials=4")
    output, _ = resumed.communicate(timeout=900)
    assert resumed.returncode == 0, output[-3000:]
    assert f"requeued killed trials [{killed[0].number}]" in output
    study = _study(sweep)
    by_number = {t.number: t for t in study.trials}
    for number, (state, value, completed) in before.items():
        assert (by_number[number].state, by_number[number].value) == (state, value)
        assert by_number[number].datetime_complete == completed
    assert by_number[killed[0].number].state == TrialState.FAIL
    retries = [t for t in study.trials if t.user_attrs.get("retry_of") == killed[0].number]
    assert len(retries) == 1 and retries[0].params == killed[0].params
    assert retries[0].state in (TrialState.COMPLETE, TrialState.PRUNED)
    done = [t for t in study.trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert len(done) == 4
    rows = _csv(sweep / "results.csv")
    assert len(rows) == len(study.trials) == 5
