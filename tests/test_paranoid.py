"""The N-player search reduction is paranoid: the root's mover against a coalition of the rest.

A purpose-built three-player game with a known answer (mctx's style of toy problems). Player 0
picks ``a``, then player 1 picks ``b``, then player 2 makes a move that changes nothing and the
game ends with the rewards ``OUTCOMES[a, b]`` (one per player)::

               b = 0            b = 1            paranoid   naive 2p   own-max
    a = 0   ( 0,  1, -1)     ( 0, -1,  1)            0         -1          0
    a = 1   ( 1,  0,  0)     (-1, -1, .5)           -1          0          1

- **paranoid** (what rlloop's search does): player 0's value of ``a`` is ``min_b r0(a, b)``,
  the coalition of players 1 and 2 plays against player 0: best ``a = 0``.
- **naive 2p** (the two-player rule, ``discount = -1`` at every change of mover, each node's
  value from its own mover's view): the signs chain so that player 0 adopts player 2's
  reward, ``min_b r2(a, b)``: best ``a = 1``.
- **own-max** (max^n: player 1 maximises its own reward, ``b* = argmax_b r1``; player 0 gets
  ``r0(a, b*)``): best ``a = 1``.

The network is a fixed function whose values we control: at the positions where player 2 is
to move it returns the exact outcome (mover-relative, as rlloop's networks do), so the search
agrees whether or not it expands player 2's move; everywhere else it returns zeros and a
uniform prior.
"""

from __future__ import annotations

import functools
from typing import Any

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rlloop.games.base import Game, State
from rlloop.search import make_search

OUTCOMES = np.array(
    [
        [[0.0, 1.0, -1.0], [0.0, -1.0, 1.0]],
        [[1.0, 0.0, 0.0], [-1.0, -1.0, 0.5]],
    ],
    dtype=np.float32,
)  # [a, b, player]
PARANOID_CHOICE = 0


@chex.dataclass(frozen=True)
class Board:
    ply: jax.Array  # [] int32, moves played (0..3)
    first: jax.Array  # [] int32, player 0's choice a (0 until played)
    second: jax.Array  # [] int32, player 1's choice b (0 until played)


class ChooseThenChoose(Game):
    """Player 0 picks a, player 1 picks b, player 2 moves; rewards OUTCOMES[a, b]."""

    name = "choose_then_choose"
    num_players = 3
    num_actions = 2
    observation_shape = (3,)
    max_steps = 10

    def _init(self, key: jax.Array) -> State:
        del key
        zero = jnp.int32(0)
        return State(
            current_player=zero,
            legal_action_mask=jnp.ones(2, jnp.bool_),
            rewards=jnp.zeros(3, jnp.float32),
            terminated=jnp.bool_(False),
            truncated=jnp.bool_(False),
            step_count=zero,
            board=Board(ply=zero, first=zero, second=zero),
        )

    def _step(self, state: State, action: jax.Array) -> State:
        board = state.board
        ply = board.ply + 1
        board = Board(
            ply=ply,
            first=jnp.where(board.ply == 0, action, board.first),
            second=jnp.where(board.ply == 1, action, board.second),
        )
        over = ply == 3
        rewards = jnp.where(over, jnp.asarray(OUTCOMES)[board.first, board.second], 0.0)
        return state.replace(
            board=board,
            current_player=ply % 3,
            legal_action_mask=jnp.full(2, ~over),
            rewards=rewards,
            terminated=over,
        )

    def observe(self, state: State, player: jax.Array) -> jax.Array:
        del player  # the network below reads the position, not the viewer
        board = state.board
        return jnp.stack([board.ply, board.first, board.second]).astype(jnp.float32)

    def render(self, state: State) -> str:
        board = state.board
        return f"ply {int(board.ply)}: a={int(board.first)} b={int(board.second)}"


class ExactBeforeLastMove:
    """A fixed "network": uniform prior; exact mover-relative values where player 2 is to move.

    ``apply(params, observations [B, 3]) -> (logits [B, 2], values [B, 3])``, ``values[:, k]``
    for the player ``k`` seats after the mover (rlloop's convention, mover first).
    """

    def apply(self, params: Any, observations: jax.Array) -> tuple[jax.Array, jax.Array]:
        del params
        ply = observations[:, 0].astype(jnp.int32)
        first = observations[:, 1].astype(jnp.int32)
        second = observations[:, 2].astype(jnp.int32)
        outcome = jnp.asarray(OUTCOMES)[first, second]  # [B, 3], by seat
        mover = ply % 3
        by_mover = jnp.take_along_axis(outcome, (mover[:, None] + jnp.arange(3)) % 3, axis=1)
        values = jnp.where((ply == 2)[:, None], by_mover, 0.0)
        return jnp.zeros((observations.shape[0], 2), jnp.float32), values


