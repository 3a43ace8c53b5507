"""Connect Four agents measured against perfect play.

For a set of positions labelled with their exact game-theoretic score (the test sets of
``../shared/data/connect4/`` or our own bundled positions), an agent is scored on:

- **mistake rate**: the share of positions where the agent's move has a worse game-theoretic
  *outcome* (win > draw > loss, for the side to move) than the position's best move, i.e.
  the move throws away a win or a draw. This is the measure published for AlphaZero-style
  Connect Four agents on these sets (any winning move is correct in a won position, however
  slow). A lost position cannot hold a mistake. The outcome of the chosen move comes from
  :mod:`rlloop.games.connect4_solver` (``solve(position + move, weak=True)``), cached on disk;
  bundled positions carry every move's score already.
- **value accuracy**: the share of positions where the value head's prediction for the side
  to move, read as win (> 1/3), loss (< -1/3) or draw (otherwise), equals the exact outcome.

The agent's move is the greedy move of :meth:`rlloop.agent.Agent.act`: the raw policy's argmax
with 0 simulations, or the argmax of search's improved policy with N simulations.

Our pure-Python solver scores a chosen move in well under a millisecond on end-easy, a few ms
on middle-easy and begin-easy, ~0.1 s on middle-medium and ~1 s (up to minutes) on
begin-medium; :data:`MISTAKE_SETS` leaves begin-medium out (value accuracy only) unless asked.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import math
import os
import threading
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from rlloop.games import connect4_solver as solver
from rlloop.games.base import Game, State
from rlloop.ratings import wilson_interval

# Test sets of ../shared/data/connect4 (Pascal Pons' benchmark files), easiest first.
SET_FILES = {
    "end-easy": "Test_L3_R1",
    "middle-easy": "Test_L2_R1",
    "middle-medium": "Test_L2_R2",
    "begin-easy": "Test_L1_R1",
    "begin-medium": "Test_L1_R2",
}
BUNDLED = "bundled"  # our own solver-labelled positions, shipped with the package
ALL_SETS = (*SET_FILES, BUNDLED)
# Sets on which choosing moves are scored by the solver by default; on the others (the solver
# needs about a second or more per move there) only value accuracy is reported.
MISTAKE_SETS = ("end-easy", "middle-easy", "middle-medium", "begin-easy", BUNDLED)
VALUE_THRESHOLD = 1.0 / 3.0  # |value| below this reads as a draw

DATA_ENV = "RLLOOP_CONNECT4_DATA"


def default_data_dir() -> Path | None:
    """``$RLLOOP_CONNECT4_DATA``, else ``../shared/data/connect4`` beside the repository, if it
    exists; None otherwise (then only :data:`BUNDLED` is available)."""
    configured = os.environ.get(DATA_ENV)
    if configured:
        return Path(configured)
    candidate = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "connect4"
    return candidate if candidate.is_dir() else None


def default_cache_path() -> Path:
    """Where solved move outcomes are kept between runs (``$XDG_CACHE_HOME/rlloop``)."""
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "rlloop" / "connect4_move_outcomes.txt"


@dataclasses.dataclass(frozen=True)
class PositionSet:
    """Labelled positions: moves in column notation, exact scores for the side to move, and
    (when known) every column's score [n, 7] with NaN for unplayable columns."""

    name: str
    moves: tuple[str, ...]
    scores: np.ndarray
    move_scores: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.moves)


def available_sets(data_dir: str | Path | None = None) -> list[str]:
    """The set names that can be loaded: the test sets found in ``data_dir`` (default
    :func:`default_data_dir`) and :data:`BUNDLED`."""
    directory = Path(data_dir) if data_dir else default_data_dir()
    found = [
        name for name, file in SET_FILES.items()
        if directory is not None and (directory / file).is_file()
    ]  # fmt: skip
    return [*found, BUNDLED]


def load_set(
    name: str, *, data_dir: str | Path | None = None, limit: int | None = None
) -> PositionSet:
    """Load a set by name (see :data:`ALL_SETS`), its first ``limit`` positions if given.

    Raises:
      ValueError: unknown name.
      FileNotFoundError: a test set whose file is not in ``data_dir``.
    """
    if name == BUNDLED:
        positions = solver.load_bundled_positions()
    elif name in SET_FILES:
        directory = Path(data_dir) if data_dir else default_data_dir()
        if directory is None:
            raise FileNotFoundError(
                f"Connect Four set {name!r} needs the test-set folder: pass data_dir or set "
                f"${DATA_ENV} (no ../shared/data/connect4 beside the repository); "
                f"{BUNDLED!r} works without it"
            )
        path = directory / SET_FILES[name]
        if not path.is_file():
            raise FileNotFoundError(f"Connect Four set {name!r}: no file {path}")
        positions = solver.load_positions(path)
    else:
        raise ValueError(f"unknown Connect Four position set {name!r}; valid: {', '.join(ALL_SETS)}")
    if limit is not None:
        if limit < 1:
            raise ValueError(f"limit must be >= 1, got {limit}")
        positions = positions[:limit]
    move_scores = None
    if all(p.move_scores is not None for p in positions):
        move_scores = np.array(
            [[np.nan if s is None else s for s in p.move_scores] for p in positions], np.float64
        )
    return PositionSet(
        name=name,
        moves=tuple(p.moves for p in positions),
        scores=np.array([p.score for p in positions], np.int32),
        move_scores=move_scores,
    )


