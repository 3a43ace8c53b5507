"""The GPU check (scripts/gpu_check.sh): its dry run end to end on the CPU, its figures from a
run directory, its summary, and the bench options it relies on."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from rlloop import bench

ROOT = Path(__file__).resolve().parents[1]


def load_gpu_check() -> Any:
    spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "scripts" / "gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_build_all_keeps_order_and_errors_and_runs_builds_at_once() -> None:
    def failing() -> None:
        raise ValueError("no room")

    for workers in (1, 3):
        handles = bench.build_all([lambda: 1, failing, lambda: 3], workers)
        assert handles[0].result() == 1 and handles[2].result() == 3
        with pytest.raises(ValueError, match="no room"):
            handles[1].result()
    # With 3 workers, 3 builds that each wait for the others to start finish together: they
    # ran at the same time. (One at a time they would wait forever; the barrier times out.)
    barrier = threading.Barrier(3, timeout=20)
    handles = bench.build_all([barrier.wait] * 3, 3)
    assert sorted(handle.result() for handle in handles) == [0, 1, 2]
    # One worker builds lazily, in the caller's thread, when asked.
    calls: list[int] = []
    lazy = bench.build_all([lambda: calls.append(1)], 1)
    assert calls == []
    lazy[0].result()
    lazy[0].result()
    assert calls == [1]


def test_budget_reports_configurations_left_out(capsys: pytest.CaptureFixture[str]) -> None:
    # A budget already spent: nothing is compiled, every configuration is reported skipped.
    argv = ["--suite", "selfplay", "--selfplay-config", "2x32:2:8", "--selfplay-config",
            "6x128:2:16", "--budget", "1e-9", "--devices", "0"]  # fmt: skip
    start = time.perf_counter()
    assert bench.main(argv) == 0
    assert time.perf_counter() - start < 5
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["name"] for line in lines] == ["selfplay_skipped"] * 2
    assert [line["config"]["net"] for line in lines] == ["2x32", "6x128"]
    assert all(line["config"]["reason"] == "--budget spent" for line in lines)


def test_train_grid_and_ringrift_batches_parse_their_options() -> None:
    args = bench.argparse.Namespace(quick=False, train_net=["2x32,6x128"],
                                    train_batch=["4096", "8192"], train_steps=8)  # fmt: skip
    assert bench._train_grid(args) == [("2x32", 4096, 8), ("2x32", 8192, 8),
                                       ("6x128", 4096, 8), ("6x128", 8192, 8)]  # fmt: skip
    defaults = bench.argparse.Namespace(quick=False, train_net=None, train_batch=None,
                                        train_steps=0)  # fmt: skip
    assert bench._train_grid(defaults) == [("2x32", 256, 16), ("2x32", 1024, 4),
                                           ("4x64", 256, 16), ("4x64", 1024, 4)]  # fmt: skip
    with pytest.raises(SystemExit, match="--train-net '9x9'"):
        bench._train_grid(bench.argparse.Namespace(quick=False, train_net=["9x9"],
                                                   train_batch=None, train_steps=0))  # fmt: skip
    gpu = bench.argparse.Namespace(quick=False, ringrift_batches=["1024,4096", "16384"])
    assert bench._ringrift_batches(gpu) == ([1024, 4096, 16384], 1024)
    cpu = bench.argparse.Namespace(quick=False, ringrift_batches=None)
    assert bench._ringrift_batches(cpu) == ([1, 64, 1024], 64)


def test_loop_figures_read_the_run_directory(tmp_path: Path) -> None:
    from rlloop.ledger import Ledger

    gpu_check = load_gpu_check()
    metrics = [
        {"iteration": 1, "games": 10, "moves_per_second": 100.0, "games_per_second": 5.0,
         "iteration_seconds": 9.0, "selfplay_seconds": 4.0, "train_seconds": 5.0},
        {"iteration": 2, "games": 30, "moves_per_second": 300.0, "games_per_second": 15.0,
         "iteration_seconds": 2.0, "selfplay_seconds": 1.0, "train_seconds": 1.0},
        {"iteration": 3, "games": 50, "moves_per_second": 500.0, "games_per_second": 25.0,
         "iteration_seconds": 4.0, "selfplay_seconds": 3.0, "train_seconds": 1.0},
    ]  # fmt: skip
    text = "".join(json.dumps(line) + "\n" for line in metrics) + '{"iteration": 4, "ga'
    (tmp_path / "metrics.jsonl").write_text(text)  # the last line cut by a kill
    ledger = Ledger(tmp_path / "ledger.sqlite")
    ledger.add_model("iter-000000", parent=None, iteration=0, status="candidate")
    ledger.promote("iter-000000", iteration=0, score=0.6, score_low=0.55, score_high=0.65)
    result = {"set": "end-easy", "simulations": 16, "positions": 1000, "scored": 1000,
              "mistakes": 106, "mistake_rate": 0.106, "mistake_low": 0.09,
              "mistake_high": 0.12, "value_accuracy": 0.44}  # fmt: skip
    unscored = {**result, "set": "begin-medium", "mistakes": None, "mistake_rate": None}
    ledger.add_event("PERFECT_PLAY", {"model_id": "iter-000000", "iteration": 0,
                                      "results": [result, unscored]})  # fmt: skip
    ledger.close()

    figures = {line["name"]: line for line in gpu_check.loop_figures(tmp_path)}
    assert figures["loop_iterations"]["value"] == 3
    assert figures["loop_games"]["value"] == 50
    assert figures["loop_selfplay_moves_per_second"]["value"] == 400.0  # median after the first
    assert figures["loop_first_iteration_seconds"]["value"] == 9.0
    assert figures["loop_iteration_seconds"]["value"] == 3.0
    assert figures["loop_total_train_seconds"]["value"] == 7.0
    assert figures["loop_promotions"]["value"] == 1
    rate = figures["loop_perfect_play_mistake_rate"]
    assert rate["value"] == 0.106 and rate["config"]["set"] == "end-easy"
    assert rate["config"]["mistakes"] == 106 and rate["config"]["positions"] == 1000
    assert [line["name"] for line in gpu_check.loop_figures(tmp_path / "absent")] == []


def test_summary_tables_pair_rlloop_with_its_references(tmp_path: Path) -> None:
    gpu_check = load_gpu_check()
    run = gpu_check.Run(tmp_path)
    config = {"game": "connect4", "net": "2x32", "simulations": 32, "batch_size": 4096}
    seq = {"game": "connect4", "net": "2x32", "simulations": 32, "batch_size": 1,
           "engine": "sequential"}  # fmt: skip
    for name, value, unit, extra in [
        ("selfplay_games", 4.9, "games/s", seq),
        ("selfplay_moves", 141765.3, "moves/s", {**config, "engine": "rlloop"}),
        ("selfplay_games", 8339.1, "games/s", {**config, "engine": "rlloop"}),
        ("selfplay_compile", 16.8, "s", {**config, "engine": "rlloop"}),
        ("selfplay_moves", 136186.7, "moves/s", {**config, "engine": "pgx+mctx"}),
        ("selfplay_compile", 17.6, "s", {**config, "engine": "pgx+mctx"}),
        ("selfplay_ratio_vs_reference", 1.04, "x", config),
        ("selfplay_games_ratio_vs_sequential", 1699.6, "x", config),
        ("selfplay_skipped", 1, "skipped", {**config, "net": "6x128", "reason": "--budget spent"}),
    ]:
        run.add("selfplay", {"name": name, "value": value, "unit": unit, "config": extra})
    run.steps.append({"step": "selfplay", "status": "ok", "seconds": 89.2})
    text = gpu_check.summary(run)
    run.close()
    assert "| selfplay | ok | 89.2 |" in text
    assert ("| 2x32 | 32 | 4,096 | 141,765 | 136,187 | 1.04x | 8,339.1 | 4.90 | 1,699.6x "
            "| 16.8 / 17.6 |") in text  # fmt: skip
    assert "selfplay_skipped" in text and "6x128" in text
    lines = (tmp_path / "results.jsonl").read_text().splitlines()
    assert len(lines) == 9 and all(json.loads(line)["step"] == "selfplay" for line in lines)


@pytest.mark.long
def test_dry_run_runs_every_step_on_the_cpu(tmp_path: Path) -> None:
    out = tmp_path / "out"
    env = {**os.environ, "PYTHON": sys.executable}
    done = subprocess.run(
        ["bash", str(ROOT / "scripts" / "gpu_check.sh"), "--dry-run", "--out", str(out),
         "--run-dir", str(tmp_path / "run")],
        env=env, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    results = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    by_step: dict[str, set[str]] = {}
    for line in results:
        by_step.setdefault(line["step"], set()).add(line["name"])
    assert {"python", "package", "device"} <= by_step["env"]
    assert {"selfplay_moves", "selfplay_ratio_vs_reference",
            "selfplay_games_ratio_vs_sequential"} <= by_step["selfplay"]  # fmt: skip
    engines = {line["config"].get("engine") for line in results if line["name"] == "selfplay_moves"}
    assert engines == {"rlloop", "pgx+mctx", "sequential"}
    assert {"train_steps", "train_ratio_step_vs_scan"} <= by_step["train"]
    assert {"ringrift_random_play", "ringrift_selfplay_moves"} <= by_step["ringrift"]
    assert {"loop_iterations", "loop_games", "loop_perfect_play_mistake_rate"} <= by_step["loop"]
    assert not [line for line in results if line["name"].endswith("_skipped")]
    summary = (out / "summary.md").read_text()
    for step in ("env", "selfplay", "train", "ringrift", "loop"):
        assert f"| {step} | ok |" in summary
    assert "## The loop (connect4_perfect)" in summary and "mistake rate" in summary
    assert (out / "loop_metrics.jsonl").is_file() and (out / "log.txt").stat().st_size > 0
    assert done.stdout.rstrip().endswith(summary.rstrip().splitlines()[-1])
