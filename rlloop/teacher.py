"""Teachers and supervised bootstrap (issue 24, item 3).

A *teacher* is a player whose moves a fresh network learns before it learns from its own
self-play, or a file of recorded games. ``train.teacher`` names it:

========================================  ===============================================
``random``, ``greedy``                    the arena's baselines (:mod:`rlloop.arena`;
                                          ``greedy`` where affordable: not RingRift)
``heuristic[:PROFILE]``                   RingRift's reference one-ply heuristic player
``heuristic-search[:PROFILE]``            search over the heuristic
                                          (:mod:`rlloop.games.ringrift.heuristic_players`)
``run:RUN[#LINEAGE][@champion|@latest|@STEP|@champion:STEP]``
                                          an earlier run's network (``rlloop.evaluate``'s
                                          agent syntax), searching with its run's search
                                          settings at ``train.teacher_simulations`` (0: its
                                          raw policy)
``self``                                  the lineage's own fresh network (its value prior,
                                          if any) searching with the lineage's search
                                          settings at ``train.teacher_simulations``: a deep
                                          search distilled into the policy before self-play
``traces:PATH-OR-GLOB``                   the reference's JSON-lines game records
                                          (``*.jsonl[.gz]``, RingRift; a user's game
                                          database in that format)
========================================  ===============================================

Samples are in replay's format (:data:`rlloop.replay.SAMPLE_FIELDS`): ``observation`` (the
mover's view), the sparse policy target ``policy_actions`` / ``policy_weights`` [M, K] with
the lineage's policy slots K, and ``value`` [M, N], the outcome per player relative to the
mover (:func:`rlloop.replay.mover_relative`). Positions with one legal move (forced) keep
a value target and an all-zero policy target, as in self-play.

- Player teachers play every seat of ``train.teacher_games`` games at once, one jitted
  program (``lax.scan`` over moves, ``vmap`` over games, one program per device like
  self-play), finished games restarting in place after ``loop.random_opening_moves`` random
  moves. Diversity: with probability ``train.teacher_noise`` a move is a uniformly random
  legal move instead of the teacher's; the position's policy target stays the teacher's.
  The policy target is the teacher's *move distribution*: ``random`` uniform over the legal
  moves, ``greedy`` uniform over the moves it chooses among
  (:func:`rlloop.arena.greedy_preferred`), a searching teacher its improved policy (search's
  ``action_weights``), ``heuristic`` and a network's raw policy at 0 simulations one-hot of
  their (deterministic) move. The value target is the game's outcome; with
  ``train.teacher_value_lambda`` < 1 (two players, teachers with an evaluation: the
  heuristic players and networks) the TD(lambda) return bootstrapped from the teacher's own
  evaluation of each position (:class:`rlloop.replay.PendingGames`).
- Traces: every recorded decision is replayed in rlloop's engine (the chosen move mapped by
  :func:`rlloop.games.ringrift.convert.move_to_action`, checked legal) and becomes a sample
  with a one-hot policy target and the game's outcome (rlloop's ranking rewards of the
  replayed final position, checked against the record's winner) as value target.

Training (:class:`Teachers`, the loop's one hook): on a fresh run (no checkpoint restored)
each lineage with a teacher collects ``train.teacher_samples`` samples and takes
``train.teacher_steps`` optimiser steps on them with its own jitted train step, before its
first champion is registered (so self-play starts from the pre-trained network), and records
a ``TEACHER`` ledger event. A resumed run restored a checkpoint taken after pre-training and
does not pre-train again. With ``train.teacher_every`` = E > 0, after the run's iteration
k x E the lineage takes ``round(teacher_decay**k x train.steps_per_iteration)`` further
supervised steps on the teacher samples (refinement with a decaying weight; it stops when
that rounds to 0). Teacher steps do not count in the training state's ``step`` (the replay
ratio ``train.samples_per_insert`` and the gate's "trained since" count self-play training
only); the optimiser's own state (Adam moments, schedule) does see them.
"""

from __future__ import annotations

import dataclasses
import functools
import glob
import gzip
import json
import math
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import chex
import jax
import jax.numpy as jnp
import numpy as np

from rlloop import parallel
from rlloop.games.base import Game, State, play_forced
from rlloop.replay import PendingGames, ReplayBuffer, Samples, mover_relative
from rlloop.selfplay import reset_finished, sparse_policy

__all__ = ["TEACHER_EVENT", "Teacher", "TeacherMove", "Teachers", "config_problems", "generate_samples",
           "load_traces", "make_teacher", "one_hot_sparse", "parse_teacher", "supervised_steps",
           "teacher_samples", "trace_files"]  # fmt: skip

TEACHER_EVENT = "TEACHER"  # the ledger event of a pre-training
PLAYERS = ("random", "greedy")
RINGRIFT_PLAYERS = ("heuristic", "heuristic-search")
SYNC_EVERY_STEPS = 16  # as Lineage.train: block on the device every 16 queued steps


# ------------------------------------------------------------------------------ specs
@dataclasses.dataclass(frozen=True)
class TeacherSpec:
    """A parsed ``train.teacher``: ``kind`` is ``player`` (``name`` a player name),
    ``run`` (``name`` an agent spec ``RUN[#LINEAGE][@...]``), ``self`` (the lineage's own
    fresh network) or ``traces`` (``name`` a path or glob)."""

    kind: str
    name: str


