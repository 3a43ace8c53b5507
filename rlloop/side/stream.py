"""The orchestrator's side trainers: one stream of tree models per lineage.

:class:`SideTrainers` owns the run's :class:`~rlloop.side.pool.SidePool` (process 0 only) and
is called by the loop at three points:

- :meth:`after_selfplay` (a lineage just played, before it trains): every ``side.every`` of
  its plays, a snapshot of its replay goes to the pool as a value job and a move job; and the
  network's overfitting check: its value loss on the samples this self-play just added (no
  training step has seen them: the holdout) against its loss on the snapshot (replay it has
  trained on), ``overfit_gap`` = holdout - train, a warning above 0.10;
- :meth:`poll` (every iteration, never blocking): finished jobs become ``SIDE_MODEL`` ledger
  events (an overfitting model also a console warning), the pool's figures become telemetry
  (``side/...``) and learning health's side fields;
- :meth:`champion_report` (a promotion, and once for a champion that has none, such as the
  run's first): the value calibration of the new champion on the
  lineage's newest holdout samples, beside its newest tree value model's on the same
  samples: ``<lineage>/side/calibration-<iteration>.png`` and ``.json``, ``calibration/...``
  scalars and a ``CALIBRATION`` ledger event.

A failed job is reported and never stops the loop; a resumed run counts the models already
on disk and carries on writing beside them.
"""

from __future__ import annotations

import functools
import json
import math
from typing import Any

import jax
import numpy as np

from rlloop.runs import atomic_write_json
from rlloop.side.calibration import calibration_report, plot_reliability
from rlloop.side.jobs import (
    OVERFIT_GAP_WARNING,
    SIDE_MODEL_EVENT,
    model_jobs,
    newest_model_files,
    settings_from_config,
)
from rlloop.side.pool import SidePool
from rlloop.side.snapshot import feature_function, snapshot_from_samples
from rlloop.side.trainers import MIN_SAMPLES_PER_FOLD

__all__ = ["SIDE_MODEL_EVENT", "SideTrainers", "network_values"]

NETWORK_OVERFIT_EVENT = "NETWORK_OVERFIT"
CALIBRATION_EVENT = "CALIBRATION"
VALUE_BATCH = 512


@functools.lru_cache(maxsize=32)
def _value_function(network: Any) -> Any:
    return jax.jit(lambda params, observations: network.apply(params, observations)[1][:, 0])


def network_values(network: Any, params: Any, observations: np.ndarray) -> np.ndarray:
    """The network's value [M] of each observation from its mover's view, in fixed batches
    (one compilation per network)."""
    apply = _value_function(network)
    params = jax.device_put(params, jax.local_devices()[0])  # once, not per batch
    out = np.empty(len(observations), np.float32)
    for start in range(0, len(observations), VALUE_BATCH):
        part = np.asarray(observations[start : start + VALUE_BATCH], np.float32)
        padded = np.zeros((VALUE_BATCH, *part.shape[1:]), np.float32)
        padded[: len(part)] = part
        out[start : start + len(part)] = np.asarray(apply(params, padded))[: len(part)]
    return out


