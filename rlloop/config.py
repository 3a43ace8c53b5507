"""Configuration schemas (validated by Hydra/OmegaConf) and ``compose``.

Every config node is a dataclass below. Hydra merges the YAML files of ``conf/`` into these
schemas, so a misspelt key or a value of the wrong type fails at start with a message that
names it; :func:`validate` then checks ranges and cross-field rules that types cannot express.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf

CONF_DIR = Path(__file__).resolve().parent.parent / "conf"


class SearchAlgorithm(enum.Enum):
    gumbel = "gumbel"
    puct = "puct"


class MultiplayerSearch(enum.Enum):
    paranoid = "paranoid"
    maxn = "maxn"


class LearningRateSchedule(enum.Enum):
    constant = "constant"
    cosine = "cosine"
    warmup_cosine = "warmup_cosine"


class Optimizer(enum.Enum):
    adamw = "adamw"
    sgd = "sgd"


@dataclasses.dataclass
class GameConfig:
    """Which game to play: a name from ``rlloop.games.names()``."""

    name: str = "connect4"


@dataclasses.dataclass
class ModelConfig:
    """Policy-value network: a ResNet of ``num_blocks`` residual blocks of ``channels`` 3x3
    convolutions, or (``architecture: mlp``) ``num_blocks`` dense layers of ``channels``."""

    name: str = "tiny"
    architecture: str = "resnet"  # resnet | mlp
    num_blocks: int = 2
    channels: int = 32
    value_hidden: int = 64
    dtype: str = "float32"  # float32 | bfloat16 (activations; parameters stay float32)
    # Value head also sees board-wide means of the input planes and trunk channels.
    value_pooling: bool = False
    # Weight of the game's fixed value prior (Game.value_prior) added to the value logits; the
    # head learns the correction (0 = plain AlphaZero value head).
    value_prior_weight: float = 0.0
    # The value head's output layer starts at zero: untrained values = tanh(weight x prior).
    value_zero_init: bool = False
    # The value head has its own trunk (grid observations): policy training never moves it.
    separate_value_trunk: bool = False


@dataclasses.dataclass
class SearchConfig:
    """mctx search. ``gumbel``: Gumbel MuZero policy; ``puct``: classic MuZero/AlphaZero."""

    algorithm: SearchAlgorithm = SearchAlgorithm.gumbel
    num_simulations: int = 32
    max_num_considered_actions: int = 16
    gumbel_scale: float = 1.0
    # Completed-Q transform (gumbel): sigma = (maxvisit_init + max visits) * value_scale.
    value_scale: float = 0.1
    maxvisit_init: float = 50.0
    rescale_values: bool = True
    # Children per node: the legal actions of highest prior, at most this many (0 = all). Exact
    # when no position has more legal actions (RingRift square8/hex8: at most 192).
    max_actions: int = 256
    # Forced moves (one legal action) played in the tree after each move, so no node is one
    # (0 = off: forced positions are ordinary nodes; on RingRift it made search 2.4x slower,
    # and at 8 simulations it won 28 of 32 games against the same network without it).
    max_forced_moves: int = 0
    # More than two players: paranoid (one scalar, the mover against the coalition of the
    # others) or maxn (a value per player, each choosing by its own; gumbel only).
    multiplayer: MultiplayerSearch = MultiplayerSearch.paranoid
    # PUCT only.
    dirichlet_alpha: float = 0.3
    dirichlet_fraction: float = 0.25
    pb_c_init: float = 1.25
    pb_c_base: float = 19652.0


@dataclasses.dataclass
class TrainConfig:
    """Optimiser, loss weights, batch and replay."""

    optimizer: Optimizer = Optimizer.adamw
    learning_rate: float = 1e-3
    schedule: LearningRateSchedule = LearningRateSchedule.constant
    warmup_steps: int = 0
    decay_steps: int = 10_000
    momentum: float = 0.9
    weight_decay: float = 1e-4
    max_grad_norm: float = 1.0
    value_loss_weight: float = 1.0
    # Value targets: 1 = the game's outcome (AlphaZero); below 1 = TD(lambda) returns
    # bootstrapped from search's root values (two-player games only; see PendingGames).
    value_lambda: float = 1.0
    batch_size: int = 256
    steps_per_iteration: int = 32
    # Replay ratio cap: train at most this many samples per sample added to replay over the
    # run (steps_per_iteration stays the most per iteration); 0 = always steps_per_iteration.
    samples_per_insert: float = 0.0
    replay_capacity: int = 200_000
    min_replay_size: int = 1_000
    augment: bool = True
    # Data quality gate: self-play data whose finished games average fewer moves is refused.
    min_mean_game_length: float = 2.0
    # Teacher and supervised bootstrap (rlloop.teacher): "" (off), a player (random, greedy,
    # heuristic[:PROFILE], heuristic-search[:PROFILE]), run:RUN[#LINEAGE][@WHICH] (another
    # run's network), self (this lineage's fresh network searching teacher_simulations deep)
    # or traces:PATH-OR-GLOB (the reference's JSON-lines games, RingRift).
    # A fresh run first takes teacher_steps optimiser steps on teacher_samples samples.
    teacher: str = ""
    teacher_samples: int = 20_000
    teacher_steps: int = 200
    teacher_games: int = 256  # teacher games played at once
    teacher_noise: float = 0.1  # chance of a uniformly random legal move instead of the teacher's
    teacher_simulations: int = 16  # heuristic-search, run: and self teachers (run: 0 = its raw policy)
    # Value targets: 1 = outcomes; below 1 = TD(lambda) from the teacher's evaluation (2 players).
    teacher_value_lambda: float = 1.0
    # Refinement: after iteration k x every, round(decay**k x steps_per_iteration) more
    # supervised steps on the teacher samples (0 = off).
    teacher_every: int = 0
    teacher_decay: float = 0.5


@dataclasses.dataclass
class LoopConfig:
    """The self-play loop: how much to play and train each iteration, and logging."""

    name: str = "default"
    iterations: int = 200
    moves_per_chunk: int = 12  # T: moves every game advances in one jitted chunk
    chunks_per_iteration: int = 1
    # Sample moves from the improved policy for the first N moves of a game, greedy after.
    temperature_moves: int = 10
    # New games open with a uniform number in [0, N] of uniformly random moves (not recorded
    # as samples), so that self-play also learns positions its own best play never reaches.
    random_opening_moves: int = 0
    # After each searched move, play up to N forced moves (one legal action) without search
    # and without recording them (0 = off: they are searched and train the value only).
    max_forced_moves: int = 0
    seed: int = 0
    log_every: int = 1
    checkpoint_every: int = 10
    keep_checkpoints: int = 3
    tensorboard: bool = True
    # Redraw <run>/plots/ (rlloop.plot) after every promotion and when a run ends.
    plots: bool = True
    # Wall-clock budget of one `run` call in minutes (0: none): no iteration starts after it;
    # the run then checkpoints and stops as on Ctrl-C.
    max_minutes: float = 0.0


@dataclasses.dataclass
class GateConfig:
    """Arena gating: every ``every`` iterations the training network (the candidate) plays
    the champion; only a measurably stronger candidate becomes the new champion."""

    enabled: bool = True
    every: int = 5
    screen_games: int = 64  # short first match; only candidates scoring >= screen_min_score go on
    screen_min_score: float = 0.5
    deep_games: int = 192  # further games for candidates that passed the screen
    promote_score: float = 0.55  # promote when the score's lower confidence bound exceeds this
    # (scores against the champion and screen_min_score: with more than two players, the
    # head-to-head equivalent of the share of games won against the field; rlloop.gate)
    confidence: float = 0.95
    reject_elo_margin: float = 50.0  # reject when Elo falls this far below the champion's
    anchor_games: int = 32  # candidate vs each anchor player: anchors Elo at random=0
    # The fixed players a candidate plays anchor games against (rlloop.arena.anchor_players):
    # random, greedy (where affordable), and on RingRift heuristic / heuristic-search
    # (optionally NAME:PROFILE, e.g. heuristic:territorial). Keep random: Elo is anchored there.
    anchors: list[str] = dataclasses.field(default_factory=lambda: ["random", "greedy"])
    num_simulations: int = 16  # search budget of both sides in arena games
    opening_moves: int = 2
    keep_champions: int = 5
    sprt: bool = False  # use SPRT (elo0=0, elo1=sprt_elo1) on the deep match instead of the bound
    sprt_elo1: float = 35.0
    # Also gate the final network when the run ends by loop.iterations or loop.max_minutes
    # (not on Ctrl-C), if it trained since the last gate: a budgeted run judges its last
    # training instead of ending between two gates.
    at_end: bool = False


@dataclasses.dataclass
class PerfectPlayConfig:
    """Connect Four runs only: each new champion (ungated runs: the training network every
    ``every`` iterations) is scored against perfect play (``rlloop.perfect_play``) in a
    background thread; results go to the ledger (``PERFECT_PLAY`` events), TensorBoard and
    the console."""

    enabled: bool = True
    # Position sets (rlloop.perfect_play.ALL_SETS); sets whose files are absent are skipped,
    # and "bundled" (shipped with rlloop) is used when none is left.
    sets: list[str] = dataclasses.field(default_factory=lambda: ["end-easy", "bundled"])
    simulations: list[int] = dataclasses.field(default_factory=lambda: [0, 16])  # 0: raw policy
    every: int = 10  # ungated runs
    background: bool = True
    data_dir: str = ""  # default: $RLLOOP_CONNECT4_DATA or ../shared/data/connect4
    budget_seconds: float = 120.0  # solver time per set and simulation count; 0: no limit


@dataclasses.dataclass
class SideConfig:
    """Side trainers (``rlloop.side``): LightGBM value and move models fitted on each
    lineage's replay by worker processes on the host CPUs (``hardware.side_workers`` x
    ``hardware.side_threads``) while the device loop runs. Defaults: the original system's
    inner trainers (100 trees, 3 folds, 60 s per job)."""

    enabled: bool = False
    every: int = 5  # a snapshot of each lineage's replay every N of its iterations
    trees: int = 100  # boosting rounds per model
    folds: int = 3  # k-fold metrics: k models, then the final one on the whole training part
    timeout_seconds: float = 60.0  # a job running longer is killed (its worker is replaced)
    holdout_fraction: float = 0.1  # of each snapshot, never trained on: the overfitting check
    max_samples: int = 20_000  # samples per snapshot (drawn without replacement)
    max_move_classes: int = 32  # the move model predicts the N most often preferred actions
    learning_rate: float = 0.1
    num_leaves: int = 31
    # Niceness added in the workers (0 = none; the CPU profile's 10 keeps the device loop's
    # cores for the device loop on a 2-core machine).
    nice: int = 10
    seed: int = 0


@dataclasses.dataclass
class HardwareConfig:
    """The machine: devices, games per device, host workers. Appended with ``+hardware=NAME``."""

    name: str = "cpu"
    platform: str = "auto"  # auto | cpu | gpu | tpu
    # Virtual CPU devices (XLA host platform); 0 keeps XLA's default single device.
    num_cpu_devices: int = 2
    games_per_device: int = 256
    memory_fraction: float = 0.75
    side_workers: int = 1
    side_threads: int = 1
    # Persistent XLA compilation cache (off for RingRift when num_cpu_devices > 1 on CPU:
    # cached sharded programs deadlocked there, see parallel.configure_jax).
    compilation_cache: bool = True
    # Several processes over jax.distributed (rlloop.distributed; docs/design.md, "Many
    # machines"). Unset values come from RLLOOP_COORDINATOR / RLLOOP_NUM_PROCESSES /
    # RLLOOP_PROCESS_ID, then from SLURM's task environment; no count anywhere: one process.
    coordinator_address: str = ""  # host:port process 0 serves the coordinator on
    num_processes: int | None = None
    process_id: int | None = None
    # The longest wait for the coordinator and the other processes at start-up.
    init_timeout_seconds: float = 60.0
    # A multi-process run: a process that has not been heard from (its heartbeat) for this long
    # is taken as lost, and every other process stops with a message naming it.
    peer_timeout_seconds: float = 30.0


@dataclasses.dataclass
class ResourcesConfig:
    """The resource guard (``rlloop.resources``): host memory, the run directory's disk and
    the load per core, checked before every iteration. Critical disk saves a final checkpoint
    and stops the run; other levels are reported when they change."""

    enabled: bool = True
    memory_warn: float = 0.70
    memory_critical: float = 0.80
    disk_warn: float = 0.65
    disk_critical: float = 0.70
    load_warn: float = 1.5  # 1-minute load average per core


@dataclasses.dataclass
class LineageSpec:
    """One game configuration of a run (``schedule.configurations.<name>``)."""

    # Static priority (3..8): the scheduler's base weight for this configuration.
    priority: float = 5.0
    # What makes this lineage differ from the run's config, in the command line's syntax:
    # ``group=option`` replaces a whole group (game, model, search, train, loop, gate) by that
    # option's file; ``key=value`` sets one key (e.g. ``hardware.games_per_device=128``).
    overrides: list[str] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class BackpressureConfig:
    """Replay backpressure (``rlloop.scheduler.ReplayPressure``), for lineages with
    ``train.samples_per_insert`` > 0; the thresholds are training owed, in chunks."""

    throttle_at: float = 2.0
    stop_at: float = 4.0
    resume_at: float = 1.0
    min_factor: float = 0.25


@dataclasses.dataclass
class ScheduleConfig:
    """Which game configurations a run improves, and how self-play is shared among them
    (``rlloop.scheduler``). No configurations: the run's own ``game`` is its one lineage."""

    name: str = "single"
    configurations: dict[str, LineageSpec] = dataclasses.field(default_factory=dict)
    # Operator boosts per configuration (0..6), added to the priority.
    priority_overrides: dict[str, float] = dataclasses.field(default_factory=dict)
    # Fixed curriculum weights per configuration (-2..3); configurations not named here get
    # the built-in mastery curriculum (rlloop.lineage.mastery_weight).
    curriculum: dict[str, float] = dataclasses.field(default_factory=dict)
    backpressure: BackpressureConfig = dataclasses.field(default_factory=BackpressureConfig)
    seed: int = 0  # the scheduler's picks
    # Share (0..1) of every lineage's self-play games played against an opponent instead of
    # itself (asymmetric games): the network plays one seat, the opponent the others. The
    # opponent, drawn each iteration, is one of the lineage's newest ``opponent_pool``
    # earlier champions or the uniformly random player (rlloop.selfplay.make_selfplay_against).
    opponent_mix: float = 0.0
    opponent_pool: int = 3