def parse_teacher(spec: str) -> TeacherSpec:
    """The kind and name of a teacher spec (syntax only; :func:`config_problems` checks
    what it names). Raises ValueError for an unknown player name."""
    text = str(spec).strip()
    for kind in ("traces", "run"):
        if text.startswith(kind + ":"):
            rest = text[len(kind) + 1:].strip()
            if not rest:
                raise ValueError(f"train.teacher={spec!r}: give a path after '{kind}:'")
            return TeacherSpec(kind, rest)
    if text == "self":
        return TeacherSpec("self", text)
    if text in PLAYERS or text.partition(":")[0] in RINGRIFT_PLAYERS:
        return TeacherSpec("player", text)
    raise ValueError(
        f"train.teacher={spec!r} is not a teacher; valid: {', '.join(PLAYERS)}, "
        f"{', '.join(RINGRIFT_PLAYERS)} (RingRift; optionally NAME:PROFILE), "
        "run:RUN[#LINEAGE][@champion|@latest|@STEP] (another run's network), "
        "self (this lineage's fresh network searching train.teacher_simulations deep), "
        "traces:PATH-OR-GLOB (the reference's JSON-lines games, RingRift)"
    )


def trace_files(pattern: str) -> list[Path]:
    """The files a ``traces:`` path or glob names, sorted (``~`` expanded)."""
    expanded = str(Path(pattern).expanduser())
    if glob.has_magic(expanded):
        return sorted(Path(p) for p in glob.glob(expanded, recursive=True) if Path(p).is_file())
    path = Path(expanded)
    if path.is_dir():
        return sorted(p for p in path.iterdir() if p.name.endswith((".jsonl", ".jsonl.gz")))
    return [path] if path.is_file() else []


def _ringrift_shape(game_name: str) -> tuple[str, int] | None:
    """(board type, players) of a RingRift game name, None for other games."""
    if not game_name.startswith("ringrift_"):
        return None
    board, players = game_name[len("ringrift_"):].rsplit("_", 1)
    return board, int(players.rstrip("p"))


def _first_record(path: Path) -> dict[str, Any]:
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rt") as handle:
        for line in handle:
            if line.strip():
                return json.loads(line)
    raise ValueError(f"trace file {path} holds no game")


def teacher_spec(train: Any) -> str:
    """The ``train.teacher`` spec with surrounding blanks removed; ``""`` when there is none."""
    return str(train.teacher or "").strip()


def config_problems(train: Any, game_name: str | None) -> list[str]:
    """Problems of a ``train`` config node's teacher keys for game ``game_name`` (for
    :func:`rlloop.config.validate`): ranges, an unknown teacher, a player the game cannot
    have, a traces glob that matches no file or a file of another board, a run that is not
    one or of another game. ``game_name`` None (a run of several lineages, each checked on
    its own): ranges and the spec's syntax only."""
    problems = []
    for key in ("teacher_samples", "teacher_games"):
        if not train[key] > 0:
            problems.append(f"train.{key}={train[key]!r} must be > 0")
    for key in ("teacher_steps", "teacher_every", "teacher_simulations"):
        if train[key] < 0:
            problems.append(f"train.{key}={train[key]!r} must be >= 0")
    for key in ("teacher_noise", "teacher_decay", "teacher_value_lambda"):
        if not 0.0 <= train[key] <= 1.0:
            problems.append(f"train.{key}={train[key]!r} must be in [0, 1]")
    spec_text = teacher_spec(train)
    if not spec_text:
        if train.teacher_every:
            problems.append(f"train.teacher_every={train.teacher_every} needs a train.teacher")
        return problems
    try:
        spec = parse_teacher(spec_text)
    except ValueError as error:
        return [*problems, str(error)]
    if game_name is None:
        return problems
    ringrift = _ringrift_shape(game_name)
    if spec.kind == "player":
        problems += _player_problems(spec.name, game_name, ringrift is not None, train)
    elif spec.kind == "traces":
        problems += _traces_problems(spec.name, game_name, ringrift)
    elif spec.kind == "self":
        if train.teacher_simulations < 1:
            problems.append("train.teacher='self' searches: train.teacher_simulations must be >= 1 "
                            "(a fresh network's raw policy teaches nothing)")
    else:
        problems += _run_problems(spec.name, game_name)
    evaluates = spec.kind in ("run", "self") or spec.name.partition(":")[0] in RINGRIFT_PLAYERS
    if train.teacher_value_lambda < 1.0 and not evaluates:
        problems.append(
            f"train.teacher_value_lambda={train.teacher_value_lambda} needs a teacher that "
            f"evaluates positions (heuristic players, run:..., self); {spec_text!r} has no evaluation"
        )
    if train.teacher_value_lambda < 1.0 and ringrift is not None and ringrift[1] != 2:
        problems.append(f"train.teacher_value_lambda={train.teacher_value_lambda} needs a two-player game")
    return problems


def _player_problems(name: str, game_name: str, ringrift: bool, train: Any) -> list[str]:
    kind = name.partition(":")[0]
    if kind in RINGRIFT_PLAYERS:
        if not ringrift:
            return [f"train.teacher={name!r} plays RingRift only; {game_name} is not RingRift "
                    f"(valid here: {', '.join(PLAYERS)}, run:..., traces:... for RingRift)"]  # fmt: skip
        from rlloop.games.ringrift import heuristic_players

        try:
            heuristic_players.parse_name(name)
        except (KeyError, ValueError) as error:
            return [f"train.teacher={name!r}: {error}"]
        if kind == "heuristic-search" and train.teacher_simulations < 1:
            return [f"train.teacher={name!r} searches: train.teacher_simulations must be >= 1"]
    if name == "greedy" and ringrift:
        return [f"train.teacher='greedy' is unaffordable on {game_name} (one step per action "
                "per position); use heuristic or heuristic-search"]  # fmt: skip
    return []