# ----------------------------------------------------------------------------- positions
def encode_positions(game: Game, moves: Sequence[str]) -> State:
    """Batch of game states [B] reached by playing each move string from the start.

    Raises ValueError naming the first position that is not a legal, unfinished position.
    """
    if game.name != "connect4":
        raise ValueError(f"perfect-play positions are Connect Four positions, not {game.name}")
    if not moves:
        raise ValueError("no positions to encode")
    length = max(max(len(m) for m in moves), 1)
    actions = np.full((len(moves), length), -1, np.int32)
    for row, line in enumerate(moves):
        for col, ch in enumerate(line):
            if ch not in "1234567":
                raise ValueError(f"position {line!r}: {ch!r} is not a column digit 1-7")
            actions[row, col] = ord(ch) - ord("1")
    states, illegal = _replay(game)(jnp.asarray(actions))
    illegal = np.asarray(illegal)
    over = np.asarray(states.terminated | states.truncated)
    for row in np.flatnonzero(illegal | over):
        raise ValueError(
            f"position {moves[row]!r} " + ("plays a full column or continues a finished game"
            if illegal[row] else "is a finished game: there is no move to choose")
        )  # fmt: skip
    return states


_REPLAYS: dict[Game, Any] = {}


def _replay(game: Game) -> Any:
    if game not in _REPLAYS:

        def replay_one(actions: jax.Array) -> tuple[State, jax.Array]:
            def body(carry: tuple[State, jax.Array], action: jax.Array) -> tuple[Any, None]:
                state, illegal = carry
                play = action >= 0
                legal = state.legal_action_mask[jnp.maximum(action, 0)] & ~state.terminated
                after = game.step(state, jnp.maximum(action, 0))
                state = jax.tree.map(lambda a, b: jnp.where(play, a, b), after, state)
                return (state, illegal | (play & ~legal)), None

            start = game.init(jax.random.key(0))
            (state, illegal), _ = jax.lax.scan(body, (start, jnp.bool_(False)), actions.T)
            return state, illegal

        _REPLAYS[game] = jax.jit(jax.vmap(replay_one))
    return _REPLAYS[game]


# ------------------------------------------------------------------------- move outcomes
_SOLVER_LOCK = threading.Lock()


class MoveOutcomes:
    """Exact outcome (+1 win, 0 draw, -1 loss, for the side to move) of playing a column in a
    position, from the solver, remembered in an append-only text file (``<moves><col> <o>``
    per line: the child position and the outcome for the side that played into it).

    Thread-safe. A line cut short by a crash is ignored when the file is read back.
    """

    def __init__(self, cache_path: str | Path | None = None) -> None:
        self.path = Path(cache_path) if cache_path is not None else None
        self._known: dict[str, int] = {}
        self._lock = threading.Lock()
        self.solver_seconds = 0.0
        self.solved = 0
        if self.path is not None and self.path.is_file():
            for line in self.path.read_text().splitlines():
                parts = line.split()
                if len(parts) == 2 and parts[1] in ("-1", "0", "1") and parts[0].isdigit():
                    self._known[parts[0]] = int(parts[1])

    def outcome(self, moves: str, column: int) -> int:
        """Outcome for the side to move in ``moves`` of playing ``column`` (0-6)."""
        child = moves + str(column + 1)
        with self._lock:
            known = self._known.get(child)
        if known is not None:
            return known
        with _SOLVER_LOCK:  # the solver's transposition table is module state
            start = time.process_time()
            value = -solver.solve(child, weak=True)
            elapsed = time.process_time() - start
        with self._lock:
            self._known[child] = value
            self.solver_seconds += elapsed
            self.solved += 1
            if self.path is not None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                with self.path.open("a") as handle:
                    handle.write(f"{child} {value}\n")
        return value


