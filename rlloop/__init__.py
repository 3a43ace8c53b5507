"""rlloop: a JAX-native, vectorised AlphaZero research framework.

The public API for notebooks and tools::

    import rlloop
    config = rlloop.compose(["game=tictactoe", "loop=smoke"])
    rlloop.Loop(config).run(iterations=2)
    agent = rlloop.load_agent("outputs/...")
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["Agent", "Loop", "compose", "load_agent"]

if TYPE_CHECKING:
    from rlloop.agent import Agent, load_agent
    from rlloop.config import compose
    from rlloop.loop import Loop


def __getattr__(name: str) -> Any:
    # Imported lazily so that `import rlloop` stays cheap and leaves JAX unconfigured.
    if name in ("Agent", "load_agent"):
        from rlloop import agent

        return getattr(agent, name)
    if name == "compose":
        from rlloop.config import compose

        return compose
    if name == "Loop":
        from rlloop.loop import Loop

        return Loop
    raise AttributeError(f"module 'rlloop' has no attribute {name!r}")
