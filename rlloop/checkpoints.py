"""Orbax checkpoints: the training state (latest N) and promoted champions (best N).

``<run>/checkpoints/train/<iteration>/`` holds ``state`` (params, optimiser state, step),
``selfplay`` (the in-flight self-play games) and ``meta`` (JSON: iteration, game, network
shape, RNG state). ``<run>/checkpoints/champions/<iteration>/`` holds a champion's ``params``
and ``meta``. The two live in separate managers so that pruning one never touches the other.

Orbax writes each step into a temporary folder and renames it when complete, so a half-written
step is never listed. A listed step that still fails to restore (a damaged disk, a kill at the
worst moment) is skipped by the loop's resume in favour of the previous one, which it reports
(``rlloop.loop.Loop._resume``).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import jax
import orbax.checkpoint as ocp


class _QuietSaves(logging.Filter):
    """Orbax warns through absl when a save starts while an earlier one (of another manager:
    training state, champions) still writes; rlloop waits for each save, so the line only
    says a disk was slow, on nearly every save on a busy machine. Dropped; others stay."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.getMessage()).startswith("Waiting for previous save to complete")


logging.getLogger("absl").addFilter(_QuietSaves())


class CheckpointError(RuntimeError):
    """A checkpoint exists but does not fit this run (another game or network shape)."""


def _abstract(template: Any) -> Any:
    return jax.tree.map(
        lambda x: x if isinstance(x, jax.ShapeDtypeStruct) else ocp.utils.to_shape_dtype_struct(x),
        template,
    )


class _Manager:
    """Shared save/restore of named pytree items plus JSON ``meta`` per step."""

    def __init__(self, directory: str | Path, *, max_to_keep: int | None) -> None:
        self.directory = Path(directory).resolve()
        self._manager = ocp.CheckpointManager(
            self.directory,
            options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True),
        )

    def save(self, step: int, items: dict[str, Any], meta: dict[str, Any]) -> None:
        """Save pytrees ``items`` and JSON ``meta`` as ``step`` (asynchronously)."""
        arguments = {name: ocp.args.StandardSave(tree) for name, tree in items.items()}
        self._manager.save(step, args=ocp.args.Composite(meta=ocp.args.JsonSave(meta), **arguments))

    def steps(self) -> list[int]:
        """Complete steps, oldest first."""
        return sorted(self._manager.all_steps())

    def latest_step(self) -> int | None:
        """Newest complete step, or None."""
        return self._manager.latest_step()

    def restore(self, step: int, templates: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """(items, meta) of ``step``; ``templates`` give each item's structure, dtypes and
        shardings (arrays or ShapeDtypeStructs), so optimiser state keeps its types."""
        arguments = {name: ocp.args.StandardRestore(_abstract(t)) for name, t in templates.items()}
        try:
            restored = self._manager.restore(
                step, args=ocp.args.Composite(meta=ocp.args.JsonRestore(), **arguments)
            )
        except (ValueError, TypeError, KeyError) as error:
            raise CheckpointError(
                f"checkpoint {self.directory / str(step)} does not restore (damaged, or another "
                f"game or network shape): {error}"
            ) from error
        return {name: restored[name] for name in templates}, dict(restored["meta"])

    def restore_meta(self, step: int) -> dict[str, Any]:
        """Only the JSON ``meta`` of ``step``."""
        restored = self._manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))
        return dict(restored["meta"])

    def delete(self, step: int) -> None:
        self._manager.delete(step)

    def wait(self) -> None:
        """Block until pending asynchronous saves are on disk."""
        self._manager.wait_until_finished()

    def close(self) -> None:
        self._manager.wait_until_finished()
        self._manager.close()


class TrainCheckpoints(_Manager):
    """The latest ``keep`` training checkpoints of a run (``<run>/checkpoints/train``)."""

    def __init__(self, directory: str | Path, *, keep: int) -> None:
        super().__init__(directory, max_to_keep=keep)


class ChampionCheckpoints(_Manager):
    """Promoted champions (``<run>/checkpoints/champions``), pruned by :meth:`prune`.

    Orbax's own ``max_to_keep`` is not used: combined with ``best_fn`` it can delete the newest
    step, and the current champion must never be deleted.
    """

    def __init__(self, directory: str | Path) -> None:
        super().__init__(directory, max_to_keep=None)

    def prune(self, elo_by_step: dict[int, float], *, keep: int, protect: set[int]) -> list[int]:
        """Delete all but the ``keep`` best-rated steps and those in ``protect``; returns the
        deleted steps."""
        ranked = sorted(self.steps(), key=lambda step: elo_by_step.get(step, float("-inf")), reverse=True)
        doomed = [step for step in ranked[keep:] if step not in protect]
        for step in doomed:
            self.delete(step)
        return doomed
