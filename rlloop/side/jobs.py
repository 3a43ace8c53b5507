"""The side trainers' types: a job, its result, the ledger payload, the model files' names.

JAX-free (the worker processes import this module): numpy and the standard library only.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

import numpy as np

# Kinds of job a worker runs. ``value``: LightGBM regressor of the final outcome from the
# mover's view; ``move``: LightGBM multiclass of the action search preferred; ``sleep``: does
# nothing for ``sleep_seconds`` (a diagnostic: the pool's overhead, and a job that hangs).
JOB_KINDS = ("value", "move", "sleep")
MODEL_KINDS = ("value", "move")

SIDE_MODEL_EVENT = "SIDE_MODEL"  # ledger event kind of every finished side job

# A model's holdout loss above its training loss by more than this is an overfitting warning
# (the original system's threshold).
OVERFIT_GAP_WARNING = 0.10


@dataclasses.dataclass(frozen=True)
class SideSnapshot:
    """Training data cut from one lineage's replay at one iteration (numpy, host).

    ``features``: float32 [M, F], ``Game.observation_features`` of each sample's observation
    (the mover's view); ``value``: float32 [M], the final outcome from the mover's view
    (replay's ``value[:, 0]``, in [-1, 1]); ``move``: int32 [M], the action search preferred
    (argmax of the policy target), -1 where the sample has no policy target (a forced move).
    """

    game: str
    iteration: int
    num_actions: int
    features: np.ndarray  # [M, F] float32
    value: np.ndarray  # [M] float32
    move: np.ndarray  # [M] int32

    def __post_init__(self) -> None:
        count = len(self.features)
        if self.features.ndim != 2 or self.value.shape != (count,) or self.move.shape != (count,):
            raise ValueError(
                f"snapshot of {self.game}: features {self.features.shape}, value "
                f"{self.value.shape} and move {self.move.shape} must be [M, F], [M] and [M]"
            )

    @property
    def num_samples(self) -> int:
        return len(self.features)


@dataclasses.dataclass(frozen=True)
class TrainerSettings:
    """LightGBM and evaluation settings of one job (the ``side`` config's values)."""

    trees: int = 100
    folds: int = 3
    holdout_fraction: float = 0.1
    learning_rate: float = 0.1
    num_leaves: int = 31
    max_move_classes: int = 32
    seed: int = 0


@dataclasses.dataclass(frozen=True)
class SideJob:
    """One unit of work for a side worker.

    ``out_dir``: where the model and its report go (the lineage's ``side/`` folder);
    ``timeout_seconds``: the pool kills the worker running it after this long.
    """

    kind: str
    lineage: str
    iteration: int
    out_dir: str
    snapshot: SideSnapshot | None = None
    settings: TrainerSettings = dataclasses.field(default_factory=TrainerSettings)
    timeout_seconds: float = 60.0
    sleep_seconds: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in JOB_KINDS:
            raise ValueError(f"side job kind {self.kind!r}; valid: {', '.join(JOB_KINDS)}")
        if self.kind in MODEL_KINDS and self.snapshot is None:
            raise ValueError(f"a {self.kind} job needs a snapshot (lineage {self.lineage!r})")
        if not self.timeout_seconds > 0:
            raise ValueError(f"timeout_seconds={self.timeout_seconds} must be > 0")

    @property
    def job_id(self) -> str:
        return f"{self.lineage}/{self.kind}-{self.iteration}"


@dataclasses.dataclass(frozen=True)
class SideResult:
    """What became of a job. ``status``: ``ok`` or ``failed`` (``reason`` says why: an
    exception, ``timeout after N s``, ``worker died ...``).

    ``model_path`` / ``report_path``: the LightGBM text model and its JSON report (None for a
    failed job or a ``sleep``). ``metrics``: k-fold, train and holdout figures (see
    :mod:`rlloop.side.trainers`). ``models_trained``: boosters fitted (k folds + the final
    one). ``training_seconds``: inside LightGBM; ``seconds``: the whole job, wall clock.
    """

    job_id: str
    kind: str
    lineage: str
    iteration: int
    status: str
    reason: str = ""
    model_path: str | None = None
    report_path: str | None = None
    metrics: dict[str, float] = dataclasses.field(default_factory=dict)
    models_trained: int = 0
    training_seconds: float = 0.0
    seconds: float = 0.0
    started_at: float = 0.0  # time.time() when the worker (or the pool) started it
    finished_at: float = 0.0
    worker_pid: int = 0

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def overfit_warning(self) -> bool:
        """The model's holdout loss exceeds its training loss by more than the threshold."""
        return bool(self.metrics.get("overfit_warning", 0.0))

    def ledger_payload(self) -> dict[str, Any]:
        """The ``SIDE_MODEL`` ledger event's payload (plain JSON values)."""
        return {
            "job": self.job_id, "kind": self.kind, "lineage": self.lineage,
            "iteration": self.iteration, "status": self.status, "reason": self.reason,
            "model": self.model_path, "report": self.report_path,
            "metrics": {name: float(value) for name, value in self.metrics.items()},
            "overfit_warning": self.overfit_warning, "models_trained": self.models_trained,
            "training_seconds": round(self.training_seconds, 4),
            "seconds": round(self.seconds, 4),
        }  # fmt: skip


def failed(job: SideJob, reason: str, *, started_at: float, finished_at: float,
           worker_pid: int = 0) -> SideResult:  # fmt: skip
    """A failed result for ``job``."""
    return SideResult(
        job_id=job.job_id, kind=job.kind, lineage=job.lineage, iteration=job.iteration,
        status="failed", reason=reason, seconds=max(finished_at - started_at, 0.0),
        started_at=started_at, finished_at=finished_at, worker_pid=worker_pid,
    )  # fmt: skip


# ------------------------------------------------------------------------ model files
_MODEL_NAME = re.compile(r"^(value|move)-(\d+)\.txt$")


def model_path(side_dir: str | Path, kind: str, iteration: int) -> Path:
    """``<side_dir>/<kind>-<iteration>.txt``: a LightGBM model in its text format."""
    return Path(side_dir) / f"{kind}-{iteration}.txt"


def report_path(side_dir: str | Path, kind: str, iteration: int) -> Path:
    """``<side_dir>/<kind>-<iteration>.json``: the model's report (metrics, importances,
    classes). Written before the model, so a model on disk always has its report."""
    return Path(side_dir) / f"{kind}-{iteration}.json"


def model_iteration(path: str | Path) -> int:
    """The iteration in a model file's name (``value-40.txt`` -> 40)."""
    match = _MODEL_NAME.match(Path(path).name)
    if not match:
        raise ValueError(f"{path} is not a side model file name (<value|move>-<iteration>.txt)")
    return int(match.group(2))


def newest_model_files(side_dir: str | Path) -> dict[str, Path]:
    """The newest model of each kind in ``side_dir`` (by iteration), e.g.
    ``{"value": .../value-40.txt, "move": .../move-40.txt}``; kinds with none are absent.
    Every file found is whole (models are written atomically)."""
    newest: dict[str, tuple[int, Path]] = {}
    directory = Path(side_dir)
    if not directory.is_dir():
        return {}
    for path in directory.iterdir():
        match = _MODEL_NAME.match(path.name)
        if match:
            kind, iteration = match.group(1), int(match.group(2))
            if kind not in newest or iteration > newest[kind][0]:
                newest[kind] = (iteration, path)
    return {kind: path for kind, (_, path) in sorted(newest.items())}


def model_jobs(snapshot: SideSnapshot, *, lineage: str, out_dir: str | Path,
               settings: TrainerSettings, timeout_seconds: float) -> list[SideJob]:  # fmt: skip
    """The value job and the move job of one snapshot (models go to ``out_dir``)."""
    return [
        SideJob(kind=kind, lineage=lineage, iteration=snapshot.iteration, out_dir=str(out_dir),
                snapshot=snapshot, settings=settings, timeout_seconds=timeout_seconds)
        for kind in MODEL_KINDS
    ]  # fmt: skip


def settings_from_config(side: Any) -> TrainerSettings:
    """``TrainerSettings`` from the ``side`` config node."""
    return TrainerSettings(
        trees=int(side.trees), folds=int(side.folds),
        holdout_fraction=float(side.holdout_fraction), learning_rate=float(side.learning_rate),
        num_leaves=int(side.num_leaves), max_move_classes=int(side.max_move_classes),
        seed=int(side.seed),
    )  # fmt: skip
