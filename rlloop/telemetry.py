"""Progress on the console, TensorBoard scalars and a metrics log.

Each iteration's metrics go to the console (one line), to ``<run>/tb`` (TensorBoard, if
enabled) and to ``<run>/metrics.jsonl`` (one JSON object per iteration, for tools and tests).
Only process 0 writes.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any, TextIO

from rlloop.runs import RunDir


class Telemetry:
    """Writes iteration metrics. ``enabled=False`` (processes other than 0) writes nothing."""

    def __init__(
        self, run_dir: str | Path, *, tensorboard: bool = True, enabled: bool = True,
        stream: TextIO | None = None,
    ) -> None:  # fmt: skip
        self.run_dir = Path(run_dir)
        self.enabled = enabled
        self.stream = stream if stream is not None else sys.stdout
        self._writer = None
        if enabled and tensorboard:
            from tensorboardX import SummaryWriter

            self._writer = SummaryWriter(str(RunDir(self.run_dir).tensorboard))
        self._metrics_file = RunDir(self.run_dir).metrics.open("a") if enabled else None

    def message(self, text: str) -> None:
        """A free-form console line."""
        if self.enabled:
            print(text, file=self.stream, flush=True)

    def iteration(self, iteration: int, metrics: dict[str, Any], *, console: bool = True) -> None:
        """Record one iteration's metrics (numbers; non-finite values are kept as strings)."""
        if not self.enabled:
            return
        clean = {k: _plain(v) for k, v in metrics.items()}
        assert self._metrics_file is not None
        self._metrics_file.write(json.dumps({"iteration": iteration, **clean}) + "\n")
        self._metrics_file.flush()
        if self._writer is not None:
            for name, value in clean.items():
                if isinstance(value, int | float) and not isinstance(value, bool):
                    self._writer.add_scalar(name, value, iteration)
            self._writer.flush()
        if console:
            print(format_progress(iteration, clean), file=self.stream, flush=True)

    def scalars(self, step: int, metrics: dict[str, Any]) -> None:
        """TensorBoard scalars at ``step`` outside the iteration record (e.g. a model's score
        plotted at the iteration that made the model)."""
        if self._writer is not None:
            for name, value in metrics.items():
                self._writer.add_scalar(name, float(value), step)
            self._writer.flush()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        if self._metrics_file is not None:
            self._metrics_file.close()


def _plain(value: Any) -> Any:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return value
    if isinstance(value, bool):
        return value
    if not math.isfinite(number):
        return str(number)
    return int(number) if float(number).is_integer() and "int" in type(value).__name__ else number


def format_progress(iteration: int, metrics: dict[str, Any]) -> str:
    """One console line: iteration, phase times, throughput, losses."""
    parts = [f"iter {iteration:>4}"]
    if metrics.get("config"):  # a run of several configurations: the one that played
        parts.append(str(metrics["config"]))
    for key, template in (
        ("games_per_second", "{:,.0f} games/s"),
        ("moves_per_second", "{:,.0f} moves/s"),
        ("games", "games {:,}"),
        ("replay_size", "replay {:,}"),
        ("loss", "loss {:.4f}"),
        ("policy_loss", "pol {:.4f}"),
        ("value_loss", "val {:.4f}"),
        ("selfplay_seconds", "play {:.1f}s"),
        ("train_seconds", "train {:.1f}s"),
    ):
        if key in metrics and isinstance(metrics[key], int | float):
            parts.append(template.format(metrics[key]))
    return "  ".join(parts)