@dataclasses.dataclass
class Config:
    game: GameConfig = dataclasses.field(default_factory=GameConfig)
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    search: SearchConfig = dataclasses.field(default_factory=SearchConfig)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)
    loop: LoopConfig = dataclasses.field(default_factory=LoopConfig)
    gate: GateConfig = dataclasses.field(default_factory=GateConfig)
    perfect_play: PerfectPlayConfig = dataclasses.field(default_factory=PerfectPlayConfig)
    side: SideConfig = dataclasses.field(default_factory=SideConfig)
    hardware: HardwareConfig = dataclasses.field(default_factory=HardwareConfig)
    resources: ResourcesConfig = dataclasses.field(default_factory=ResourcesConfig)
    schedule: ScheduleConfig = dataclasses.field(default_factory=ScheduleConfig)
    # Where the run writes; Hydra sets it to its output directory.
    run_dir: str = ""
    # An existing run directory to continue (instead of hydra.run.dir=<run>).
    resume: str = ""


def register_schemas() -> None:
    """Register the schemas with Hydra's ConfigStore (idempotent)."""
    # The primary config extends this schema, so every group merged into it is type-checked.
    ConfigStore.instance().store(name="config_schema", node=Config)


def _positive(config: DictConfig, path: str) -> list[str]:
    value = OmegaConf.select(config, path)
    return [] if value > 0 else [f"{path}={value!r} must be > 0"]


