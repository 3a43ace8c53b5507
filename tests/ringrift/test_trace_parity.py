"""Trace parity against the reference engine: legal-action sets and states at every decision.

Default run: the first ``SAMPLE`` games of each small-board configuration and every game of
``traces/regressions/`` (games a JAX engine matched to the main traces still got wrong). The
full replay (every game of every configuration, including square19 and hexagonal) is marked
slow.
"""

from __future__ import annotations

import pytest
from ringrift_trace_replay import (
    CONFIGS,
    REGRESSIONS,
    SHARED,
    TRACES,
    iter_games,
    iter_trace_file,
    regression_config,
    replay,
    run,
)

pytestmark = pytest.mark.skipif(not TRACES.is_dir(), reason=f"{SHARED} is absent")

SMALL = [c for c in CONFIGS if c.startswith(("square8", "hex8"))]
BIG = [c for c in CONFIGS if c not in SMALL]
SAMPLE = 2
# named, not globbed, so that a missing file fails instead of shrinking the test
REGRESSION_FILES = (
    "hex8_2p.recovery_stack_strike.jsonl.gz",  # hex8_2p_seed7088, decision 163
    "hex8_3p.recovery_stack_strike.jsonl.gz",  # hex8_3p_seed7096, decision 176
)


@pytest.mark.parametrize("config", SMALL)
def test_trace_sample_exact(config: str) -> None:
    for record in iter_games(config, SAMPLE):
        rep = replay(config, record)
        assert rep.ok, (rep.game_id, rep.failures)
        assert rep.passed == record["numSteps"] > 0


@pytest.mark.parametrize("name", REGRESSION_FILES)
def test_regression_games_exact(name: str) -> None:
    path = REGRESSIONS / name
    records = list(iter_trace_file(path))
    assert records, f"{path} holds no game"
    for record in records:
        rep = replay(regression_config(path), record)
        assert rep.ok, (rep.game_id, rep.failures)
        assert rep.passed == record["numSteps"] > 0


@pytest.mark.slow
@pytest.mark.parametrize("config", SMALL + BIG)
def test_trace_full_exact(config: str) -> None:
    dp, dt, gp, gt, bad = run(config)
    assert (dp, gp) == (dt, gt), [(r.game_id, r.failures[:2]) for r in bad[:3]]
