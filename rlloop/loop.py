"""The orchestrator: one iteration at a time of self-play → replay → training → telemetry.

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
import functools
import logging
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
from rlloop.checkpoints import TrainCheckpoints
from rlloop.networks import init_params, network_from_config
from rlloop.replay import PendingGames, ReplayBuffer
from rlloop.search import search_from_config
from rlloop.selfplay import make_selfplay, new_games
from rlloop.telemetry import Telemetry
from rlloop.train import (
    TrainState,
    init_train_state,
    make_optimizer,
    make_train_step,
    stack_symmetries,
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
        parallel.configure_jax(config.hardware)
        chosen = run_dir or OmegaConf.select(config, "run_dir", default="") or default_run_dir()
        self.run_dir = Path(chosen).resolve()
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
        self.states = self._init_states(jax.random.fold_in(root_key, 2))
        self.pending = PendingGames()
        self.replay = ReplayBuffer(
            int(config.train.replay_capacity),
            observation_shape=tuple(self.game.observation_shape),
            num_actions=self.game.num_actions,
            num_players=self.game.num_players,
        )
        self.iteration = 0
        self.total_games = 0
        self.total_moves = 0
        self.history: list[dict[str, Any]] = []
        self.telemetry = Telemetry(
            self.run_dir, tensorboard=bool(config.loop.tensorboard), enabled=self.is_main_process
        )
        self.checkpoints = TrainCheckpoints(
            self.run_dir / "checkpoints" / "train", keep=int(config.loop.keep_checkpoints)
        )
        if self.is_main_process:
            (self.run_dir / "config.yaml").write_text(OmegaConf.to_yaml(config))
        self.telemetry.message(
            f"[rlloop] game={self.game.name} model={config.model.name} "
            f"search={config.search.algorithm.value}x{config.search.num_simulations} "
            f"devices={self.num_devices}x{self.mesh.devices.flat[0].platform} "
            f"games={self.batch_size} run_dir={self.run_dir}"
        )

    # ------------------------------------------------------------------ setup
    def _build_functions(self) -> None:
        config, mesh = self.config, self.mesh
        search = search_from_config(self.game, self.network, config.search)
        play = make_selfplay(
            self.game,
            search,
            moves_per_chunk=int(config.loop.moves_per_chunk),
            temperature_moves=int(config.loop.temperature_moves),
            random_opening_moves=int(config.loop.random_opening_moves),
        )
        replicated = parallel.replicated(mesh)
        by_game = parallel.batch_sharding(mesh)
        by_game_time_major = parallel.batch_sharding(mesh, axis=1)
        self._play = jax.jit(
            play,
            in_shardings=(replicated, by_game, replicated),
            out_shardings=(by_game, by_game_time_major),
        )
        tables = stack_symmetries(self.game.symmetries()) if config.train.augment else None
        train_step = make_train_step(
            self.network,
            self.optimizer,
            value_loss_weight=float(config.train.value_loss_weight),
            symmetry_tables=tables,
        )
        self._train_step = jax.jit(
            train_step,
            in_shardings=(replicated, by_game_time_major, replicated, replicated),
            out_shardings=(replicated, replicated),
            donate_argnums=(0,),
        )
        self._new_games = jax.jit(
            functools.partial(
                new_games,
                self.game,
                batch_size=self.batch_size,
                random_opening_moves=int(config.loop.random_opening_moves),
            ),
            out_shardings=by_game,
        )

    def _init_states(self, key: jax.Array) -> Any:
        return self._new_games(key)

    def _next_key(self) -> jax.Array:
        self._key, key = jax.random.split(self._key)
        return key

    @property
    def params(self) -> Any:
        """The current network parameters."""
        return self.train_state.params

    # ------------------------------------------------------------------ phases
    def selfplay(self) -> dict[str, Any]:
        """Play ``chunks_per_iteration`` chunks and move finished games into replay."""
        start = time.perf_counter()
        games_done = moves = added = 0
        lengths: list[np.ndarray] = []
        root_values: list[float] = []
        for _ in range(int(self.config.loop.chunks_per_iteration)):
            self.states, chunk = self._play(self.params, self.states, self._next_key())
            chunk = jax.device_get(chunk)
            samples = self.pending.add(chunk)
            self.replay.add(samples)
            finished = chunk["done"]
            games_done += int(finished.sum())
            moves += int(finished.size)
            added += len(samples["policy"])
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
        }

    def train(self) -> dict[str, Any]:
        """``steps_per_iteration`` optimiser steps on replay samples (skipped while replay is
        below ``min_replay_size``)."""
        train_config = self.config.train
        if len(self.replay) < int(train_config.min_replay_size):
            return {"train_skipped": True}
        start = time.perf_counter()
        batches = self.replay.sample(
            self._rng,
            batch_size=int(train_config.batch_size),
            num_batches=int(train_config.steps_per_iteration),
        )
        batches = parallel.put_batch(batches, self.mesh, axis=1)
        keys = jax.random.split(self._next_key(), int(train_config.steps_per_iteration))
        step_metrics = []
        for index in range(int(train_config.steps_per_iteration)):
            self.train_state, metrics = self._train_step(
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
        """Save the training state of the current iteration."""
        self.checkpoints.save(
            self.iteration,
            self.train_state,
            {
                "iteration": self.iteration,
                "game": self.game.name,
                "model": OmegaConf.to_container(self.config.model),
                "total_games": self.total_games,
            },
        )

    def run_iteration(self) -> dict[str, Any]:
        """One iteration: self-play, training, telemetry, and a checkpoint every N."""
        start = time.perf_counter()
        metrics = self.selfplay()
        metrics.update(self.train())
        self.iteration += 1
        metrics["iteration_seconds"] = time.perf_counter() - start
        if self.iteration % int(self.config.loop.checkpoint_every) == 0:
            self.checkpoint()
        self.history.append({"iteration": self.iteration, **metrics})
        console = self.iteration % int(self.config.loop.log_every) == 0
        self.telemetry.iteration(self.iteration, metrics, console=console)
        return metrics

    def run(self, iterations: int | None = None) -> list[dict[str, Any]]:
        """Run ``iterations`` (default ``loop.iterations``) and return every iteration's metrics.

        Ctrl-C (SIGINT) asks the loop to stop at the end of the current iteration, which is
        then checkpointed; a second Ctrl-C aborts at once (still saving the last completed
        iteration).
        """
        target = self.iteration + int(iterations if iterations is not None else self.config.loop.iterations)
        self._stop_requested = False
        in_main_thread = threading.current_thread() is threading.main_thread()
        previous_handler = signal.signal(signal.SIGINT, self._on_interrupt) if in_main_thread else None
        try:
            while self.iteration < target and not self._stop_requested:
                self.run_iteration()
        except KeyboardInterrupt:
            self.telemetry.message(f"[rlloop] aborted during iteration {self.iteration + 1}")
        finally:
            if in_main_thread:
                signal.signal(signal.SIGINT, previous_handler)
            if self._stop_requested:
                self.telemetry.message(f"[rlloop] interrupted: stopped after iteration {self.iteration}")
            if self.iteration and self.checkpoints.latest_step() != self.iteration:
                self.checkpoint()
            self.checkpoints.wait()
        return self.history

    def _on_interrupt(self, signum: int, frame: Any) -> None:
        if self._stop_requested:
            raise KeyboardInterrupt
        self._stop_requested = True
        self.telemetry.message(
            "[rlloop] Ctrl-C: finishing this iteration, then saving and stopping "
            "(Ctrl-C again to abort now)"
        )

    def close(self) -> None:
        """Flush and release files (checkpoints, TensorBoard)."""
        self.checkpoints.close()
        self.telemetry.close()

    def __enter__(self) -> Loop:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