# ------------------------------------------------------------------------------ scoring
@dataclasses.dataclass(frozen=True)
class SetResult:
    """One agent (at one simulation count) on one position set."""

    set: str
    simulations: int
    positions: int
    scored: int  # positions whose chosen move was checked (solver budget)
    mistakes: int | None
    mistake_rate: float | None
    mistake_low: float | None  # Wilson 95% interval of the mistake rate
    mistake_high: float | None
    value_accuracy: float
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def outcome_of_value(values: np.ndarray) -> np.ndarray:
    """Predicted outcome -1/0/+1 read from values in [-1, 1] (|v| < 1/3 is a draw)."""
    return np.where(values > VALUE_THRESHOLD, 1, np.where(values < -VALUE_THRESHOLD, -1, 0))


def count_mistakes(
    positions: PositionSet,
    chosen: np.ndarray,
    oracle: MoveOutcomes | None,
    *,
    budget_seconds: float | None = None,
) -> tuple[int, int]:
    """(mistakes, positions scored) for the chosen columns [n] (0-6) of ``positions``.

    A position is a mistake when the chosen column's outcome is below the position's
    outcome. Lost positions and immediately winning moves need no solver call. When
    ``budget_seconds`` of solver wall time run out, the rest of the set is left unscored.
    """
    mistakes = scored = 0
    start = time.perf_counter()
    best = np.sign(positions.scores)
    for index, (moves, column) in enumerate(zip(positions.moves, chosen, strict=True)):
        column = int(column)
        if best[index] < 0:
            scored += 1  # every move of a lost position loses: no mistake possible
            continue
        if positions.move_scores is not None:
            score = positions.move_scores[index, column]
            if math.isnan(score):
                raise ValueError(f"position {moves!r}: column {column + 1} is not playable")
            outcome = int(np.sign(score))
        else:
            if oracle is None:
                raise ValueError(f"set {positions.name!r} has no move scores and no solver oracle")
            if budget_seconds is not None and time.perf_counter() - start > budget_seconds:
                break
            outcome = oracle.outcome(moves, column)
        scored += 1
        mistakes += int(outcome < best[index])
    return mistakes, scored


def evaluate_agent(
    agent: Any,
    sets: Iterable[PositionSet],
    *,
    simulations: Sequence[int] = (0,),
    oracle: MoveOutcomes | None = None,
    mistake_sets: Sequence[str] = MISTAKE_SETS,
    budget_seconds: float | None = None,
    key: jax.Array | None = None,
    batch_size: int = 1024,
) -> list[SetResult]:
    """Mistake rate and value accuracy of ``agent`` (an :class:`rlloop.agent.Agent`, or
    anything with its ``act(states, key, num_simulations)``, ``value(states)`` and ``game``)
    on every set, for every simulation count (0 = the raw policy's argmax)."""
    key = jax.random.key(0) if key is None else key
    results = []
    for positions in sets:
        states = encode_positions(agent.game, positions.moves)
        values = _batched(lambda s: agent.value(s), states, batch_size)
        movers = np.asarray(states.current_player)
        own_value = values[np.arange(len(positions)), movers]
        value_accuracy = float(np.mean(outcome_of_value(own_value) == np.sign(positions.scores)))
        for count in simulations:
            with_moves = positions.name in mistake_sets
            if not with_moves:
                results.append(SetResult(
                    positions.name, int(count), len(positions), 0, None, None, None, None,
                    value_accuracy, note="move scoring off: solver too slow here (value only)",
                ))  # fmt: skip
                continue
            chosen = _batched(
                lambda s, count=count: agent.act(s, key, num_simulations=int(count)),
                states, batch_size,
            )  # fmt: skip
            mistakes, scored = count_mistakes(
                positions, chosen, oracle, budget_seconds=budget_seconds
            )
            rate = mistakes / scored if scored else None
            low, high = wilson_interval(mistakes, scored) if scored else (None, None)
            note = "" if scored == len(positions) else f"solver budget: {scored} of {len(positions)} scored"
            results.append(SetResult(
                positions.name, int(count), len(positions), scored, mistakes, rate, low, high,
                value_accuracy, note=note,
            ))  # fmt: skip
    return results


def _batched(fn: Any, states: State, batch_size: int) -> np.ndarray:
    """Apply ``fn`` to ``states`` in fixed-size batches (the last one padded), so that one
    compiled program serves every set size."""
    total = states.current_player.shape[0]
    outputs = []
    for start in range(0, total, batch_size):
        chunk = jax.tree.map(lambda x, start=start: x[start : start + batch_size], states)
        size = chunk.current_player.shape[0]
        if size < batch_size:
            chunk = jax.tree.map(
                lambda x, size=size: jnp.concatenate([x, jnp.repeat(x[:1], batch_size - size, 0)]),
                chunk,
            )  # fmt: skip
        outputs.append(np.asarray(fn(chunk))[:size])
    return np.concatenate(outputs)


