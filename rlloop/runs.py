"""A run directory's layout, and the one way rlloop writes files that must never be seen
half-written.

:class:`RunDir` names every path of a run; the loop, agents, ``rlloop.evaluate`` and
``rlloop.status`` use it, so the layout is written down once::

    <run>/config.yaml            the config the run started with
    <run>/ledger.sqlite          models, matches, promotions, events, iterations (all lineages)
    <run>/lineages/<name>/       one game configuration (:class:`LineageDir`):
        config.yaml              its full config (the run's, with its overrides)
        checkpoints/train/       the latest N training checkpoints (Orbax)
        checkpoints/champions/   promoted models (Orbax)
        replay/                  replay-<step>.npz, pending-<step>.npz beside each checkpoint
        side/                    side-trainer models (``rlloop.side``): <kind>-<iteration>.txt
                                 (LightGBM text) and <kind>-<iteration>.json (its report)
    <run>/metrics.jsonl          one JSON object per iteration
    <run>/status.json            what the loop is doing now (``python -m rlloop.status``)
    <run>/tb/                    TensorBoard
    <run>/evaluation/            ``rlloop.evaluate`` reports

A run written before lineages (rlloop before lineages, 2026-12-04) kept its one configuration's
``checkpoints/`` and ``replay/`` at the top; :meth:`RunDir.lineage` then points there.

Writes: :func:`atomic_write_bytes`, :func:`atomic_write_text`, :func:`atomic_write_json` and
:func:`atomic_savez` write
to a temporary file beside the target and rename it over the target (atomic on POSIX), so a
reader or a crash sees the old file or the new one, never a part. :func:`json_default` is
the one encoder of numpy and JAX values for ``json.dumps``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

__all__ = ["LineageDir", "RunDir", "atomic_savez", "atomic_write_bytes", "atomic_write_json",
           "atomic_write_text", "json_default"]


class LineageDir:
    """The paths of one lineage (game configuration) of a run."""

    def __init__(self, root: str | Path, name: str) -> None:
        self.root = Path(root)
        self.name = name

    def __repr__(self) -> str:
        return f"LineageDir({str(self.root)!r}, {self.name!r})"

    @property
    def config(self) -> Path:
        return self.root / "config.yaml"

    @property
    def train_checkpoints(self) -> Path:
        return self.root / "checkpoints" / "train"

    @property
    def champion_checkpoints(self) -> Path:
        return self.root / "checkpoints" / "champions"

    @property
    def replay_dir(self) -> Path:
        return self.root / "replay"

    def replay_file(self, step: int, process: int | None = None) -> Path:
        """The replay saved with checkpoint ``step``; in a multi-process run each process has
        its own (``process``: its index)."""
        return self.replay_dir / f"replay-{'' if process is None else f'p{process}-'}{step}.npz"

    def pending_file(self, step: int, process: int | None = None) -> Path:
        return self.replay_dir / f"pending-{'' if process is None else f'p{process}-'}{step}.npz"

    @property
    def side_dir(self) -> Path:
        """Side-trainer models and their reports (``rlloop.side``)."""
        return self.root / "side"


class RunDir:
    """The paths of one run directory (nothing is created until asked)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"RunDir({str(self.root)!r})"

    def __fspath__(self) -> str:
        return str(self.root)

    @property
    def config(self) -> Path:
        return self.root / "config.yaml"

    @property
    def ledger(self) -> Path:
        return self.root / "ledger.sqlite"

    @property
    def lineages_dir(self) -> Path:
        return self.root / "lineages"

    def is_legacy(self) -> bool:
        """A run written before lineages: its checkpoints at the top, no ``lineages/``."""
        return (self.root / "checkpoints").is_dir() and not self.lineages_dir.is_dir()

    def lineage(self, name: str) -> LineageDir:
        """The folder of lineage ``name`` (the top of a run written before lineages)."""
        if self.is_legacy():
            return LineageDir(self.root, name)
        return LineageDir(self.lineages_dir / name, name)

    def lineage_names(self) -> list[str]:
        """The lineages this run has written (sorted); [] for none yet or an old run."""
        if not self.lineages_dir.is_dir():
            return []
        return sorted(p.name for p in self.lineages_dir.iterdir() if p.is_dir())

    @property
    def metrics(self) -> Path:
        return self.root / "metrics.jsonl"

    @property
    def status(self) -> Path:
        return self.root / "status.json"

    @property
    def learning_health(self) -> Path:
        return self.root / "learning_health.json"

    @property
    def learning_health_history(self) -> Path:
        return self.root / "learning_health.jsonl"

    @property
    def plots(self) -> Path:
        return self.root / "plots"

    @property
    def tensorboard(self) -> Path:
        return self.root / "tb"

    @property
    def evaluation(self) -> Path:
        return self.root / "evaluation"

    def is_run(self) -> bool:
        """Whether this looks like an rlloop run directory (it has its config.yaml)."""
        return self.config.is_file()


def json_default(value: Any) -> Any:
    """``json.dumps(..., default=json_default)``: numpy/JAX scalars and arrays as the plain
    numbers and lists they hold; anything else is refused with its type named."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"value {value!r} of type {type(value).__name__} is not JSON data")


def _temporary(path: Path) -> Path:
    # Beside the target (same filesystem, so the rename is atomic), unique per process.
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def atomic_write_bytes(path: str | Path, data: bytes, *, durable: bool = True) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename; ``durable=False``
    skips the fsync (readers still never see a part; a power cut may keep the old file)."""
    path = Path(path)
    temporary = _temporary(path)
    try:
        with temporary.open("wb") as handle:
            handle.write(data)
            if durable:
                handle.flush()
                os.fsync(handle.fileno())
        temporary.replace(path)
    finally:
        temporary.unlink(missing_ok=True)


def atomic_write_text(path: str | Path, text: str, *, durable: bool = True) -> None:
    """``text`` (UTF-8) written atomically (see :func:`atomic_write_bytes`)."""
    atomic_write_bytes(path, text.encode("utf-8"), durable=durable)


def atomic_write_json(
    path: str | Path, payload: Any, *, indent: int | None = 2, allow_nan: bool = True,
    durable: bool = True,
) -> None:  # fmt: skip
    """``payload`` as JSON (numpy values allowed), written atomically."""
    text = json.dumps(payload, indent=indent, allow_nan=allow_nan, default=json_default)
    atomic_write_text(path, text + "\n", durable=durable)


def atomic_savez(path: str | Path, **arrays: Any) -> None:
    """``numpy.savez`` to ``path``, written atomically."""
    import numpy as np

    path = Path(path)
    temporary = _temporary(path).with_suffix(".npz")  # savez appends .npz to other names
    try:
        with temporary.open("wb") as handle:
            np.savez(handle, **arrays)
            handle.flush()
            os.fsync(handle.fileno())
        temporary.replace(path)
    finally:
        temporary.unlink(missing_ok=True)
