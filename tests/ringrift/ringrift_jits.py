"""Shared, once-per-configuration jitted rule functions for the RingRift tests.

Tests that check the rules (traces, fixtures, worked examples) drive ``Rules.step``
directly — one compilation per configuration shared by every test module — and keep the
``Game`` wrapper for the protocol tests.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from rlloop.games.ringrift.engine import RingRiftBoard, Rules


@functools.cache
def rules_for(config: str) -> Rules:
    board, players = config.rsplit("_", 1)
    return Rules(board, int(players[0]))


@functools.cache
def trusting_step(config: str):
    """jit of ``Rules.step(board, player, action, cells)`` (no legality check, R38)."""
    rules = rules_for(config)
    return jax.jit(lambda b, p, a, c: rules.step(b, p, a, c))


@functools.cache
def legal_fn(config: str):
    """jit of the legal mask of ``player`` (1-based) on ``board``."""
    rules = rules_for(config)
    return jax.jit(lambda b, p: rules.legal_mask(b, p, rules.analyze(b, p)))


@dataclasses.dataclass
class Position:
    """A position as the tests see it (fields named as in ``rlloop.games.base.State``)."""

    board: RingRiftBoard
    current_player: int  # 0-based
    legal_action_mask: np.ndarray  # [num_actions] bool
    terminated: bool = False


def load(config: str, board: RingRiftBoard, player: int) -> Position:
    """Position of ``board`` with seat ``player`` (1-based) to move."""
    mask = np.asarray(legal_fn(config)(board, jnp.int32(player)))
    return Position(board, player - 1, mask)


def start(config: str) -> Position:
    return load(config, rules_for(config).initial_board(), 1)


def play(config: str, pos: Position, action: int, cells: np.ndarray | None = None) -> Position:
    """Apply ``action`` for the player to move (legality is the caller's business)."""
    rules = rules_for(config)
    if cells is None:
        cells = np.zeros(rules.N1, bool)
    board, p, mask, term = trusting_step(config)(
        pos.board, jnp.int32(pos.current_player + 1), jnp.int32(action), jnp.asarray(cells))
    return Position(board, int(p) - 1, np.asarray(mask), bool(term))
