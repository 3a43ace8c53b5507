"""LightGBM value and move models fitted on a replay snapshot (runs in the side workers).

JAX-free: numpy, LightGBM and the standard library, so a worker process stays light.

Each model job splits its snapshot once (seeded by the job's seed and iteration):

- a **holdout** slice (``holdout_fraction`` of the samples, at least one) that no model of
  the job trains on;
- the rest is the **training** part: ``folds`` models (k-fold) each fit on k-1 folds and
  predict the fold left out, which gives out-of-fold (``cv_*``) metrics; then the **final**
  model fits the whole training part and is the one saved. Its loss on the training part
  against the holdout's is the overfitting check: ``overfit_gap`` = holdout loss - train
  loss, and ``overfit_warning`` = 1 when it exceeds ``OVERFIT_GAP_WARNING`` (0.10, the
  original system's threshold; an absolute gap in the model's own loss: squared error for
  the value, log-loss for the move).

Replay samples are positions of whole games, so positions of one game (and positions that
recur, like the opening) can sit on both sides of a split: the holdout measures fitting the
replay's distribution, not generalisation to unseen games.

**Value model**: L2 regression of the final outcome from the mover's view (in [-1, 1]).
Metrics: ``cv_mse``, ``cv_correlation``, ``train_mse``, ``holdout_mse``,
``holdout_mse_of_mean`` (predicting the training mean: the bar to beat), ``holdout_ece``
(calibration of the holdout predictions, :mod:`rlloop.side.calibration`).

**Move model**: multiclass over the actions search preferred (argmax of the policy target),
restricted to the ``max_move_classes`` actions most often preferred in the training part
(every action of tic-tac-toe and Connect Four; RingRift's thousands of action ids would cost
a tree per class per round). Samples preferring another action, and forced moves (no policy
target), are left out; ``move_coverage`` is the share of samples with a target that the
classes cover. Metrics: ``cv_accuracy``, ``cv_log_loss``, ``train_log_loss``,
``holdout_log_loss``, ``holdout_accuracy``, ``holdout_log_loss_of_prior`` (predicting the
class frequencies).

Files: the report (``<kind>-<iteration>.json``: metrics, importances by gain and by split
count per feature, the move model's classes, sizes, seconds) is written first, then the model
(``<kind>-<iteration>.txt``, LightGBM's text format), both atomically, so a model on disk is
always whole and always has its report.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from rlloop.runs import atomic_write_json, atomic_write_text
from rlloop.side import calibration
from rlloop.side.jobs import (
    OVERFIT_GAP_WARNING,
    SideJob,
    SideResult,
    SideSnapshot,
    TrainerSettings,
    model_path,
    report_path,
)

MIN_SAMPLES_PER_FOLD = 4
LOG_LOSS_FLOOR = 1e-15


def run_model_job(job: SideJob, *, threads: int) -> SideResult:
    """Fit ``job``'s model (``value`` or ``move``) and write it with its report under
    ``job.out_dir``. Raises ValueError for a snapshot too small or too uniform to fit."""
    started = time.time()
    assert job.snapshot is not None  # checked by SideJob
    settings = job.settings
    fit = _fit_value if job.kind == "value" else _fit_move
    booster, metrics, extra, training_seconds = fit(job.snapshot, settings, threads=threads,
                                                    seed=settings.seed + job.iteration)  # fmt: skip
    gain = booster.feature_importance(importance_type="gain")
    split = booster.feature_importance(importance_type="split")
    out_dir = Path(job.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model_file = model_path(out_dir, job.kind, job.iteration)
    report_file = report_path(out_dir, job.kind, job.iteration)
    finished = time.time()
    report = {
        "kind": job.kind, "lineage": job.lineage, "iteration": job.iteration,
        "game": job.snapshot.game, "num_actions": job.snapshot.num_actions,
        "num_features": int(job.snapshot.features.shape[1]),
        "samples": job.snapshot.num_samples, "model": model_file.name,
        "settings": {"trees": settings.trees, "folds": settings.folds,
                     "holdout_fraction": settings.holdout_fraction,
                     "learning_rate": settings.learning_rate, "num_leaves": settings.num_leaves,
                     "max_move_classes": settings.max_move_classes, "threads": threads},
        "metrics": metrics, "models_trained": settings.folds + 1,
        "training_seconds": training_seconds, "seconds": finished - started,
        "importances": {"gain": gain.tolist(), "split": split.tolist(),
                        "top_by_gain": _top_features(gain, split)},
        **extra,
    }  # fmt: skip
    atomic_write_json(report_file, report)  # before the model: a model always has its report
    atomic_write_text(model_file, booster.model_to_string())
    finished = time.time()
    return SideResult(
        job_id=job.job_id, kind=job.kind, lineage=job.lineage, iteration=job.iteration,
        status="ok", model_path=str(model_file), report_path=str(report_file), metrics=metrics,
        models_trained=settings.folds + 1, training_seconds=training_seconds,
        seconds=finished - started, started_at=started, finished_at=finished,
    )  # fmt: skip


def _top_features(gain: np.ndarray, split: np.ndarray, count: int = 20) -> list[dict[str, Any]]:
    order = np.argsort(-gain, kind="stable")[:count]
    return [{"feature": int(i), "gain": float(gain[i]), "split": int(split[i])}
            for i in order if gain[i] > 0]  # fmt: skip


# --------------------------------------------------------------------------- splitting
def split_indices(count: int, *, folds: int, holdout_fraction: float,
                  seed: int) -> tuple[np.ndarray, list[np.ndarray]]:  # fmt: skip
    """(holdout indices, ``folds`` disjoint index arrays covering the rest), from one seeded
    permutation of ``range(count)``. Raises ValueError when a fold would hold fewer than
    ``MIN_SAMPLES_PER_FOLD`` samples."""
    holdout_size = max(1, round(count * holdout_fraction)) if holdout_fraction > 0 else 0
    if count - holdout_size < folds * MIN_SAMPLES_PER_FOLD:
        raise ValueError(
            f"{count} samples are too few for {folds} folds of at least {MIN_SAMPLES_PER_FOLD} "
            f"after a holdout of {holdout_size}"
        )
    order = np.random.default_rng(seed).permutation(count)
    return order[:holdout_size], np.array_split(order[holdout_size:], folds)


def _lightgbm_params(settings: TrainerSettings, *, threads: int, seed: int,
                     **objective: Any) -> dict[str, Any]:  # fmt: skip
    return {
        **objective, "learning_rate": settings.learning_rate, "num_leaves": settings.num_leaves,
        "num_threads": threads, "seed": seed, "deterministic": True, "force_col_wise": True,
        "verbose": -1,
    }  # fmt: skip


def _train(params: dict[str, Any], dataset: Any, trees: int) -> tuple[Any, float]:
    import lightgbm

    start = time.perf_counter()
    # keep_training_booster: no round trip of the model through its text form after training.
    booster = lightgbm.train(params, dataset, num_boost_round=trees, keep_training_booster=True)
    return booster, time.perf_counter() - start


def _cross_validate(
    params: dict[str, Any], features: np.ndarray, labels: np.ndarray, folds: list[np.ndarray],
    trees: int,
) -> tuple[Any, np.ndarray, float]:  # fmt: skip
    """Out-of-fold predictions (rows in the order of ``np.concatenate(folds)``), the final
    booster fit on every fold, and the seconds spent in LightGBM. Folds index ``features``."""
    import lightgbm

    training = np.concatenate(folds)
    # One binned dataset for the whole training part; folds are subsets of it (no re-binning).
    full = lightgbm.Dataset(features[training], label=labels[training], free_raw_data=False,
                            params={"verbose": -1}).construct()  # fmt: skip
    offsets = np.cumsum([0] + [len(fold) for fold in folds])
    out_of_fold, seconds = [], 0.0
    for index, fold in enumerate(folds):
        kept = np.concatenate([np.arange(offsets[i], offsets[i + 1])
                               for i in range(len(folds)) if i != index])  # fmt: skip
        booster, spent = _train(params, full.subset(kept), trees)
        out_of_fold.append(booster.predict(features[fold]))
        seconds += spent
    final, spent = _train(params, full, trees)
    return final, np.concatenate(out_of_fold), seconds + spent


# ------------------------------------------------------------------------------ value
def _fit_value(snapshot: SideSnapshot, settings: TrainerSettings, *, threads: int,
               seed: int) -> tuple[Any, dict[str, float], dict[str, Any], float]:  # fmt: skip
    features = np.ascontiguousarray(snapshot.features, dtype=np.float32)
    targets = snapshot.value.astype(np.float64)
    holdout, folds = split_indices(len(targets), folds=settings.folds,
                                   holdout_fraction=settings.holdout_fraction, seed=seed)  # fmt: skip
    training = np.concatenate(folds)
    params = _lightgbm_params(settings, threads=threads, seed=seed, objective="regression")
    booster, out_of_fold, seconds = _cross_validate(params, features, targets, folds, settings.trees)
    train_mse = _mse(booster.predict(features[training]), targets[training])
    metrics = {
        "samples": float(len(targets)), "holdout_samples": float(len(holdout)),
        "cv_mse": _mse(out_of_fold, targets[training]),
        "cv_correlation": _correlation(out_of_fold, targets[training]),
        "train_mse": train_mse,
    }
    extra: dict[str, Any] = {}
    if len(holdout):
        predicted = booster.predict(features[holdout])
        holdout_mse = _mse(predicted, targets[holdout])
        report = calibration.calibration_report(predicted, targets[holdout])
        metrics.update(
            holdout_mse=holdout_mse,
            holdout_mse_of_mean=_mse(np.full(len(holdout), targets[training].mean()), targets[holdout]),
            holdout_ece=report.expected_calibration_error,
            overfit_gap=holdout_mse - train_mse,
            overfit_warning=float(holdout_mse - train_mse > OVERFIT_GAP_WARNING),
        )  # fmt: skip
        extra["holdout_calibration"] = report.as_dict()
    return booster, metrics, extra, seconds


def _mse(predicted: np.ndarray, targets: np.ndarray) -> float:
    return float(np.mean((np.asarray(predicted) - targets) ** 2))


def _correlation(predicted: np.ndarray, targets: np.ndarray) -> float:
    if np.std(predicted) == 0 or np.std(targets) == 0:
        return 0.0
    return float(np.corrcoef(predicted, targets)[0, 1])


# ------------------------------------------------------------------------------- move
def move_classes(moves: np.ndarray, *, max_classes: int) -> np.ndarray:
    """The actions (int32 [C], C <= ``max_classes``) a move model predicts: those most often
    preferred in ``moves`` (ties: the lower action id first), in increasing action order.
    ``moves`` of -1 (no policy target) are ignored."""
    actions, counts = np.unique(moves[moves >= 0], return_counts=True)
    order = np.lexsort((actions, -counts))[:max_classes]
    return np.sort(actions[order]).astype(np.int32)


def _fit_move(snapshot: SideSnapshot, settings: TrainerSettings, *, threads: int,
              seed: int) -> tuple[Any, dict[str, float], dict[str, Any], float]:  # fmt: skip
    with_target = np.flatnonzero(snapshot.move >= 0)
    holdout, folds = split_indices(len(with_target), folds=settings.folds,
                                   holdout_fraction=settings.holdout_fraction, seed=seed)  # fmt: skip
    training_moves = snapshot.move[with_target[np.concatenate(folds)]]
    classes = move_classes(training_moves, max_classes=settings.max_move_classes)
    if len(classes) < 2:
        raise ValueError(
            f"a move model needs at least 2 distinct preferred actions; the snapshot's "
            f"{len(with_target)} samples with a policy target prefer {classes.tolist()}"
        )
    class_of_action = np.full(snapshot.num_actions, -1, dtype=np.int64)
    class_of_action[classes] = np.arange(len(classes))
    labels_all = class_of_action[snapshot.move[with_target]]  # -1: not a class
    covered = labels_all >= 0
    # Keep only covered samples; re-split the covered ones with the same membership.
    position = np.full(len(with_target), -1, dtype=np.int64)
    position[covered] = np.arange(int(covered.sum()))
    rows = with_target[covered]
    features = np.ascontiguousarray(snapshot.features[rows], dtype=np.float32)
    labels = labels_all[covered].astype(np.float64)
    holdout = position[holdout][position[holdout] >= 0]
    folds = [position[fold][position[fold] >= 0] for fold in folds]
    if min(len(fold) for fold in folds) < MIN_SAMPLES_PER_FOLD:
        raise ValueError(f"too few samples ({len(rows)}) prefer one of the move classes")
    training = np.concatenate(folds)
    params = _lightgbm_params(settings, threads=threads, seed=seed,
                              objective="multiclass", num_class=len(classes))  # fmt: skip
    booster, out_of_fold, seconds = _cross_validate(params, features, labels, folds, settings.trees)
    train_loss = _log_loss(booster.predict(features[training]), labels[training])
    prior = np.bincount(labels[training].astype(int), minlength=len(classes)) / len(training)
    metrics = {
        "samples": float(len(rows)), "holdout_samples": float(len(holdout)),
        "classes": float(len(classes)), "move_coverage": float(covered.mean()),
        "cv_accuracy": _accuracy(out_of_fold, labels[training]),
        "cv_log_loss": _log_loss(out_of_fold, labels[training]),
        "train_log_loss": train_loss,
    }  # fmt: skip
    if len(holdout):
        predicted = booster.predict(features[holdout])
        holdout_loss = _log_loss(predicted, labels[holdout])
        metrics.update(
            holdout_log_loss=holdout_loss,
            holdout_accuracy=_accuracy(predicted, labels[holdout]),
            holdout_log_loss_of_prior=_log_loss(np.tile(prior, (len(holdout), 1)), labels[holdout]),
            overfit_gap=holdout_loss - train_loss,
            overfit_warning=float(holdout_loss - train_loss > OVERFIT_GAP_WARNING),
        )  # fmt: skip
    return booster, metrics, {"classes": classes.tolist()}, seconds


def _log_loss(probabilities: np.ndarray, labels: np.ndarray) -> float:
    picked = np.take_along_axis(probabilities, labels.astype(int)[:, None], axis=1)[:, 0]
    return float(-np.mean(np.log(np.maximum(picked, LOG_LOSS_FLOOR))))


def _accuracy(probabilities: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean(np.argmax(probabilities, axis=1) == labels.astype(int)))