def _traces_problems(pattern: str, game_name: str, ringrift: tuple[str, int] | None) -> list[str]:
    if ringrift is None:
        return [f"train.teacher='traces:{pattern}': traces are RingRift games; {game_name} is not RingRift"]
    files = trace_files(pattern)
    if not files:
        return [f"train.teacher='traces:{pattern}' matches no file (a path, a folder of "
                "*.jsonl[.gz] or a glob)"]  # fmt: skip
    problems = []
    for path in files:
        try:
            record = _first_record(path)
        except (OSError, ValueError) as error:
            problems.append(f"train.teacher: trace file {path} does not read ({error})")
            continue
        shape = (record.get("boardType"), record.get("numPlayers"))
        if shape != ringrift:
            problems.append(
                f"train.teacher: trace file {path} holds {shape[0]} games of {shape[1]} players; "
                f"this lineage plays {game_name} ({ringrift[0]}, {ringrift[1]} players)"
            )
    return problems


def _run_problems(spec: str, game_name: str) -> list[str]:
    from rlloop.agent import load_config, resolve_lineage
    from rlloop.evaluate import parse_spec

    try:
        run_dir, _, _, lineage = parse_spec(spec)
        name = resolve_lineage(run_dir, lineage)
        other = str(load_config(run_dir, name).game.name)
    except (FileNotFoundError, ValueError) as error:
        return [f"train.teacher='run:{spec}': {error}"]
    if other != game_name:
        return [f"train.teacher='run:{spec}' plays {other}; this lineage plays {game_name}"]
    return []


# ------------------------------------------------------------------------------ teachers
@chex.dataclass(frozen=True)
class TeacherMove:
    """What a teacher says about a batch of positions."""

    action: jax.Array  # [B] int32, the move it plays
    policy: jax.Array  # [B, A] float32, its move distribution (the policy target)
    value: jax.Array  # [B] float32, its evaluation for the mover (0 where it has none)


@dataclasses.dataclass(frozen=True, eq=False)
class Teacher:
    """A jittable ``move(params, key, states[B]) -> TeacherMove`` and its ``params`` (a
    network's, or None). ``evaluates``: whether ``TeacherMove.value`` means anything."""

    name: str
    move: Callable[[Any, jax.Array, State], TeacherMove]
    params: Any = None
    evaluates: bool = False


def _uniform(mask: jax.Array) -> jax.Array:
    """Uniform distribution over the True entries of ``mask`` [..., A] (zeros where none)."""
    mask = mask.astype(jnp.float32)
    return mask / jnp.maximum(mask.sum(axis=-1, keepdims=True), 1.0)


def _sample(key: jax.Array, mask: jax.Array) -> jax.Array:
    """A uniform True entry of each row of ``mask`` [B, A] (0 where a row has none)."""
    logits = jnp.where(mask, 0.0, -jnp.inf)
    logits = jnp.where(mask.any(axis=-1, keepdims=True), logits, 0.0)
    return jax.random.categorical(key, logits).astype(jnp.int32)


def _one_hot(actions: jax.Array, num_actions: int) -> jax.Array:
    return jax.nn.one_hot(actions, num_actions, dtype=jnp.float32)


def make_teacher(spec: str, game: Game, *, num_simulations: int = 16,
                 search_knobs: Mapping[str, Any] | None = None, network: Any = None,
                 params: Any = None) -> Teacher:  # fmt: skip
    """The :class:`Teacher` a ``train.teacher`` player, ``run:`` or ``self`` spec names, for
    ``game`` (``traces:`` specs are read by :func:`load_traces`, not played).
    ``num_simulations``: the search budget of ``heuristic-search``, ``run:`` and ``self``
    teachers (0: a ``run:`` network's raw policy); ``search_knobs``:
    :func:`rlloop.search.make_search` keywords for ``heuristic-search`` and ``self`` (a
    ``run:`` network searches with its own run's settings); ``network`` and ``params``:
    the lineage's own network and fresh parameters, which ``self`` needs."""
    parsed = parse_teacher(spec)
    if parsed.kind == "traces":
        raise ValueError(f"train.teacher={spec!r}: traces are read (load_traces), not played")
    if parsed.kind == "run":
        return _network_teacher(parsed.name, game, num_simulations)
    if parsed.kind == "self":
        if network is None or params is None:
            raise ValueError("train.teacher='self' needs the lineage's network and its fresh parameters")
        if num_simulations < 1:
            raise ValueError(f"train.teacher='self' searches: num_simulations must be >= 1, got {num_simulations}")
        from rlloop.search import make_search

        search = make_search(game, network, num_simulations=num_simulations, **dict(search_knobs or {}))
        return _search_teacher(f"self@{num_simulations}", search, params)
    name = parsed.name
    if name == "random":
        def move(params: Any, key: jax.Array, states: State) -> TeacherMove:
            del params
            mask = states.legal_action_mask
            return TeacherMove(action=_sample(key, mask), policy=_uniform(mask),
                               value=jnp.zeros(mask.shape[0], jnp.float32))  # fmt: skip

        return Teacher(name, move)
    if name == "greedy":
        from rlloop.arena import greedy_preferred

        preferred = jax.vmap(greedy_preferred(game))

        def move(params: Any, key: jax.Array, states: State) -> TeacherMove:
            del params
            mask = preferred(states)
            return TeacherMove(action=_sample(key, mask), policy=_uniform(mask),
                               value=jnp.zeros(mask.shape[0], jnp.float32))  # fmt: skip

        return Teacher(name, move)
    return _heuristic_teacher(name, game, num_simulations, dict(search_knobs or {}))