def validate(config: DictConfig) -> DictConfig:
    """Check ranges and names that the schema's types cannot; raise ValueError listing all."""
    from rlloop import games

    problems: list[str] = []
    if config.game.name not in games.names():
        problems.append(
            f"game.name={config.game.name!r} is not a registered game; valid: "
            + ", ".join(games.names())
        )
    for path in (
        "model.num_blocks", "model.channels", "model.value_hidden",
        "search.num_simulations", "search.max_num_considered_actions",
        "train.learning_rate", "train.batch_size", "train.steps_per_iteration",
        "train.replay_capacity", "train.decay_steps",
        "loop.iterations", "loop.moves_per_chunk", "loop.chunks_per_iteration",
        "loop.log_every", "loop.checkpoint_every", "loop.keep_checkpoints",
        "hardware.games_per_device", "hardware.side_workers", "hardware.side_threads",
        "hardware.init_timeout_seconds", "hardware.peer_timeout_seconds", "gate.every",
        "gate.screen_games", "gate.num_simulations",
        "gate.keep_champions", "perfect_play.every",
    ):  # fmt: skip
        problems += _positive(config, path)
    if config.loop.max_minutes < 0:
        problems.append(f"loop.max_minutes={config.loop.max_minutes} must be >= 0 (0: no limit)")
    if config.loop.random_opening_moves < 0 or config.loop.temperature_moves < 0:
        problems.append("loop.random_opening_moves and loop.temperature_moves must be >= 0")
    if not config.train.samples_per_insert >= 0:  # also refuses NaN
        problems.append(
            f"train.samples_per_insert={config.train.samples_per_insert} must be >= 0 (0: off)"
        )
    if not 0.0 <= config.train.value_lambda <= 1.0:
        problems.append(f"train.value_lambda={config.train.value_lambda} must be in [0, 1]")
    from rlloop.teacher import config_problems as teacher_problems

    # With several lineages each one's teacher is checked against its own game (below).
    problems += teacher_problems(config.train, None if config.schedule.configurations else str(config.game.name))
    if config.loop.max_forced_moves < 0:
        problems.append(f"loop.max_forced_moves must be >= 0, got {config.loop.max_forced_moves}")
    if config.search.multiplayer == MultiplayerSearch.maxn and config.search.algorithm != SearchAlgorithm.gumbel:
        problems.append("search.multiplayer=maxn needs search.algorithm=gumbel")
    if config.model.architecture not in ("resnet", "mlp"):
        problems.append(f"model.architecture={config.model.architecture!r}; valid: resnet, mlp")
    if config.model.dtype not in ("float32", "bfloat16"):
        problems.append(f"model.dtype={config.model.dtype!r}; valid: float32, bfloat16")
    if config.hardware.platform not in ("auto", "cpu", "gpu", "tpu"):
        problems.append(f"hardware.platform={config.hardware.platform!r}; valid: auto, cpu, gpu, tpu")
    if config.hardware.num_cpu_devices < 0:
        problems.append(f"hardware.num_cpu_devices={config.hardware.num_cpu_devices} must be >= 0")
    if not 0 < config.hardware.memory_fraction <= 1:
        problems.append(f"hardware.memory_fraction={config.hardware.memory_fraction} must be in (0, 1]")
    if config.train.min_replay_size > config.train.replay_capacity:
        problems.append(
            f"train.min_replay_size={config.train.min_replay_size} exceeds "
            f"train.replay_capacity={config.train.replay_capacity}"
        )
    count, index = config.hardware.num_processes, config.hardware.process_id
    if count is not None and count < 1:
        problems.append(f"hardware.num_processes={count} must be >= 1 (null: from the environment)")
    if index is not None and index < 0:
        problems.append(f"hardware.process_id={index} must be >= 0 (null: from the environment)")
    elif index is not None and count is not None and index >= count:
        problems.append(f"hardware.process_id={index} must be in [0, hardware.num_processes={count})")
    for name in ("memory", "disk"):
        warn = OmegaConf.select(config, f"resources.{name}_warn")
        critical = OmegaConf.select(config, f"resources.{name}_critical")
        if not 0 < warn < critical <= 1:
            problems.append(
                f"resources.{name}_warn={warn} and resources.{name}_critical={critical}: need "
                f"0 < warn < critical <= 1"
            )
    if not config.resources.load_warn > 0:
        problems.append(f"resources.load_warn={config.resources.load_warn} must be > 0")
    for path in ("gate.screen_games", "gate.deep_games", "gate.anchor_games"):
        value = OmegaConf.select(config, path)
        if value < 0 or value % 2:
            problems.append(f"{path}={value} must be an even number >= 0 (seats are swapped in pairs)")
    anchors = list(OmegaConf.select(config, "gate.anchors") or [])
    if "random" not in anchors:
        problems.append(f"gate.anchors={anchors} must include random (Elo is anchored at random = 0)")
    for path in ("gate.promote_score", "gate.confidence", "gate.screen_min_score"):
        value = OmegaConf.select(config, path)
        if not 0 < value < 1:
            problems.append(f"{path}={value} must be in (0, 1)")
    from rlloop.perfect_play import ALL_SETS

    for name in config.perfect_play.sets:
        if name not in ALL_SETS:
            problems.append(f"perfect_play.sets: unknown set {name!r}; valid: {', '.join(ALL_SETS)}")
    if any(count < 0 for count in config.perfect_play.simulations):
        problems.append(f"perfect_play.simulations={list(config.perfect_play.simulations)} must be >= 0")
    if config.perfect_play.budget_seconds < 0:
        problems.append(f"perfect_play.budget_seconds={config.perfect_play.budget_seconds} must be >= 0")
    problems += _side_problems(config.side)
    schedule = config.schedule
    for name, spec in schedule.configurations.items():
        if not 3 <= spec.priority <= 8:
            problems.append(f"schedule.configurations.{name}.priority={spec.priority} must be in [3, 8]")
        if not str(name).replace("_", "").replace("-", "").isalnum():
            problems.append(f"schedule.configurations: {name!r}: use letters, digits, _ and - only")
    for field in ("priority_overrides", "curriculum"):
        unknown = sorted(set(schedule[field]) - set(schedule.configurations))
        if unknown and schedule.configurations:
            problems.append(f"schedule.{field}: unknown configurations {unknown}; the run has "
                            f"{sorted(schedule.configurations)}")  # fmt: skip
    pressure = schedule.backpressure
    if not 0 <= pressure.resume_at <= pressure.throttle_at < pressure.stop_at:
        problems.append(
            f"schedule.backpressure: need 0 <= resume_at ({pressure.resume_at}) <= throttle_at "
            f"({pressure.throttle_at}) < stop_at ({pressure.stop_at})"
        )
    if not 0 < pressure.min_factor <= 1:
        problems.append(f"schedule.backpressure.min_factor={pressure.min_factor} must be in (0, 1]")
    if not 0 <= schedule.opponent_mix <= 1:
        problems.append(f"schedule.opponent_mix={schedule.opponent_mix} must be in [0, 1] (a share of the games)")
    if schedule.opponent_pool < 0:
        problems.append(f"schedule.opponent_pool={schedule.opponent_pool} must be >= 0 (earlier champions)")
    if problems:
        raise ValueError("invalid rlloop config:\n  " + "\n  ".join(problems))
    if schedule.configurations:
        for name, lineage in lineage_configs(config).items():
            try:
                validate(lineage)
            except ValueError as error:
                raise ValueError(f"schedule.configurations.{name}: {error}") from None
    return config


