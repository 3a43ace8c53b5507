"""Learning health: ``<run>/learning_health.json``, what an operator watches.

The system rlloop replaces publishes a ``learning_health`` document; rlloop writes its fields,
adapted, plus self-play and replay rates, once per iteration (atomically: a reader, or a kill
mid-write, never sees half a file), and appends the same document as one line to
``learning_health.jsonl`` (the history; a kill can cut its last line, which readers skip).
:data:`FIELDS` documents every field; ``python -m rlloop.status`` shows them.

Rates are over the last ``window`` iterations of the run (wall time of those iterations),
so a lineage that did not play lately shows low rates rather than stale ones.
"""

from __future__ import annotations

import collections
import json
import math
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from rlloop.ledger import Ledger
from rlloop.runs import RunDir, atomic_write_json, json_default

__all__ = ["FIELDS", "LINEAGE_FIELDS", "SCHEMA_VERSION", "LearningHealth", "read_history", "reward_trend"]

SCHEMA_VERSION = 1
TREND_CHAMPIONS = 5  # champions spanned by recent_reward_trend

FIELDS: dict[str, str] = {
    "schema_version": "version of this document's layout (1)",
    "timestamp": "when it was written, seconds since the epoch (UTC)",
    "iteration": "the run's last finished iteration",
    "inner_episode_throughput": "side-trainer (tree) models trained per second over the run; "
    "null without side trainers",
    "models_trained_total": "side-trainer models trained in total; null without side trainers",
    "side_training_time_avg_ms": "mean wall time to fit one side-trainer model (ms); null without",
    "side_models_newest": "the newest side model file of each kind per configuration "
    "({configuration: {value|move: path}}); null without side trainers",
    "training_time_avg_ms": "mean wall time of one network optimiser step over the window (ms), "
    "every configuration",
    "selfplay_games_per_second": "finished self-play games per second of wall time over the window",
    "selfplay_moves_per_second": "self-play moves per second of wall time over the window",
    "samples_generated_per_second": "samples added to replay per second of wall time",
    "samples_consumed_per_second": "samples trained on (steps x batch) per second of wall time",
    "recent_reward_trend": "mean over configurations of their recent_reward_trend (percent)",
    "current_best_policy": "the champion of each configuration: {configuration: model id}",
    "configurations": "the same fields per configuration (LINEAGE_FIELDS)",
}

LINEAGE_FIELDS: dict[str, str] = {
    "current_best_policy": "champion's model id ('' before the first)",
    "champion_elo": "champion's Elo on its configuration's scale (random = 0); null if unrated",
    "recent_reward_trend": f"signed change of the champions' Elo over the last {TREND_CHAMPIONS} "
    "champions, percent of max(|first Elo|, 100); null with fewer than two rated champions",
    "last_promotion_days_ago": "days since the last promotion; null before the first",
    "iterations_since_promotion": "run iterations since the last promotion (since the start if none)",
    "promotions": "promotions so far",
    "candidates_gated": "trained networks the gate judged so far",
    "policy_entropy": "mean entropy (nats) of search's improved policy over recent positions with "
    "a choice; falls as search grows sure, 0 means collapsed",
    "raw_policy_entropy": "the same for the network's own policy at the root (before search)",
    "selfplay_games_per_second": "as above, this configuration's",
    "selfplay_moves_per_second": "as above, this configuration's",
    "samples_generated_per_second": "as above, this configuration's",
    "samples_consumed_per_second": "as above, this configuration's",
    "replay_ratio": "samples trained on per sample added, since the start",
    "replay_fill": "replay size / replay capacity",
    "training_time_avg_ms": "mean wall time of one optimiser step over the window (ms)",
    "loss": "mean training loss over the window's steps; null before training",
}