class SideTrainers:
    """Side trainers of a run (module doc).

    Args:
      config: the run's config (``side``, ``hardware.side_*``).
      lineages: the run's lineages by name.
      ledger, telemetry: the run's.
    """

    def __init__(self, config: Any, lineages: dict[str, Any], ledger: Any, telemetry: Any) -> None:
        self.config = config.side
        self.lineages, self.ledger, self.telemetry = lineages, ledger, telemetry
        self.settings = settings_from_config(config.side)
        self.pool = SidePool.from_config(config)
        self._plays: dict[str, int] = dict.fromkeys(lineages, 0)
        self._holdout: dict[str, dict[str, np.ndarray]] = {}  # newest unseen samples per lineage
        self._calibrated: dict[str, set[str]] = {}  # champions with a report, read from disk once
        for name, lineage in lineages.items():
            self.pool.note_existing_models(name, lineage.paths.side_dir)
        self.telemetry.message(
            f"[rlloop] side trainers: {self.pool.workers} worker(s) x {self.pool.threads} thread(s), "
            f"a snapshot every {self.config.every} plays of each lineage"
        )

    # ------------------------------------------------------------------ phases
    def after_selfplay(self, name: str, fresh: dict[str, np.ndarray], iteration: int) -> dict[str, Any]:
        """Lineage ``name`` played this iteration and added ``fresh`` samples to its replay
        (not trained on yet). Returns metrics (the network's overfitting check) when a
        snapshot was due."""
        lineage = self.lineages[name]
        if fresh and len(fresh["value"]):
            self._holdout[name] = fresh
        self._plays[name] += 1
        needed = int(self.settings.folds) * MIN_SAMPLES_PER_FOLD * 2
        if self._plays[name] % int(self.config.every) or len(lineage.replay) < needed:
            return {}
        if any(job.lineage == name for job in self.pool.queued_jobs()):
            return {}  # its last snapshot still waits for a worker: don't pile them up
        samples = lineage.replay.snapshot(lineage.side_rng, max_samples=int(self.config.max_samples))
        snapshot = snapshot_from_samples(lineage.game, samples, iteration=iteration)
        side_dir = lineage.paths.side_dir
        side_dir.mkdir(parents=True, exist_ok=True)
        for job in model_jobs(snapshot, lineage=name, out_dir=side_dir, settings=self.settings,
                              timeout_seconds=float(self.config.timeout_seconds)):  # fmt: skip
            self.pool.submit(job)
        return self._network_overfit(name, samples, iteration)

    def _network_overfit(self, name: str, train: dict[str, np.ndarray], iteration: int) -> dict[str, Any]:
        holdout = self._holdout.get(name)
        if holdout is None:
            return {}
        lineage = self.lineages[name]
        params = lineage.params

        def mse(samples: dict[str, np.ndarray]) -> float:
            values = network_values(lineage.network, params, samples["observation"])
            return float(np.mean((values - samples["value"][:, 0]) ** 2))

        train_mse, holdout_mse = mse(train), mse(holdout)
        gap = holdout_mse - train_mse
        if gap > OVERFIT_GAP_WARNING:
            lineage.message(
                f"warning: the network's value loss on new self-play is {holdout_mse:.3f} against "
                f"{train_mse:.3f} on its replay (gap {gap:.3f} > {OVERFIT_GAP_WARNING}): overfitting?"
            )
            self.ledger.add_event(NETWORK_OVERFIT_EVENT, {
                "config": name, "iteration": iteration, "train_mse": train_mse,
                "holdout_mse": holdout_mse, "gap": gap, "threshold": OVERFIT_GAP_WARNING,
            })  # fmt: skip
        prefix = f"{name}/" if len(self.lineages) > 1 else ""
        return {f"{prefix}side/network_train_mse": train_mse, f"{prefix}side/network_holdout_mse": holdout_mse,
                f"{prefix}side/network_overfit_gap": gap}  # fmt: skip

    def poll(self) -> dict[str, Any]:
        """Collect finished jobs (ledger events, warnings); the pool's telemetry."""
        self._record(self.pool.poll())
        figures = self.pool.telemetry()
        return {
            "side/models_trained": figures["models_trained"],
            "side/models_per_second": figures["models_per_second"],
            "side/mean_training_ms_per_model": figures["mean_training_ms_per_model"],
            "side/jobs_failed": figures["jobs_failed"],
        }

    def _record(self, results: list[Any]) -> None:
        for result in results:
            self.ledger.add_event(SIDE_MODEL_EVENT, result.ledger_payload())
            lineage = self.lineages.get(result.lineage)
            say = lineage.message if lineage is not None else self.telemetry.message
            if not result.ok:
                say(f"side {result.kind} model of iteration {result.iteration} failed: {result.reason}")
            elif result.overfit_warning:
                gap = result.metrics.get("overfit_gap", math.nan)
                say(f"warning: side {result.kind} model of iteration {result.iteration} overfits its "
                    f"replay (holdout - train loss {gap:.3f} > {OVERFIT_GAP_WARNING})")  # fmt: skip

    def health(self) -> dict[str, Any]:
        """Learning health's side fields."""
        figures = self.pool.telemetry()
        return {"models_per_second": figures["models_per_second"], "models_trained": figures["models_trained"],
                "mean_ms": figures["mean_training_ms_per_model"], "newest": figures["newest_models"]}  # fmt: skip

    def report_champion_once(self, name: str, model_id: str, params: Any, iteration: int) -> dict[str, Any]:
        """:meth:`champion_report` for a champion that has none yet (the run's first, or the
        one a resumed run starts with), once there are unseen samples to measure it on."""
        if name not in self._calibrated:
            side_dir = self.lineages[name].paths.side_dir
            self._calibrated[name] = {json.loads(p.read_text()).get("model_id")
                                      for p in side_dir.glob("calibration-*.json")}  # fmt: skip
        if not model_id or model_id in self._calibrated[name] or name not in self._holdout:
            return {}
        return self.champion_report(name, model_id, params, iteration)

    def champion_report(self, name: str, model_id: str, params: Any, iteration: int) -> dict[str, Any]:
        """Value calibration of a new champion next to the lineage's newest tree value
        model, on the newest samples the network has not trained on (module doc)."""
        holdout = self._holdout.get(name)
        lineage = self.lineages[name]
        if holdout is None or not len(holdout["value"]):
            return {}
        outcomes = holdout["value"][:, 0]
        reports = {f"network {model_id}": calibration_report(
            network_values(lineage.network, params, holdout["observation"]), outcomes)}
        value_model = newest_model_files(lineage.paths.side_dir).get("value")
        if value_model is not None:
            import lightgbm

            features = feature_function(lineage.game)(holdout["observation"])
            tree = lightgbm.Booster(model_file=str(value_model)).predict(features, num_threads=1)
            reports[f"tree {value_model.stem}"] = calibration_report(tree, outcomes)
        side_dir = lineage.paths.side_dir
        side_dir.mkdir(parents=True, exist_ok=True)
        title = f"{name}: value calibration of {model_id}\non {len(outcomes):,} new self-play positions"
        plot_reliability(side_dir / f"calibration-{iteration}.png", reports, title=title)
        payload = {"config": name, "model_id": model_id, "iteration": iteration,
                   "reports": {label: report.as_dict() for label, report in reports.items()}}  # fmt: skip
        atomic_write_json(side_dir / f"calibration-{iteration}.json", payload, allow_nan=False)
        self._calibrated.setdefault(name, set()).add(model_id)
        self.ledger.add_event(CALIBRATION_EVENT, {
            **{k: v for k, v in payload.items() if k != "reports"},
            **{f"{label.split()[0]}_ece": report.expected_calibration_error for label, report in reports.items()},
        })  # fmt: skip
        prefix = f"{name}/" if len(self.lineages) > 1 else ""
        return {f"{prefix}calibration/{label.split()[0]}_ece": report.expected_calibration_error
                for label, report in reports.items()}  # fmt: skip

    def drain(self, wait_seconds: float) -> None:
        """Collect what finishes within ``wait_seconds`` (the end of a ``Loop.run``)."""
        self._record(self.pool.wait(wait_seconds))

    def close(self) -> None:
        """Stop the workers (a running job is killed; its model is never half written)."""
        self.pool.close()
