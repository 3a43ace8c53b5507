"""Orbax checkpoints of the training state.

``<run>/checkpoints/train/<step>/`` holds ``state`` (params, optimiser state, step) and
``meta`` (JSON: iteration, game, network shape). Orbax writes each step into a temporary
folder and renames it when complete, so a half-written step is never listed as a checkpoint.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import jax
import orbax.checkpoint as ocp

log = logging.getLogger(__name__)


class TrainCheckpoints:
    """The latest ``keep`` training states of a run.

    Args:
      directory: ``<run>/checkpoints/train``.
      keep: how many of the newest checkpoints to keep.
    """

    def __init__(self, directory: str | Path, *, keep: int) -> None:
        self.directory = Path(directory).resolve()
        self._manager = ocp.CheckpointManager(
            self.directory,
            options=ocp.CheckpointManagerOptions(max_to_keep=keep, create=True),
        )

    def save(self, step: int, state: Any, meta: dict[str, Any]) -> None:
        """Save ``state`` (a pytree) and JSON ``meta`` as ``step`` (asynchronously)."""
        self._manager.save(
            step, args=ocp.args.Composite(state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta))
        )

    def latest_step(self) -> int | None:
        """Newest complete step, or None."""
        return self._manager.latest_step()

    def restore(self, step: int | None = None, *, template: Any = None) -> tuple[Any, dict[str, Any]]:
        """(state, meta) of ``step`` (default newest). ``template``: a pytree of arrays or
        ShapeDtypeStructs (with shardings) giving the restored types and placement."""
        step = self.latest_step() if step is None else step
        if step is None:
            raise FileNotFoundError(f"no checkpoint in {self.directory}")
        abstract = None
        if template is not None:
            abstract = jax.tree.map(
                lambda x: x if isinstance(x, jax.ShapeDtypeStruct) else ocp.utils.to_shape_dtype_struct(x),
                template,
            )
        restored = self._manager.restore(
            step,
            args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract), meta=ocp.args.JsonRestore()),
        )
        return restored["state"], dict(restored["meta"])

    def wait(self) -> None:
        """Block until pending asynchronous saves are on disk."""
        self._manager.wait_until_finished()

    def close(self) -> None:
        self._manager.wait_until_finished()
        self._manager.close()