def _heuristic_teacher(name: str, game: Game, num_simulations: int, knobs: dict[str, Any]) -> Teacher:
    from rlloop.games.ringrift import heuristic_players
    from rlloop.games.ringrift.heuristic import profile_weights
    from rlloop.search import greedy_action, make_search

    kind, profile = heuristic_players.parse_name(name)
    rules, weights = heuristic_players._rules(game), profile_weights(profile)
    if kind == "heuristic":
        player = heuristic_players.one_ply_player(game, profile)

        def move(params: Any, key: jax.Array, states: State) -> TeacherMove:
            action = player.act(params, key, states)
            values = heuristic_players.heuristic_values(rules, states.board, states.current_player, weights)
            return TeacherMove(action=action, policy=_one_hot(action, game.num_actions), value=values[:, 0])

        return Teacher(name, move, evaluates=True)
    if num_simulations < 1:
        raise ValueError(f"train.teacher={name!r} searches: num_simulations must be >= 1, got {num_simulations}")
    search = make_search(game, None, num_simulations=num_simulations,
                         evaluator=heuristic_players.heuristic_evaluator(game, profile), **knobs)  # fmt: skip

    def move(params: Any, key: jax.Array, states: State) -> TeacherMove:
        output = search(params, key, states)
        return TeacherMove(action=greedy_action(output), policy=output.action_weights,
                           value=output.search_tree.node_values[:, 0])  # fmt: skip

    return Teacher(name, move, evaluates=True)


def _network_teacher(spec: str, game: Game, num_simulations: int) -> Teacher:
    from rlloop.evaluate import load
    from rlloop.search import evaluate, search_from_config

    agent, label = load(spec)
    if agent.game.name != game.name:
        raise ValueError(f"train.teacher='run:{spec}' plays {agent.game.name}; this lineage plays {game.name}")
    network = agent.network
    if num_simulations == 0:
        def move(params: Any, key: jax.Array, states: State) -> TeacherMove:
            del key
            logits, values = evaluate(network, game, params, states)
            action = jnp.argmax(logits, axis=-1).astype(jnp.int32)
            return TeacherMove(action=action, policy=_one_hot(action, game.num_actions), value=values[:, 0])

        return Teacher(f"run:{label}", move, params=agent.params, evaluates=True)
    search = search_from_config(game, network, agent.search_config, num_simulations=num_simulations)
    return _search_teacher(f"run:{label}", search, agent.params)


def _search_teacher(name: str, search: Any, params: Any) -> Teacher:
    """A network searching: it plays search's greedy move; its policy target is the improved
    policy, its evaluation the root's value."""
    from rlloop.search import greedy_action

    def searched(params: Any, key: jax.Array, states: State) -> TeacherMove:
        output = search(params, key, states)
        return TeacherMove(action=greedy_action(output), policy=output.action_weights,
                           value=output.search_tree.node_values[:, 0])  # fmt: skip

    return Teacher(name, searched, params=params, evaluates=True)


# ------------------------------------------------------------------------------ teacher games
def make_teacher_play(
    game: Game, teacher: Teacher, *, moves_per_chunk: int, noise: float, random_opening_moves: int,
    policy_slots: int, max_forced_moves: int = 0,
) -> Callable[[Any, State, jax.Array], tuple[State, dict[str, jax.Array]]]:  # fmt: skip
    """``play(params, states[B], key) -> (states, chunk)``: every game advances
    ``moves_per_chunk`` moves of the teacher (in every seat), each replaced with probability
    ``noise`` by a uniformly random legal move; finished games restart in place after up to
    ``random_opening_moves`` random moves. With ``max_forced_moves`` > 0 forced moves (one
    legal action) are played after each teacher move without asking the teacher and are not
    recorded, as in self-play (``loop.max_forced_moves``). ``chunk`` holds the fields
    :meth:`rlloop.replay.PendingGames.add` reads, time-major [T, B, ...]. Not jitted here."""

    def one_move(params: Any, states: State, key: jax.Array) -> tuple[State, dict[str, jax.Array]]:
        teacher_key, noise_key, pick_key, reset_key = jax.random.split(key, 4)
        said = teacher.move(params, teacher_key, states)
        mask = states.legal_action_mask
        explore = jax.random.uniform(noise_key, mask.shape[:1]) < noise
        action = jnp.where(explore, _sample(pick_key, mask), said.action).astype(jnp.int32)
        policy_actions, policy_weights = sparse_policy(said.policy.astype(jnp.float32), policy_slots)
        observation = jax.vmap(game.observe)(states, states.current_player)
        after = play_forced(game, jax.vmap(game.step)(states, action), max_forced_moves)
        done = after.terminated | after.truncated
        row = {
            "observation": observation,
            "policy_actions": policy_actions,
            "policy_weights": policy_weights,
            "player": states.current_player,
            "root_value": said.value.astype(jnp.float32),
            "done": done,
            "final_rewards": after.rewards,
            "game_length": jnp.where(done, after.step_count, 0),
            "forced": jnp.sum(mask, axis=-1) <= 1,
        }
        return reset_finished(game, after, reset_key, random_opening_moves=random_opening_moves), row

    def play(params: Any, states: State, key: jax.Array) -> tuple[State, dict[str, jax.Array]]:
        return jax.lax.scan(lambda s, k: one_move(params, s, k), states, jax.random.split(key, moves_per_chunk))

    return play


