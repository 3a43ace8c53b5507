"""The orchestrator: one resumable iteration at a time, over the run's lineages.

A run improves one or several game configurations (``schedule.configurations``; none: the
run's own ``game``). Each is a :class:`rlloop.lineage.Lineage` with its own network, replay,
champion, programs and checkpoints; the orchestrator owns what they share: the one ledger,
the :class:`rlloop.scheduler.SelfplayScheduler`, telemetry and the resource guard.

Each iteration: the scheduler picks the lineage that plays (priority, Elo, curriculum,
overrides, backpressure; none when backpressure stops every one) → its self-play (with its
champion's parameters) → data quality gate → replay → training of the lineage that played and
of every lineage that owes training under its replay ratio (``train.samples_per_insert``) →
the arena gate of every active lineage whose ``gate.every`` has come → checkpoint of every
lineage every ``loop.checkpoint_every`` → ledger row and telemetry.

Self-play picks its model by a fixed chain, logged at start: the ledger's champion, else the
latest training checkpoint, else a fresh network (registered as the first champion). A
promotion sets the lineage's next champion; self-play swaps to it at the next chunk boundary
without recompiling (parameters are an argument).

A run directory that already holds a run is resumed from the newest checkpoint step that every
lineage saved and that restores and verifies: training state, self-play games, replay,
waiting moves, counters, RNG streams and the scheduler's state; the champions come from the
ledger (whose committed rows are never lost).

Usage from Python (the same thing ``python -m rlloop.run`` does)::

    import rlloop
    config = rlloop.compose(["game=tictactoe", "loop=smoke"])
    history = rlloop.Loop(config).run(iterations=2)

Device work is jitted and sharded over one mesh (axis ``data``): game states and training
batches are split over devices, parameters replicated. There are two host↔device syncs per
iteration per chunk: fetching a self-play chunk, and fetching the training metrics.
"""

from __future__ import annotations

import datetime
import os
import signal
import socket
import threading
import time
from pathlib import Path
from typing import Any

import jax
import numpy as np
from omegaconf import DictConfig, OmegaConf

from rlloop import config as config_lib
from rlloop import distributed, parallel
from rlloop.checkpoints import CheckpointError
from rlloop.health import LearningHealth
from rlloop.ledger import Ledger, ProcessLedger
from rlloop.lineage import DamagedCheckpoint, Lineage, mastery_weight
from rlloop.resources import ResourceGuard, ResourceStatus
from rlloop.runs import RunDir, atomic_write_json, atomic_write_text
from rlloop.scheduler import Rating, ReplayPressure, SelfplayScheduler
from rlloop.teacher import Teachers
from rlloop.telemetry import Telemetry

__all__ = ["Loop", "default_run_dir"]


def default_run_dir() -> Path:
    """``outputs/api/<date>/<time>`` for runs started from Python without a run dir."""
    now = datetime.datetime.now()
    return Path("outputs") / "api" / now.strftime("%Y-%m-%d") / now.strftime("%H-%M-%S-%f")