def _side_problems(side: DictConfig) -> list[str]:
    problems = []
    for key in ("every", "trees", "timeout_seconds", "max_samples", "learning_rate"):
        if not side[key] > 0:
            problems.append(f"side.{key}={side[key]!r} must be > 0")
    if side.folds < 2:
        problems.append(f"side.folds={side.folds} must be >= 2 (k-fold metrics need two folds)")
    if not 0 <= side.holdout_fraction < 0.5:
        problems.append(f"side.holdout_fraction={side.holdout_fraction} must be in [0, 0.5)")
    if side.max_move_classes < 2:
        problems.append(f"side.max_move_classes={side.max_move_classes} must be >= 2")
    if side.num_leaves < 2:
        problems.append(f"side.num_leaves={side.num_leaves} must be >= 2")
    if not 0 <= side.nice <= 19:
        problems.append(f"side.nice={side.nice} must be in [0, 19] (0: not niced)")
    return problems


# Groups a lineage may select (``group=option``) and the keys it may set; the rest of the
# config belongs to the run (its budget, seed, checkpoints, machine, resource guard).
LINEAGE_GROUPS = ("game", "model", "search", "train", "loop", "gate", "perfect_play")
RUN_LEVEL_LOOP_KEYS = ("iterations", "max_minutes", "seed", "log_every", "checkpoint_every",
                       "keep_checkpoints", "tensorboard")  # fmt: skip
