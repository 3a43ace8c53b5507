"""Games and the registry: ``rlloop.games.make("connect4")``."""

from rlloop.games.base import Game, State, Symmetry, make, names, register
from rlloop.games.connect4 import ConnectFour
from rlloop.games.contract import ContractError, check_contract
from rlloop.games.ringrift import register_all as _register_ringrift
from rlloop.games.tictactoe import TicTacToe

register("tictactoe", TicTacToe)
register("connect4", ConnectFour)
_register_ringrift()  # ringrift_<square8|hex8|square19|hexagonal>_<2|3|4>p

__all__ = [
    "ConnectFour",
    "ContractError",
    "Game",
    "State",
    "Symmetry",
    "TicTacToe",
    "check_contract",
    "make",
    "names",
    "register",
]
