"""Asymmetric self-play (``schedule.opponent_mix``): the network against an earlier champion
or the random player in a share of its games, seats carried with the games, the opponent
pool, diversity, and resume."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import jax
import numpy as np
import pytest

import rlloop
from rlloop import games
from rlloop.ledger import Ledger
from rlloop.networks import init_params, make_network
from rlloop.programs import opponent_games
from rlloop.search import make_search
from rlloop.selfplay import Opponent, make_selfplay_against, new_games, new_seats

BATCH, AGAINST = 64, 48


@functools.cache
def _play(opponent_uniform: bool, seed: int = 0, chunks: int = 6) -> dict[str, np.ndarray]:
    """Chunks of tic-tac-toe where the first AGAINST games are asymmetric; the opponent is
    uniform random or the network itself (same parameters, same search)."""
    game = games.make("tictactoe")
    network = make_network(game, num_blocks=1, channels=8, value_hidden=16)
    params = init_params(network, game, jax.random.key(seed))
    search = make_search(game, network, num_simulations=32, max_num_considered_actions=9)
    play = jax.jit(make_selfplay_against(game, search, opponent_games=AGAINST, moves_per_chunk=9,
                                         temperature_moves=0))  # fmt: skip
    key = jax.random.key(seed + 1)
    states = new_games(game, jax.random.fold_in(key, 0), BATCH)
    seats = new_seats(jax.random.fold_in(key, 1), BATCH, AGAINST, game.num_players)
    opponent = Opponent(params=params, uniform=np.bool_(opponent_uniform))
    rows = []
    for index in range(chunks):
        states, seats, chunk = play(params, opponent, states, seats, jax.random.fold_in(key, 2 + index))
        rows.append(jax.device_get(chunk))
    return {name: np.concatenate([np.asarray(r[name]) for r in rows]) for name in ("seat", "done", "final_rewards")}


def _score(rows: dict[str, np.ndarray]) -> tuple[float, int]:
    ended = rows["done"] & (rows["seat"] >= 0)
    seats = rows["seat"][ended]
    rewards = rows["final_rewards"][ended][np.arange(seats.size), seats]
    return float(np.mean((rewards > 0) + 0.5 * (rewards == 0))), int(seats.size)


def test_seats_mark_the_asymmetric_games_and_stay_fixed_within_a_game() -> None:
    rows = _play(opponent_uniform=True)
    seat, done = rows["seat"], rows["done"]
    assert (seat[:, AGAINST:] == -1).all() and set(np.unique(seat[:, :AGAINST])) == {0, 1}
    # Within a game a slot keeps its seat; a new one may come only after a game ended.
    changed = seat[1:] != seat[:-1]
    assert not (changed & ~done[:-1]).any()
    assert (changed & done[:-1]).any()  # new games draw new seats


def test_the_opponent_plays_its_seats() -> None:
    """A 32-simulation search beats uniform random play, and scores about even against
    itself: only if the opponent's moves are the opponent's."""
    random_score, random_games = _score(_play(opponent_uniform=True))
    mirror_score, mirror_games = _score(_play(opponent_uniform=False))
    assert random_games > 100 and mirror_games > 100
    assert random_score > 0.7, random_score
    assert 0.3 < mirror_score < 0.7, mirror_score
    assert random_score > mirror_score + 0.2


def test_opponent_mix_is_validated_and_rounded() -> None:
    with pytest.raises(ValueError, match=r"schedule.opponent_mix=1.5 must be in \[0, 1\]"):
        rlloop.compose(["game=tictactoe", "schedule.opponent_mix=1.5"])
    with pytest.raises(ValueError, match=r"schedule\.opponent_pool=-1"):
        rlloop.compose(["game=tictactoe", "schedule.opponent_pool=-1"])
    config = rlloop.compose(["game=tictactoe", "hardware.games_per_device=16", "schedule.opponent_mix=0.01"])
    assert opponent_games(config) == 1  # a mix above 0 plays at least one game per device
    config = rlloop.compose(["game=tictactoe", "hardware.games_per_device=16", "schedule.opponent_mix=0.25"])
    assert opponent_games(config) == 4
    assert opponent_games(rlloop.compose(["game=tictactoe"])) == 0


SMOKE = ["game=tictactoe", "loop=smoke", "gate=smoke", "perfect_play.enabled=false", "loop.tensorboard=false",
         "hardware.compilation_cache=false", "schedule.opponent_mix=0.25"]  # fmt: skip


@pytest.mark.long
def test_a_run_plays_a_share_against_its_pool_and_resumes_its_seats(tmp_path: Path) -> None:
    config = rlloop.compose([*SMOKE, "loop.iterations=6", "loop.checkpoint_every=3"])
    with rlloop.Loop(config, run_dir=tmp_path) as loop:
        history = loop.run()
        lineage = loop.lineage
        assert dict(lineage.programs.traces) == {"play_against": 1, "train_step": 1, "new_games": 1}
        seats = np.asarray(lineage.seats)
        devices, against = lineage.num_devices, lineage.programs.opponent_games
        pool = lineage.opponent_pool()
        with Ledger(tmp_path / "ledger.sqlite", readonly=True) as ledger:
            retired = [m.id for m in ledger.models("retired")]
    per_device = seats.reshape(devices, -1)  # each device's first games are the asymmetric ones
    assert against == round(0.25 * per_device.shape[1])
    assert (per_device[:, :against] >= 0).all() and (per_device[:, against:] == -1).all()
    assert pool[-1] == "random" and set(pool[:-1]) <= set(retired)
    assert retired, "the smoke gate promoted nobody: the pool was never tested with champions"
    assert pool[:-1], "earlier champions with checkpoints belong to the pool"
    played = [row for row in history if row.get("opponent_games")]
    assert played and {row["opponent"] for row in played} <= {"random", *retired}
    last = history[-1]
    assert 0.1 < last["diversity/asymmetric_share"] < 0.45
    status = json.loads((tmp_path / "status.json").read_text())
    opponents = status["diversity"]["opponent"]["games"]
    assert opponents["self"] > 0 and sum(opponents.values()) - opponents["self"] > 0
    assert status["lineages"]["tictactoe"]["opponent"] in pool
    from rlloop import status as status_command

    text = status_command.render(status_command.gather(tmp_path))
    assert f"asymmetric games against {status['lineages']['tictactoe']['opponent']}" in text
    with rlloop.Loop(config, run_dir=tmp_path) as loop:
        assert loop.iteration == 6
        np.testing.assert_array_equal(np.asarray(loop.lineage.seats), seats)