_GROUP_SCHEMAS = {
    "game": GameConfig, "model": ModelConfig, "search": SearchConfig, "train": TrainConfig,
    "loop": LoopConfig, "gate": GateConfig, "perfect_play": PerfectPlayConfig,
}  # fmt: skip


def lineage_configs(config: DictConfig, *, config_dir: str | Path | None = None) -> dict[str, DictConfig]:
    """The full config of every lineage of a run, by name.

    With no ``schedule.configurations`` the run has one lineage, named after its game, whose
    config is the run's. Otherwise each lineage starts from the run's config and applies its
    ``overrides``: ``group=option`` replaces that group by ``conf/<group>/<option>.yaml``
    over the schema's defaults (as Hydra's ``group=option`` does), ``key=value`` sets a key
    (value parsed as YAML). Keys of the run (``loop.iterations``, ``loop.max_minutes``,
    ``loop.seed``, checkpoints, logging, ``hardware`` apart from ``games_per_device``,
    ``resources``, ``schedule``) cannot be set per lineage. Raises ValueError naming every
    bad override.
    """
    specs = config.schedule.configurations
    if not specs:
        return {str(config.game.name): config}
    directory = Path(config_dir) if config_dir is not None else CONF_DIR
    result, problems = {}, []
    for name, spec in specs.items():
        lineage = OmegaConf.create(OmegaConf.to_container(config, resolve=False))
        lineage = OmegaConf.merge(OmegaConf.structured(Config), lineage)
        lineage.schedule.configurations = {}
        for override in spec.overrides:
            key, sep, value = str(override).partition("=")
            key = key.strip().lstrip("+")
            if not sep or not key:
                problems.append(f"schedule.configurations.{name}: {override!r} is not key=value")
                continue
            head = key.split(".", 1)[0]
            if "." not in key:
                if key not in LINEAGE_GROUPS:
                    problems.append(
                        f"schedule.configurations.{name}: {override!r}: {key!r} is not a group a "
                        f"lineage may select ({', '.join(LINEAGE_GROUPS)})"
                    )
                    continue
                path = directory / key / f"{value.strip()}.yaml"
                if not path.is_file():
                    options = sorted(p.stem for p in (directory / key).glob("*.yaml"))
                    problems.append(
                        f"schedule.configurations.{name}: {override!r}: no option {value.strip()!r} "
                        f"in group {key}; valid: {', '.join(options)}"
                    )
                    continue
                node = OmegaConf.merge(OmegaConf.structured(_GROUP_SCHEMAS[key]), OmegaConf.load(path))
                if key == "loop":  # the run's budget, seed and checkpoints stay the run's
                    for run_key in RUN_LEVEL_LOOP_KEYS:
                        node[run_key] = lineage.loop[run_key]
                lineage[key] = node
                continue
            run_level = (
                head not in LINEAGE_GROUPS and key != "hardware.games_per_device"
            ) or (head == "loop" and key.split(".")[1] in RUN_LEVEL_LOOP_KEYS)
            if run_level:
                problems.append(
                    f"schedule.configurations.{name}: {override!r}: {key} belongs to the run, "
                    "not to one lineage; set it for the run"
                )
                continue
            try:
                OmegaConf.update(lineage, key, _yaml_value(value), merge=True)
            except Exception as error:  # a misspelt key or a badly typed value
                problems.append(f"schedule.configurations.{name}: {override!r}: {error}")
        result[str(name)] = lineage
    if problems:
        raise ValueError("invalid rlloop config:\n  " + "\n  ".join(problems))
    return result


