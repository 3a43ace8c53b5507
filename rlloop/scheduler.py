"""Which game configuration gets the next self-play chunk, and how big it is.

A run that improves several configurations at once (issue 21: the twelve RingRift ones, or
tic-tac-toe beside Connect Four) asks :class:`SelfplayScheduler` before every chunk. The
scheduler is host-side and knows nothing of JAX, the ledger or the loop: everything it reads
comes in through callables given to its constructor, so it runs and is tested alone.

**Priority** of a configuration (every term clamped to its bounds, defaults in
:class:`PriorityBounds`):

    priority = static (3..8) + Elo boost (0..3) + curriculum (-2..3) + override (0..6)

- *static*: the configuration's own weight (``schedule.priorities``), e.g. small boards first;
- *Elo boost*: ``lag / elo_lag_per_point + stale / stale_iterations_per_point``, where
  ``lag`` is how far its champion's Elo is below the best configuration's champion and
  ``stale`` the iterations since its last promotion (or since the run began): lagging and
  stuck configurations get more games. Configurations on different games have Elo on
  different scales; the boost compares them only because each scale starts at its own random
  player (Elo 0), which is the convention of :mod:`rlloop.ratings`;
- *curriculum*: a weight from an outside loader (a schedule that moves over the run);
- *override*: an operator's boost from config.

A pick is drawn with probability proportional to priority times the backpressure factor:
1 normally, ``throttle_factor(config)`` (in (0, 1]) when ``should_throttle(config)``, 0 when
``should_stop(config)``. When every configuration is stopped, :meth:`pick_weighted_config`
returns None and the caller trains instead of playing.

**Backpressure** from replay (:class:`ReplayPressure`): a configuration's self-play is
throttled when training owes the samples-per-insert target on ``throttle_at`` chunks of its
self-play, stopped at ``stop_at`` chunks, and resumes once it falls back below
``resume_at``.

**Size** of a chunk (:meth:`target_games`): games per device start at the configuration's
``games_per_device`` and move between ``min_games`` and ``max_games`` by factors of two (so a
configuration has at most a few compiled shapes): halved, largest memory consumer first, when
the measured memory is above ``critical``; doubled when it is below ``warn`` and the doubled
chunk still fits the configuration's memory budget (``bytes_per_game`` from the compiled
programs' memory analysis).

**Diversity** (:meth:`track_diversity`, :meth:`diversity_metrics`): games counted by
configuration, search mode, opponent (self-play or an earlier champion / a baseline:
asymmetric games) and difficulty band, with each category's shares and normalised entropy.
"""

from __future__ import annotations

import collections
import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

__all__ = [
    "ChunkSize",
    "Priority",
    "PriorityBounds",
    "Rating",
    "ReplayPressure",
    "SelfplayScheduler",
]


@dataclasses.dataclass(frozen=True)
class PriorityBounds:
    """Bounds of the priority terms, and the Elo boost's scales."""

    static: tuple[float, float] = (3.0, 8.0)
    elo_boost: tuple[float, float] = (0.0, 3.0)
    curriculum: tuple[float, float] = (-2.0, 3.0)
    override: tuple[float, float] = (0.0, 6.0)
    elo_lag_per_point: float = 100.0  # Elo behind the best champion worth one point of boost
    stale_iterations_per_point: float = 50.0  # iterations without promotion worth one point
    minimum: float = 0.1  # a configuration never drops to zero by priority alone


@dataclasses.dataclass(frozen=True)
class Rating:
    """What the ratings source says of one configuration's champion."""

    elo: float | None = None  # None: no rated champion yet
    iterations_since_promotion: int = 0


@dataclasses.dataclass(frozen=True)
class Priority:
    """One configuration's priority, term by term (each already clamped)."""

    static: float
    elo_boost: float
    curriculum: float
    override: float

    @property
    def total(self) -> float:
        return self.static + self.elo_boost + self.curriculum + self.override


@dataclasses.dataclass(frozen=True)
class ChunkSize:
    """The size of the next chunk of one configuration."""

    games_per_device: int
    moves_per_chunk: int


def _clamp(value: float, bounds: tuple[float, float]) -> float:
    low, high = bounds
    return min(max(float(value), low), high)