@functools.lru_cache(maxsize=16)
def _compiled_play(game: Game, teacher: Teacher, mesh: Any, games: int, moves_per_chunk: int, noise: float,
                   random_opening_moves: int, policy_slots: int, max_forced_moves: int) -> tuple[Any, Any]:  # fmt: skip
    """(jitted fresh games, jitted chunk program over ``mesh``), built once per teacher."""
    from rlloop.selfplay import new_games

    play = make_teacher_play(game, teacher, moves_per_chunk=moves_per_chunk, noise=noise,
                             random_opening_moves=random_opening_moves, policy_slots=policy_slots,
                             max_forced_moves=max_forced_moves)  # fmt: skip
    fresh = jax.jit(
        functools.partial(new_games, game, batch_size=games, random_opening_moves=random_opening_moves),
        out_shardings=parallel.batch_sharding(mesh),
    )
    return fresh, parallel.jit_selfplay(play, mesh)


def generate_samples(
    game: Game, teacher: Teacher, mesh: Any, *, num_samples: int, games: int, key: jax.Array,
    policy_slots: int, noise: float = 0.1, random_opening_moves: int = 0, moves_per_chunk: int = 16,
    value_lambda: float = 1.0, max_forced_moves: int = 0,
) -> tuple[Samples, dict[str, Any]]:  # fmt: skip
    """About ``num_samples`` samples (replay's format; the first ``num_samples`` of every
    finished teacher game, in the order games end) of ``games`` teacher games played at once
    over ``mesh`` (rounded up to a multiple of its devices), and figures: ``teacher_games``
    (finished), ``teacher_samples``, ``teacher_generate_seconds``.

    ``value_lambda`` < 1: TD(lambda) value targets from the teacher's evaluation (two players
    and a teacher that ``evaluates``; see :class:`rlloop.replay.PendingGames`).
    ``max_forced_moves``: forced moves played without the teacher (see :func:`make_teacher_play`)."""
    if value_lambda < 1.0 and not teacher.evaluates:
        raise ValueError(f"teacher {teacher.name!r} has no evaluation: value_lambda must be 1")
    devices = mesh.devices.size
    games = -(-int(games) // devices) * devices
    fresh, play = _compiled_play(game, teacher, mesh, games, int(moves_per_chunk), float(noise),
                                 int(random_opening_moves), int(policy_slots), int(max_forced_moves))  # fmt: skip
    start = time.perf_counter()
    init_key, key = jax.random.split(key)
    states = fresh(init_key)
    pending = PendingGames(value_lambda=value_lambda, num_players=game.num_players, policy_slots=policy_slots)
    parts: list[Samples] = []
    collected = finished = 0
    # Several processes: each keeps its own devices' games; counts are the run's, so every
    # process plays the same number of chunks. Its share of ``num_samples`` is kept.
    share = len(parallel.local_positions(mesh)) / devices
    params = None if teacher.params is None else parallel.put_replicated(teacher.params, mesh)
    # Every game ends within max_steps moves: a generous bound on the chunks needed.
    limit = 2 * (math.ceil(num_samples / (games * moves_per_chunk)) + math.ceil(game.max_steps / moves_per_chunk)) + 2
    for index in range(limit):
        if collected >= num_samples:
            break
        states, chunk = play(params, states, jax.random.fold_in(key, index))
        chunk = parallel.local_rows(chunk, axis=1)
        samples = pending.add(chunk)
        parts.append({name: samples[name] for name in ("observation", "policy_actions", "policy_weights", "value")})
        done, added = parallel.global_sum([np.asarray(chunk["done"]).sum(), len(samples["value"])])
        finished += int(done)
        collected += int(added)
    kept = math.ceil(num_samples * share)
    result = {name: np.concatenate([part[name] for part in parts])[:kept] for name in parts[0]}
    return result, {
        "teacher_games": finished,
        "teacher_samples": int(parallel.global_sum(len(result["value"]))),
        "teacher_generate_seconds": time.perf_counter() - start,
    }


# ------------------------------------------------------------------------------ traces
def one_hot_sparse(actions: np.ndarray, num_actions: int, slots: int) -> tuple[np.ndarray, np.ndarray]:
    """Sparse one-hot policy targets of ``actions`` [M]: ``(policy_actions, policy_weights)``
    [M, K]. With K = every action, in action order (as :func:`rlloop.selfplay.sparse_policy`
    keeps them); else the action first, then the K - 1 actions after it with weight 0."""
    actions = np.asarray(actions, dtype=np.int32)
    weights = np.zeros((actions.size, slots), np.float32)
    if slots >= num_actions:
        ids = np.broadcast_to(np.arange(num_actions, dtype=np.int32), (actions.size, num_actions)).copy()
        weights[np.arange(actions.size), actions] = 1.0
        return ids, weights
    ids = ((actions[:, None] + np.arange(slots)[None, :]) % num_actions).astype(np.int32)
    weights[:, 0] = 1.0
    return ids, weights


def iter_records(files: list[Path]) -> Iterator[tuple[Path, dict[str, Any]]]:
    """(file, game record) of every line of ``files`` (JSON lines, gzip or plain)."""
    for path in files:
        opener = gzip.open if path.name.endswith(".gz") else open
        with opener(path, "rt") as handle:
            for line in handle:
                if line.strip():
                    yield path, json.loads(line)


def load_traces(pattern: str | list[Path], game: Any, *, policy_slots: int, max_samples: int | None = None,
                max_games: int | None = None, batch_games: int = 32) -> tuple[Samples, dict[str, Any]]:  # fmt: skip
    """Samples of the recorded games of ``pattern`` (a path, folder or glob, or a list of
    files) replayed in ``game``'s engine (RingRift): every decision, bookkeeping ones too,
    one sample (see the module doc); games are read in file order until ``max_samples``
    samples (whole games) or ``max_games`` games. ``batch_games`` games are replayed side by
    side (one vmapped step per decision). Returns (samples, figures ``teacher_games``,
    ``teacher_samples``, ``teacher_generate_seconds``).

    Raises ValueError naming the file, game and decision where a record is of another board,
    a move does not convert or is not legal in rlloop's engine, or the replayed game does not
    end with the record's winner."""
    files = trace_files(pattern) if isinstance(pattern, str) else list(pattern)
    if not files:
        raise ValueError(f"traces {pattern!r} match no file")
    start = time.perf_counter()
    parts: list[Samples] = []
    collected = games_read = 0
    batch: list[tuple[Path, dict[str, Any]]] = []
    records = iter_records(files)
    while True:
        record = next(records, None)
        if record is not None:
            batch.append(record)
            games_read += 1
            collected += int(record[1]["numSteps"])
        full = len(batch) == batch_games
        done = record is None or (max_samples is not None and collected >= max_samples) or (
            max_games is not None and games_read >= max_games)  # fmt: skip
        if batch and (full or done):
            parts.append(_replay_batch(game, batch, policy_slots))
            batch = []
        if done:
            break
    if not parts:
        raise ValueError(f"traces {pattern!r} hold no game")
    result = {name: np.concatenate([part[name] for part in parts]) for name in parts[0]}
    if max_samples is not None:
        result = {name: array[:max_samples] for name, array in result.items()}
    return result, {
        "teacher_games": games_read,
        "teacher_samples": len(result["value"]),
        "teacher_generate_seconds": time.perf_counter() - start,
    }


@functools.lru_cache(maxsize=8)
def _batched_rules(game: Any) -> tuple[Any, Any, Any]:
    return (jax.jit(jax.vmap(game.init)), jax.jit(jax.vmap(game.step)),
            jax.jit(jax.vmap(lambda state: game.observe(state, state.current_player))))  # fmt: skip


def _replay_batch(game: Any, batch: list[tuple[Path, dict[str, Any]]], policy_slots: int) -> Samples:
    """Replay the games of ``batch`` side by side; their samples, game after game."""
    shape = _ringrift_shape(game.name)
    for path, record in batch:
        if shape is None or (record.get("boardType"), record.get("numPlayers")) != shape:
            raise ValueError(f"{path}: game {record.get('gameId')} is {record.get('boardType')} with "
                             f"{record.get('numPlayers')} players; this lineage plays {game.name}")  # fmt: skip
    init, step, observe = _batched_rules(game)
    lengths = np.array([int(record["numSteps"]) for _, record in batch])
    states = init(jax.random.split(jax.random.key(0), len(batch)))
    rows: dict[str, list[np.ndarray]] = {"observation": [], "action": [], "player": [], "forced": [], "game": []}
    outcomes = np.zeros((len(batch), game.num_players), np.float32)
    for k in range(int(lengths.max())):
        host = jax.device_get(states)
        live = k < lengths
        # Finished games ignore their action (Game.step: a no-op), so 0 stands in.
        chosen = _recorded_actions(game.rules, batch, k, host, live)
        rows["observation"].append(np.asarray(observe(states))[live])
        rows["action"].append(chosen[live])
        rows["player"].append(host.current_player[live])
        rows["forced"].append(host.legal_action_mask[live].sum(axis=-1) <= 1)
        rows["game"].append(np.flatnonzero(live))
        states = step(states, chosen)
        ended = np.asarray(states.terminated) & (k == lengths - 1)
        outcomes[ended] = np.asarray(states.rewards)[ended]
    final = jax.device_get(states)
    for b, (path, record) in enumerate(batch):
        winner = (record.get("result") or {}).get("winner")
        if not final.terminated[b] or (winner is not None and int(final.board.winner[b]) != int(winner)):
            ending = f"with winner {int(final.board.winner[b])}" if final.terminated[b] else "unfinished"
            raise ValueError(f"{path}: game {record.get('gameId')} replayed in rlloop's engine ends {ending}, "
                             f"the record with winner {winner}")  # fmt: skip
    flat = {name: np.concatenate(parts) for name, parts in rows.items()}
    order = np.argsort(flat["game"], kind="stable")  # decision-major -> game after game
    policy_actions, policy_weights = one_hot_sparse(flat["action"][order], game.num_actions, policy_slots)
    policy_weights[flat["forced"][order]] = 0.0
    player = flat["player"][order].astype(np.int32)
    return {
        "observation": flat["observation"][order],
        "policy_actions": policy_actions,
        "policy_weights": policy_weights,
        "value": mover_relative(outcomes[flat["game"][order]], player).astype(np.float32),
    }


def _recorded_actions(rules: Any, batch: list[tuple[Path, dict[str, Any]]], k: int, host: Any,
                      live: np.ndarray) -> np.ndarray:  # fmt: skip
    """int32 [games]: decision ``k``'s recorded move of each live game as rlloop's action,
    checked (the record's player to move is the engine's, the move converts and is legal);
    0 for the others. ``host``: the games' states on the host."""
    from rlloop.games.ringrift import convert

    chosen = np.zeros(len(batch), np.int32)
    for b in np.flatnonzero(live):
        path, record = batch[b]
        player = int(host.current_player[b]) + 1
        move = record["legalMoves"][k][record["chosen"][k]]
        where = f"{path}: game {record.get('gameId')}, decision {k}"
        if int(record["states"][k]["currentPlayer"]) != player:
            raise ValueError(f"{where}: the record's player {record['states'][k]['currentPlayer']} is to "
                             f"move, rlloop's engine has player {player}")  # fmt: skip
        try:
            chosen[b] = convert.move_to_action(rules, jax.tree.map(lambda x, b=b: x[b], host.board), player, move)
        except ValueError as error:
            raise ValueError(f"{where}: move {move.get('type')} does not convert ({error})") from None
        if not host.legal_action_mask[b, chosen[b]]:
            raise ValueError(f"{where}: move {move.get('type')} (action {chosen[b]}) is not legal in rlloop's engine")
    return chosen


# ------------------------------------------------------------------------------ training
def teacher_samples(config: Any, game: Game, mesh: Any, *, policy_slots: int, key: jax.Array,
                    num_samples: int | None = None, network: Any = None,
                    params: Any = None) -> tuple[Samples, dict[str, Any]]:  # fmt: skip
    """The samples of a lineage config's ``train.teacher`` (played or read) and figures.
    ``network``, ``params``: the lineage's network and fresh parameters (``self``)."""
    train = config.train
    spec = parse_teacher(str(train.teacher))
    count = int(num_samples if num_samples is not None else train.teacher_samples)
    if spec.kind == "traces":
        return load_traces(spec.name, game, policy_slots=policy_slots, max_samples=count)
    from rlloop.search import search_knobs

    teacher = make_teacher(str(train.teacher), game, num_simulations=int(train.teacher_simulations),
                           search_knobs=search_knobs(config.search), network=network, params=params)  # fmt: skip
    return generate_samples(
        game, teacher, mesh, num_samples=count, games=int(train.teacher_games), key=key,
        policy_slots=policy_slots, noise=float(train.teacher_noise),
        random_opening_moves=int(config.loop.random_opening_moves), value_lambda=float(train.teacher_value_lambda),
        max_forced_moves=int(config.loop.max_forced_moves),
    )  # fmt: skip


def supervised_steps(lineage: Any, buffer: ReplayBuffer, steps: int, *, rng: np.random.Generator,
                     key: jax.Array) -> dict[str, float]:  # fmt: skip
    """``steps`` optimiser steps of ``lineage`` (its jitted train step, its batch size, in
    groups of ``train.steps_per_iteration`` batches: one compiled program) on batches drawn
    from ``buffer``. The training state's ``step`` is left as it was (module doc). Returns
    ``teacher_steps``, ``teacher_seconds`` and, after at least one step, the mean
    ``teacher_loss``, ``teacher_policy_loss``, ``teacher_value_loss``."""
    start = time.perf_counter()
    per_call = int(lineage.config.train.steps_per_iteration)
    # This process's columns of every batch (several processes: each from its own samples).
    batch = int(lineage.config.train.batch_size) * len(lineage.positions) // lineage.num_devices
    kept_step = int(lineage.train_state.step)
    metrics = []
    done = 0
    while done < steps:
        count = min(per_call, steps - done)
        batches = buffer.sample(rng, batch_size=batch, num_batches=per_call)
        batches = parallel.put_local_batch(batches, lineage.mesh, axis=1)
        keys = jax.random.split(jax.random.fold_in(key, done), per_call)
        for index in range(count):
            lineage.train_state, result = lineage.programs.train_step(lineage.train_state, batches, np.int32(index),
                                                                      keys[index])  # fmt: skip
            metrics.append(result)
            if (index + 1) % SYNC_EVERY_STEPS == 0:
                jax.block_until_ready(result)
        done += count
    metrics = jax.device_get(metrics)
    lineage.train_state = lineage.train_state.replace(
        step=parallel.put_replicated(np.int32(kept_step), lineage.mesh)
    )
    # No steps, no loss (a NaN would not go into the ledger's JSON).
    losses = {f"teacher_{name}": float(np.mean([m[name] for m in metrics]))
              for name in ("loss", "policy_loss", "value_loss") if metrics}  # fmt: skip
    return {**losses, "teacher_steps": int(steps), "teacher_seconds": time.perf_counter() - start}


def refinement_steps(train: Any, iteration: int) -> tuple[int, float]:
    """(supervised steps, weight) after the run's ``iteration``: with ``teacher_every`` = E,
    after iteration k x E the weight is ``teacher_decay**k`` and the steps
    ``round(weight x steps_per_iteration)``; (0, 0) at other iterations or without a
    teacher."""
    every = int(train.teacher_every)
    if not teacher_spec(train) or every <= 0 or iteration <= 0 or iteration % every:
        return 0, 0.0
    weight = float(train.teacher_decay) ** (iteration // every)
    return round(weight * int(train.steps_per_iteration)), weight


class Teachers:
    """The loop's teacher hook for every lineage with a ``train.teacher``.

    ``Teachers(lineages, ledger=..., telemetry=..., fresh=...)`` pre-trains each such lineage
    at once when ``fresh`` (no checkpoint was restored; see the module doc) and records a
    ``TEACHER`` ledger event; :meth:`refine` (after each iteration) runs the decaying
    refinement. ``pretrained`` holds each pre-training's figures by lineage name. The teacher
    samples stay in memory (``buffers``) only for lineages that refine.
    """

    def __init__(self, lineages: Mapping[str, Any], *, ledger: Any, telemetry: Any, fresh: bool) -> None:
        self.lineages = {name: lineage for name, lineage in lineages.items()
                         if teacher_spec(lineage.config.train)}  # fmt: skip
        self.ledger, self.telemetry = ledger, telemetry
        self.single = len(lineages) == 1
        self.buffers: dict[str, ReplayBuffer] = {}
        self.pretrained: dict[str, dict[str, Any]] = {}
        process = [jax.process_index()] if jax.process_count() > 1 else []
        self._rngs = {name: np.random.default_rng([int(lineage.config.loop.seed), 24, index, *process])
                      for index, (name, lineage) in enumerate(self.lineages.items())}  # fmt: skip
        if fresh:
            for name in self.lineages:
                self.pretrained[name] = self.pretrain(name)

    def _key(self, name: str, purpose: int) -> jax.Array:
        lineage = self.lineages[name]
        root = jax.random.fold_in(jax.random.key(int(lineage.config.loop.seed)), 24_000 + lineage.index)
        return jax.random.fold_in(root, purpose)

    def buffer(self, name: str) -> tuple[ReplayBuffer, dict[str, Any]]:
        """Lineage ``name``'s teacher samples (collected on first use) and the figures of
        collecting them (empty when they were already held)."""
        if name in self.buffers:
            return self.buffers[name], {}
        lineage = self.lineages[name]
        own = parse_teacher(teacher_spec(lineage.config.train)).kind == "self"
        samples, figures = teacher_samples(lineage.config, lineage.game, lineage.mesh,
                                           policy_slots=lineage.policy_slots, key=self._key(name, 1),
                                           network=lineage.network if own else None,
                                           params=lineage.initial_params() if own else None)  # fmt: skip
        if not len(samples["value"]):
            raise ValueError(f"{name}: train.teacher={lineage.config.train.teacher!r} gave no samples")
        buffer = ReplayBuffer(len(samples["value"]), observation_shape=tuple(lineage.game.observation_shape),
                              num_actions=lineage.game.num_actions, num_players=lineage.game.num_players,
                              policy_slots=lineage.policy_slots)  # fmt: skip
        buffer.add(samples)
        self.buffers[name] = buffer
        return buffer, figures

    def pretrain(self, name: str) -> dict[str, Any]:
        """Lineage ``name``'s pre-training: collect, ``train.teacher_steps`` steps, event."""
        lineage = self.lineages[name]
        train = lineage.config.train
        lineage.message(f"teacher {train.teacher}: collecting {int(train.teacher_samples):,} samples")
        buffer, figures = self.buffer(name)
        result = {**figures, **supervised_steps(lineage, buffer, int(train.teacher_steps), rng=self._rngs[name],
                                                key=self._key(name, 2))}  # fmt: skip
        lineage.message(
            f"teacher {train.teacher}: {result['teacher_samples']:,} samples of {result['teacher_games']:,} games "
            f"in {result['teacher_generate_seconds']:.1f} s, {result['teacher_steps']} steps in "
            f"{result['teacher_seconds']:.1f} s"
            + (f", loss {result['teacher_loss']:.3f}" if "teacher_loss" in result else "")
        )
        self.ledger.add_event(TEACHER_EVENT, {"config": name, "teacher": str(train.teacher), "phase": "pretrain",
                                              "iteration": 0, **result})  # fmt: skip
        self.telemetry.scalars(0, {self._name(name, k): v for k, v in result.items()})
        if not int(train.teacher_every):
            del self.buffers[name]  # no refinement: free the samples
        return result

    def refine(self, iteration: int) -> dict[str, Any]:
        """After the run's ``iteration``: each lineage's refinement steps if due (metrics:
        ``teacher_loss``, ``teacher_steps``, ``teacher_weight``, ``teacher_seconds``, named
        ``<lineage>/...`` in a run of several); {} when none is due."""
        metrics: dict[str, Any] = {}
        for name, lineage in self.lineages.items():
            steps, weight = refinement_steps(lineage.config.train, iteration)
            if steps <= 0:
                continue
            buffer, figures = self.buffer(name)
            result = {**figures, **supervised_steps(lineage, buffer, steps, rng=self._rngs[name],
                                                    key=self._key(name, 3 + iteration))}  # fmt: skip
            result["teacher_weight"] = weight
            metrics.update({self._name(name, k): v for k, v in result.items()})
        return metrics

    def _name(self, lineage: str, key: str) -> str:
        return key if self.single else f"{lineage}/{key}"
