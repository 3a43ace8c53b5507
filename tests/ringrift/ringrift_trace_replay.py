"""Trace replay against the reference engine's recorded games (traces/*.jsonl.gz).

Used by ``test_trace_parity.py`` and runnable as a script for the full report::

    .venv/bin/python tests/ringrift/ringrift_trace_replay.py [config ...] [--games N]

At every decision k of a trace game it checks that

1. the engine's state equals ``states[k]`` (stacks with ring order, markers, collapsed cells,
   per-player counters, TRE, phase, current player, chain/must-move cells, stack insertion
   order),
2. the engine's legal-action set equals the set of actions of ``legalMoves[k]`` (every
   reference move mapped through ``convert.move_to_action``),

then applies the chosen move. A decision passes when both hold; after a mismatch the engine
state is re-synchronised from the JSON state (``board_from_json`` with the move history and
LPS tracker) so that later decisions are still counted. A game passes when every decision
passes and the final state (including the winner) matches ``finalState``.
"""

from __future__ import annotations

import dataclasses
import functools
import gzip
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from ringrift_jits import load, play, rules_for, start

from rlloop.games.ringrift import RingRift
from rlloop.games.ringrift import convert as cv

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared"
TRACES = SHARED / "data" / "ringrift" / "traces"
REGRESSIONS = TRACES / "regressions"  # one game per file, named <config>.<what>.jsonl.gz
CONFIGS = tuple(f"{b}_{n}p" for b in ("square8", "hex8", "square19", "hexagonal")
                for n in (2, 3, 4))


@functools.cache
def game_for(config: str) -> RingRift:
    board, players = config.rsplit("_", 1)
    return RingRift(board, int(players[0]))


def iter_games(config: str, limit: int | None = None) -> Iterator[dict]:
    yield from iter_trace_file(TRACES / f"{config}.jsonl.gz", limit)


def iter_trace_file(path: Path, limit: int | None = None) -> Iterator[dict]:
    """The game records of one trace file (JSON Lines, gzip), at most ``limit``."""
    with gzip.open(path, "rt") as fh:
        for i, line in enumerate(fh):
            if limit is not None and i >= limit:
                return
            yield json.loads(line)


def regression_config(path: Path) -> str:
    """The configuration of a regression trace file: its name up to the first dot."""
    return path.name.split(".", 1)[0]


@dataclasses.dataclass
class GameReport:
    game_id: str
    decisions: int = 0
    passed: int = 0
    final_ok: bool = False
    failures: list = dataclasses.field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.final_ok and self.passed == self.decisions


def replay(config: str, record: dict, max_failures: int = 5) -> GameReport:
    """Replay one trace game; see the module docstring."""
    rules = rules_for(config)
    pos = start(config)
    states = [*record["states"], record["finalState"]]
    history: list[dict] = []
    rep = GameReport(record["gameId"], decisions=record["numSteps"])
    for k in range(record["numSteps"]):
        ref = states[k]
        player = pos.current_player + 1
        problems = cv.compare_board(rules, pos.board, player, ref)
        if problems:
            rep.failures.append((k, "state", problems))
            board, player = cv.board_from_json(rules, ref, history, record["lps"][k])
            pos = load(config, board, player)
        mine = set(np.flatnonzero(pos.legal_action_mask).tolist())
        try:
            ref_actions = {cv.move_to_action(rules, pos.board, player, m)
                           for m in record["legalMoves"][k]}
        except ValueError as err:
            ref_actions = None
            rep.failures.append((k, "convert", str(err)))
        move = record["legalMoves"][k][record["chosen"][k]]
        if ref_actions is not None and mine == ref_actions:
            if not problems:
                rep.passed += 1
        elif ref_actions is not None:
            rep.failures.append((k, "legal", {"extra": sorted(mine - ref_actions)[:5],
                                              "missing": sorted(ref_actions - mine)[:5]}))
        pos = play(config, pos, cv.move_to_action(rules, pos.board, player, move))
        history.append(move)
        if len(rep.failures) >= max_failures:
            rep.decisions = k + 1
            return rep
    final_problems = cv.compare_board(rules, pos.board, pos.current_player + 1,
                                      record["finalState"])
    if not pos.terminated:
        final_problems.append("not terminated")
    rep.final_ok = not final_problems
    if final_problems:
        rep.failures.append(("final", "state", final_problems))
    return rep


def run(config: str, limit: int | None = None) -> tuple[int, int, int, int, list]:
    """(decisions passed, decisions, games passed, games, failing reports)."""
    dp = dt = gp = gt = 0
    bad = []
    for record in iter_games(config, limit):
        rep = replay(config, record)
        dp, dt, gt = dp + rep.passed, dt + rep.decisions, gt + 1
        gp += rep.ok
        if not rep.ok:
            bad.append(rep)
    return dp, dt, gp, gt, bad


def main(argv: list[str]) -> None:
    limit = None
    if "--games" in argv:
        i = argv.index("--games")
        limit = int(argv[i + 1])
        argv = argv[:i] + argv[i + 2:]
    configs = argv or list(CONFIGS)
    for config in configs:
        t0 = time.time()
        dp, dt, gp, gt, bad = run(config, limit)
        print(f"{config}: decisions {dp}/{dt}, games {gp}/{gt} ({time.time() - t0:.0f}s)",
              flush=True)
        for rep in bad[:5]:
            print("   ", rep.game_id, rep.failures[:3], flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
