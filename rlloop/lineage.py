"""One game configuration of a run: its network, replay, champion, programs and checkpoints.

A :class:`Lineage` owns everything of one configuration (``<run>/lineages/<name>/``): the
network and its training state, self-play games, waiting moves and replay, the champion that
self-play uses, the compiled device programs (:func:`rlloop.programs.build_programs`), the
gate, the training and champion checkpoints, and its RNG streams. The orchestrator
(:class:`rlloop.loop.Loop`) owns what the run shares: the one ledger, the scheduler,
telemetry and the resource guard, and passes the ledger and telemetry in.

A run of one configuration is the one-lineage case. Its models are named ``iter-<N>``; in a
run of several they are ``<lineage>/iter-<N>`` (and the baselines ``<lineage>/random``), so
every lineage has its own Elo scale anchored at its own random player.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jax
import numpy as np
from omegaconf import DictConfig, OmegaConf

from rlloop import games, parallel
from rlloop.agent import Agent
from rlloop.arena import BASELINES
from rlloop.checkpoints import ChampionCheckpoints, CheckpointError, TrainCheckpoints
from rlloop.gate import Gate
from rlloop.ledger import Ledger
from rlloop.networks import init_params, network_from_config
from rlloop.perfect_play import PERFECT_PLAY_EVENT, PerfectPlayMonitor, default_cache_path
from rlloop.perfect_play import metrics_of as perfect_play_metrics
from rlloop.perfect_play import summary as perfect_play_summary
from rlloop.programs import build_programs
from rlloop.ratings import head_to_head_score
from rlloop.replay import PendingGames, ShardedReplay, quality_problems, split_pending_state
from rlloop.runs import LineageDir, atomic_savez
from rlloop.search import search_knobs
from rlloop.selfplay import Opponent
from rlloop.teacher import teacher_spec
from rlloop.telemetry import Telemetry
from rlloop.train import TrainState, init_train_state, make_optimizer

__all__ = ["DamagedCheckpoint", "Lineage", "mastery_weight"]

log = logging.getLogger(__name__)
SYNC_EVERY_STEPS = 16


class DamagedCheckpoint(Exception):
    """A checkpoint step that does not restore or verify (the message says why)."""


def mastery_weight(score: float | None) -> float:
    """The built-in curriculum: a configuration whose champion's *mastery* is ``score``
    (0..1: the share of games its newest gated network did not lose against the fixed
    baselines, the worst baseline counting; :meth:`Lineage.baseline_score`) gets weight +3 at or below 0.5, falling
    linearly to -2 at 0.95 and above; None (not measured yet) gets 0. A mastered
    configuration gets less self-play, one its champion cannot yet handle gets more. Draws
    count as not lost: in a drawn game such as tic-tac-toe, perfect play draws the one-ply
    player often and never loses."""
    if score is None or not np.isfinite(score):
        return 0.0
    fraction = min(max((float(score) - 0.5) / 0.45, 0.0), 1.0)
    return 3.0 - 5.0 * fraction


class Lineage:
    """Everything of one game configuration (module doc).

    Args:
      name: the configuration's name (the ledger's ``config`` column).
      config: its full config (``rlloop.config.lineage_configs``).
      index: its position in the run (lineage 0 keeps the seeds a one-configuration run has).
      mesh: the run's device mesh.
      paths: its folder.
      ledger, telemetry: the run's.
      prefix: put before its model ids ("" in a run of one configuration).
      is_main_process: whether this process writes (ledger, perfect play).
    """

    def __init__(
        self,
        name: str,
        config: DictConfig,
        *,
        index: int,
        mesh: Any,
        paths: LineageDir,
        ledger: Ledger,
        telemetry: Telemetry,
        prefix: str = "",
        is_main_process: bool = True,
    ) -> None:
        self.name, self.config, self.index = name, config, index
        self.paths, self.ledger, self.telemetry = paths, ledger, telemetry
        self.prefix = prefix
        self.is_main_process = is_main_process
        self.mesh = mesh
        self.num_devices = mesh.devices.size
        # This process's devices' positions on the mesh: its games, replay shards and slices
        # of every gate match (a one-process run: every position).
        self.positions = parallel.local_positions(mesh)
        self.games_per_device = int(config.hardware.games_per_device)
        self.game = games.make(config.game.name)
        self.network = network_from_config(self.game, config.model)
        self.batch_size = int(config.hardware.games_per_device) * self.num_devices
        if config.train.batch_size % self.num_devices:
            raise ValueError(
                f"{name}: train.batch_size={config.train.batch_size} must be a multiple of the "
                f"{self.num_devices} devices on the data axis"
            )
        seed = int(config.loop.seed)
        root_key = jax.random.key(seed)
        if index:
            root_key = jax.random.fold_in(root_key, 1000 + index)
        self._key = jax.random.fold_in(root_key, 1)
        seeds = [seed, jax.process_index()] + ([index] if index else [])
        self._replay_seed = [seed, 11, index]  # + each shard's position
        self._rng = np.random.default_rng(seeds)
        self.side_rng = np.random.default_rng([*seeds, 7])  # side-trainer snapshots
        self.fresh_samples: dict[str, np.ndarray] = {}  # what the last self-play added to replay
        self._init_key = jax.random.fold_in(root_key, 0)
        params = init_params(self.network, self.game, self._init_key)
        self.optimizer = make_optimizer(config.train)
        self.train_state: TrainState = parallel.put_replicated(
            init_train_state(params, self.optimizer), mesh
        )
        self.programs = build_programs(
            self.game, self.network, self.optimizer, config, mesh, batch_size=self.batch_size
        )
        # Entries kept of each policy target: the search's slots (selfplay.policy_slots).
        self.policy_slots = self.programs.policy_slots
        self.states = self.programs.new_games(jax.random.fold_in(root_key, 2))
        # Asymmetric games (schedule.opponent_mix): the network's seat per game (-1:
        # self-play), the opponent of this iteration and earlier champions' parameters.
        self.seats = None
        if self.programs.new_seats is not None:
            self.seats = self.programs.new_seats(jax.random.fold_in(root_key, 3))
        self.opponent_id = ""
        self._opponents: dict[str, Any] = {}
        self.pending = self._new_pending()
        self.replay = self._new_replay()
        self.iteration = 0  # the run's iteration this lineage's state belongs to
        self.active_iterations = 0  # iterations in which it played or trained
        self.total_games = 0
        self.total_moves = 0
        self.chunks_played = 0
        self._gated_at_step = 0  # training step of the last gated candidate
        self._next_champion: tuple[str, Any, int] | None = None  # (id, params, chunk)
        self.checkpoints = TrainCheckpoints(paths.train_checkpoints, keep=int(config.loop.keep_checkpoints))
        self.champions = ChampionCheckpoints(paths.champion_checkpoints)
        self.gate = None
        if config.gate.enabled:
            knobs = search_knobs(config.search)
            self.gate = Gate(self.game, self.network, config.gate, knobs, ledger, config=name, prefix=prefix,
                             slices=self.num_devices, local_slices=self.positions)  # fmt: skip
        self.champion_id = ""
        self.selfplay_params: Any = None
        self.perfect_play: PerfectPlayMonitor | None = None

    # ------------------------------------------------------------------ helpers
    def message(self, text: str) -> None:
        """A console line, named by lineage in a run of several."""
        self.telemetry.message(f"[rlloop] {self.name}: {text}" if self.prefix else f"[rlloop] {text}")

    def next_key(self) -> jax.Array:
        self._key, key = jax.random.split(self._key)
        return key

    @property
    def params(self) -> Any:
        """The network parameters being trained (the next candidate)."""
        return self.train_state.params

    def initial_params(self) -> Any:
        """The lineage's fresh parameters, before any training (the same on every call and
        after a resume: drawn again from the seed's key; the ``self`` teacher searches with
        them)."""
        return init_params(self.network, self.game, self._init_key)

    def model_id(self, iteration: int) -> str:
        return f"{self.prefix}iter-{iteration:06d}"

    def snapshot_params(self) -> Any:
        """A copy of the trained parameters (the train step donates its input buffers)."""
        return jax.tree.map(lambda x: x.copy(), self.train_state.params)

    def describe(self) -> str:
        config = self.config
        return (
            f"game={self.game.name} model={config.model.name} "
            f"search={config.search.algorithm.value}x{config.search.num_simulations} "
            f"games={self.batch_size}"
        )

    def memory_bytes(self) -> int:
        """What it holds in memory (the loop pauses the largest consumer's self-play when
        memory is critical): its replay's samples, its training state (parameters and
        optimiser moments, one copy per device), its champion's parameters, its games and
        waiting moves. Compiled programs are not counted (XLA does not say)."""
        def size(tree: Any) -> int:
            return sum(int(np.prod(x.shape)) * x.dtype.itemsize for x in jax.tree.leaves(tree))

        copies = self.num_devices
        held = self.replay.nbytes + size(self.train_state) * copies + size(self.states)
        held += size(self.seats) + size(list(self._opponents.values())) * copies
        if self.selfplay_params is not None:
            held += size(self.selfplay_params) * copies
        return int(held + sum(array.nbytes for p in self.pending for array in p.state_dict().values()))

    @contextlib.contextmanager
    def _compiling(self, program: str, what: str) -> Iterator[None]:
        """Around a program's call: its first call compiles (tens of seconds for RingRift),
        so that one says so on the console, with the time it took."""
        first = not self.programs.traces[program]
        if first:
            self.message(f"compiling the {what} ({program}) for {self.name}: the first call takes a while")
        start = time.perf_counter()
        yield
        if first:
            self.message(f"{program} for {self.name} compiled and ran in {time.perf_counter() - start:.1f} s")

    # ------------------------------------------------------------------ resume
    def checkpoint_steps(self) -> list[int]:
        return list(self.checkpoints.steps())

    def restore(self, step: int) -> dict[str, Any]:
        """Restore this lineage from its checkpoint ``step`` (verified: see
        :meth:`rlloop.loop.Loop`'s resume); returns the checkpoint's meta. Raises
        CheckpointError for a checkpoint of another game or network, DamagedCheckpoint (its
        reason) when it does not restore or verify; a failed restore changes nothing."""
        try:
            meta = self.checkpoints.restore_meta(step)
        except Exception as error:
            raise DamagedCheckpoint(f"its meta does not restore ({type(error).__name__}: {error})") from error
        self._check_checkpoint_fits(meta)
        try:
            items, meta = self.checkpoints.restore(step, {"state": self.train_state, "selfplay": self.states})
        except Exception as error:
            raise DamagedCheckpoint(f"{type(error).__name__}: {error}") from error
        # This process's files; every process learns whether all of them read back.
        replay = pending = seats = None
        try:
            replay, pending, seats = self._restore_replay(step, meta)
            problem = None
        except Exception as error:
            problem = f"{type(error).__name__}: {error}"
        problems = parallel.gather(problem)
        if any(problems):
            where = (lambda k: f"process {k}: ") if len(problems) > 1 else (lambda k: "")
            raise DamagedCheckpoint("; ".join(f"{where(k)}{p}" for k, p in enumerate(problems) if p))
        replay.sync()
        waiting = int(parallel.global_sum(sum(p.num_waiting for p in pending)))
        names = [path.name for path in self._replay_files(step)]
        if jax.process_count() > 1:
            names = ["the replay files of every process", "the waiting-move files of every process"]
        for what, found, key, where in (("added samples", replay.total_added, "replay_total_added", names[0]),
                                        ("waiting moves", waiting, "pending_waiting", names[1])):  # fmt: skip
            if meta.get(key) is not None and found != int(meta[key]):  # absent before 2026-12-04
                raise DamagedCheckpoint(f"{where} hold(s) {found:,} {what}, its checkpoint recorded {int(meta[key]):,}")
        self.train_state, self.states = items["state"], items["selfplay"]
        self.replay, self.pending = replay, pending
        self._restore_seats(seats if seats is not None else meta.get("seats"))
        self.iteration = int(meta["iteration"])
        self.active_iterations = int(meta.get("active_iterations", self.iteration))
        self.total_games = int(meta.get("total_games", 0))
        self.total_moves = int(meta.get("total_moves", 0))
        self.chunks_played = int(meta.get("chunks_played", 0))
        self._gated_at_step = int(meta.get("gated_at_step", 0))
        self._key = jax.random.wrap_key_data(np.asarray(meta["key"], dtype=np.uint32))
        self._rng.bit_generator.state = meta["numpy_rng"]
        return meta

    def _restore_seats(self, saved: Any) -> None:
        """The network's seat in each asymmetric game, as saved with the games. A checkpoint
        without them (written with another ``opponent_mix``) keeps this lineage's fresh seats:
        a game then in progress may turn asymmetric, or back to self-play, mid-game."""
        local = len(self.positions) * self.games_per_device
        if self.seats is None or saved is None or len(saved) != local:
            if self.seats is not None:
                self.message("the checkpoint has no seats for this opponent_mix: asymmetric games get new seats")
            return
        self.seats = parallel.put_local_batch(np.asarray(saved, dtype=np.int32), self.mesh)

    def _check_checkpoint_fits(self, meta: dict[str, Any]) -> None:
        """Refuse a checkpoint of another game or network shape (CheckpointError)."""
        where = self.paths.root
        if meta.get("game") != self.game.name:
            raise CheckpointError(
                f"{where} holds a run of game {meta.get('game')!r}; this config plays "
                f"{self.game.name!r} (use another run dir)"
            )
        saved_model = {k: v for k, v in meta.get("model", {}).items() if k != "name"}
        wanted_model = {k: v for k, v in OmegaConf.to_container(self.config.model).items() if k != "name"}
        if saved_model and saved_model != wanted_model:
            raise CheckpointError(
                f"{where} holds a network {saved_model}; this config asks for "
                f"{wanted_model} (use another run dir)"
            )

    def _new_replay(self) -> ShardedReplay:
        return ShardedReplay(
            int(self.config.train.replay_capacity),
            positions=self.positions, num_devices=self.num_devices, seed=self._replay_seed,
            observation_shape=tuple(self.game.observation_shape),
            num_actions=self.game.num_actions,
            num_players=self.game.num_players,
            policy_slots=self.policy_slots,
        )

    def _new_pending(self) -> list[PendingGames]:
        """Waiting moves, one holder per local device (its games' columns of a chunk)."""
        return [
            PendingGames(
                value_lambda=float(self.config.train.value_lambda), num_players=self.game.num_players,
                policy_slots=self.policy_slots,
            )
            for _ in self.positions
        ]  # fmt: skip

    def _replay_files(self, step: int) -> tuple[Path, Path]:
        """This process's replay and waiting-move files of checkpoint ``step``."""
        process = jax.process_index() if jax.process_count() > 1 else None
        return self.paths.replay_file(step, process), self.paths.pending_file(step, process)

    def _restore_replay(self, step: int, meta: dict[str, Any]) -> tuple[ShardedReplay, list[PendingGames], Any]:
        """This process's replay, waiting moves and asymmetric seats saved with checkpoint
        ``step``; raises when a file is missing or damaged."""
        replay_file, pending_file = self._replay_files(step)
        for path in (replay_file, pending_file):
            if not path.is_file():
                raise FileNotFoundError(f"its file {path.relative_to(self.paths.root)} is missing")
        replay = self._new_replay()
        replay.load([replay_file])
        pending = self._new_pending()
        with np.load(pending_file) as data:
            state = {name: data[name] for name in data.files}
        seats = state.pop("seats", None)
        if "positions" in state:
            saved = state.pop("positions").tolist()
            if saved != self.positions:
                raise ValueError(f"{pending_file.name} holds the games of devices {saved}, not {self.positions}")
            parts = [{k.split("/", 1)[1]: v for k, v in state.items() if k.split("/", 1)[0] == str(p)}
                     for p in self.positions]  # fmt: skip
        else:  # written before waiting moves were kept per device: one holder of every column
            parts = split_pending_state(state, len(self.positions))
        for holder, part in zip(pending, parts, strict=True):
            holder.load_state_dict(part)
        return replay, pending, seats

    # ------------------------------------------------------------------ champion
    def select_selfplay_model(self) -> None:
        """Self-play's model: the ledger's champion, else the latest checkpoint, else fresh
        (process 0 reads the ledger; every process restores or saves the same one)."""

        def ledger_champion() -> list[Any] | None:
            known = {m.id for m in self.ledger.models()}
            for baseline in self.gate.baselines if self.gate is not None else BASELINES:
                model_id = self.prefix + baseline
                if model_id not in known:
                    self.ledger.add_model(model_id, parent=None, iteration=0, status="baseline",
                                          note="fixed baseline player", config=self.name)  # fmt: skip
            found = self.ledger.champion(self.name)
            return None if found is None else [found.id, found.checkpoint]

        chosen = parallel.agree(ledger_champion)
        champion_id, checkpoint = chosen if chosen is not None else (None, None)
        params = None
        if champion_id is not None:
            try:
                step = int(str(checkpoint).rsplit("/", 1)[-1])
                items, _ = self.champions.restore(step, {"params": self.train_state.params})
                reason = f"the ledger's champion {champion_id}"
                model_id, params = champion_id, items["params"]
            except (ValueError, FileNotFoundError, CheckpointError) as error:
                log.warning("champion %s has no readable checkpoint (%s)", champion_id, error)
                self.message(
                    f"warning: champion {champion_id} has no readable checkpoint "
                    f"({checkpoint}); falling back"
                )
        if params is None:
            if self.iteration:
                reason = f"no champion in the ledger; the latest checkpoint (iteration {self.iteration})"
            elif teacher_spec(self.config.train):
                reason = f"no champion and no checkpoint; the network pre-trained by {self.config.train.teacher}"
            else:
                reason = "no champion and no checkpoint; a fresh network"
            model_id, params = self.model_id(self.iteration), self.snapshot_params()
            self._save_champion(self.iteration, params, model_id)
            if self.is_main_process:
                if model_id in {m.id for m in self.ledger.models()}:
                    self.ledger.set_checkpoint(model_id, f"champions/{self.iteration}")
                    self.ledger.set_status(model_id, "champion")
                else:
                    self.ledger.add_model(
                        model_id, parent=champion_id, iteration=self.iteration, status="champion",
                        checkpoint=f"champions/{self.iteration}", note="first champion", config=self.name,
                    )  # fmt: skip
        self.message(f"self-play uses {model_id}: {reason}")
        self.champion_id, self.selfplay_params = model_id, params

    def _save_champion(self, step: int, params: Any, model_id: str) -> None:
        # On disk before the ledger names it, so a committed champion always has its params.
        self.champions.save(step, {"params": params}, {"model_id": model_id, "game": self.game.name})
        self.champions.wait()

    def _swap_champion_if_promoted(self) -> None:
        """At a chunk boundary: switch self-play to a newly promoted champion."""
        if self._next_champion is None:
            return
        model_id, params, promoted_at_chunk = self._next_champion
        self.champion_id, self.selfplay_params = model_id, params
        self._next_champion = None
        self.message(
            f"self-play now uses {model_id}: promoted after chunk {promoted_at_chunk}, "
            f"in use from chunk {self.chunks_played + 1} "
            f"({self.chunks_played - promoted_at_chunk} chunks later)"
        )

    # ------------------------------------------------------------------ perfect play
    def start_perfect_play(self) -> None:
        """The background perfect-play scorer (games with ``Game.perfect_play``, process 0, if
        enabled); scores the champion at once when the run gates."""
        settings = self.config.perfect_play
        if not settings.enabled or not self.game.perfect_play or not self.is_main_process:
            return
        game, network, search = self.game, self.network, self.config.search
        self.perfect_play = PerfectPlayMonitor(
            lambda params: Agent(game, network, params, search),
            list(settings.sets),
            simulations=list(settings.simulations),
            data_dir=settings.data_dir or None,
            cache_path=default_cache_path(),
            background=bool(settings.background),
            budget_seconds=float(settings.budget_seconds) or None,
        )  # fmt: skip
        names = ", ".join(positions.name for positions in self.perfect_play.sets)
        missing = self.perfect_play.skipped_sets
        skipped = f" (not found: {', '.join(missing)})" if missing else ""
        self.message(f"perfect play: scoring models on {names}{skipped}")
        if self.gate is not None:
            self.score_perfect_play(self.champion_id, self.selfplay_params)

    def score_perfect_play(self, model_id: str, params: Any) -> None:
        """Queue ``model_id`` for perfect-play scoring unless the ledger already has it."""
        if self.perfect_play is None:
            return
        done = {e.payload.get("model_id") for e in self.ledger.events_since(kind=PERFECT_PLAY_EVENT)}
        if model_id not in done:
            tail = model_id.rsplit("/", 1)[-1]
            iteration = int(tail.split("-")[-1]) if tail.startswith("iter-") else self.iteration
            # On one device: the scorer's programs then never join the mesh's collectives.
            params = jax.device_put(params, jax.local_devices()[0])
            self.perfect_play.submit(model_id, iteration, params)

    def collect_perfect_play(self, *, wait: bool = False) -> None:
        """Write finished perfect-play scores to the ledger, TensorBoard and the console."""
        if self.perfect_play is None:
            return
        for model_id, iteration, results, seconds in self.perfect_play.poll(wait=wait):
            self.ledger.add_event(PERFECT_PLAY_EVENT, {
                "model_id": model_id, "iteration": iteration, "seconds": seconds,
                "config": self.name, "results": [result.as_dict() for result in results],
            })  # fmt: skip
            scalars = perfect_play_metrics(results)
            self.telemetry.scalars(iteration, {f"{self.prefix}{k}": v for k, v in scalars.items()})
            self.message(f"perfect play {model_id}: {perfect_play_summary(results)}")

    def perfect_play_due(self) -> bool:
        """Ungated runs: score the training network every ``perfect_play.every`` iterations."""
        return (
            self.perfect_play is not None and self.gate is None
            and self.active_iterations % int(self.config.perfect_play.every) == 0
        )  # fmt: skip

    # ------------------------------------------------------------------ phases
    def selfplay(self, iteration: int) -> dict[str, Any]:
        """Play ``chunks_per_iteration`` chunks and move finished games into replay
        (``iteration``: the run's iteration being played, for ledger events)."""
        start = time.perf_counter()
        games_done = moves = added = 0
        length_sum = 0.0
        root_values = np.zeros(2)  # sum and count of search's root values
        refused: list[str] = []
        against = np.zeros(2)  # asymmetric games finished, the network's score in them
        fresh: list[dict[str, np.ndarray]] = []
        entropies = np.zeros(3)  # positions with a choice, sums of both policies' entropies
        opponent = self._choose_opponent() if self.seats is not None else None
        for _ in range(int(self.config.loop.chunks_per_iteration)):
            self._swap_champion_if_promoted()
            params = self.selfplay_params if self.gate is not None else self.params
            with self._compiling("play" if opponent is None else "play_against", "self-play chunk"):
                if opponent is None:
                    self.states, chunk = self.programs.play(params, self.states, self.next_key())
                else:
                    self.states, self.seats, chunk = self.programs.play_against(
                        params, opponent(params), self.states, self.seats, self.next_key()
                    )
                chunk = parallel.local_rows(chunk, axis=1)  # this process's games [T, local B]
            self.chunks_played += 1
            # Each device's games: its waiting moves, its quality check, its replay shard.
            width = self.games_per_device
            per_device = [self.pending[k].add({name: value[:, k * width : (k + 1) * width]
                                               for name, value in chunk.items()})
                          for k in range(len(self.positions))]  # fmt: skip
            problems = [
                f"{'' if self.num_devices == 1 else f'device {position}: '}{problem}"
                for position, samples in zip(self.positions, per_device, strict=True)
                for problem in quality_problems(
                    samples, min_mean_game_length=float(self.config.train.min_mean_game_length)
                )
            ]  # fmt: skip
            finished = chunk["done"]
            choice = ~np.asarray(chunk["forced"])
            counts = parallel.global_sum([  # the chunk's numbers, every process's games
                finished.sum(), finished.size, sum(len(samples["policy_weights"]) for samples in per_device),
                chunk["game_length"][finished].sum(), _total(chunk["root_value"]), chunk["root_value"].size,
                choice.sum(), _total(chunk["policy_entropy"][choice]), _total(chunk["prior_entropy"][choice]),
                *_asymmetric_results(chunk), len(problems),
            ])  # fmt: skip
            if counts[-1]:  # a device's data failed the check: nobody's is trained on
                problems = [problem for found in parallel.gather(problems) for problem in found]
                refused += problems
                self.ledger.add_event("TRAINING_DATA_REFUSED", {"iteration": iteration,
                                                                "config": self.name,
                                                                "problems": problems})  # fmt: skip
                self.message("refused self-play data: " + "; ".join(problems))
            else:
                self.replay.add(per_device)
                fresh.extend(per_device)
                added += int(counts[2])
            games_done += int(counts[0])
            moves += int(counts[1])
            length_sum += counts[3]
            root_values += counts[4:6]
            entropies += counts[6:9]
            against += counts[9:11]
        self.replay.sync()
        seconds = time.perf_counter() - start
        fields = ("observation", "value")
        self.fresh_samples = {k: np.concatenate([f[k] for f in fresh]) for k in fields} if fresh else {}
        self.total_games += games_done
        self.total_moves += moves
        asymmetric = {}
        if opponent is not None:
            asymmetric = {
                "opponent": self.opponent_id,
                "opponent_games": int(against[0]),
                "opponent_score": float(against[1] / against[0]) if against[0] else float("nan"),
            }
        return {
            **asymmetric,
            "selfplay_seconds": seconds,
            "games": self.total_games,
            "games_this_iteration": games_done,
            "games_per_second": games_done / seconds,
            "moves_per_second": moves / seconds,
            "moves_this_iteration": moves,
            "mean_game_length": length_sum / games_done if games_done else float("nan"),
            "mean_root_value": float(root_values[0] / max(root_values[1], 1)),
            # Mean entropy (nats) over positions with a choice: search's improved policy, the
            # network's own (learning health: a collapse to 0 or a flat policy shows here).
            "policy_entropy": float(entropies[1] / entropies[0]) if entropies[0] else float("nan"),
            "prior_entropy": float(entropies[2] / entropies[0]) if entropies[0] else float("nan"),
            "samples_added": added,
            "samples_waiting": int(parallel.global_sum(sum(p.num_waiting for p in self.pending))),
            "replay_size": len(self.replay),
            "data_refused": bool(refused),
        }

    def opponent_pool(self) -> list[str]:
        """Who asymmetric games are played against: the newest ``schedule.opponent_pool``
        earlier champions (retired in the ledger, their checkpoint still on disk), newest
        first, and the uniformly random baseline."""
        kept = set(self.champions.steps())
        earlier = []
        for model in reversed(self.ledger.models("retired", config=self.name)):
            step = _champion_step(model.checkpoint)
            if step in kept and len(earlier) < int(self.config.schedule.opponent_pool):
                earlier.append(model.id)
        return [*earlier, self.prefix + "random"]

    def _choose_opponent(self) -> Any:
        """Draw this iteration's opponent from :meth:`opponent_pool` (uniformly); returns a
        function of the network's parameters giving the :class:`~rlloop.selfplay.Opponent`."""
        def draw() -> list[Any]:  # process 0: the ledger and its generator
            pool = self.opponent_pool()
            drawn = pool[int(self._rng.integers(len(pool)))]
            found = [m.checkpoint for m in self.ledger.models() if m.id == drawn]
            return [drawn, _champion_step(found[0]) if found else None]

        self.opponent_id, step = parallel.agree(draw)
        if self.opponent_id == self.prefix + "random":
            return lambda params: Opponent(params=params, uniform=np.bool_(True))
        if self.opponent_id not in self._opponents:
            items, _ = self.champions.restore(step, {"params": self.train_state.params})
            self._opponents = {self.opponent_id: items["params"]}  # one held at a time
        opponent = Opponent(params=self._opponents[self.opponent_id], uniform=np.bool_(False))
        return lambda params: opponent

    def train_steps_due(self) -> int:
        """Optimiser steps this iteration: ``steps_per_iteration``, or with
        ``samples_per_insert`` > 0 fewer when the lineage has already trained that many
        samples per sample added to replay (early on, a small replay is otherwise overfitted:
        48 steps of 256 on the first 2,000 samples are six epochs)."""
        train_config = self.config.train
        steps = int(train_config.steps_per_iteration)
        ratio = float(train_config.samples_per_insert)
        if ratio > 0:
            batch = int(train_config.batch_size)
            allowed = ratio * self.replay.total_added - int(self.train_state.step) * batch
            steps = max(0, min(steps, int(allowed // batch)))
        return steps

    def training_owed(self) -> bool:
        """Whether it should train although self-play was not its turn: a replay-ratio target
        (``samples_per_insert``) with steps still owed on a big enough replay."""
        return (
            float(self.config.train.samples_per_insert) > 0
            and len(self.replay) >= int(self.config.train.min_replay_size)
            and self.replay.smallest_shard > 0
            and self.train_steps_due() > 0
        )  # fmt: skip

    def train(self) -> dict[str, Any]:
        """``train_steps_due()`` optimiser steps on replay samples (skipped while replay is
        below ``min_replay_size``)."""
        train_config = self.config.train
        if len(self.replay) < int(train_config.min_replay_size) or not self.replay.smallest_shard:
            return {"train_skipped": True}
        due = self.train_steps_due()
        if due == 0:
            return {"train_skipped": True}
        start = time.perf_counter()
        # Each device's slice of every batch from its own replay shard; the all-reduce of the
        # train step sums their gradients.
        batches = self.replay.sample(
            batch_size=int(train_config.batch_size), num_batches=int(train_config.steps_per_iteration)
        )
        batches = parallel.put_local_batch(batches, self.mesh, axis=1)
        # Always steps_per_iteration batches (one device shape, one compiled step); the first
        # ``due`` are used.
        keys = jax.random.split(self.next_key(), int(train_config.steps_per_iteration))
        step_metrics = []
        for index in range(due):
            with self._compiling("train_step", "train step"):
                self.train_state, metrics = self.programs.train_step(
                    self.train_state, batches, np.int32(index), keys[index]
                )
                if not index:
                    jax.block_until_ready(metrics)
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
        result["train_steps"] = due
        return result

    def checkpoint(self, iteration: int, extra: dict[str, Any] | None = None) -> None:
        """Save at the run's ``iteration``: replay and waiting moves (atomic files), then
        training state, self-play games and RNG state (Orbax, atomic per step); ``extra``
        goes into the meta (the run's scheduler state)."""
        self.iteration = iteration
        step = iteration
        replay_dir = self.paths.replay_dir
        replay_dir.mkdir(parents=True, exist_ok=True)
        # This process's files first (every process its own); then the Orbax step, which
        # commits once every process has written its part: a committed step has them all.
        replay_file, pending_file = self._replay_files(step)
        self.replay.save(replay_file)
        pending = {"positions": np.asarray(self.positions, np.int64)}
        for position, holder in zip(self.positions, self.pending, strict=True):
            pending.update({f"{position}/{k}": v for k, v in holder.state_dict().items()})
        if self.seats is not None:
            pending["seats"] = parallel.local_rows(self.seats)
        atomic_savez(pending_file, **pending)
        waiting = int(parallel.global_sum(sum(p.num_waiting for p in self.pending)))
        self.checkpoints.save(
            step,
            {"state": self.train_state, "selfplay": self.states},
            {
                "iteration": iteration,
                "game": self.game.name,
                "lineage": self.name,
                "model": OmegaConf.to_container(self.config.model),
                "active_iterations": self.active_iterations,
                "total_games": self.total_games,
                "total_moves": self.total_moves,
                "chunks_played": self.chunks_played,
                "gated_at_step": self._gated_at_step,
                # What the replay files beside this step hold, checked on resume.
                "replay_total_added": self.replay.total_added,
                "pending_waiting": waiting,
                "key": np.asarray(jax.random.key_data(self._key)).tolist(),
                "numpy_rng": self._rng.bit_generator.state,
                **(extra or {}),
            },
        )
        self.checkpoints.wait()
        kept = set(self.checkpoints.steps())
        for old in replay_dir.glob("*-*.npz"):
            number = old.stem.split("-")[-1]
            if not number.isdigit() or int(number) in kept:
                continue
            if old.name in {path.name for path in self._replay_files(int(number))}:  # this process's
                old.unlink(missing_ok=True)

    def gate_if_trained(self, iteration: int) -> dict[str, Any]:
        """:meth:`run_gate`, if the network trained since the last gate (never gate an untrained
        one; with train.samples_per_insert an iteration may train nothing)."""
        trained_step = int(self.train_state.step)
        if self.gate is None or trained_step <= self._gated_at_step:
            return {}
        self._gated_at_step = trained_step
        return self.run_gate(iteration)

    def run_gate(self, iteration: int) -> dict[str, Any]:
        """Candidate (the trained network now) vs champion; promote, reject or keep training.
        A promotion sets the new champion for self-play's next chunk."""
        assert self.gate is not None
        start = time.perf_counter()
        candidate_id = self.model_id(iteration)
        if candidate_id == self.champion_id:
            return {}
        def known_status() -> str | None:  # process 0: the ledger
            known = {model.id: model for model in self.ledger.models()}
            return known[candidate_id].status if candidate_id in known else None

        status = parallel.agree(known_status)
        if status is not None and status != "candidate":
            # A resumed run replays iterations after its last checkpoint; a decision the ledger
            # already committed for this iteration stands.
            self.message(f"gate {candidate_id}: already {status} in the ledger")
            return {}
        if status is None:
            self.ledger.add_model(candidate_id, parent=self.champion_id, iteration=iteration,
                                  status="candidate", config=self.name)  # fmt: skip
        candidate_params = self.snapshot_params()
        self.check_replicas(candidate_params, candidate_id)
        decision = self.gate.evaluate(
            candidate=self.gate.player(candidate_id, candidate_params),
            champion=self.gate.player(self.champion_id, self.selfplay_params),
            iteration=iteration,
            key=self.next_key(),
        )
        if decision.decision == "promote":
            self._save_champion(iteration, candidate_params, candidate_id)
            self.ledger.set_checkpoint(candidate_id, f"champions/{iteration}")
            self.ledger.promote(candidate_id, iteration=iteration, score=decision.score,
                                score_low=decision.score_low, score_high=decision.score_high)  # fmt: skip
            self._next_champion = (candidate_id, candidate_params, self.chunks_played)
            self.score_perfect_play(candidate_id, candidate_params)
            self._prune_champions()
        elif decision.decision == "reject":
            self.ledger.reject(candidate_id, iteration=iteration, reason=decision.reason)
        self.message(f"gate {candidate_id}: {decision.decision.upper()} ({decision.reason})")
        return {
            "gate_seconds": time.perf_counter() - start,
            "gate_score": decision.score,
            "gate_promoted": decision.decision == "promote",
            "candidate_elo": decision.candidate_elo,
            "champion_elo": decision.champion_elo,
        }

    def check_replicas(self, params: Any, model_id: str) -> None:
        """In a multi-process run: every process's copy of ``params`` must be the same (a
        SHA-256 of each, compared at every gate); RuntimeError naming the processes if not."""
        if jax.process_count() == 1:
            return
        prints = parallel.gather(parallel.fingerprint(params))
        if len(set(prints)) > 1:
            groups: dict[str, list[int]] = {}
            for process, value in enumerate(prints):
                groups.setdefault(value, []).append(process)
            listed = "; ".join(f"processes {ids}: {value[:12]}" for value, ids in groups.items())
            raise RuntimeError(f"{self.name}: the parameters of {model_id} differ between processes ({listed})")

    def _prune_champions(self) -> None:
        def ranking() -> list[Any]:  # process 0: the ledger
            elo = {}
            for model in self.ledger.models(config=self.name):
                if model.checkpoint and model.checkpoint.startswith("champions/") and model.elo is not None:
                    elo[int(model.checkpoint.split("/")[1])] = model.elo
            champion = self.ledger.champion(self.name)
            protect = [int(champion.checkpoint.split("/")[1])] if champion and champion.checkpoint else []
            return [sorted(elo.items()), protect]

        elo, protect = parallel.agree(ranking)
        self.champions.prune({int(step): value for step, value in elo}, keep=int(self.config.gate.keep_champions),
                             protect=set(protect))  # fmt: skip

    # ------------------------------------------------------------------ the scheduler's view
    def baseline_score(self) -> float | None:
        """The lineage's mastery now: the share of games not lost against its worst fixed
        baseline by the newest model that played every baseline (the gate's anchor matches:
        its latest candidate, or its champion); None before any did. With more than two
        players, the head-to-head equivalent of that share against the field
        (:func:`rlloop.ratings.head_to_head_score`), so that mastery reads the same for
        every player count."""
        if self.gate is None:
            return None
        names = {player.name for player in self.gate.baselines.values()}
        totals: dict[str, dict[str, list[int]]] = {}
        newest = None
        for match in self.ledger.matches(config=self.name):
            if match.model_b not in names:
                continue
            counts = totals.setdefault(match.model_a, {}).setdefault(match.model_b, [0, 0, 0])
            counts[0] += match.wins_a
            counts[1] += match.draws
            counts[2] += match.wins_b
            if set(totals[match.model_a]) == names:
                newest = match.model_a
        if newest is None:
            return None
        return min(head_to_head_score((w + d) / max(w + d + lo, 1), self.gate.field)
                   for w, d, lo in totals[newest].values())  # fmt: skip

    def close(self) -> None:
        if self.perfect_play is not None:
            self.perfect_play.close()
        self.checkpoints.close()
        self.champions.close()


def _champion_step(checkpoint: str | None) -> int | None:
    """The step of a ledger checkpoint ``champions/<step>``; None for anything else."""
    folder, _, step = str(checkpoint or "").partition("/")
    return int(step) if folder == "champions" and step.isdigit() else None


def _total(values: Any) -> float:
    """A float64 sum (float32 sums of a chunk's values would depend on how games are split)."""
    return float(np.sum(np.asarray(values, dtype=np.float64)))


def _asymmetric_results(chunk: Any) -> np.ndarray:
    """[asymmetric games that ended in ``chunk``, the network's points in them]: 1 a win
    (reward > 0), 0.5 a draw (0), 0 a loss."""
    ended = np.asarray(chunk["done"]) & (np.asarray(chunk["seat"]) >= 0)
    if not ended.any():
        return np.zeros(2)
    seats = np.asarray(chunk["seat"])[ended]
    rewards = np.asarray(chunk["final_rewards"])[ended][np.arange(seats.size), seats]
    return np.array([seats.size, float(np.sum(rewards > 0) + 0.5 * np.sum(rewards == 0))])