class ReplayPressure:
    """Backpressure from replay: how far self-play is ahead of training, per configuration.

    ``added(config, n)`` counts samples put into replay, ``consumed(config, n)`` samples that
    training used. With a samples-per-insert target ``spi`` (trained samples per sample
    added), training has caught up when ``consumed >= spi * added``; the *lead* is
    ``spi * added - consumed`` samples of training still owed, measured in chunks of
    self-play whose training is owed (units of ``spi * chunk_samples``: one chunk's samples
    trained ``spi`` times). The signals (the scheduler's injected callables):

    - ``should_throttle``: lead >= ``throttle_at`` chunks; ``throttle_factor`` falls linearly
      from 1 at ``throttle_at`` to ``min_factor`` at ``stop_at``;
    - ``should_stop``: lead >= ``stop_at`` chunks, and stays stopped (hysteresis) until the
      lead is back below ``resume_at`` chunks.
    """

    def __init__(
        self,
        samples_per_insert: float,
        *,
        chunk_samples: Mapping[str, float] | float,
        throttle_at: float = 2.0,
        stop_at: float = 4.0,
        resume_at: float = 1.0,
        min_factor: float = 0.25,
    ) -> None:
        if samples_per_insert <= 0:
            raise ValueError(f"samples_per_insert={samples_per_insert} must be > 0")
        if not 0 <= resume_at <= throttle_at < stop_at:
            raise ValueError(
                f"backpressure needs 0 <= resume_at ({resume_at}) <= throttle_at "
                f"({throttle_at}) < stop_at ({stop_at})"
            )
        if not 0 < min_factor <= 1:
            raise ValueError(f"min_factor={min_factor} must be in (0, 1]")
        self.spi = float(samples_per_insert)
        self._chunk = chunk_samples
        self.throttle_at, self.stop_at, self.resume_at = throttle_at, stop_at, resume_at
        self.min_factor = min_factor
        self._added: collections.Counter[str] = collections.Counter()
        self._consumed: collections.Counter[str] = collections.Counter()
        self._stopped: set[str] = set()

    def added(self, config: str, samples: int) -> None:
        self._added[config] += int(samples)

    def consumed(self, config: str, samples: int) -> None:
        self._consumed[config] += int(samples)

    def lead(self, config: str) -> float:
        """Training owed, in chunks (negative: training is ahead)."""
        chunk = self._chunk[config] if isinstance(self._chunk, Mapping) else self._chunk
        owed = self.spi * self._added[config] - self._consumed[config]
        return owed / max(self.spi * float(chunk), 1.0)

    def should_stop(self, config: str) -> bool:
        lead = self.lead(config)
        if config in self._stopped and lead < self.resume_at:
            self._stopped.discard(config)
        elif lead >= self.stop_at:
            self._stopped.add(config)
        return config in self._stopped

    def should_throttle(self, config: str) -> bool:
        return self.lead(config) >= self.throttle_at

    def throttle_factor(self, config: str) -> float:
        lead = self.lead(config)
        if lead < self.throttle_at:
            return 1.0
        fraction = (lead - self.throttle_at) / (self.stop_at - self.throttle_at)
        return max(self.min_factor, 1.0 - (1.0 - self.min_factor) * min(fraction, 1.0))

    def state(self, config: str) -> str:
        """``running``, ``throttled`` or ``stopped`` (for status lines)."""
        if self.should_stop(config):
            return "stopped"
        return "throttled" if self.should_throttle(config) else "running"


