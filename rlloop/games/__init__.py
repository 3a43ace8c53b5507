"""Games and the registry: ``rlloop.games.make("connect4")``."""

from rlloop.games.base import Game, State, Symmetry, make, names, register
from rlloop.games.connect4 import ConnectFour
from rlloop.games.tictactoe import TicTacToe

register("tictactoe", TicTacToe)
register("connect4", ConnectFour)

__all__ = ["ConnectFour", "Game", "State", "Symmetry", "TicTacToe", "make", "names", "register"]
