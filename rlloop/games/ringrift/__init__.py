"""RingRift in JAX: geometry, fixed-shape state, rules, action encoding, conversions.

See ``docs/ringrift.md`` for the action encoding, state layout, parity numbers and
deviations from the reference engine.
"""

from __future__ import annotations

from rlloop.games.ringrift.game import RingRift
from rlloop.games.ringrift.geometry import BOARD_TYPES

__all__ = ["BOARD_TYPES", "RingRift", "register_all"]


def register_all() -> None:
    """Register ``ringrift_<board>_<n>p`` for every board type and 2–4 players."""
    from rlloop.games.base import register

    for board in BOARD_TYPES:
        for n in (2, 3, 4):
            register(f"ringrift_{board}_{n}p",
                     lambda board=board, n=n: RingRift(board, n))
