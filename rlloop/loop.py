"""The orchestrator: one resumable iteration at a time.

Each iteration: self-play (with the champion's parameters) → data quality gate → replay →
training → every ``gate.every`` iterations the arena gate (candidate vs champion; promotion,
rejection, ratings) → checkpoint every ``loop.checkpoint_every`` → ledger row and telemetry.

Self-play picks its model by a fixed chain, logged at start: the ledger's champion, else the
latest training checkpoint, else a fresh network (registered as the first champion). A
promotion publishes ``MODEL_PROMOTED`` (ledger row + in-process bus); self-play swaps to the
new parameters at the next chunk boundary without recompiling (parameters are an argument).

A run directory that already holds a run is resumed: training state, self-play games, replay,
waiting moves, iteration counter and RNG streams come back from the newest complete checkpoint,
and the champion from the ledger (whose committed rows are never lost).

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
import logging
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import jax
import numpy as np
from omegaconf import DictConfig, OmegaConf

from rlloop import config as config_lib
from rlloop import games, parallel
from rlloop.agent import Agent
from rlloop.checkpoints import ChampionCheckpoints, CheckpointError, TrainCheckpoints
from rlloop.gate import BASELINES, Gate
from rlloop.ledger import MODEL_PROMOTED, Event, EventBus, Ledger
from rlloop.networks import init_params, network_from_config
from rlloop.perfect_play import PERFECT_PLAY_EVENT, PerfectPlayMonitor, default_cache_path
from rlloop.perfect_play import metrics_of as perfect_play_metrics
from rlloop.perfect_play import summary as perfect_play_summary
from rlloop.programs import build_programs
from rlloop.replay import PendingGames, ReplayBuffer, quality_problems
from rlloop.resources import ResourceGuard, ResourceStatus
from rlloop.runs import RunDir, atomic_savez, atomic_write_json, atomic_write_text
from rlloop.search import search_knobs
from rlloop.telemetry import Telemetry
from rlloop.train import (
    TrainState,
    init_train_state,
    make_optimizer,
)

log = logging.getLogger(__name__)
SYNC_EVERY_STEPS = 16


def default_run_dir() -> Path:
    """``outputs/api/<date>/<time>`` for runs started from Python without a run dir."""
    now = datetime.datetime.now()
    return Path("outputs") / "api" / now.strftime("%Y-%m-%d") / now.strftime("%H-%M-%S-%f")


class Loop:
    """The closed self-play loop for one config.

    Args:
      config: a composed config (see :func:`rlloop.compose`).
      run_dir: where the run writes; defaults to ``config.run_dir`` or a fresh folder under
        ``outputs/api``.
    """

    def __init__(self, config: DictConfig, *, run_dir: str | Path | None = None) -> None:
        config_lib.validate(config)
        self.config = config
        parallel.configure_jax(config.hardware, game=str(config.game.name))
        resume = OmegaConf.select(config, "resume", default="")
        if resume and not RunDir(resume).is_run():
            raise ValueError(
                f"resume={resume}: not an rlloop run directory (it has no config.yaml); "
                "give the folder a run wrote, e.g. outputs/<date>/<time>"
            )
        chosen = run_dir or resume or OmegaConf.select(config, "run_dir", default="") or default_run_dir()
        self.run_dir = Path(chosen).resolve()
        self.paths = RunDir(self.run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.is_main_process = jax.process_index() == 0

        self.game = games.make(config.game.name)
        self.network = network_from_config(self.game, config.model)
        self.mesh = parallel.make_mesh(parallel.devices_for(config.hardware.platform))
        self.num_devices = self.mesh.devices.size
        self.batch_size = int(config.hardware.games_per_device) * self.num_devices
        if config.train.batch_size % self.num_devices:
            raise ValueError(
                f"train.batch_size={config.train.batch_size} must be a multiple of the "
                f"{self.num_devices} devices on the data axis"
            )

        root_key = jax.random.key(int(config.loop.seed))
        self._key = jax.random.fold_in(root_key, 1)
        self._rng = np.random.default_rng([int(config.loop.seed), jax.process_index()])
        params = init_params(self.network, self.game, jax.random.fold_in(root_key, 0))
        self.optimizer = make_optimizer(config.train)
        self.train_state: TrainState = parallel.put_replicated(
            init_train_state(params, self.optimizer), self.mesh
        )

        self._build_functions()
        # Entries kept of each policy target: the search's slots (selfplay.policy_slots).
        self.policy_slots = self.programs.policy_slots
        self.states = self._init_states(jax.random.fold_in(root_key, 2))
        self.pending = self._new_pending()
        self.replay = self._new_replay()
        self.iteration = 0
        self.total_games = 0
        self.total_moves = 0
        self.history: list[dict[str, Any]] = []
        self.telemetry = Telemetry(
            self.run_dir, tensorboard=bool(config.loop.tensorboard), enabled=self.is_main_process
        )
        self.checkpoints = TrainCheckpoints(
            self.paths.train_checkpoints, keep=int(config.loop.keep_checkpoints)
        )
        self.champions = ChampionCheckpoints(self.paths.champion_checkpoints)
        self.bus = EventBus()
        self.bus.subscribe(MODEL_PROMOTED, self._on_promoted)
        self.ledger = Ledger(self.paths.ledger, bus=self.bus, config=self.game.name)
        self.gate = (
            Gate(self.game, self.network, config.gate, search_knobs(config.search), self.ledger)
            if config.gate.enabled
            else None
        )
        self.chunks_played = 0
        self._gated_at_step = 0  # training step of the last gated candidate
        self._promoted: dict[str, tuple[Any, int]] = {}  # model id -> (params, chunk of promotion)
        self._next_champion: str | None = None
        self.telemetry.message(
            f"[rlloop] game={self.game.name} model={config.model.name} "
            f"search={config.search.algorithm.value}x{config.search.num_simulations} "
            f"devices={self.num_devices}x{self.mesh.devices.flat[0].platform} "
            f"games={self.batch_size} run_dir={self.run_dir}"
        )
        self._resume()
        if self.is_main_process:
            atomic_write_text(self.paths.config, OmegaConf.to_yaml(config))
        self.champion_id, self.selfplay_params = self._select_selfplay_model()
        self.perfect_play = self._make_perfect_play()
        self.resources = (
            ResourceGuard(
                self.run_dir,
                **{k: float(v) for k, v in config.resources.items() if k != "enabled"},
            )
            if config.resources.enabled
            else None
        )
        self.resource_status: ResourceStatus | None = None
        self._phase, self._phase_since, self._started = "", 0.0, time.time()
        self._set_phase("starting")
        if self.perfect_play is not None and self.gate is not None:
            self._score_perfect_play(self.champion_id, self.selfplay_params)

    # ------------------------------------------------------------------ setup
    def _build_functions(self) -> None:
        self.programs = build_programs(
            self.game, self.network, self.optimizer, self.config, self.mesh,
            batch_size=self.batch_size,
        )  # fmt: skip

    def _init_states(self, key: jax.Array) -> Any:
        return self.programs.new_games(key)

    def _next_key(self) -> jax.Array:
        self._key, key = jax.random.split(self._key)
        return key

    @property
    def params(self) -> Any:
        """The network parameters being trained (the next candidate)."""
        return self.train_state.params

    # ------------------------------------------------------------------ resume and models
    def _resume(self) -> None:
        """Continue from the newest training checkpoint that restores and verifies.

        A checkpoint verifies when its Orbax items (training state, self-play games, meta)
        restore, and its replay and waiting-move files exist and read back whole (the zip
        CRC of every array is checked as it is read) with the sample count its meta
        recorded. Checkpoints that fail are skipped, newest first, each named with its reason
        on the console and in the ledger (``CHECKPOINT_SKIPPED``). A checkpoint of another
        game or network is refused at once; a run none of whose checkpoints verifies is
        refused with one message that lists them.
        """
        steps = self.checkpoints.steps()
        if not steps:
            return
        templates = {"state": self.train_state, "selfplay": self.states}
        skipped: list[tuple[int, str]] = []
        for step in reversed(steps):
            try:
                meta = self.checkpoints.restore_meta(step)
            except Exception as error:  # a damaged step: its reason is reported below
                skipped.append((step, f"its meta does not restore ({type(error).__name__}: {error})"))
                continue
            self._check_checkpoint_fits(meta)
            try:
                items, meta = self.checkpoints.restore(step, templates)
                replay, pending = self._restore_replay(step, meta)
            except Exception as error:
                skipped.append((step, f"{type(error).__name__}: {error}"))
                continue
            break
        else:
            listed = "; ".join(f"checkpoint {step}: {reason}" for step, reason in skipped)
            raise CheckpointError(
                f"{self.run_dir}: no training checkpoint restores ({listed}); move "
                f"{self.run_dir / 'checkpoints' / 'train'} aside to start this run afresh"
            )
        for bad, reason in skipped:
            self.telemetry.message(f"[rlloop] warning: skipped checkpoint {bad}: {reason}")
            self.ledger.add_event("CHECKPOINT_SKIPPED", {"step": bad, "reason": reason,
                                                         "resumed_from": step})  # fmt: skip
        self.train_state, self.states = items["state"], items["selfplay"]
        self.replay, self.pending = replay, pending
        self.iteration = int(meta["iteration"])
        self.total_games = int(meta.get("total_games", 0))
        self.total_moves = int(meta.get("total_moves", 0))
        self.chunks_played = int(meta.get("chunks_played", 0))
        self._key = jax.random.wrap_key_data(np.asarray(meta["key"], dtype=np.uint32))
        self._rng.bit_generator.state = meta["numpy_rng"]
        self.telemetry.message(
            f"[rlloop] resumed from iteration {self.iteration} (checkpoint {step}); "
            f"replay {len(self.replay):,} samples"
        )

    def _check_checkpoint_fits(self, meta: dict[str, Any]) -> None:
        """Refuse a checkpoint of another game or network shape (CheckpointError)."""
        if meta.get("game") != self.game.name:
            raise CheckpointError(
                f"{self.run_dir} holds a run of game {meta.get('game')!r}; this config plays "
                f"{self.game.name!r} (use another run dir)"
            )
        saved_model = {k: v for k, v in meta.get("model", {}).items() if k != "name"}
        wanted_model = {k: v for k, v in OmegaConf.to_container(self.config.model).items() if k != "name"}
        if saved_model and saved_model != wanted_model:
            raise CheckpointError(
                f"{self.run_dir} holds a network {saved_model}; this config asks for "
                f"{wanted_model} (use another run dir)"
            )

    def _new_replay(self) -> ReplayBuffer:
        return ReplayBuffer(
            int(self.config.train.replay_capacity),
            observation_shape=tuple(self.game.observation_shape),
            num_actions=self.game.num_actions,
            num_players=self.game.num_players,
            policy_slots=self.policy_slots,
        )

    def _new_pending(self) -> PendingGames:
        return PendingGames(
            value_lambda=float(self.config.train.value_lambda), num_players=self.game.num_players,
            policy_slots=self.policy_slots,
        )  # fmt: skip

    def _restore_replay(self, step: int, meta: dict[str, Any]) -> tuple[ReplayBuffer, PendingGames]:
        """The replay and waiting moves saved with checkpoint ``step``, verified (see
        :meth:`_resume`); raises when a file is missing, damaged or not the one the meta
        recorded."""
        replay_file, pending_file = self.paths.replay_file(step), self.paths.pending_file(step)
        for path in (replay_file, pending_file):
            if not path.is_file():
                raise FileNotFoundError(f"its file {path.relative_to(self.run_dir)} is missing")
        replay = self._new_replay()
        replay.load(replay_file)
        expected = meta.get("replay_total_added")  # absent in checkpoints before 2026-12-04
        if expected is not None and replay.total_added != int(expected):
            raise ValueError(
                f"{replay_file.name} holds {replay.total_added:,} added samples, its checkpoint "
                f"recorded {int(expected):,}"
            )
        pending = self._new_pending()
        with np.load(pending_file) as data:
            pending.load_state_dict({name: data[name] for name in data.files})
        expected = meta.get("pending_waiting")
        if expected is not None and pending.num_waiting != int(expected):
            raise ValueError(
                f"{pending_file.name} holds {pending.num_waiting:,} waiting moves, its checkpoint "
                f"recorded {int(expected):,}"
            )
        return replay, pending

    def _select_selfplay_model(self) -> tuple[str, Any]:
        """Self-play's model: the ledger's champion, else the latest checkpoint, else fresh."""
        for name in BASELINES:
            if name not in {m.id for m in self.ledger.models()}:
                self.ledger.add_model(name, parent=None, iteration=0, status="baseline",
                                      note="fixed baseline player")  # fmt: skip
        champion = self.ledger.champion()
        params = None
        if champion is not None:
            try:
                step = int(str(champion.checkpoint).rsplit("/", 1)[-1])
                items, _ = self.champions.restore(step, {"params": self.train_state.params})
                reason = f"the ledger's champion {champion.id}"
                model_id, params = champion.id, items["params"]
            except (ValueError, FileNotFoundError, CheckpointError) as error:
                log.warning("champion %s has no readable checkpoint (%s)", champion.id, error)
                self.telemetry.message(
                    f"[rlloop] warning: champion {champion.id} has no readable checkpoint "
                    f"({champion.checkpoint}); falling back"
                )
        if params is None:
            if self.iteration:
                reason = f"no champion in the ledger; the latest checkpoint (iteration {self.iteration})"
            else:
                reason = "no champion and no checkpoint; a fresh network"
            model_id, params = self._model_id(self.iteration), self._snapshot_params()
            self._save_champion(self.iteration, params, model_id)
            parent = champion.id if champion is not None else None
            if model_id in {m.id for m in self.ledger.models()}:
                self.ledger.set_checkpoint(model_id, f"champions/{self.iteration}")
                self.ledger.set_status(model_id, "champion")
            else:
                self.ledger.add_model(
                    model_id, parent=parent, iteration=self.iteration, status="champion",
                    checkpoint=f"champions/{self.iteration}", note="first champion",
                )  # fmt: skip
        self.telemetry.message(f"[rlloop] self-play uses {model_id}: {reason}")
        return model_id, params

    def _make_perfect_play(self) -> PerfectPlayMonitor | None:
        """The background perfect-play scorer (games with ``Game.perfect_play``, process 0,
        if enabled)."""
        settings = self.config.perfect_play
        if not settings.enabled or not self.game.perfect_play or not self.is_main_process:
            return None
        game, network, search = self.game, self.network, self.config.search
        monitor = PerfectPlayMonitor(
            lambda params: Agent(game, network, params, search),
            list(settings.sets),
            simulations=list(settings.simulations),
            data_dir=settings.data_dir or None,
            cache_path=default_cache_path(),
            background=bool(settings.background),
            budget_seconds=float(settings.budget_seconds) or None,
        )  # fmt: skip
        names = ", ".join(positions.name for positions in monitor.sets)
        skipped = f" (not found: {', '.join(monitor.skipped_sets)})" if monitor.skipped_sets else ""
        self.telemetry.message(f"[rlloop] perfect play: scoring models on {names}{skipped}")
        return monitor

    def _score_perfect_play(self, model_id: str, params: Any) -> None:
        """Queue ``model_id`` for perfect-play scoring unless the ledger already has it."""
        assert self.perfect_play is not None
        done = {e.payload.get("model_id") for e in self.ledger.events_since(kind=PERFECT_PLAY_EVENT)}
        if model_id not in done:
            iteration = int(model_id.split("-")[-1]) if model_id.startswith("iter-") else self.iteration
            # On one device: the scorer's programs then never join the mesh's collectives.
            params = jax.device_put(params, jax.local_devices()[0])
            self.perfect_play.submit(model_id, iteration, params)

    def _collect_perfect_play(self, *, wait: bool = False) -> None:
        """Write finished perfect-play scores to the ledger, TensorBoard and the console."""
        if self.perfect_play is None:
            return
        for model_id, iteration, results, seconds in self.perfect_play.poll(wait=wait):
            self.ledger.add_event(PERFECT_PLAY_EVENT, {
                "model_id": model_id, "iteration": iteration, "seconds": seconds,
                "results": [result.as_dict() for result in results],
            })  # fmt: skip
            self.telemetry.scalars(iteration, perfect_play_metrics(results))
            self.telemetry.message(f"[rlloop] perfect play {model_id}: {perfect_play_summary(results)}")

    def _snapshot_params(self) -> Any:
        """A copy of the trained parameters (the train step donates its input buffers)."""
        return jax.tree.map(lambda x: x.copy(), self.train_state.params)

    @staticmethod
    def _model_id(iteration: int) -> str:
        return f"iter-{iteration:06d}"

    def _save_champion(self, step: int, params: Any, model_id: str) -> None:
        # On disk before the ledger names it, so a committed champion always has its params.
        self.champions.save(step, {"params": params}, {"model_id": model_id, "game": self.game.name})
        self.champions.wait()

    def _on_promoted(self, event: Event) -> None:
        self._next_champion = str(event.payload["model_id"])

    # ------------------------------------------------------------------ phases
    def selfplay(self) -> dict[str, Any]:
        """Play ``chunks_per_iteration`` chunks and move finished games into replay."""
        start = time.perf_counter()
        games_done = moves = added = 0
        lengths: list[np.ndarray] = []
        root_values: list[float] = []
        refused: list[str] = []
        for _ in range(int(self.config.loop.chunks_per_iteration)):
            self._swap_champion_if_promoted()
            params = self.selfplay_params if self.gate is not None else self.params
            self.states, chunk = self.programs.play(params, self.states, self._next_key())
            self.chunks_played += 1
            chunk = jax.device_get(chunk)
            samples = self.pending.add(chunk)
            problems = quality_problems(
                samples, min_mean_game_length=float(self.config.train.min_mean_game_length)
            )
            if problems:
                refused += problems
                self.ledger.add_event("TRAINING_DATA_REFUSED", {"iteration": self.iteration + 1,
                                                                "problems": problems})  # fmt: skip
                self.telemetry.message("[rlloop] refused self-play data: " + "; ".join(problems))
            else:
                self.replay.add(samples)
            finished = chunk["done"]
            games_done += int(finished.sum())
            moves += int(finished.size)
            added += len(samples["policy_weights"])
            lengths.append(chunk["game_length"][finished])
            root_values.append(float(np.mean(chunk["root_value"])))
        seconds = time.perf_counter() - start
        self.total_games += games_done
        self.total_moves += moves
        all_lengths = np.concatenate(lengths) if lengths else np.zeros(0)
        return {
            "selfplay_seconds": seconds,
            "games": self.total_games,
            "games_this_iteration": games_done,
            "games_per_second": games_done / seconds,
            "moves_per_second": moves / seconds,
            "mean_game_length": float(all_lengths.mean()) if all_lengths.size else float("nan"),
            "mean_root_value": float(np.mean(root_values)),
            "samples_added": added,
            "samples_waiting": self.pending.num_waiting,
            "replay_size": len(self.replay),
            "data_refused": bool(refused),
        }

    def _swap_champion_if_promoted(self) -> None:
        """At a chunk boundary: switch self-play to a newly promoted champion."""
        if self._next_champion is None:
            return
        model_id = self._next_champion
        params, promoted_at_chunk = self._promoted.pop(model_id)
        self.champion_id, self.selfplay_params = model_id, params
        self._next_champion = None
        self.telemetry.message(
            f"[rlloop] self-play now uses {model_id}: promoted after chunk {promoted_at_chunk}, "
            f"in use from chunk {self.chunks_played + 1} "
            f"({self.chunks_played - promoted_at_chunk} chunks later)"
        )

    def train_steps_due(self) -> int:
        """Optimiser steps this iteration: ``steps_per_iteration``, or with
        ``samples_per_insert`` > 0 fewer when the run has already trained that many samples per
        sample added to replay (early on, a small replay is otherwise overfitted: 48 steps of
        256 on the first 2,000 samples are six epochs)."""
        train_config = self.config.train
        steps = int(train_config.steps_per_iteration)
        ratio = float(train_config.samples_per_insert)
        if ratio > 0:
            batch = int(train_config.batch_size)
            allowed = ratio * self.replay.total_added - int(self.train_state.step) * batch
            steps = max(0, min(steps, int(allowed // batch)))
        return steps

    def train(self) -> dict[str, Any]:
        """``train_steps_due()`` optimiser steps on replay samples (skipped while replay is
        below ``min_replay_size``)."""
        train_config = self.config.train
        if len(self.replay) < int(train_config.min_replay_size):
            return {"train_skipped": True}
        due = self.train_steps_due()
        if due == 0:
            return {"train_skipped": True}
        start = time.perf_counter()
        batches = self.replay.sample(
            self._rng,
            batch_size=int(train_config.batch_size),
            num_batches=int(train_config.steps_per_iteration),
        )
        batches = parallel.put_batch(batches, self.mesh, axis=1)
        # Always steps_per_iteration batches (one device shape, one compiled step); the first
        # ``due`` are used.
        keys = jax.random.split(self._next_key(), int(train_config.steps_per_iteration))
        step_metrics = []
        for index in range(due):
            self.train_state, metrics = self.programs.train_step(
                self.train_state, batches, np.int32(index), keys[index]
            )
            step_metrics.append(metrics)
            if (index + 1) % SYNC_EVERY_STEPS == 0:
                # Queuing many calls that hold a cross-device all-reduce has aborted XLA:CPU
                # (rendezvous timeout); waiting every <= 32 steps was reliable.
                jax.block_until_ready(metrics)
        step_metrics = jax.device_get(step_metrics)
        result = {
            name: float(np.mean([m[name] for m in step_metrics])) for name in step_metrics[0]
        }
        result["train_seconds"] = time.perf_counter() - start
        result["train_step"] = int(self.train_state.step)
        return result

    def checkpoint(self) -> None:
        """Save the iteration: replay and waiting moves (atomic files), then training state,
        self-play games and RNG state (Orbax, atomic per step)."""
        step = self.iteration
        replay_dir = self.paths.replay_dir
        replay_dir.mkdir(exist_ok=True)
        self.replay.save(self.paths.replay_file(step))
        atomic_savez(self.paths.pending_file(step), **self.pending.state_dict())
        self.checkpoints.save(
            step,
            {"state": self.train_state, "selfplay": self.states},
            {
                "iteration": self.iteration,
                "game": self.game.name,
                "model": OmegaConf.to_container(self.config.model),
                "total_games": self.total_games,
                "total_moves": self.total_moves,
                "chunks_played": self.chunks_played,
                # What the replay files beside this step hold, checked on resume.
                "replay_total_added": self.replay.total_added,
                "pending_waiting": self.pending.num_waiting,
                "key": np.asarray(jax.random.key_data(self._key)).tolist(),
                "numpy_rng": self._rng.bit_generator.state,
            },
        )
        self.checkpoints.wait()
        kept = set(self.checkpoints.steps())
        for old in replay_dir.glob("*-*.npz"):
            number = old.stem.split("-")[-1]
            if number.isdigit() and int(number) not in kept:
                old.unlink(missing_ok=True)

    def run_gate(self) -> dict[str, Any]:
        """Candidate (the trained network now) vs champion; promote, reject or keep training."""
        assert self.gate is not None
        start = time.perf_counter()
        candidate_id = self._model_id(self.iteration)
        if candidate_id == self.champion_id:
            return {}
        known = {model.id: model for model in self.ledger.models()}
        if candidate_id in known and known[candidate_id].status != "candidate":
            # A resumed run replays iterations after its last checkpoint; a decision the ledger
            # already committed for this iteration stands.
            self.telemetry.message(
                f"[rlloop] gate {candidate_id}: already {known[candidate_id].status} in the ledger"
            )
            return {}
        if candidate_id not in known:
            self.ledger.add_model(candidate_id, parent=self.champion_id, iteration=self.iteration,
                                  status="candidate")  # fmt: skip
        candidate_params = self._snapshot_params()
        decision = self.gate.evaluate(
            candidate=self.gate.player(candidate_id, candidate_params),
            champion=self.gate.player(self.champion_id, self.selfplay_params),
            iteration=self.iteration,
            key=self._next_key(),
        )
        if decision.decision == "promote":
            self._save_champion(self.iteration, candidate_params, candidate_id)
            self.ledger.set_checkpoint(candidate_id, f"champions/{self.iteration}")
            self._promoted[candidate_id] = (candidate_params, self.chunks_played)
            self.ledger.promote(candidate_id, iteration=self.iteration, score=decision.score,
                                score_low=decision.score_low, score_high=decision.score_high)  # fmt: skip
            if self.perfect_play is not None:
                self._score_perfect_play(candidate_id, candidate_params)
            self._prune_champions()
        elif decision.decision == "reject":
            self.ledger.reject(candidate_id, iteration=self.iteration, reason=decision.reason)
        self.telemetry.message(f"[rlloop] gate {candidate_id}: {decision.decision.upper()} ({decision.reason})")
        return {
            "gate_seconds": time.perf_counter() - start,
            "gate_score": decision.score,
            "gate_promoted": decision.decision == "promote",
            "candidate_elo": decision.candidate_elo,
            "champion_elo": decision.champion_elo,
        }

    def _gate_if_trained(self) -> dict[str, Any]:
        """:meth:`run_gate`, if the network trained since the last gate (never gate an untrained
        one; with train.samples_per_insert an iteration may train nothing)."""
        trained_step = int(self.train_state.step)
        if self.gate is None or trained_step <= self._gated_at_step:
            return {}
        self._gated_at_step = trained_step
        return self.run_gate()

    def _prune_champions(self) -> None:
        elo = {}
        for model in self.ledger.models():
            if model.checkpoint and model.checkpoint.startswith("champions/") and model.elo is not None:
                elo[int(model.checkpoint.split("/")[1])] = model.elo
        champion = self.ledger.champion()
        protect = {int(champion.checkpoint.split("/")[1])} if champion and champion.checkpoint else set()
        self.champions.prune(elo, keep=int(self.config.gate.keep_champions), protect=protect)

    def run_iteration(self) -> dict[str, Any]:
        """One iteration: self-play, training, telemetry, and a checkpoint every N."""
        start = time.perf_counter()
        self._set_phase("selfplay")
        metrics = self.selfplay()
        if metrics["data_refused"]:
            metrics["train_skipped"] = True
        else:
            self._set_phase("train")
            metrics.update(self.train())
        self.iteration += 1
        if self.gate is not None and self.iteration % int(self.config.gate.every) == 0:
            self._set_phase("gate")
            metrics.update(self._gate_if_trained())
        if (
            self.perfect_play is not None and self.gate is None
            and self.iteration % int(self.config.perfect_play.every) == 0
        ):  # fmt: skip
            self._score_perfect_play(self._model_id(self.iteration), self._snapshot_params())
        self._collect_perfect_play()
        metrics["iteration_seconds"] = time.perf_counter() - start
        metrics["champion"] = self.champion_id
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
        )
        self.history.append({"iteration": self.iteration, **metrics})
        console = self.iteration % int(self.config.loop.log_every) == 0
        self.telemetry.iteration(self.iteration, metrics, console=console)
        return metrics

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
            while self.iteration < target and not self._stop_requested:
                if self._resources_critical():
                    outcome = "stopped"
                    break
                if deadline and time.perf_counter() - started >= deadline:
                    self.telemetry.message(
                        f"[rlloop] loop.max_minutes={self.config.loop.max_minutes:g} reached: "
                        f"stopping after iteration {self.iteration}"
                    )
                    break
                self.run_iteration()
            if not self._stop_requested and self.gate is not None and self.config.gate.at_end:
                # The run ended by its iteration count or its budget: judge the final network.
                result = self._gate_if_trained()
                if result and self.history:
                    self.history[-1].update(result)
        except KeyboardInterrupt:
            outcome = "stopped"
            self.telemetry.message(f"[rlloop] aborted during iteration {self.iteration + 1}")
        except BaseException:
            outcome = "failed"
            raise
        finally:
            if in_main_thread:
                signal.signal(signal.SIGINT, previous_handler)
            if self._stop_requested:
                outcome = "stopped"
                self.telemetry.message(f"[rlloop] interrupted: stopped after iteration {self.iteration}")
            if self.iteration and self.checkpoints.latest_step() != self.iteration:
                self._set_phase("checkpoint")
                self.checkpoint()
            self.checkpoints.wait()
            self._set_phase(outcome)
        if self.perfect_play is not None and self.perfect_play.busy:
            self.telemetry.message("[rlloop] waiting for perfect-play scoring to finish")
            self._collect_perfect_play(wait=True)
        return self.history

    def _set_phase(self, phase: str) -> None:
        """Rewrite ``status.json`` (read by ``python -m rlloop.status``): the phase, since
        when, the last finished iteration and this process."""
        if not self.is_main_process:
            return
        now = time.time()
        if phase != self._phase:
            self._phase, self._phase_since = phase, now
        atomic_write_json(self.paths.status, {
            "pid": os.getpid(), "phase": phase, "phase_since": self._phase_since,
            "updated": now, "started": self._started, "iteration": self.iteration,
            "configurations": [self.game.name],
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
        if status.levels["disk"] == "critical":
            self.telemetry.message(
                f"[rlloop] stopping after iteration {self.iteration}: {status.describe('disk')} "
                f"at {self.run_dir} (resources.disk_critical="
                f"{self.resources.thresholds['disk'][1]:g}); the last checkpoint is complete. "
                f"Free space, or raise resources.disk_critical, and run again to resume"
            )
            return True
        return False

    def _on_interrupt(self, signum: int, frame: Any) -> None:
        if self._stop_requested:
            raise KeyboardInterrupt
        self._stop_requested = True
        self.telemetry.message(
            "[rlloop] Ctrl-C: finishing this iteration, then saving and stopping "
            "(Ctrl-C again to abort now)"
        )

    def close(self) -> None:
        """Flush and release files (checkpoints, ledger, TensorBoard)."""
        if self.perfect_play is not None:
            self.perfect_play.close()
        self.checkpoints.close()
        self.champions.close()
        self.ledger.close()
        self.telemetry.close()

    def __enter__(self) -> Loop:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
