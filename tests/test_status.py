"""``python -m rlloop.status``: read-only status of a run, from the same process or another
shell while the loop runs."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import rlloop
from rlloop import status

SMOKE = ["game=tictactoe", "loop=smoke", "gate=smoke", "loop.tensorboard=false",
         "search.num_simulations=4", "train.min_replay_size=16", "train.batch_size=32",
         "train.steps_per_iteration=4", "hardware.games_per_device=16", "gate.promote_score=0.3"]  # fmt: skip


def test_status_of_a_finished_gated_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = rlloop.compose([*SMOKE, "loop.iterations=4"])
    with rlloop.Loop(config, run_dir=tmp_path) as loop:
        loop.run()
        # The ledger's champion: a promotion in the last iteration is not yet in self-play.
        champion = loop.ledger.champion().id
    view = status.gather(tmp_path)
    assert view["loop"]["phase"] == "finished" and not view["loop"]["running"]
    assert view["loop"]["iteration"] == 4 and view["loop"]["target_iterations"] == 4
    assert view["selfplay"]["games_per_second"] > 0 and view["selfplay"]["iteration"] == 4
    (configuration,) = view["configurations"]
    assert configuration["name"] == "tictactoe" and configuration["share"] == 1.0
    assert configuration["champion"]["id"] == champion
    assert configuration["replay_ratio"] > 0
    text = status.render(view)
    assert "not running" in text and "phase finished" in text and f"champion {champion}" in text
    assert "games/s" in text and "scheduler share 100%" in text
    capsys.readouterr()  # the loop's own console lines
    assert status.main([str(tmp_path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["loop"]["phase"] == "finished"


def test_status_refuses_a_folder_that_is_not_a_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert status.main([str(tmp_path)]) == 2
    assert "is not an rlloop run directory" in capsys.readouterr().err


def test_status_from_another_process_while_the_loop_runs(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    loop = subprocess.Popen(
        [sys.executable, "-m", "rlloop.run", *SMOKE, "loop.iterations=100000",
         f"hydra.run.dir={run_dir}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline, seen = time.time() + 240, None
        while time.time() < deadline:
            if loop.poll() is not None:
                pytest.fail(f"the loop ended early: {loop.stderr.read()[-2000:]}")
            done = subprocess.run([sys.executable, "-m", "rlloop.status", str(run_dir), "--json"],
                                  capture_output=True, text=True, timeout=60)  # fmt: skip
            if done.returncode == 0:
                seen = json.loads(done.stdout)
                if seen["loop"].get("iteration", 0) >= 2:
                    break
            time.sleep(0.5)
        assert seen is not None and seen["loop"]["running"], seen
        assert seen["loop"]["phase"] in {"selfplay", "train", "gate", "checkpoint"}
        assert seen["loop"]["pid"] == loop.pid
        # --watch keeps printing until Ctrl-C.
        # Ctrl-C as at a terminal: a background job (nohup ... &) starts its children with
        # SIGINT ignored, and Python then never raises KeyboardInterrupt; the child puts
        # Python's own handler back before it runs ``python -m rlloop.status``.
        interruptible = ("import runpy, signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
                         "sys.argv[0] = 'rlloop.status'; runpy.run_module('rlloop.status', run_name='__main__')")
        watch = subprocess.Popen([sys.executable, "-c", interruptible, str(run_dir), "--watch", "0.2"],
                                 stdout=subprocess.PIPE, text=True)  # fmt: skip
        frames: list[str] = []
        reader = threading.Thread(target=lambda: frames.extend(watch.stdout), daemon=True)
        reader.start()  # read as it prints: a full pipe never blocks it
        deadline = time.time() + 120  # a loaded machine starts Python slowly
        while sum(f"run {run_dir}" in line for line in list(frames)) < 2 and time.time() < deadline:
            time.sleep(0.2)
        watch.send_signal(signal.SIGINT)
        watch.wait(timeout=60)
        reader.join(timeout=10)
        assert watch.returncode == 0 and sum(f"run {run_dir}" in line for line in frames) >= 2
    finally:
        loop.send_signal(signal.SIGINT)
        loop.wait(timeout=120)
    after = status.gather(run_dir)
    assert after["loop"]["phase"] == "stopped" and not after["loop"]["running"]


def test_status_of_a_multi_process_run_on_another_machine(tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text("game: {name: tictactoe}\nloop: {iterations: 10}\n")
    now = time.time()
    document = {"pid": 1, "host": "node-that-is-not-this-one", "processes": 4, "phase": "selfplay",
                "lineage": "tictactoe", "phase_since": now - 5, "updated": now - 5, "started": now - 60,
                "iteration": 3, "configurations": ["tictactoe"], "lineages": {}}  # fmt: skip
    (tmp_path / "status.json").write_text(json.dumps(document))
    view = status.gather(tmp_path, now=now)
    assert view["loop"]["running"]  # its pid means nothing here: a recent status counts
    assert "running (pid 1 on node-that-is-not-this-one, 4 processes): iteration 3 / 10" in status.render(view)
    stale = status.gather(tmp_path, now=now + status.STALE_SECONDS + 10)
    assert not stale["loop"]["running"]
