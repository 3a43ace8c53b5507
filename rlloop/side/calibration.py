"""Value calibration: reliability curves and expected calibration error (ECE) of value
predictions against game outcomes, and a PNG of them.

JAX-free (the side workers use it). Values and outcomes are from one player's view, in
[-1, 1] (two-player games: +1 a win, -1 a loss, 0 a draw). Both are mapped to an expected
score in [0, 1]: ``(v + 1) / 2``. A draw therefore counts as half a win, which is what a
value trained on outcomes with draws = 0 estimates: its calibrated reading is the expected
score, not the probability of winning. Predictions outside [-1, 1] (a regression tree's
output can stray) are clipped first.

Reliability curve: predictions fall into ``bins`` equal-width bins of expected score; per
bin, the mean predicted score against the mean observed score (and the count). ECE = the
count-weighted mean of |mean predicted - mean observed| over the bins; MCE its maximum over
non-empty bins. A perfectly calibrated predictor's ECE is only sampling noise (about
``sqrt(bins / (8 * samples))`` at most).
"""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from rlloop.runs import atomic_write_bytes

DEFAULT_BINS = 10


def expected_score(values: np.ndarray) -> np.ndarray:
    """Values in [-1, 1] (clipped) -> expected score in [0, 1]: (v + 1) / 2."""
    return (np.clip(np.asarray(values, dtype=np.float64), -1.0, 1.0) + 1.0) / 2.0


@dataclasses.dataclass(frozen=True)
class CalibrationReport:
    """A reliability curve and its scalars. Arrays are per bin: [bins]."""

    bin_edges: np.ndarray  # [bins + 1] expected score
    mean_predicted: np.ndarray  # [bins] expected score; NaN for an empty bin
    mean_observed: np.ndarray  # [bins]; NaN for an empty bin
    counts: np.ndarray  # [bins] int
    expected_calibration_error: float
    maximum_calibration_error: float
    brier_score: float  # mean squared error of the expected scores
    samples: int

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON values (empty bins as null)."""
        def plain(array: np.ndarray) -> list[float | None]:
            return [None if np.isnan(x) else float(x) for x in array]

        return {
            "bin_edges": self.bin_edges.tolist(), "mean_predicted": plain(self.mean_predicted),
            "mean_observed": plain(self.mean_observed), "counts": self.counts.tolist(),
            "ece": self.expected_calibration_error, "mce": self.maximum_calibration_error,
            "brier": self.brier_score, "samples": self.samples,
        }  # fmt: skip


def calibration_report(predicted_values: np.ndarray, outcomes: np.ndarray, *,
                       bins: int = DEFAULT_BINS) -> CalibrationReport:  # fmt: skip
    """Reliability of ``predicted_values`` [M] against ``outcomes`` [M] (both in [-1, 1], one
    player's view). Raises ValueError for mismatched or empty inputs or ``bins`` < 1."""
    predicted = expected_score(predicted_values).reshape(-1)
    observed = expected_score(outcomes).reshape(-1)
    if predicted.shape != observed.shape or not len(predicted):
        raise ValueError(
            f"need as many outcomes as predictions (at least one); got "
            f"{np.shape(predicted_values)} predictions and {np.shape(outcomes)} outcomes"
        )
    if bins < 1:
        raise ValueError(f"bins={bins} must be >= 1")
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.searchsorted(edges, predicted, side="right") - 1, 0, bins - 1)
    counts = np.bincount(which, minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_predicted = np.bincount(which, predicted, minlength=bins) / counts
        mean_observed = np.bincount(which, observed, minlength=bins) / counts
    gaps = np.abs(mean_predicted - mean_observed)
    filled = counts > 0
    return CalibrationReport(
        bin_edges=edges, mean_predicted=mean_predicted, mean_observed=mean_observed,
        counts=counts, expected_calibration_error=float(np.sum(gaps[filled] * counts[filled])
                                                        / len(predicted)),
        maximum_calibration_error=float(gaps[filled].max()),
        brier_score=float(np.mean((predicted - observed) ** 2)), samples=len(predicted),
    )  # fmt: skip


def plot_reliability(path: str | Path, reports: Mapping[str, CalibrationReport], *,
                     title: str) -> None:  # fmt: skip
    """A PNG (written atomically): each report's reliability curve beside the diagonal, with
    its ECE in the legend, and the predictions' histogram below."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display needed
    import matplotlib.pyplot as plt

    figure, (curve, histogram) = plt.subplots(
        2, 1, figsize=(6, 7), sharex=True, gridspec_kw={"height_ratios": [3, 1]}
    )
    curve.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1, label="calibrated")
    for index, (label, report) in enumerate(reports.items()):
        filled = report.counts > 0
        colour = f"C{index}"
        curve.plot(report.mean_predicted[filled], report.mean_observed[filled], "-o",
                   color=colour, markersize=4,
                   label=f"{label}: ECE {report.expected_calibration_error:.3f}")  # fmt: skip
        centres = (report.bin_edges[:-1] + report.bin_edges[1:]) / 2
        width = (report.bin_edges[1] - report.bin_edges[0]) / (len(reports) + 1)
        histogram.bar(centres + (index - len(reports) / 2 + 0.5) * width, report.counts,
                      width=width, color=colour, alpha=0.7)  # fmt: skip
    curve.set_ylabel("observed score (win 1, draw 1/2, loss 0)")
    curve.set_xlim(0, 1)
    curve.set_ylim(0, 1)
    curve.set_title(title)
    curve.grid(alpha=0.3)
    curve.legend(fontsize=8, loc="upper left")
    histogram.set_xlabel("predicted score, (value + 1) / 2")
    histogram.set_ylabel("positions")
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110)
    plt.close(figure)
    atomic_write_bytes(path, buffer.getvalue())
