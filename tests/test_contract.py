"""One contract every registered game passes, unbatched and under jit(vmap).

The properties and the programs that check them live in :mod:`rlloop.games.contract` (so a
notebook can check a new game with ``rlloop.games.check_contract``); here each property is
one test per registered game, plus the registry's error message and tests that the checks
catch broken games.
"""

from __future__ import annotations

import jax.numpy as jnp
import pytest

from rlloop import games
from rlloop.games import base, contract
from rlloop.games.tictactoe import TicTacToe

# Timings (`pytest -m '' tests/test_contract.py -k ringrift --durations=0`, 2 cores, cold
# compilation). Each RingRift configuration compiles three programs (the unbatched game loop
# and the batched one at two batch shapes, ~10-20 s each) and plays GAMES whole random games
# twice (unbatched and batched). Shared with a training run (load ~3.7, niced): square8/hex8
# 41-50 s per configuration, square19 68-88 s, hexagonal 86-120 s; all twelve pass in 14 min
# (before: ~50-720 s on the small boards, ~37 min for hexagonal 2p alone). At load ~1:
# square8 2p 39 s, hexagonal 4p 79 s. Tic-tac-toe and Connect Four take seconds. The small
# boards run by default (~4-5 min together). square19 and hexagonal stay `slow`: their random
# games are long (600-1,450 decisions, ~300 steps/s on this CPU, and vmap does not make a step
# cheaper per game here), so the eight plays alone take 20-60 s a configuration.
# To keep the default run under 15 minutes, it checks RingRift on square8 2p only; the other
# eleven configurations are `slow`, and CI runs all twelve after the default run
# (`make test-contract`, about 10-14 minutes).
DEFAULT_RINGRIFT = ("ringrift_square8_2p",)
NAMES = [
    pytest.param(name, marks=pytest.mark.slow)
    if name.startswith("ringrift_") and name not in DEFAULT_RINGRIFT
    else name
    for name in games.names()
]



@pytest.fixture(scope="module", params=NAMES)
def game(request: pytest.FixtureRequest) -> games.Game:
    return games.make(request.param)


def test_registry_lists_names_on_unknown() -> None:
    with pytest.raises(ValueError, match=r"unknown game 'chess'.*connect4"):
        games.make("chess")


def test_metadata(game: games.Game) -> None:
    contract.check_metadata(game)


def test_init_fields(game: games.Game) -> None:
    contract.check_init(game)


def test_random_games_end_with_consistent_rewards(game: games.Game) -> None:
    contract.check_random_games(game)


def test_vmapped_matches_single(game: games.Game) -> None:
    contract.check_vmapped_matches_single(game)


def test_step_on_finished_game_is_noop(game: games.Game) -> None:
    contract.check_finished_game_noop(game)


def test_illegal_action_forfeits(game: games.Game) -> None:
    contract.check_illegal_action_forfeits(game)


def test_step_compiles_once_per_batch_shape(game: games.Game) -> None:
    contract.check_compiles_once_per_batch_shape(game)


def test_symmetries_map_games_to_games(game: games.Game) -> None:
    contract.check_symmetries(game)


class _RewardsEveryMove(TicTacToe):
    """Tic-tac-toe whose rewards are paid on every move: breaks "rewards only at the end"."""

    name = "tictactoe_rewards_every_move"

    def _step(self, state, action):  # type: ignore[no-untyped-def]
        after = super()._step(state, action)
        return after.replace(rewards=jnp.where(after.terminated, after.rewards,
                                               jnp.array([0.5, -0.5], jnp.float32)))  # fmt: skip


class _Unregistered(TicTacToe):
    name = "tictactoe_unregistered"


def test_check_contract_passes_a_good_game_and_names_a_broken_property(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert games.check_contract(games.make("tictactoe")) == [name for name, _ in contract.CHECKS]
    with pytest.raises(contract.ContractError, match=r"\(metadata\).*register it"):
        games.check_contract(_Unregistered())
    # Registered for this test only: other tests list the registry.
    broken = _RewardsEveryMove()
    monkeypatch.setitem(base._REGISTRY, broken.name, _RewardsEveryMove)
    monkeypatch.setitem(base._INSTANCES, broken.name, broken)
    with pytest.raises(contract.ContractError, match=r"\(random games\).*rewards before the final step"):
        games.check_contract(broken)
