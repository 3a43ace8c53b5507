"""The benchmark entry point prints well-formed JSON lines (figures are not asserted)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from rlloop import bench

# "--devices 0": keep JAX's device count as it is; main would otherwise set hardware=cpu's
# host device count for the whole test process if these tests were the first to start JAX.
QUICK = ["--quick", "--seconds", "0.01", "--devices", "0"]


def run_suites(
    capsys: pytest.CaptureFixture[str], *suites: str, extra: tuple[str, ...] = ()
) -> list[dict[str, Any]]:
    argv = [arg for suite in suites for arg in ("--suite", suite)] + QUICK + list(extra)
    assert bench.main(argv) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert lines, "no benchmark output"
    for line in lines:
        assert set(line) == {"name", "value", "unit", "config"}
        assert isinstance(line["value"], float) and line["value"] > 0
    return lines


def named(lines: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [line for line in lines if line["name"] == name]


def test_env_suite_prints_json_lines(capsys: pytest.CaptureFixture[str]) -> None:
    lines = run_suites(capsys, "env")
    rates = named(lines, "env_random_play")
    assert {line["config"]["game"] for line in rates} == {"tictactoe", "connect4"}
    assert {line["config"]["batch_size"] for line in rates} == {1, 64}


@pytest.mark.long
def test_selfplay_and_train_suites(capsys: pytest.CaptureFixture[str]) -> None:
    lines = run_suites(capsys, "selfplay", "train")
    moves = named(lines, "selfplay_moves")
    assert {line["config"]["engine"] for line in moves} == {"rlloop", "pgx+mctx", "sequential"}
    for line in moves:
        assert line["unit"] == "moves/s"
        assert line["config"]["net"] == "2x32" and line["config"]["simulations"] == 8
        assert line["config"]["batch_size"] == (1 if line["config"]["engine"] == "sequential" else 64)
    assert len(named(lines, "selfplay_games")) == 3
    assert len(named(lines, "selfplay_compile")) == 3
    assert len(named(lines, "selfplay_ratio_vs_reference")) == 1
    assert len(named(lines, "selfplay_games_ratio_vs_sequential")) == 1
    assert 1 <= named(lines, "selfplay_mean_game_length")[0]["value"] <= 42
    steps = named(lines, "train_steps")
    assert {line["config"]["style"] for line in steps} == {"step", "scan"}
    assert all(line["unit"] == "steps/s" and line["config"]["net"] == "2x32" for line in steps)
    assert len(named(lines, "train_compile")) == 2
    assert len(named(lines, "train_ratio_step_vs_scan")) == 1


def test_devices_child_measures_in_this_process(capsys: pytest.CaptureFixture[str]) -> None:
    import jax

    argv = ["--devices-child", "1", "--child-config", "2x32:8:64", "--seconds", "0.01"]
    assert bench.main(argv) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    names = ["devices_selfplay_moves", "devices_selfplay_compile"]
    if len(jax.devices()) > 1:  # also the plain-jit (SPMD) program, and the ratio
        names += ["devices_selfplay_spmd_jit_moves", "devices_selfplay_spmd_jit_compile",
                  "devices_shard_map_vs_spmd_jit"]  # fmt: skip
    assert [line["name"] for line in lines] == names
    # JAX already runs here, so the child keeps this process's devices.
    assert lines[0]["config"]["devices"] == len(jax.devices())
    assert lines[0]["config"]["batch_size"] == 64 and lines[0]["value"] > 0
    assert lines[0]["config"]["game"] == "connect4"


def test_devices_suite_pairs_counts_into_ratios(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    commands: list[list[str]] = []

    def fake_child(command: list[str], timeout: float) -> list[dict[str, Any]]:
        commands.append(command)
        count = int(command[command.index("--devices-child") + 1])
        net, sims, batch = command[command.index("--child-config") + 1].split(":")
        config = {"net": net, "simulations": int(sims), "batch_size": int(batch), "devices": count}
        return [bench.record("devices_selfplay_moves", 100.0 * count, "moves/s", **config)]

    def fake_children(group: list[list[str]], timeout: float) -> list[dict[str, Any]]:
        together.append(group)
        config = {"devices": 2, "processes": len(group)}
        return [bench.record("devices_selfplay_moves", 150.0, "moves/s", **config)]

    together: list[list[list[str]]] = []
    monkeypatch.setattr(bench, "_run_child", fake_child)
    monkeypatch.setattr(bench, "_run_children", fake_children)
    lines = run_suites(capsys, "devices")
    assert [c[c.index("--devices-child") + 1] for c in commands] == ["1", "2"]
    assert all(c[c.index("--devices-game") + 1] == "connect4" for c in commands)
    (ratio,) = named(lines, "devices_ratio")
    assert ratio["value"] == 2.0 and ratio["config"]["devices"] == 2
    # Two processes of one device each, started together, against one process of two devices.
    (group,) = together
    assert [c[c.index("--child-process-id") + 1] for c in group] == ["0", "1"]
    assert {c[c.index("--child-coordinator") + 1] for c in group} == {group[0][group[0].index("--child-coordinator") + 1]}
    (processes,) = named(lines, "devices_processes_ratio")
    assert processes["value"] == 0.75 and processes["config"]["processes"] == 2


@pytest.mark.slow
def test_devices_suite_runs_each_count_in_a_subprocess(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # A stalled child fails the test after the timeout instead of hanging it.
    lines = run_suites(capsys, "devices", extra=("--child-timeout", "240"))
    moves = named(lines, "devices_selfplay_moves")
    # The children choose their own device count, whatever this process has.
    assert sorted((line["config"]["devices"], line["config"].get("processes", 1)) for line in moves) == [
        (1, 1), (2, 1), (2, 2)
    ]
    (ratio,) = named(lines, "devices_ratio")
    assert ratio["config"]["devices"] == 2 and ratio["config"]["versus"] == 1
    (processes,) = named(lines, "devices_processes_ratio")
    assert processes["value"] > 0 and processes["config"]["processes"] == 2


def test_unknown_suite_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        bench.main(["--suite", "nope"])
    assert "invalid choice: 'nope'" in capsys.readouterr().err


@pytest.mark.long
def test_ringrift_suite_on_one_small_config(capsys: pytest.CaptureFixture[str]) -> None:
    lines = run_suites(capsys, "ringrift", extra=("--ringrift-configs", "square8_2p"))
    assert {line["config"]["game"] for line in lines} == {"ringrift_square8_2p"}
    assert not [line for line in lines if line["name"].endswith("_skipped")]
    (state,) = named(lines, "ringrift_state_bytes")
    assert state["unit"] == "bytes" and 1000 < state["value"] < 100_000
    for name, unit in [("ringrift_random_play", "steps/s"), ("ringrift_random_play_compile", "s"),
                       ("ringrift_random_play_memory", "bytes")]:  # fmt: skip
        (line,) = named(lines, name)
        assert line["unit"] == unit and line["config"]["batch_size"] == 8
    (length,) = named(lines, "ringrift_mean_game_length")
    assert length["config"]["games"] + length["config"]["unfinished"] == 8
    (moves,) = named(lines, "ringrift_selfplay_moves")
    assert moves["unit"] == "moves/s" and moves["config"]["net"] == "2x32"
    (games_rate,) = named(lines, "ringrift_selfplay_games")
    assert games_rate["value"] == pytest.approx(moves["value"] / length["value"])
    assert len(named(lines, "ringrift_selfplay_compile")) == 1


def test_ringrift_configs_are_checked() -> None:
    with pytest.raises(SystemExit, match=r"square9_2p.*square8_2p"):
        bench.main(["--suite", "ringrift", "--ringrift-configs", "square9_2p", *QUICK])


def test_schedule_suite_times_picks_and_program_switches(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert bench.main(["--suite", "schedule", *QUICK]) == 0
    lines = {json.loads(line)["name"]: json.loads(line) for line in capsys.readouterr().out.splitlines()}
    assert set(lines) == {"schedule_pick", "schedule_chunk_seconds", "schedule_switch_cost",
                          "schedule_replay_bytes_dense", "schedule_replay_bytes_sparse",
                          "schedule_opponent_mix_cost"}
    assert lines["schedule_replay_bytes_sparse"]["value"] < lines["schedule_replay_bytes_dense"]["value"]
    assert lines["schedule_pick"]["unit"] == "us" and 0 < lines["schedule_pick"]["value"] < 1e5
    assert lines["schedule_pick"]["config"]["configs"] == 12
    assert lines["schedule_chunk_seconds"]["value"] > 0
    # A difference of two timings: its sign is noise when switching costs nothing.
    assert lines["schedule_switch_cost"]["unit"] == "% of a chunk"
    assert lines["schedule_opponent_mix_cost"]["value"] > 0
    assert lines["schedule_opponent_mix_cost"]["config"]["opponent_mix"] == 0.25


def test_side_suite_measures_models_per_second(capsys: pytest.CaptureFixture[str]) -> None:
    lines = run_suites(capsys, "side")
    assert {(line["name"], line["config"]["kind"]) for line in lines} == {
        (name, kind) for name in ("side_models_per_second", "side_job_seconds")
        for kind in ("value", "move")
    }  # fmt: skip
    assert all(line["config"]["samples"] == 400 for line in lines)