class SelfplayScheduler:
    """Picks the configuration of the next self-play chunk and sizes it (module doc).

    Args:
      configs: the run's configuration names.
      static_priority: each configuration's static priority (missing: the low bound).
      games_per_device: each configuration's starting games per device.
      moves_per_chunk: moves per chunk, per configuration (or one number for all).
      ratings: ``() -> {config: Rating}``; missing configurations count as unrated.
      curriculum_weights: ``() -> {config: weight}``.
      priority_overrides: ``() -> {config: boost}``.
      should_stop, should_throttle, throttle_factor: backpressure, ``(config) -> ...``.
      memory_fraction: ``() -> used share of the memory that bounds chunk sizes`` (device or
        host, whichever the caller measures), or None where unknown.
      bytes_per_game: ``(config) -> bytes one game of a chunk needs`` (compiled memory
        analysis), or None where unknown.
      memory_budget: bytes all chunks together may use (the caller's memory limit times its
        share for self-play); 0: no budget.
      record_utilisation: ``(config, share) -> None``, called with every pick's share of
        the picks so far (telemetry).
      min_games, max_games: bounds of games per device (powers of two apart from the start).
      warn, critical: memory fractions for scaling up (below ``warn``) and down (above
        ``critical``).
      bounds: priority term bounds (:class:`PriorityBounds`).
      seed: the picks' random generator (numpy), for reproducible runs.
    """

    def __init__(
        self,
        configs: Sequence[str],
        *,
        static_priority: Mapping[str, float] | None = None,
        games_per_device: Mapping[str, int] | int = 256,
        moves_per_chunk: Mapping[str, int] | int = 12,
        ratings: Callable[[], Mapping[str, Rating]] = dict,
        curriculum_weights: Callable[[], Mapping[str, float]] = dict,
        priority_overrides: Callable[[], Mapping[str, float]] = dict,
        should_stop: Callable[[str], bool] = lambda config: False,
        should_throttle: Callable[[str], bool] = lambda config: False,
        throttle_factor: Callable[[str], float] = lambda config: 1.0,
        memory_fraction: Callable[[], float | None] = lambda: None,
        bytes_per_game: Callable[[str], float | None] = lambda config: None,
        memory_budget: float = 0.0,
        record_utilisation: Callable[[str, float], None] = lambda config, share: None,
        min_games: int = 8,
        max_games: int | None = None,
        warn: float = 0.70,
        critical: float = 0.80,
        bounds: PriorityBounds | None = None,
        seed: int = 0,
    ) -> None:
        if not configs:
            raise ValueError("a scheduler needs at least one configuration")
        if len(set(configs)) != len(configs):
            raise ValueError(f"configurations named twice: {list(configs)}")
        if not 0 < warn < critical <= 1:
            raise ValueError(f"memory thresholds need 0 < warn ({warn}) < critical ({critical}) <= 1")
        self.configs = list(configs)
        self.bounds = bounds or PriorityBounds()
        unknown = set(static_priority or {}) - set(self.configs)
        if unknown:
            raise ValueError(f"static priority for unknown configurations {sorted(unknown)}")
        self._static = {c: (static_priority or {}).get(c, self.bounds.static[0]) for c in configs}
        self._games = {c: self._per_config(games_per_device, c) for c in configs}
        self._moves = {c: self._per_config(moves_per_chunk, c) for c in configs}
        for config, games in self._games.items():
            if games < 1 or self._moves[config] < 1:
                raise ValueError(f"{config}: games per device and moves per chunk must be >= 1")
        self._start_games = dict(self._games)
        self.min_games = max(1, int(min_games))
        self.max_games = int(max_games) if max_games else None
        self.ratings, self.curriculum_weights = ratings, curriculum_weights
        self.priority_overrides = priority_overrides
        self.should_stop, self.should_throttle = should_stop, should_throttle
        self.throttle_factor = throttle_factor
        self.memory_fraction, self.bytes_per_game = memory_fraction, bytes_per_game
        self.memory_budget = float(memory_budget)
        self.record_utilisation = record_utilisation
        self.warn, self.critical = warn, critical
        self._rng = np.random.default_rng(seed)
        self._picks: collections.Counter[str] = collections.Counter()
        self._diversity: dict[str, collections.Counter[str]] = {
            "config": collections.Counter(),
            "search_mode": collections.Counter(),
            "opponent": collections.Counter(),
            "difficulty": collections.Counter(),
        }
        self._asymmetric = 0

    @staticmethod
    def _per_config(value: Mapping[str, int] | int, config: str) -> int:
        return int(value[config]) if isinstance(value, Mapping) else int(value)

    # -------------------------------------------------------------------- priorities
    def priorities(self) -> dict[str, Priority]:
        """Every configuration's priority, term by term."""
        b = self.bounds
        ratings = dict(self.ratings())
        curriculum = dict(self.curriculum_weights())
        overrides = dict(self.priority_overrides())
        rated = [r.elo for r in ratings.values() if r is not None and r.elo is not None]
        best = max(rated) if rated else None
        result = {}
        for config in self.configs:
            rating = ratings.get(config) or Rating()
            lag = 0.0 if best is None or rating.elo is None else max(0.0, best - rating.elo)
            boost = lag / b.elo_lag_per_point + max(0, rating.iterations_since_promotion) / (
                b.stale_iterations_per_point
            )
            result[config] = Priority(
                static=_clamp(self._static[config], b.static),
                elo_boost=_clamp(boost, b.elo_boost),
                curriculum=_clamp(curriculum.get(config, 0.0), b.curriculum),
                override=_clamp(overrides.get(config, 0.0), b.override),
            )
        return result

    def weights(self) -> dict[str, float]:
        """Pick weights: priority (at least ``bounds.minimum``) times backpressure."""
        weights = {}
        for config, priority in self.priorities().items():
            if self.should_stop(config):
                weights[config] = 0.0
                continue
            factor = 1.0
            if self.should_throttle(config):
                factor = min(max(float(self.throttle_factor(config)), 0.0), 1.0)
            weights[config] = max(priority.total, self.bounds.minimum) * factor
        return weights

    def shares(self) -> dict[str, float]:
        """Normalised pick weights: each configuration's expected share of the chunks."""
        weights = self.weights()
        total = sum(weights.values())
        return {c: (w / total if total else 0.0) for c, w in weights.items()}

    def pick_weighted_config(self) -> str | None:
        """The configuration of the next chunk, drawn in proportion to :meth:`weights`; None
        when backpressure stops every one."""
        weights = self.weights()
        total = sum(weights.values())
        if total <= 0:
            return None
        names = list(weights)
        probabilities = np.array([weights[n] for n in names]) / total
        config = names[int(self._rng.choice(len(names), p=probabilities))]
        self._picks[config] += 1
        self.record_utilisation(config, self._picks[config] / sum(self._picks.values()))
        return config

    @property
    def picks(self) -> dict[str, int]:
        """Chunks picked so far, per configuration."""
        return dict(self._picks)

    def state_dict(self) -> dict[str, Any]:
        """What a resumed run needs to continue the same picks: the random generator, the
        picks and diversity counts, and the current chunk sizes (JSON data)."""
        return {
            "rng": self._rng.bit_generator.state,
            "picks": dict(self._picks),
            "games": dict(self._games),
            "diversity": {category: dict(counts) for category, counts in self._diversity.items()},
            "asymmetric": self._asymmetric,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Continue from :meth:`state_dict` (configurations the state does not know keep
        their start; those it knows that this scheduler does not are dropped)."""
        self._rng.bit_generator.state = state["rng"]
        self._picks = collections.Counter({c: int(n) for c, n in state["picks"].items() if c in self._games})
        for config, games in state.get("games", {}).items():
            if config in self._games:
                self._games[config] = int(games)
        for category, counts in state.get("diversity", {}).items():
            if category in self._diversity:
                self._diversity[category] = collections.Counter({k: int(v) for k, v in counts.items()})
        self._asymmetric = int(state.get("asymmetric", 0))

    # -------------------------------------------------------------------- sizes
    def target_games(self, config: str) -> ChunkSize:
        """Games per device and moves for the next chunk of ``config`` (module doc, Size)."""
        if config not in self._games:
            raise KeyError(f"unknown configuration {config!r}; known: {', '.join(self.configs)}")
        used = self.memory_fraction()
        if used is not None and used > self.critical:
            # Shrink the largest consumer first: this configuration only if it is the one.
            if config == self._largest_consumer():
                self._games[config] = max(self.min_games, self._games[config] // 2)
        elif used is not None and used < self.warn:
            doubled = self._games[config] * 2
            if (self.max_games is None or doubled <= self.max_games) and self._fits(config, doubled):
                self._games[config] = doubled
        return ChunkSize(self._games[config], self._moves[config])

    def _consumption(self, config: str, games: int | None = None) -> float:
        per_game = self.bytes_per_game(config)
        games = self._games[config] if games is None else games
        return float(per_game) * games if per_game else float(games)

    def _largest_consumer(self) -> str:
        return max(self.configs, key=self._consumption)

    def _fits(self, config: str, games: int) -> bool:
        if not self.memory_budget or self.bytes_per_game(config) is None:
            return self.max_games is not None  # unknown size: grow only up to a stated max
        others = sum(self._consumption(c) for c in self.configs if c != config)
        return others + self._consumption(config, games) <= self.memory_budget

    # -------------------------------------------------------------------- diversity
    def track_diversity(
        self,
        config: str,
        *,
        games: int,
        search_mode: str = "gumbel",
        opponent: str = "self",
        difficulty: str = "default",
    ) -> None:
        """Count ``games`` finished games of ``config``: by configuration, search mode,
        opponent (``self`` for self-play; anything else is an asymmetric game) and
        difficulty band."""
        if config not in self._games:
            raise KeyError(f"unknown configuration {config!r}; known: {', '.join(self.configs)}")
        games = int(games)
        if games < 0:
            raise ValueError(f"games={games} must be >= 0")
        for category, key in (("config", config), ("search_mode", search_mode),
                              ("opponent", opponent), ("difficulty", difficulty)):  # fmt: skip
            self._diversity[category][key] += games
        if opponent != "self":
            self._asymmetric += games

    def diversity_metrics(self) -> dict[str, Any]:
        """Per category: game counts, shares and normalised Shannon entropy (0: one kind
        only, 1: all kinds seen equally); and the share of asymmetric games."""
        result: dict[str, Any] = {}
        total = sum(self._diversity["config"].values())
        for category, counts in self._diversity.items():
            n = sum(counts.values())
            shares = {k: v / n for k, v in counts.items()} if n else {}
            kinds = len(self.configs) if category == "config" else len(counts)
            entropy = -sum(p * math.log(p) for p in shares.values() if p > 0)
            result[category] = {
                "games": dict(counts),
                "shares": shares,
                "entropy": entropy / math.log(kinds) if kinds > 1 else 0.0,
            }
        result["games"] = total
        result["asymmetric_share"] = self._asymmetric / total if total else 0.0
        return result