class Loop:
    """The closed self-play loop of a run (module doc).

    Args:
      config: a composed config (see :func:`rlloop.compose`).
      run_dir: where the run writes; defaults to ``config.run_dir`` or a fresh folder under
        ``outputs/api``.

    Attributes: ``lineages`` (name -> :class:`~rlloop.lineage.Lineage`, in the config's
    order), ``lineage`` (the only one, in a run of one configuration), ``scheduler``,
    ``ledger``, ``telemetry``, ``iteration``, ``history``.
    """

    def __init__(self, config: DictConfig, *, run_dir: str | Path | None = None) -> None:
        config_lib.validate(config)
        self.config = config
        configs = config_lib.lineage_configs(config)
        ringrift = next((c.game.name for c in configs.values() if c.game.name.startswith("ringrift")), "")
        parallel.configure_jax(config.hardware, game=str(ringrift or config.game.name))
        resume = OmegaConf.select(config, "resume", default="")
        if resume and not RunDir(resume).is_run():
            raise ValueError(
                f"resume={resume}: not an rlloop run directory (it has no config.yaml); "
                "give the folder a run wrote, e.g. outputs/<date>/<time>"
            )
        chosen = run_dir or resume or OmegaConf.select(config, "run_dir", default="") or default_run_dir()
        self.run_dir = Path(chosen).resolve()
        self.paths = RunDir(self.run_dir)
        self._check_lineages_on_disk(list(configs))
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.is_main_process = jax.process_index() == 0
        self.mesh = parallel.make_mesh(parallel.devices_for(config.hardware.platform))
        self.num_devices = self.mesh.devices.size
        self.iteration = 0
        self.history: list[dict[str, Any]] = []
        self.telemetry = Telemetry(
            self.run_dir, tensorboard=bool(config.loop.tensorboard), enabled=self.is_main_process
        )
        self.health = LearningHealth(self.run_dir, enabled=self.is_main_process)
        single = len(configs) == 1
        ledger_config = next(iter(configs)) if single else ""
        # Process 0 alone reads and writes the ledger (and telemetry, health, plots, status).
        self.ledger = (
            Ledger(self.paths.ledger, config=ledger_config) if self.is_main_process
            else ProcessLedger(config=ledger_config, process=jax.process_index())
        )  # fmt: skip
        self.watchdog = distributed.start_watchdog(config.hardware)
        self.lineages: dict[str, Lineage] = {}
        for index, (name, lineage_config) in enumerate(configs.items()):
            self.lineages[name] = Lineage(
                name, lineage_config, index=index, mesh=self.mesh, paths=self.paths.lineage(name),
                ledger=self.ledger, telemetry=self.telemetry, prefix="" if single else f"{name}/",
                is_main_process=self.is_main_process,
            )  # fmt: skip
        platform = self.mesh.devices.flat[0].platform
        for lineage in self.lineages.values():
            self.telemetry.message(
                f"[rlloop] {'' if single else f'lineage {lineage.name}: '}{lineage.describe()} "
                f"devices={self.num_devices}x{platform}"
                + (f" run_dir={self.run_dir}" if single else "")
            )
        if not single:
            self.telemetry.message(f"[rlloop] {len(self.lineages)} lineages, run_dir={self.run_dir}")
        self.pressure = self._make_pressure()
        self.paused: set[str] = set()  # lineages whose self-play critical memory paused
        self._inputs: tuple[int, dict[str, Rating], dict[str, float]] | None = None
        self.scheduler = self._make_scheduler()
        self._resume()
        # Teachers (train.teacher): a fresh run pre-trains before its first champion is named.
        self.teachers = Teachers(self.lineages, ledger=self.ledger, telemetry=self.telemetry, fresh=not self.iteration)
        if self.is_main_process:
            atomic_write_text(self.paths.config, OmegaConf.to_yaml(config))
            if not self.paths.is_legacy():
                for lineage in self.lineages.values():
                    lineage.paths.root.mkdir(parents=True, exist_ok=True)
                    atomic_write_text(lineage.paths.config, OmegaConf.to_yaml(lineage.config))
        for lineage in self.lineages.values():
            lineage.select_selfplay_model()
        self.side = None
        if config.side.enabled and self.is_main_process:
            from rlloop.side.stream import SideTrainers

            self.side = SideTrainers(config, self.lineages, self.ledger, self.telemetry)
            self._tree_anchor_models: dict[str, str] = {}
            self._update_tree_anchors()
        self.resources = (
            ResourceGuard(
                self.run_dir,
                **{k: float(v) for k, v in config.resources.items() if k != "enabled"},
            )
            if config.resources.enabled and self.is_main_process
            else None
        )
        self.resource_status: ResourceStatus | None = None
        self._phase, self._phase_lineage, self._phase_since, self._started = "", "", 0.0, time.time()
        self._set_phase("starting")
        for lineage in self.lineages.values():
            lineage.start_perfect_play()

    # ------------------------------------------------------------------ setup
    @property
    def lineage(self) -> Lineage:
        """The run's lineage, in a run of one configuration."""
        if len(self.lineages) != 1:
            raise AttributeError(
                f"this run has {len(self.lineages)} lineages ({', '.join(self.lineages)}); "
                "use loop.lineages[name]"
            )
        return next(iter(self.lineages.values()))

    def _check_lineages_on_disk(self, names: list[str]) -> None:
        """Refuse a run directory whose lineages are not this config's (CheckpointError)."""
        if self.paths.is_legacy() and len(names) > 1:
            raise CheckpointError(
                f"{self.run_dir} holds a run of one configuration written before lineages "
                f"(rlloop before lineages, 2026-12-04); it resumes only as a one-configuration run, not "
                f"with schedule.configurations {names} (use another run dir)"
            )
        on_disk = self.paths.lineage_names()
        if len(on_disk) == 1 and len(names) == 1 and on_disk != names:
            raise CheckpointError(
                f"{self.run_dir} holds a run of game {on_disk[0]!r}; this config plays "
                f"{names[0]!r} (use another run dir)"
            )
        if on_disk and sorted(on_disk) != sorted(names):
            raise CheckpointError(
                f"{self.run_dir} holds the lineages {on_disk}; this config has {sorted(names)}. "
                "A run keeps the configurations it started with (use another run dir)"
            )

    def _chunk_samples(self, lineage: Lineage) -> float:
        loop = lineage.config.loop
        return float(lineage.batch_size * int(loop.moves_per_chunk) * int(loop.chunks_per_iteration))

    def _make_pressure(self) -> dict[str, ReplayPressure]:
        """Replay backpressure for every lineage with a replay-ratio target."""
        settings = self.config.schedule.backpressure
        return {
            name: ReplayPressure(
                float(lineage.config.train.samples_per_insert),
                chunk_samples=self._chunk_samples(lineage),
                throttle_at=float(settings.throttle_at), stop_at=float(settings.stop_at),
                resume_at=float(settings.resume_at), min_factor=float(settings.min_factor),
            )
            for name, lineage in self.lineages.items()
            if float(lineage.config.train.samples_per_insert) > 0
        }

    def _pressed(self, name: str) -> ReplayPressure | None:
        """The lineage's backpressure, once it can train (below ``min_replay_size`` nothing
        consumes its replay yet, and stopping its self-play would stop it for good)."""
        lineage = self.lineages[name]
        if len(lineage.replay) < int(lineage.config.train.min_replay_size):
            return None
        return self.pressure.get(name)

    def _should_stop(self, name: str) -> bool:
        pressure = self._pressed(name)
        stopped = pressure.should_stop(name) if pressure is not None else False
        return stopped or name in self.paused

    def _should_throttle(self, name: str) -> bool:
        pressure = self._pressed(name)
        return pressure is not None and pressure.should_throttle(name)

    def _throttle_factor(self, name: str) -> float:
        pressure = self._pressed(name)
        return pressure.throttle_factor(name) if pressure is not None else 1.0

    def _make_scheduler(self) -> SelfplayScheduler:
        schedule = self.config.schedule
        specs = schedule.configurations
        priorities = {name: float(specs[name].priority) if name in specs else 5.0 for name in self.lineages}
        overrides = {str(k): float(v) for k, v in schedule.priority_overrides.items()}
        return SelfplayScheduler(
            list(self.lineages),
            static_priority=priorities,
            games_per_device={n: int(c.config.hardware.games_per_device) for n, c in self.lineages.items()},
            moves_per_chunk={n: int(c.config.loop.moves_per_chunk) for n, c in self.lineages.items()},
            ratings=self._ratings,
            curriculum_weights=self._curriculum,
            priority_overrides=lambda: overrides,
            should_stop=self._should_stop,
            should_throttle=self._should_throttle,
            throttle_factor=self._throttle_factor,
            warn=float(self.config.resources.memory_warn),
            critical=float(self.config.resources.memory_critical),
            seed=int(schedule.seed),
        )  # fmt: skip

    def _scheduler_inputs(self) -> tuple[dict[str, Rating], dict[str, float]]:
        """Ratings and curriculum weights from the ledger, read once per iteration (the
        scheduler asks for them at every pick and the status at every phase)."""
        if self._inputs is None or self._inputs[0] != self.iteration:
            mastery = {name: lineage.baseline_score() for name, lineage in self.lineages.items()}
            self._inputs = (self.iteration, self._read_ratings(mastery), self._read_curriculum(mastery))
        return self._inputs[1], self._inputs[2]

    def _ratings(self) -> dict[str, Rating]:
        return self._scheduler_inputs()[0]

    def _curriculum(self) -> dict[str, float]:
        return self._scheduler_inputs()[1]

    def _read_ratings(self, mastery: dict[str, float | None]) -> dict[str, Rating]:
        """The scheduler's ratings source: each lineage's champion Elo (its own scale, random
        = 0) and the iterations since its last promotion. A lineage whose newest network
        masters its baselines (``mastery`` >= 0.95) is not counted as stuck, nor as lagging:
        it is done rather than behind."""
        promoted: dict[str, int] = {}
        for promotion in self.ledger.promotions():
            promoted[promotion.config] = max(promoted.get(promotion.config, 0), promotion.iteration)
        result = {}
        for name, lineage in self.lineages.items():
            if (mastery[name] or 0.0) >= 0.95:
                result[name] = Rating()
                continue
            champion = self.ledger.champion(name) if lineage.champion_id else None
            result[name] = Rating(
                elo=champion.elo if champion is not None else None,
                iterations_since_promotion=self.iteration - promoted.get(name, 0),
            )
        return result

    def _read_curriculum(self, mastery: dict[str, float | None]) -> dict[str, float]:
        """Fixed weights from ``schedule.curriculum``; the mastery curriculum for the rest."""
        fixed = {str(k): float(v) for k, v in self.config.schedule.curriculum.items()}
        return {name: fixed[name] if name in fixed else mastery_weight(mastery[name]) for name in self.lineages}

    # ------------------------------------------------------------------ resume
    def _resume(self) -> None:
        """Continue from the newest checkpoint step that every lineage saved and that restores
        and verifies for every lineage.

        A lineage's checkpoint verifies when its Orbax items (training state, self-play games,
        meta) restore, and its replay and waiting-move files exist and read back whole (the
        zip CRC of every array is checked as it is read) with the sample count its meta
        recorded. Steps that fail (or that not every lineage saved: a crash between two
        lineages' saves) are skipped, newest first, each named with its reason on the console
        and in the ledger (``CHECKPOINT_SKIPPED``). A checkpoint of another game or network is
        refused at once; a run none of whose steps verifies is refused with one message that
        lists them.
        """
        saved = {name: set(lineage.checkpoint_steps()) for name, lineage in self.lineages.items()}
        every = set.intersection(*saved.values())
        some = set.union(*saved.values())
        if not some:
            return
        skipped: list[tuple[int, str]] = []
        chosen: int | None = None
        metas: dict[str, dict[str, Any]] = {}
        for step in sorted(some, reverse=True):
            if step not in every:
                missing = sorted(name for name, steps in saved.items() if step not in steps)
                skipped.append((step, f"not saved by lineage(s) {', '.join(missing)}"))
                continue
            try:
                for name, lineage in self.lineages.items():
                    metas[name] = lineage.restore(step)
            except DamagedCheckpoint as damaged:  # its reason is reported below
                prefix = f"lineage {name}: " if len(self.lineages) > 1 else ""
                skipped.append((step, f"{prefix}{damaged}"))
                continue
            chosen = step
            break
        if chosen is None:
            listed = "; ".join(f"checkpoint {step}: {reason}" for step, reason in skipped)
            folders = ", ".join(str(lineage.paths.train_checkpoints) for lineage in self.lineages.values())
            raise CheckpointError(
                f"{self.run_dir}: no training checkpoint restores ({listed}); move "
                f"{folders} aside to start this run afresh"
            )
        for bad, reason in skipped:
            self.telemetry.message(f"[rlloop] warning: skipped checkpoint {bad}: {reason}")
            self.ledger.add_event("CHECKPOINT_SKIPPED", {"step": bad, "reason": reason,
                                                         "resumed_from": chosen})  # fmt: skip
        self.iteration = chosen
        first = metas[next(iter(self.lineages))]
        if "scheduler" in first:
            self.scheduler.load_state_dict(first["scheduler"])
        for name, pressure in self.pressure.items():
            lineage = self.lineages[name]
            pressure.added(name, lineage.replay.total_added)
            pressure.consumed(name, int(lineage.train_state.step) * int(lineage.config.train.batch_size))
        replay = ", ".join(f"{n} {len(c.replay):,}" for n, c in self.lineages.items())
        self.telemetry.message(
            f"[rlloop] resumed from iteration {self.iteration} (checkpoint {chosen}); "
            f"replay {len(self.lineage.replay):,} samples" if len(self.lineages) == 1
            else f"[rlloop] resumed from iteration {self.iteration} (checkpoint {chosen}); replay {replay}"
        )

    # ------------------------------------------------------------------ phases
    def selfplay(self, name: str) -> dict[str, Any]:
        """Lineage ``name`` plays its chunks of this iteration (its metrics); the scheduler
        and backpressure count what it played."""
        lineage = self.lineages[name]
        metrics = lineage.selfplay(self.iteration + 1)
        if name in self.pressure:
            self.pressure[name].added(name, metrics["samples_added"])
        mode = str(lineage.config.search.algorithm.value)
        against = int(metrics.get("opponent_games", 0))
        self.scheduler.track_diversity(name, games=metrics["games_this_iteration"] - against, search_mode=mode)
        if against:
            self.scheduler.track_diversity(name, games=against, search_mode=mode, opponent=metrics["opponent"])
        return metrics

    def train(self, name: str) -> dict[str, Any]:
        """Lineage ``name``'s training steps due this iteration (its metrics)."""
        lineage = self.lineages[name]
        metrics = lineage.train()
        if name in self.pressure and not metrics.get("train_skipped"):
            self.pressure[name].consumed(name, metrics["train_steps"] * int(lineage.config.train.batch_size))
        return metrics

    def checkpoint(self) -> None:
        """Save every lineage at this iteration (each: replay and waiting-move files, then its
        Orbax checkpoint); the scheduler's state goes into every lineage's meta."""
        extra = {"scheduler": self.scheduler.state_dict()}
        for lineage in self.lineages.values():
            lineage.checkpoint(self.iteration, extra)

    def run_iteration(self) -> dict[str, Any]:
        """One iteration: the scheduler's pick plays, lineages train, gates, telemetry, and a
        checkpoint every N."""
        start = time.perf_counter()
        single = len(self.lineages) == 1
        name = parallel.agree(self.scheduler.pick_weighted_config)  # process 0's scheduler decides
        metrics: dict[str, Any] = {"schedule_seconds": time.perf_counter() - start}
        active: list[str] = []
        if name is not None:
            self._set_phase("selfplay", name)
            played = self.selfplay(name)
            self.health.record(name, played)
            metrics.update(played)
            active.append(name)
            if self.side is not None:
                lineage = self.lineages[name]
                metrics.update(self.side.after_selfplay(name, lineage.fresh_samples, self.iteration + 1))
                if lineage.gate is not None:
                    metrics.update(self.side.report_champion_once(
                        name, lineage.champion_id, lineage.selfplay_params, self.iteration + 1))
        else:
            self.telemetry.message(
                "[rlloop] every lineage's self-play is stopped (backpressure or memory): training only"
            )
        for other, lineage in self.lineages.items():
            if other == name and metrics.get("data_refused"):
                metrics["train_skipped"] = True
                continue
            if other != name and not lineage.training_owed():
                continue
            self._set_phase("train", other)
            result = self.train(other)
            self.health.record(other, result)
            if other == name or single:
                metrics.update(result)
            elif not result.get("train_skipped"):
                metrics.update({f"{other}/{k}": v for k, v in result.items() if k in ("loss", "train_steps")})
            if other not in active and not result.get("train_skipped"):
                active.append(other)
        if name is None and not any(k.endswith("train_steps") for k in metrics):
            metrics["train_skipped"] = True
        self.iteration += 1
        metrics.update(self.teachers.refine(self.iteration))
        for other in active:
            lineage = self.lineages[other]
            lineage.active_iterations += 1
            if lineage.gate is not None and lineage.active_iterations % int(lineage.config.gate.every) == 0:
                self._set_phase("gate", other)
                result = lineage.gate_if_trained(self.iteration)
                metrics.update(result if other == name or single else
                               {f"{other}/{k}": v for k, v in result.items()})  # fmt: skip
                if result.get("gate_promoted") and self.side is not None:
                    metrics.update(self.side.champion_report(
                        other, lineage.model_id(self.iteration), lineage.params, self.iteration))
            if lineage.perfect_play_due():
                lineage.score_perfect_play(lineage.model_id(self.iteration), lineage.snapshot_params())
        for lineage in self.lineages.values():
            lineage.collect_perfect_play()
        if self.side is not None:
            metrics.update(self.side.poll())
            self._update_tree_anchors()
        if any(v is True for k, v in metrics.items() if k.endswith("gate_promoted")):
            self.draw_plots()
        metrics["iteration_seconds"] = time.perf_counter() - start
        if single:
            metrics["champion"] = self.lineage.champion_id
        else:
            metrics["config"] = name or ""
            metrics["champion"] = self.lineages[name].champion_id if name else ""
            for other, share in self.scheduler.shares().items():
                metrics[f"share/{other}"] = share
        diversity = self.scheduler.diversity_metrics()
        metrics["diversity/games"] = diversity["games"]
        for category in ("config", "search_mode", "opponent", "difficulty"):
            metrics[f"diversity/{category}_entropy"] = diversity[category]["entropy"]
        metrics["diversity/asymmetric_share"] = diversity["asymmetric_share"]
        if self.resource_status is not None:
            reading = self.resource_status.reading
            metrics.update(memory_used=reading.memory, disk_used=reading.disk,
                           load_per_core=reading.load)  # fmt: skip
        if self.iteration % int(self.config.loop.checkpoint_every) == 0:
            self._set_phase("checkpoint")
            self.checkpoint()
        self.ledger.record_iteration(
            self.iteration,
            {k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in metrics.items()},
            config=name or "",
        )
        self.history.append({"iteration": self.iteration, **metrics})
        self.write_health(metrics["iteration_seconds"])
        console = self.iteration % int(self.config.loop.log_every) == 0
        self.telemetry.iteration(self.iteration, metrics, console=console)
        return metrics

    def draw_plots(self) -> None:
        """Redraw ``<run>/plots/`` (``rlloop.plot``) if ``loop.plots``; a failure is reported,
        never raised: plots must not stop a run."""
        if not self.is_main_process or not self.config.loop.plots:
            return
        self._set_phase("plot")
        try:
            from rlloop.plot import plot_run

            plot_run(self.run_dir)
        except Exception as error:  # any plotting failure costs only the plots
            self.telemetry.message(f"[rlloop] warning: plots not drawn ({type(error).__name__}: {error})")

    def _update_tree_anchors(self) -> None:
        """Each gated lineage's newest side value model becomes an anchor of its gate (the tree
        player, ``<lineage>/tree-<iteration>`` in the ledger): ratings then have an anchor
        outside the network lineage. Compiled anew for each new model."""
        from rlloop.side.jobs import newest_model_files
        from rlloop.side.player import load_tree_models, tree_player

        if jax.process_count() > 1:  # the side trainers are process 0's; gates are everyone's
            return
        for name, lineage in self.lineages.items():
            newest = newest_model_files(lineage.paths.side_dir).get("value")
            if lineage.gate is None or newest is None or self._tree_anchor_models.get(name) == newest.stem:
                continue
            model_id = f"{lineage.prefix}tree-{newest.stem.split('-')[-1]}"
            try:
                models = load_tree_models(lineage.paths.side_dir, lineage.game)
            except (OSError, ValueError) as error:
                lineage.message(f"warning: side models in {lineage.paths.side_dir} do not load ({error})")
                continue
            if model_id not in {m.id for m in self.ledger.models()}:
                self.ledger.add_model(model_id, parent=None, iteration=self.iteration, status="baseline",
                                      note=f"side tree player ({newest.name})", config=name)  # fmt: skip
            lineage.gate.extra_anchors = {"tree": tree_player(lineage.game, models, name=model_id)}
            self._tree_anchor_models[name] = newest.stem

    def write_health(self, seconds: float) -> None:
        """Close this iteration (``seconds`` of wall time) in ``learning_health.json``."""
        if not self.is_main_process:
            return
        self.health.write(self.iteration, seconds=seconds, side=self.side.health() if self.side else None,
                          ledger=self.ledger, lineages={
            name: {
                "champion": lineage.champion_id, "replay": len(lineage.replay),
                "capacity": lineage.replay.capacity, "batch_size": int(lineage.config.train.batch_size),
                "samples_added": lineage.replay.total_added,
                "samples_trained": int(lineage.train_state.step) * int(lineage.config.train.batch_size),
            }
            for name, lineage in self.lineages.items()
        })  # fmt: skip

    def _gate_at_end(self) -> None:
        """The run ended by its iteration count or its budget: judge every final network."""
        for name, lineage in self.lineages.items():
            if lineage.gate is None or not lineage.config.gate.at_end:
                continue
            self._set_phase("gate", name)
            result = lineage.gate_if_trained(self.iteration)
            if result and self.history:
                single = len(self.lineages) == 1
                self.history[-1].update(result if single else {f"{name}/{k}": v for k, v in result.items()})

    def run(self, iterations: int | None = None) -> list[dict[str, Any]]:
        """Run until iteration ``loop.iterations`` of the run (a resumed run finishes its
        original budget), or ``iterations`` more when given; return the metrics of every
        iteration run by this object.

        With ``gate.at_end`` the network is gated once more when the run ends by its
        iteration count or its wall-clock budget (``loop.max_minutes``), if it trained since
        the last gate. Ctrl-C (SIGINT) asks the loop to stop at the end of the current
        iteration, which is then checkpointed; a second Ctrl-C aborts at once (still saving
        the last completed iteration).
        """
        if iterations is None:
            target = int(self.config.loop.iterations)
        else:
            target = self.iteration + int(iterations)
        self._stop_requested = False
        in_main_thread = threading.current_thread() is threading.main_thread()
        previous_handler = signal.signal(signal.SIGINT, self._on_interrupt) if in_main_thread else None
        outcome = "finished"
        try:
            deadline = float(self.config.loop.max_minutes) * 60.0
            started = time.perf_counter()
            while self.iteration < target:
                # Every process stops at the same iteration: Ctrl-C in any, the disk (process
                # 0's guard), the wall-clock budget (process 0's clock).
                main = self.is_main_process
                asked, critical, late = parallel.global_sum([
                    self._stop_requested, main and self._resources_critical(),
                    main and bool(deadline) and time.perf_counter() - started >= deadline,
                ])  # fmt: skip
                if asked:
                    self._stop_requested = True
                    break
                if critical:
                    outcome = "stopped"
                    break
                if late:
                    self.telemetry.message(
                        f"[rlloop] loop.max_minutes={self.config.loop.max_minutes:g} reached: "
                        f"stopping after iteration {self.iteration}"
                    )
                    break
                self.run_iteration()
            if not self._stop_requested:
                self._gate_at_end()
        except BaseException as error:
            if self.watchdog is not None:  # several processes: leave at once (never returns)
                self.watchdog.fail(error)
            if not isinstance(error, KeyboardInterrupt):
                outcome = "failed"
                raise
            outcome = "stopped"
            self.telemetry.message(f"[rlloop] aborted during iteration {self.iteration + 1}")
        finally:
            if in_main_thread:
                signal.signal(signal.SIGINT, previous_handler)
            if self._stop_requested:
                outcome = "stopped"
                self.telemetry.message(f"[rlloop] interrupted: stopped after iteration {self.iteration}")
            saved = [lineage.checkpoints.latest_step() for lineage in self.lineages.values()]
            if self.iteration and any(step != self.iteration for step in saved):
                self._set_phase("checkpoint")
                self.checkpoint()
            for lineage in self.lineages.values():
                lineage.checkpoints.wait()
            if self.history and outcome != "failed":
                self.draw_plots()  # the run's final picture, promotion or not
            self._set_phase(outcome)
        if self.side is not None and self.side.pool.busy:
            self.telemetry.message("[rlloop] waiting for the side trainers' last jobs")
            self.side.drain(float(self.config.side.timeout_seconds))
        for lineage in self.lineages.values():
            if lineage.perfect_play is not None and lineage.perfect_play.busy:
                lineage.message("waiting for perfect-play scoring to finish")
                lineage.collect_perfect_play(wait=True)
        return self.history

    def _set_phase(self, phase: str, lineage: str = "") -> None:
        """Rewrite ``status.json`` (read by ``python -m rlloop.status``): the phase and the
        lineage it works on, since when, the last finished iteration, this process, and the
        scheduler (shares, picks, backpressure, paused lineages, diversity)."""
        if not self.is_main_process:
            return
        now = time.time()
        if (phase, lineage) != (self._phase, self._phase_lineage):
            self._phase, self._phase_lineage, self._phase_since = phase, lineage, now
        shares = self.scheduler.shares()
        priorities = self.scheduler.priorities()
        lineages = {}
        for name, item in self.lineages.items():
            pressure = self._pressed(name)
            lineages[name] = {
                "game": item.game.name, "champion": item.champion_id,
                "share": shares.get(name, 0.0), "picks": self.scheduler.picks.get(name, 0),
                "priority": priorities[name].total,
                "backpressure": pressure.state(name) if pressure is not None else "off",
                "lead_chunks": pressure.lead(name) if pressure is not None else None,
                "paused": name in self.paused, "replay": len(item.replay),
                "games": item.total_games, "train_step": int(item.train_state.step),
                "opponent": item.opponent_id,
                "traces": dict(item.programs.traces),
            }  # fmt: skip
        atomic_write_json(self.paths.status, {
            "pid": os.getpid(), "host": socket.gethostname(), "processes": jax.process_count(),
            "phase": phase, "lineage": lineage,
            "phase_since": self._phase_since, "updated": now, "started": self._started,
            "iteration": self.iteration, "configurations": list(self.lineages),
            "lineages": lineages, "diversity": self.scheduler.diversity_metrics(),
        }, durable=False)  # fmt: skip

    def _resources_critical(self) -> bool:
        """Check the resource guard; report level changes; True when the disk is critical
        (the run then stops, and ``run`` saves its final checkpoint)."""
        if self.resources is None:
            return False
        status = self.resource_status = self.resources.check()
        for name in self.resources.changes(status):
            level = status.levels[name]
            text = status.describe(name)
            if level != "ok":
                threshold = self.resources.thresholds[name][0 if level == "warn" else 1]
                text += f"; resources.{name}_{level}={threshold:g}"
            self.telemetry.message(f"[rlloop] resources: {text}")
            self.ledger.add_event("RESOURCE", {"resource": name, "level": level,
                                               "value": getattr(status.reading, name),
                                               "iteration": self.iteration})  # fmt: skip
        self._pause_on_memory(status)
        if status.levels["disk"] == "critical":
            self.telemetry.message(
                f"[rlloop] stopping after iteration {self.iteration}: {status.describe('disk')} "
                f"at {self.run_dir} (resources.disk_critical="
                f"{self.resources.thresholds['disk'][1]:g}); the last checkpoint is complete. "
                f"Free space, or raise resources.disk_critical, and run again to resume"
            )
            return True
        return False

    def _pause_on_memory(self, status: ResourceStatus) -> None:
        """Critical host memory pauses the self-play of the largest consumer still playing
        (:meth:`Lineage.memory_bytes`), one more each iteration while it stays critical, but
        never the last one playing (a run whose every lineage was paused only spun: nothing
        played, so nothing was left to train); below critical,
        every paused lineage plays again. A ledger event (``SCHEDULER``) records each."""
        if status.levels["memory"] == "critical":
            playing = [name for name in self.lineages if name not in self.paused]
            if len(playing) <= 1:  # the last one keeps the run moving
                return
            largest = max(playing, key=lambda n: self.lineages[n].memory_bytes())
            self.paused.add(largest)
            action, text = "paused", f"memory critical ({status.describe('memory')}): pausing {largest}'s self-play"
        elif self.paused:
            action, text = "resumed", f"memory below critical: {', '.join(sorted(self.paused))} play again"
            largest = ",".join(sorted(self.paused))
            self.paused.clear()
        else:
            return
        self.telemetry.message(f"[rlloop] {text}")
        self.ledger.add_event("SCHEDULER", {"action": action, "lineage": largest,
                                            "memory": status.reading.memory,
                                            "iteration": self.iteration})  # fmt: skip

    def _on_interrupt(self, signum: int, frame: Any) -> None:
        if self._stop_requested:
            raise KeyboardInterrupt
        self._stop_requested = True
        self.telemetry.message(
            "[rlloop] Ctrl-C: finishing this iteration, then saving and stopping "
            "(Ctrl-C again to abort now)"
        )

    def close(self) -> None:
        """Flush and release files (checkpoints, ledger, TensorBoard) and side workers."""
        if self.side is not None:
            self.side.close()
        for lineage in self.lineages.values():
            lineage.close()
        if self.watchdog is not None:
            self.watchdog.stop()
        self.ledger.close()
        self.telemetry.close()

    def __enter__(self) -> Loop:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