def format_table(results: Sequence[SetResult], title: str = "") -> str:
    """A plain-text table of results (one row per set and simulation count)."""
    header = f"{'set':<14} {'sims':>5} {'positions':>9} {'mistakes':>17} {'value acc':>9}  note"
    lines = [title] if title else []
    lines += [header, "-" * len(header)]
    for r in results:
        if r.mistake_rate is None:
            mistakes = "-"
        else:
            mistakes = f"{100 * r.mistake_rate:5.1f}% ({r.mistakes}/{r.scored})"
        lines.append(
            f"{r.set:<14} {r.simulations:>5} {r.positions:>9} {mistakes:>17} "
            f"{100 * r.value_accuracy:8.1f}%  {r.note}"
        )
    return "\n".join(lines)


# ------------------------------------------------------------------------------ in-loop
PERFECT_PLAY_EVENT = "PERFECT_PLAY"


class PerfectPlayMonitor:
    """Scores models against perfect play in a background thread, for the loop.

    ``submit(model_id, iteration, params)`` queues an evaluation (network inference on the
    JAX thread pool, solver calls in Python); ``poll()`` returns the finished ones, so that
    the loop writes them to its ledger and telemetry from its own thread.
    """

    def __init__(
        self,
        agent_factory: Any,
        set_names: Sequence[str],
        *,
        simulations: Sequence[int],
        data_dir: str | Path | None = None,
        cache_path: str | Path | None = None,
        background: bool = True,
        budget_seconds: float | None = None,
    ) -> None:
        available = available_sets(data_dir)
        names = [name for name in set_names if name in available]
        missing = [name for name in set_names if name not in available]
        if not names:
            names = [BUNDLED]  # a fresh clone without ../shared still measures something
        self.skipped_sets = missing
        self.sets = [load_set(name, data_dir=data_dir) for name in names]
        self.simulations = tuple(int(s) for s in simulations)
        self.agent_factory = agent_factory
        self.oracle = MoveOutcomes(cache_path)
        self.budget_seconds = budget_seconds
        self._executor = (
            concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="perfect-play")
            if background else None
        )  # fmt: skip
        self._pending: list[tuple[str, int, concurrent.futures.Future]] = []
        self._done: list[tuple[str, int, list[SetResult], float]] = []

    def _run(self, params: Any) -> tuple[list[SetResult], float]:
        start = time.perf_counter()
        results = evaluate_agent(
            self.agent_factory(params), self.sets, simulations=self.simulations,
            oracle=self.oracle, budget_seconds=self.budget_seconds,
        )  # fmt: skip
        return results, time.perf_counter() - start

    def submit(self, model_id: str, iteration: int, params: Any) -> None:
        if self._executor is None:
            results, seconds = self._run(params)
            self._done.append((model_id, iteration, results, seconds))
        else:
            self._pending.append((model_id, iteration, self._executor.submit(self._run, params)))

    def poll(self, *, wait: bool = False) -> list[tuple[str, int, list[SetResult], float]]:
        """Finished evaluations (model id, iteration, results, seconds) since the last poll.
        An evaluation that raised re-raises here."""
        still = []
        for model_id, iteration, future in self._pending:
            if wait or future.done():
                results, seconds = future.result()
                self._done.append((model_id, iteration, results, seconds))
            else:
                still.append((model_id, iteration, future))
        self._pending = still
        done, self._done = self._done, []
        return done

    @property
    def busy(self) -> bool:
        return bool(self._pending)

    def close(self, *, wait: bool = False) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=wait, cancel_futures=not wait)


def metrics_of(results: Sequence[SetResult]) -> dict[str, float]:
    """Flat telemetry scalars: ``perfect_play/<set>/mistakes_<sims>sims`` and
    ``perfect_play/<set>/value_accuracy``."""
    metrics: dict[str, float] = {}
    for r in results:
        if r.mistake_rate is not None:
            metrics[f"perfect_play/{r.set}/mistakes_{r.simulations}sims"] = r.mistake_rate
        metrics[f"perfect_play/{r.set}/value_accuracy"] = r.value_accuracy
    return metrics


def summary(results: Sequence[SetResult]) -> str:
    """One console line: mistake rates per set and simulation count."""
    parts = []
    for r in results:
        if r.mistake_rate is not None:
            parts.append(f"{r.set} {100 * r.mistake_rate:.1f}% ({r.simulations} sims)")
    sets_seen = dict.fromkeys(r.set for r in results)
    accuracy = {r.set: r.value_accuracy for r in results}
    parts += [f"{name} value acc {100 * accuracy[name]:.0f}%" for name in sets_seen]
    return "mistakes " + ", ".join(parts)
