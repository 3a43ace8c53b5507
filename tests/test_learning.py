"""The loop learns: `python -m rlloop.run +experiment=tictactoe` reaches perfect play.

The check is exhaustive: every reachable non-terminal tic-tac-toe position (4,520, either
player to move) is solved by a minimax written here, independent of rlloop, and the trained
agent's greedy move (the policy head's argmax, no search) must be optimal in all of them.
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import rlloop

LINES = [(0, 1, 2), (3, 4, 5), (6, 7, 8), (0, 3, 6), (1, 4, 7), (2, 5, 8), (0, 4, 8), (2, 4, 6)]
Board = tuple[int, ...]  # 9 cells: 0 empty, 1 first player, -1 second player


def winner(board: Board) -> int:
    for a, b, c in LINES:
        if board[a] and board[a] == board[b] == board[c]:
            return board[a]
    return 0


@functools.cache
def minimax(board: Board, mover: int) -> int:
    """Game value for ``mover`` (+1 win, 0 draw, -1 loss) with perfect play."""
    if found := winner(board):
        return 1 if found == mover else -1
    if 0 not in board:
        return 0
    return max(-minimax(child(board, cell, mover), -mover) for cell in range(9) if not board[cell])


def child(board: Board, cell: int, mover: int) -> Board:
    return (*board[:cell], mover, *board[cell + 1:])


def reachable_positions() -> dict[Board, tuple[int, tuple[int, ...]]]:
    """Every reachable non-terminal position -> (mover, one move sequence reaching it)."""
    found: dict[Board, tuple[int, tuple[int, ...]]] = {}

    def walk(board: Board, mover: int, moves: tuple[int, ...]) -> None:
        if winner(board) or 0 not in board or board in found:
            return
        found[board] = (mover, moves)
        for cell in range(9):
            if not board[cell]:
                walk(child(board, cell, mover), -mover, (*moves, cell))

    walk((0,) * 9, 1, ())
    return found


def test_minimax_oracle_sanity() -> None:
    positions = reachable_positions()
    assert len(positions) == 4520
    assert minimax((0,) * 9, 1) == 0  # perfect play draws
    assert minimax((1, 1, 0, -1, -1, 0, 0, 0, 0), 1) == 1  # X completes the top row


@pytest.mark.long
def test_tictactoe_experiment_learns_perfect_play(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "rlloop.run", "+experiment=tictactoe", f"hydra.run.dir={run_dir}"],
        capture_output=True, text=True, timeout=600, env={**os.environ},
    )  # fmt: skip
    wall_seconds = time.perf_counter() - start
    assert result.returncode == 0, result.stderr[-3000:]
    assert wall_seconds < 300, f"learning took {wall_seconds:.0f}s, budget 300s"

    agent = rlloop.load_agent(run_dir)
    game = agent.game
    positions = reachable_positions()
    step = jax.jit(game.step)
    states, optimal = [], []
    for board, (mover, moves) in positions.items():
        state = game.init(jax.random.key(0))
        for move in moves:
            state = step(state, jnp.int32(move))
        states.append(state)
        values = [
            -minimax(child(board, cell, mover), -mover) if not board[cell] else -2 for cell in range(9)
        ]
        optimal.append([v == max(values) for v in values])
    batch = jax.tree.map(lambda *leaves: jnp.stack(leaves), *states)
    chosen = np.asarray(agent.act(batch, jax.random.key(0), num_simulations=0))
    mistakes = [
        game.render(s) for s, ok, a in zip(states, optimal, chosen, strict=True) if not ok[a]
    ]
    assert not mistakes, f"{len(mistakes)} non-optimal greedy moves, e.g.\n" + "\n\n".join(mistakes[:3])
