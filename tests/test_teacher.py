"""Teachers and supervised bootstrap (rlloop.teacher): teacher games, traces, pre-training,
refinement, the loop's hook and the config's checks."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import chex
import jax
import numpy as np
import pytest

import rlloop
from rlloop import teacher as teacher_lib
from rlloop.replay import SAMPLE_FIELDS, ReplayBuffer

SMALL = ["loop=smoke", "search.num_simulations=4", "train.min_replay_size=16", "train.batch_size=64",
         "train.steps_per_iteration=8", "hardware.games_per_device=8", "gate.enabled=false",
         "perfect_play.enabled=false", "loop.tensorboard=false"]  # fmt: skip



def _differ(a, b) -> bool:
    """Whether two parameter trees of one structure differ anywhere (beyond float tolerance)."""
    return any(not np.allclose(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True))

def _agreement(lineage, samples) -> tuple[float, float]:
    """(share of positions where the network's favourite move is one the teacher plays,
    the same for a uniformly random legal-or-not move): over the positions where the teacher
    prefers at most 2 of the 7 columns (it wins or blocks)."""
    weights = np.asarray(samples["policy_weights"])
    support = weights > 0
    tactical = (support.sum(-1) >= 1) & (support.sum(-1) <= 2)
    observations = jax.numpy.asarray(samples["observation"][tactical])
    logits, _ = lineage.network.apply(lineage.params, observations)
    favourite = np.asarray(logits).argmax(-1)
    columns = np.asarray(samples["policy_actions"])[tactical]
    hit = np.take_along_axis(support[tactical], (columns == favourite[:, None]).argmax(-1)[:, None], 1)[:, 0]
    return float(hit.mean()), float(support[tactical].sum(-1).mean() / 7)


def test_connect4_pretraining_on_greedy_moves_toward_the_teacher(tmp_path: Path) -> None:
    """Pre-training on the one-ply greedy teacher's games raises agreement with its moves, on
    held-out teacher positions where it wins or blocks, from about chance to well above."""
    # The MLP: the tiny ResNet's two-channel ReLU policy head stayed constant on these targets
    # (most positions: uniform over the legal moves) for 2,000 steps, while it learned the
    # wins and blocks alone in 100 (docs/design.md, "Teachers").
    config = rlloop.compose(["game=connect4", *SMALL, "model=mlp", "train.steps_per_iteration=16",
                             "train.batch_size=128", "train.learning_rate=3e-3"])  # fmt: skip
    with rlloop.Loop(config, run_dir=tmp_path) as loop:
        lineage = loop.lineage
        teacher = teacher_lib.make_teacher("greedy", lineage.game)
        common = dict(games=128, policy_slots=lineage.policy_slots, noise=0.2)
        train, figures = teacher_lib.generate_samples(lineage.game, teacher, lineage.mesh, num_samples=20000,
                                                      key=jax.random.key(1), **common)  # fmt: skip
        held_out, _ = teacher_lib.generate_samples(lineage.game, teacher, lineage.mesh, num_samples=3000,
                                                   key=jax.random.key(2), **common)  # fmt: skip
        assert set(train) == set(SAMPLE_FIELDS) and figures["teacher_samples"] == 20000
        assert figures["teacher_games"] > 100
        np.testing.assert_allclose(train["policy_weights"].sum(-1)[train["policy_weights"].sum(-1) > 0], 1.0, rtol=1e-5)
        assert set(np.unique(train["value"])) <= {-1.0, 0.0, 1.0}
        np.testing.assert_array_equal(train["value"][:, 0], -train["value"][:, 1])
        before, chance = _agreement(lineage, held_out)
        buffer = ReplayBuffer(len(train["value"]), observation_shape=lineage.game.observation_shape,
                              num_actions=7, num_players=2, policy_slots=lineage.policy_slots)  # fmt: skip
        buffer.add(train)
        step = int(lineage.train_state.step)
        result = teacher_lib.supervised_steps(lineage, buffer, 1000, rng=np.random.default_rng(0),
                                              key=jax.random.key(3))  # fmt: skip
        after, _ = _agreement(lineage, held_out)
        assert int(lineage.train_state.step) == step, "teacher steps must not count as self-play training"
    print(f"agreement on tactical positions: before {before:.3f}, after {after:.3f}, chance {chance:.3f}; "
          f"loss {result['teacher_loss']:.3f}, {result['teacher_seconds']:.1f} s")
    assert result["teacher_steps"] == 1000 and np.isfinite(result["teacher_loss"])
    assert before < chance + 0.15
    assert after > 0.4 and after > before + 0.2


def test_refinement_schedule_decays_to_nothing() -> None:
    """After iteration k x every: round(decay**k x steps_per_iteration) steps, then none."""
    train = rlloop.compose(["train.teacher=greedy", "train.teacher_every=2", "train.teacher_decay=0.5",
                            "train.steps_per_iteration=8"]).train  # fmt: skip
    schedule = [teacher_lib.refinement_steps(train, iteration) for iteration in range(1, 11)]
    assert schedule == [(0, 0.0), (4, 0.5), (0, 0.0), (2, 0.25), (0, 0.0), (1, 0.125), (0, 0.0),
                        (0, 0.0625), (0, 0.0), (0, 0.03125)]  # fmt: skip
    off = rlloop.compose(["train.teacher=greedy"]).train
    assert all(teacher_lib.refinement_steps(off, i) == (0, 0.0) for i in range(1, 5))


def test_one_hot_sparse_targets_match_the_replay_format() -> None:
    actions, weights = teacher_lib.one_hot_sparse(np.array([2, 0]), num_actions=4, slots=4)
    np.testing.assert_array_equal(actions, [[0, 1, 2, 3], [0, 1, 2, 3]])
    np.testing.assert_array_equal(weights, [[0, 0, 1, 0], [1, 0, 0, 0]])
    actions, weights = teacher_lib.one_hot_sparse(np.array([9, 3]), num_actions=10, slots=3)
    np.testing.assert_array_equal(actions, [[9, 0, 1], [3, 4, 5]])
    np.testing.assert_array_equal(weights, [[1, 0, 0], [1, 0, 0]])


@pytest.mark.parametrize(("overrides", "expected"), [
    (["train.teacher=bogus"], "train.teacher='bogus' is not a teacher; valid: random, greedy"),
    (["train.teacher=heuristic"], "plays RingRift only; connect4 is not RingRift"),
    (["game=ringrift_square8_2p", "train.teacher=greedy"], "unaffordable on ringrift_square8_2p"),
    (["game=ringrift_square8_2p", "train.teacher=heuristic:nosuchprofile"], "nosuchprofile"),
    (["game=ringrift_square8_2p", "train.teacher=heuristic-search", "train.teacher_simulations=0"],
     "train.teacher_simulations must be >= 1"),
    (["game=ringrift_square8_2p", "train.teacher=traces:/nonexistent/*.jsonl.gz"], "matches no file"),
    (["train.teacher=traces:/nonexistent/x.jsonl.gz"], "traces are RingRift games; connect4 is not RingRift"),
    (["train.teacher=run:/nonexistent/run"], "train.teacher='run:/nonexistent/run'"),
    (["train.teacher=self", "train.teacher_simulations=0"], "train.teacher='self' searches"),
    (["train.teacher_every=5"], "train.teacher_every=5 needs a train.teacher"),
    (["train.teacher=greedy", "train.teacher_noise=1.5"], "train.teacher_noise=1.5 must be in [0, 1]"),
    (["train.teacher=greedy", "train.teacher_steps=-1"], "train.teacher_steps=-1 must be >= 0"),
    (["train.teacher=greedy", "train.teacher_value_lambda=0.5"], "needs a teacher that evaluates positions"),
])  # fmt: skip
def test_config_errors_name_the_bad_teacher(overrides: list[str], expected: str) -> None:
    with pytest.raises(ValueError, match=None) as error:
        rlloop.compose(overrides)
    assert expected in str(error.value)


def test_default_has_no_teacher() -> None:
    config = rlloop.compose([])
    assert config.train.teacher == "" and config.train.teacher_every == 0


def _trace_path(shared_dir: Path, name: str = "square8_2p") -> Path:
    return shared_dir / "data" / "ringrift" / "traces" / f"{name}.jsonl.gz"


def test_trace_of_another_board_is_refused(shared_dir: Path) -> None:
    path = _trace_path(shared_dir, "square8_3p")
    with pytest.raises(ValueError, match="holds square8 games of 3 players; this lineage plays ringrift_square8_2p"):
        rlloop.compose(["game=ringrift_square8_2p", f"train.teacher=traces:{path}"])
    rlloop.compose(["game=ringrift_square8_3p", f"train.teacher=traces:{path}"])  # the right board


def test_trace_games_become_mover_relative_samples(shared_dir: Path, tmp_path: Path) -> None:
    """Two square8 games of the reference: one sample per decision, a one-hot target of the
    recorded move (none where the mover had one legal action), the outcome from the mover's
    view; the first sample is the opening position. A record whose winner rlloop's engine
    does not reproduce is refused, naming it (plain .jsonl read too)."""
    from rlloop import games
    from rlloop.games.ringrift import convert

    path = _trace_path(shared_dir)
    records = []
    with gzip.open(path, "rt") as handle:
        for line in handle:
            records.append(json.loads(line))
            if len(records) == 2:
                break
    game = games.make("ringrift_square8_2p")
    samples, figures = teacher_lib.load_traces(str(path), game, policy_slots=256, max_games=2)
    steps = [record["numSteps"] for record in records]
    assert figures["teacher_games"] == 2 and figures["teacher_samples"] == sum(steps)
    assert set(samples) == set(SAMPLE_FIELDS)
    assert samples["observation"].shape == (sum(steps), *game.observation_shape)
    assert samples["policy_actions"].shape == samples["policy_weights"].shape == (sum(steps), 256)
    start = game.init(jax.random.key(0))
    np.testing.assert_array_equal(samples["observation"][0], np.asarray(game.observe(start, 0)))
    first_move = records[0]["legalMoves"][0][records[0]["chosen"][0]]
    assert samples["policy_actions"][0, 0] == convert.move_to_action(game.rules, start.board, 1, first_move)
    offset = 0
    for record, count in zip(records, steps, strict=True):
        rows = slice(offset, offset + count)
        movers = np.array([state["currentPlayer"] for state in record["states"]])
        winner = record["result"]["winner"]
        np.testing.assert_array_equal(samples["value"][rows, 0], np.where(movers == winner, 1.0, -1.0))
        np.testing.assert_array_equal(samples["value"][rows, 1], -samples["value"][rows, 0])
        weights = samples["policy_weights"][rows]
        forced = weights.sum(-1) == 0
        single = np.array([len(moves) == 1 for moves in record["legalMoves"]])
        assert np.all(forced[single]) and forced.sum() < count
        np.testing.assert_array_equal(weights[~forced, 0], 1.0)
        assert np.all(weights[:, 1:] == 0)
        offset += count
    capped, figures = teacher_lib.load_traces(str(path), game, policy_slots=256, max_samples=50)
    assert len(capped["value"]) == 50 and figures["teacher_games"] == 1
    np.testing.assert_array_equal(capped["observation"], samples["observation"][:50])
    tampered = dict(records[0], result={**records[0]["result"], "winner": 3 - records[0]["result"]["winner"]})
    (tmp_path / "mine.jsonl").write_text(json.dumps(tampered) + "\n")
    with pytest.raises(ValueError, match=rf"mine.jsonl: game {records[0]['gameId']} replayed in rlloop's engine "
                                         rf"ends with winner {records[0]['result']['winner']}, the record with"):  # fmt: skip
        teacher_lib.load_traces(str(tmp_path / "*.jsonl"), game, policy_slots=256)
    with pytest.raises(ValueError, match="this lineage plays ringrift_square8_3p"):
        teacher_lib.load_traces(str(path), games.make("ringrift_square8_3p"), policy_slots=256, max_games=1)


def test_connect4_loop_pretrains_once_and_refines_with_a_decaying_weight(tmp_path: Path) -> None:
    """A fresh run pre-trains on greedy games before its first champion (a TEACHER event),
    refines after iterations 1 and 2 with 4 and 2 steps; a resumed run does not pre-train
    again and refines on (1 step after iteration 3)."""
    overrides = ["game=connect4", *SMALL, "train.teacher=greedy", "train.teacher_samples=2000",
                 "train.teacher_steps=8", "train.teacher_games=64", "train.teacher_every=1",
                 "train.teacher_decay=0.5"]  # fmt: skip
    config = rlloop.compose(overrides)
    with rlloop.Loop(config, run_dir=tmp_path) as loop:
        lineage = loop.lineage
        pretrained = loop.teachers.pretrained["connect4"]
        assert pretrained["teacher_steps"] == 8 and pretrained["teacher_samples"] == 2000
        assert int(lineage.train_state.step) == 0
        fresh = lineage.initial_params()
        assert _differ(fresh, lineage.selfplay_params), "self-play must start from the pre-trained network"
        history = loop.run(iterations=2)
        assert [h.get("teacher_steps") for h in history] == [4, 2]
        assert [h.get("teacher_weight") for h in history] == [0.5, 0.25]
        assert all(np.isfinite(h["teacher_loss"]) for h in history)
        assert int(lineage.train_state.step) == sum(h.get("train_steps", 0) for h in history)  # self-play's only
        events = loop.ledger.events_since(kind=teacher_lib.TEACHER_EVENT)
        assert len(events) == 1 and events[0].payload["teacher_steps"] == 8
    resumed = rlloop.compose([*overrides, "loop.iterations=3"])
    with rlloop.Loop(resumed, run_dir=tmp_path) as loop:
        assert loop.iteration == 2 and not loop.teachers.pretrained
        history = loop.run()
        assert history[-1]["teacher_steps"] == 1 and history[-1]["teacher_samples"] == 2000
        assert len(loop.ledger.events_since(kind=teacher_lib.TEACHER_EVENT)) == 1


@pytest.mark.parametrize("play", [False, pytest.param(True, marks=pytest.mark.long)])
def test_ringrift_bootstrap_run_from_traces(shared_dir: Path, tmp_path: Path, play: bool) -> None:
    """A square8 run bootstrapped from three of the reference's recorded games pre-trains on
    them as it starts (a TEACHER event; 20 s), then (long: 50 s, most of it compiling the
    self-play chunk) plays an iteration of self-play from the pre-trained champion."""
    path = _trace_path(shared_dir)
    config = rlloop.compose([
        "game=ringrift_square8_2p", *SMALL, "search.num_simulations=2", "search.max_num_considered_actions=2",
        "hardware.games_per_device=2", "loop.moves_per_chunk=4", "train.batch_size=16",
        "train.steps_per_iteration=2", "train.min_replay_size=8", "train.min_mean_game_length=0",
        f"train.teacher=traces:{path}", "train.teacher_samples=300", "train.teacher_steps=4",
    ])  # fmt: skip
    with rlloop.Loop(config, run_dir=tmp_path) as loop:
        pretrained = loop.teachers.pretrained["ringrift_square8_2p"]
        assert pretrained["teacher_samples"] == 300 and pretrained["teacher_games"] == 3
        assert pretrained["teacher_steps"] == 4 and np.isfinite(pretrained["teacher_loss"])
        (event,) = loop.ledger.events_since(kind=teacher_lib.TEACHER_EVENT)
        assert event.payload["teacher"] == f"traces:{path}" and event.payload["config"] == "ringrift_square8_2p"
        assert loop.lineage.champion_id == "iter-000000"
        if not play:
            return
        (history,) = loop.run(iterations=1)
        games = 2 * loop.lineage.num_devices  # games_per_device=2 on however many devices JAX has
        assert history["moves_this_iteration"] == games * 4 and "teacher_steps" not in history


def test_an_earlier_runs_network_teaches_with_its_search(tmp_path: Path) -> None:
    """``run:RUN@latest``: another run's network searching (improved policy as target,
    TD(lambda) values from its root values) or playing its raw policy (one-hot)."""
    from rlloop import games, parallel

    run = tmp_path / "run"
    with rlloop.Loop(rlloop.compose(["game=tictactoe", *SMALL, "loop.iterations=1"]), run_dir=run) as loop:
        loop.run()
    rlloop.compose(["game=tictactoe", f"train.teacher=run:{run}@latest", "train.teacher_value_lambda=0.5"])
    with pytest.raises(ValueError, match="plays tictactoe; this lineage plays connect4"):
        rlloop.compose(["game=connect4", f"train.teacher=run:{run}@latest"])
    game, mesh = games.make("tictactoe"), parallel.make_mesh()
    searched = teacher_lib.make_teacher(f"run:{run}@latest", game, num_simulations=4)
    assert searched.evaluates and searched.name.startswith("run:")
    samples, _ = teacher_lib.generate_samples(game, searched, mesh, num_samples=200, games=16, key=jax.random.key(0),
                                                    policy_slots=9, value_lambda=0.5)  # fmt: skip
    weights = samples["policy_weights"]
    chosen = weights.sum(-1) > 0
    np.testing.assert_allclose(weights[chosen].sum(-1), 1.0, rtol=1e-5)
    assert (weights[chosen] > 0).sum(-1).max() > 1, "a search teacher's target is its improved policy"
    assert np.any(np.abs(samples["value"]) % 1 > 0), "TD(lambda) values bootstrap from the teacher's evaluation"
    raw = teacher_lib.make_teacher(f"run:{run}@latest", game, num_simulations=0)
    samples, _ = teacher_lib.generate_samples(game, raw, mesh, num_samples=100, games=16, key=jax.random.key(0),
                                              policy_slots=9, noise=0.0)  # fmt: skip
    assert set(np.unique(samples["policy_weights"])) <= {0.0, 1.0}


def test_self_teacher_is_the_fresh_network_searching_deeper(tmp_path: Path) -> None:
    """``self``: the lineage's own fresh network searching ``teacher_simulations`` deep. Its
    targets are that search's improved policy, whatever the network has trained since (a
    resumed run refining on them sees the same teacher), and a fresh run pre-trains on them."""
    from rlloop.search import make_search, search_knobs

    overrides = ["game=tictactoe", *SMALL, "train.teacher=self", "train.teacher_simulations=16",
                 "train.teacher_samples=300", "train.teacher_steps=4", "train.teacher_games=16",
                 "train.teacher_value_lambda=0.5"]  # fmt: skip
    config = rlloop.compose(overrides)
    with rlloop.Loop(config, run_dir=tmp_path) as loop:
        lineage = loop.lineage
        pretrained = loop.teachers.pretrained["tictactoe"]
        assert pretrained["teacher_samples"] == 300 and pretrained["teacher_steps"] == 4
        (event,) = loop.ledger.events_since(kind=teacher_lib.TEACHER_EVENT)
        assert event.payload["teacher"] == "self"
        fresh = lineage.initial_params()
        chex.assert_trees_all_equal(fresh, lineage.initial_params())
        assert _differ(fresh, lineage.params), "pre-training moved the network"
        knobs = search_knobs(config.search)
        teacher = teacher_lib.make_teacher("self", lineage.game, num_simulations=16, search_knobs=knobs,
                                           network=lineage.network, params=fresh)  # fmt: skip
        assert teacher.name == "self@16" and teacher.evaluates
        states = jax.vmap(lineage.game.init)(jax.random.split(jax.random.key(0), 4))
        said = teacher.move(teacher.params, jax.random.key(1), states)
        search = make_search(lineage.game, lineage.network, num_simulations=16, **knobs)
        expected = search(fresh, jax.random.key(1), states).action_weights
        np.testing.assert_allclose(np.asarray(said.policy), np.asarray(expected), rtol=1e-6)
        assert (np.asarray(said.policy) > 0).sum(-1).min() > 1, "the target is the improved policy"
    with pytest.raises(ValueError, match="needs the lineage's network"):
        teacher_lib.make_teacher("self", lineage.game, num_simulations=16)


def test_collecting_without_pre_training_steps(tmp_path: Path) -> None:
    """``train.teacher_steps=0`` (e.g. samples kept only for refinement) starts the run and
    records the TEACHER event without a loss (a NaN once made the ledger refuse the event)."""
    config = rlloop.compose(["game=tictactoe", *SMALL, "train.teacher=random", "train.teacher_samples=100",
                             "train.teacher_steps=0", "train.teacher_games=16"])  # fmt: skip
    with rlloop.Loop(config, run_dir=tmp_path) as loop:
        (event,) = loop.ledger.events_since(kind=teacher_lib.TEACHER_EVENT)
        assert event.payload["teacher_steps"] == 0 and event.payload["teacher_samples"] == 100
        assert "teacher_loss" not in event.payload
        assert loop.run(iterations=1)


def test_teacher_games_can_play_forced_moves_without_the_teacher() -> None:
    """``max_forced_moves`` (the run's ``loop.max_forced_moves``): positions with one legal
    move are played without asking the teacher and not recorded, as in self-play; by default
    they are recorded with a value target and no policy target."""
    from rlloop import games, parallel

    game, mesh = games.make("tictactoe"), parallel.make_mesh()
    teacher = teacher_lib.make_teacher("random", game)
    common = dict(num_samples=600, games=16, key=jax.random.key(0), policy_slots=9, noise=0.0)
    recorded, figures = teacher_lib.generate_samples(game, teacher, mesh, **common)
    skipped, skipped_figures = teacher_lib.generate_samples(game, teacher, mesh, max_forced_moves=8, **common)
    assert np.any(recorded["policy_weights"].sum(-1) == 0), "a full board's last move is forced"
    assert np.all(skipped["policy_weights"].sum(-1) > 0)
    assert skipped_figures["teacher_games"] > figures["teacher_games"]


@pytest.mark.long
@pytest.mark.parametrize("name", ["heuristic", "heuristic-search"])
def test_ringrift_heuristic_teachers_play_vectorised_games(name: str) -> None:
    """RingRift's heuristic players as teachers: square8 games of 8 at once, one-hot targets
    (one-ply) or search's improved policy, TD(lambda) values from the heuristic."""
    from rlloop import games, parallel

    game = games.make("ringrift_square8_2p")
    teacher = teacher_lib.make_teacher(name, game, num_simulations=4, search_knobs={"max_num_considered_actions": 4})
    samples, figures = teacher_lib.generate_samples(game, teacher, parallel.make_mesh(), num_samples=200, games=8,
                                                    key=jax.random.key(0), policy_slots=256, noise=0.1,
                                                    value_lambda=0.5, moves_per_chunk=32)  # fmt: skip
    assert figures["teacher_samples"] == 200 and figures["teacher_games"] >= 2
    weights = samples["policy_weights"]
    chosen = weights.sum(-1) > 0
    np.testing.assert_allclose(weights[chosen].sum(-1), 1.0, rtol=1e-5)
    assert np.all(np.abs(samples["value"]) <= 1) and np.any(np.abs(samples["value"]) % 1 > 0)
    if name == "heuristic":
        assert set(np.unique(weights)) <= {0.0, 1.0}


def test_each_lineage_checks_its_own_teacher() -> None:
    """In a run of several lineages a teacher set for the run is checked against each
    lineage's game, not the run's own ``game``."""
    with pytest.raises(ValueError, match=r"(?s)schedule.configurations.tictactoe: .*tictactoe is not RingRift"):
        rlloop.compose(["schedule=small_games", "train.teacher=heuristic"])
    config = rlloop.compose(["schedule=small_games", "train.teacher=greedy"])
    assert config.train.teacher == "greedy"
