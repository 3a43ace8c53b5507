"""The benchmark entry point prints well-formed JSON lines (figures are not asserted)."""

from __future__ import annotations

import json

import pytest

from rlloop import bench


def test_env_suite_prints_json_lines(capsys: pytest.CaptureFixture[str]) -> None:
    assert bench.main(["--suite", "env", "--quick", "--seconds", "0.01"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert lines, "no benchmark output"
    for line in lines:
        assert set(line) == {"name", "value", "unit", "config"}
        assert isinstance(line["value"], float) and line["value"] > 0
    rates = [line for line in lines if line["name"] == "env_random_play"]
    assert {line["config"]["game"] for line in rates} == {"tictactoe", "connect4"}
    assert {line["config"]["batch_size"] for line in rates} == {1, 64}


def test_unknown_suite_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        bench.main(["--suite", "nope"])
    assert "invalid choice: 'nope'" in capsys.readouterr().err