def reward_trend(elos: Iterable[float | None]) -> float | None:
    """The signed change from the first to the last rated Elo of ``elos`` (champions, oldest
    first), in percent of ``max(|first|, 100)``: +50 means half the first champion's margin
    over random gained (or 50 Elo when that margin is small). None with fewer than two."""
    rated = [float(e) for e in elos if e is not None and math.isfinite(e)]
    if len(rated) < 2:
        return None
    return 100.0 * (rated[-1] - rated[0]) / max(abs(rated[0]), 100.0)


class LearningHealth:
    """Builds and writes the learning-health document (module doc).

    The loop calls :meth:`record` with each lineage's phase metrics of an iteration, then
    :meth:`write` once per iteration with what it knows of each lineage now.

    Args:
      run_dir: the run's folder.
      window: iterations the rates and means span.
      enabled: False (processes other than 0) writes nothing.
    """

    def __init__(self, run_dir: str | Path, *, window: int = 10, enabled: bool = True) -> None:
        if window < 1:
            raise ValueError(f"learning health window={window} must be >= 1 iteration")
        self.paths = RunDir(run_dir)
        self.enabled = enabled
        self._iterations: collections.deque[tuple[float, dict[str, dict[str, Any]]]] = collections.deque(
            maxlen=window
        )
        self._current: dict[str, dict[str, Any]] = {}

    def record(self, name: str, metrics: Mapping[str, Any]) -> None:
        """Add a lineage's metrics of this iteration (self-play and/or training results)."""
        self._current.setdefault(name, {}).update(metrics)

    def write(
        self,
        iteration: int,
        *,
        seconds: float,
        lineages: Mapping[str, Mapping[str, Any]],
        ledger: Ledger,
        side: Mapping[str, Any] | None = None,
        now: float | None = None,
    ) -> dict[str, Any]:
        """Close the iteration (``seconds`` of wall time) and write the document.

        ``lineages``: per configuration ``champion`` (id), ``replay`` and ``capacity``
        (samples), ``batch_size``, ``samples_added`` and ``samples_trained`` (totals).
        ``side``: the side trainers' ``models_per_second``, ``models_trained``, ``mean_ms``
        and ``newest`` (configuration -> kind -> model path), when they run. Returns the document."""
        now = time.time() if now is None else now
        self._iterations.append((float(seconds), self._current))
        self._current = {}
        promotions, models = ledger.promotions(), ledger.models()  # read once for every lineage
        configurations = {
            name: self._lineage(name, iteration, facts, promotions, models, now)
            for name, facts in lineages.items()
        }
        document = self._document(iteration, configurations, side, now)
        if self.enabled:
            atomic_write_json(self.paths.learning_health, document, allow_nan=False, durable=False)
            line = json.dumps(document, default=json_default, allow_nan=False, separators=(",", ":"))
            with self.paths.learning_health_history.open("a") as history:
                history.write(line + "\n")
        return document

    # ------------------------------------------------------------------ parts
    def _rates(self, name: str, batch_size: int) -> dict[str, float | None]:
        wall = sum(seconds for seconds, _ in self._iterations)
        rows = [metrics[name] for _, metrics in self._iterations if name in metrics]

        def total(key: str) -> float:
            return float(sum(row.get(key) or 0 for row in rows if _finite(row.get(key))))

        steps = total("train_steps")
        choice = [row for row in rows if _finite(row.get("policy_entropy"))]
        losses = [(row["loss"], row["train_steps"]) for row in rows
                  if _finite(row.get("loss")) and row.get("train_steps")]  # fmt: skip
        per_second = (lambda value: value / wall) if wall > 0 else (lambda value: None)
        return {
            "selfplay_games_per_second": per_second(total("games_this_iteration")),
            "selfplay_moves_per_second": per_second(total("moves_this_iteration")),
            "samples_generated_per_second": per_second(total("samples_added")),
            "samples_consumed_per_second": per_second(steps * batch_size),
            "training_time_avg_ms": 1000.0 * total("train_seconds") / steps if steps else None,
            "policy_entropy": _mean(row["policy_entropy"] for row in choice),
            "raw_policy_entropy": _mean(row["prior_entropy"] for row in choice if _finite(row.get("prior_entropy"))),
            "loss": sum(loss * n for loss, n in losses) / sum(n for _, n in losses) if losses else None,
        }

    def _lineage(self, name: str, iteration: int, facts: Mapping[str, Any], all_promotions: list[Any],
                 all_models: list[Any], now: float) -> dict[str, Any]:  # fmt: skip
        promotions = [p for p in all_promotions if p.config in (name, "")]
        models = {m.id: m for m in all_models if m.config == name} or {
            m.id: m for m in all_models if m.config == ""
        }
        champion = models.get(str(facts.get("champion") or ""))
        champions = [p.model_id for p in promotions][-TREND_CHAMPIONS:]
        first = next((m for m in models.values() if m.status != "baseline" and m.parent is None), None)
        if first is not None and len(champions) < TREND_CHAMPIONS:
            champions.insert(0, first.id)
        last = promotions[-1] if promotions else None
        added, trained = facts.get("samples_added") or 0, facts.get("samples_trained") or 0
        capacity = facts.get("capacity") or 0
        return {
            "current_best_policy": champion.id if champion is not None else str(facts.get("champion") or ""),
            "champion_elo": champion.elo if champion is not None else None,
            "recent_reward_trend": reward_trend(models[c].elo for c in champions if c in models),
            "last_promotion_days_ago": (now - last.created) / 86400.0 if last else None,
            "iterations_since_promotion": iteration - (last.iteration if last else 0),
            "promotions": len(promotions),
            "candidates_gated": sum(1 for m in models.values() if m.parent is not None),
            **self._rates(name, int(facts.get("batch_size") or 0)),
            "replay_ratio": trained / added if added else None,
            "replay_fill": (facts.get("replay") or 0) / capacity if capacity else None,
        }

    def _document(self, iteration: int, configurations: dict[str, dict[str, Any]],
                  side: Mapping[str, Any] | None, now: float) -> dict[str, Any]:  # fmt: skip
        def summed(key: str) -> float | None:
            values = [c[key] for c in configurations.values() if c[key] is not None]
            return sum(values) if values else None

        step_ms = [(c["training_time_avg_ms"], c["samples_consumed_per_second"] or 0.0)
                   for c in configurations.values() if c["training_time_avg_ms"] is not None]  # fmt: skip
        weights = sum(w for _, w in step_ms)
        step_ms_mean = sum(ms * w for ms, w in step_ms) / weights if weights else _mean(ms for ms, _ in step_ms)
        trends = [c["recent_reward_trend"] for c in configurations.values() if c["recent_reward_trend"] is not None]
        return {
            "schema_version": SCHEMA_VERSION,
            "timestamp": now,
            "iteration": iteration,
            "inner_episode_throughput": side.get("models_per_second") if side else None,
            "models_trained_total": side.get("models_trained") if side else None,
            "side_training_time_avg_ms": side.get("mean_ms") if side else None,
            "side_models_newest": side.get("newest") if side else None,
            "training_time_avg_ms": step_ms_mean,
            "selfplay_games_per_second": summed("selfplay_games_per_second"),
            "selfplay_moves_per_second": summed("selfplay_moves_per_second"),
            "samples_generated_per_second": summed("samples_generated_per_second"),
            "samples_consumed_per_second": summed("samples_consumed_per_second"),
            "recent_reward_trend": _mean(trends),
            "current_best_policy": {name: c["current_best_policy"] for name, c in configurations.items()},
            "configurations": configurations,
        }


def read_history(run_dir: str | Path) -> list[dict[str, Any]]:
    """Every document of ``learning_health.jsonl``, oldest first (a cut last line, left by a
    kill mid-append, is skipped)."""
    path = RunDir(run_dir).learning_health_history
    if not path.is_file():
        return []
    documents = []
    for line in path.read_text().splitlines():
        try:
            documents.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return documents


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _mean(values: Iterable[float]) -> float | None:
    items = [float(v) for v in values]
    return sum(items) / len(items) if items else None