class AsIfTwoPlayers:
    """The same game presented to the search as a two-player game: rlloop's two-player rule
    (node values from each mover's view, discount -1 whenever the mover changes) applied
    to three players. The control that shows the position tells the reductions apart."""

    num_players = 2

    def __init__(self) -> None:
        self.game = ChooseThenChoose()
        self.num_actions = self.game.num_actions
        self.init, self.step, self.observe = self.game.init, self.game.step, self.game.observe


def brute_force_choices() -> dict[str, int]:
    """Player 0's best ``a`` under each reduction, by enumeration."""
    paranoid = OUTCOMES[:, :, 0].min(axis=1)
    naive = OUTCOMES[:, :, 2].min(axis=1)  # -max_b(-r2): the chained sign flips
    own_max = OUTCOMES[np.arange(2), OUTCOMES[:, :, 1].argmax(axis=1), 0]
    return {
        "paranoid": int(paranoid.argmax()),
        "naive": int(naive.argmax()),
        "own_max": int(own_max.argmax()),
    }


def test_the_position_separates_the_reductions() -> None:
    choices = brute_force_choices()
    assert choices["paranoid"] == PARANOID_CHOICE
    assert choices["naive"] != PARANOID_CHOICE and choices["own_max"] != PARANOID_CHOICE


@functools.cache
def search_from_opening(two_player_rule: bool, algorithm: str) -> dict[str, np.ndarray]:
    """Player 0's search from the opening with the fixed network (4 games, one compile per
    case): the chosen move and the parts of the tree the tests read."""
    game = AsIfTwoPlayers() if two_player_rule else ChooseThenChoose()
    if algorithm == "gumbel":
        search = make_search(
            game, ExactBeforeLastMove(), algorithm="gumbel", num_simulations=32,
            max_num_considered_actions=2, gumbel_scale=0.0,
        )  # fmt: skip
    else:
        search = make_search(
            game, ExactBeforeLastMove(), algorithm="puct", num_simulations=64,
            dirichlet_fraction=0.0,
        )  # fmt: skip
    batch = 4
    states = jax.vmap(game.init)(jax.random.split(jax.random.key(0), batch))

    def run(key: jax.Array, states: State) -> dict[str, jax.Array]:
        output = search(None, key, states)
        tree = output.search_tree
        # gumbel_scale=0 makes Gumbel's choice deterministic; PUCT's is the most visited.
        chosen = output.action if algorithm == "gumbel" else output.action_weights.argmax(-1)
        return {
            "chosen": chosen,
            "children_index": tree.children_index,  # [B, nodes, A]
            "children_visits": tree.children_visits,  # [B, nodes, A]
            "root_qvalues": tree.qvalues(jnp.zeros(batch, jnp.int32)),  # [B, A], root's view
        }

    return jax.tree.map(np.asarray, jax.jit(run)(jax.random.key(1), states))


@pytest.mark.parametrize("algorithm", ["gumbel", "puct"])
def test_search_plays_against_the_coalition(algorithm: str) -> None:
    chosen = search_from_opening(False, algorithm)["chosen"]
    np.testing.assert_array_equal(chosen, PARANOID_CHOICE)


@pytest.mark.parametrize("algorithm", ["gumbel", "puct"])
def test_two_player_rule_would_choose_otherwise(algorithm: str) -> None:
    # The same search with the two-player reduction picks the other move: the test above
    # fails if the paranoid reduction is replaced by alternating signs.
    chosen = search_from_opening(True, algorithm)["chosen"]
    np.testing.assert_array_equal(chosen, brute_force_choices()["naive"])


def test_coalition_nodes_minimise_the_root_players_value() -> None:
    """Inside player 0's search, player 1's node after ``a = 1`` spends its visits on
    ``b = 1`` (which costs player 1 a point and player 0 two): coalition play, not own-max.
    (A search rooted at player 1 would be player 1's own paranoid search, with player 0 in
    the coalition, so this is read from the tree below player 0's root.)"""
    tree = search_from_opening(False, "puct")
    rows = np.arange(len(tree["chosen"]))
    after_a1 = tree["children_index"][rows, 0, 1]  # [B], player 1's node
    assert (after_a1 >= 0).all(), "the search never tried a = 1"
    visits = tree["children_visits"][rows, after_a1]  # [B, 2] visits of b = 0, 1
    assert (visits[:, 1] > visits[:, 0]).all(), visits
    # Player 0's value of a = 1 goes towards -1 (the coalition's answer), below a = 0's 0.
    values = tree["root_qvalues"]
    assert (values[:, 1] < values[:, 0]).all(), values