def _yaml_value(text: str) -> Any:
    import yaml

    return yaml.safe_load(text) if text.strip() else ""


def compose(overrides: Sequence[str] = (), *, config_dir: str | Path | None = None) -> DictConfig:
    """Compose and validate a config from ``conf/`` the way ``python -m rlloop.run`` does.

    Example (from a notebook)::

        config = rlloop.compose(["game=tictactoe", "loop=smoke", "+hardware=cpu"])

    Raises:
      hydra.errors.ConfigCompositionException / omegaconf errors: unknown group option, key or
        badly typed value (the message names it).
      ValueError: a value out of range (the message names every one).
    """
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    register_schemas()
    directory = Path(config_dir) if config_dir is not None else CONF_DIR
    if GlobalHydra.instance().is_initialized():
        GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(directory.resolve()), version_base="1.3"):
        overrides = list(overrides)
        if not any(o.split("=", 1)[0].lstrip("+~") == "run_dir" for o in overrides):
            overrides.append("run_dir=")  # no Hydra run here: the Loop picks a folder
        try:
            config = hydra_compose(config_name="config", overrides=overrides)
        except Exception as error:
            try:
                better = type(error)(_with_causes(error))
            except TypeError:  # an exception type that wants other arguments: keep it
                raise error from None
            raise better from error
    return validate(config)


def _with_causes(error: BaseException) -> str:
    """The message of ``error`` followed by those of its causes (Hydra hides the useful one)."""
    messages, seen = [], set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        text = str(error).strip()
        if text and text not in messages:
            messages.append(text)
        error = error.__cause__ or error.__context__
    return "\n".join(messages)


def to_yaml(config: DictConfig | Any) -> str:
    """The config as YAML (enums as their names)."""
    return OmegaConf.to_yaml(config)
