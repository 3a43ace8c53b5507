"""Searching more than two players: *paranoid* (the default, the root's mover against a
coalition of the rest) and *max-n* (``multiplayer="maxn"``, each player by its own value).

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
  ``r0(a, b*)``): best ``a = 1``. What ``multiplayer="maxn"`` searches.

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
def search_from_opening(two_player_rule: bool, algorithm: str, multiplayer: str = "paranoid") -> dict[str, np.ndarray]:
    """Player 0's search from the opening with the fixed network (4 games, one compile per
    case): the chosen move and the parts of the tree the tests read."""
    game = AsIfTwoPlayers() if two_player_rule else ChooseThenChoose()
    if algorithm == "gumbel":
        search = make_search(
            game, ExactBeforeLastMove(), algorithm="gumbel", num_simulations=32,
            max_num_considered_actions=2, gumbel_scale=0.0, multiplayer=multiplayer,
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


def test_maxn_lets_each_player_choose_by_its_own_value() -> None:
    result = search_from_opening(False, "gumbel", "maxn")
    np.testing.assert_array_equal(result["chosen"], brute_force_choices()["own_max"])
    # Below a = 1, player 1 (to move) spends more of its visits on b = 0, its own best
    # (r1 = 0 against -1), where the paranoid search sends them to b = 1, player 0's worst.
    for case, favoured in (("maxn", 0), ("paranoid", 1)):
        tree = search_from_opening(False, "gumbel", case)
        node = tree["children_index"][:, 0, 1]  # [B], the node after a = 1
        assert np.all(node > 0)
        visits = tree["children_visits"][np.arange(len(node)), node]  # [B, 2]
        assert np.all(visits[:, favoured] > visits[:, 1 - favoured]), (case, visits)
    # The root player's view: a = 1 is worth more than a = 0 to player 0 under max-n.
    q = result["root_qvalues"]
    assert np.all(q[:, 1] > q[:, 0]) and np.all(q[:, 1] > 0), q


def test_maxn_refuses_puct_and_unknown_names() -> None:
    with pytest.raises(ValueError, match="needs algorithm 'gumbel'"):
        make_search(ChooseThenChoose(), ExactBeforeLastMove(), algorithm="puct", multiplayer="maxn")
    with pytest.raises(ValueError, match="multiplayer 'maxm' is unknown"):
        make_search(ChooseThenChoose(), ExactBeforeLastMove(), multiplayer="maxm")


class ZeroSum:
    """A small random network whose two values are exact opposites (a zero-sum game's)."""

    def __init__(self, game: Game) -> None:
        from rlloop.networks import init_params, make_network

        self.network = make_network(game, num_blocks=1, channels=8, value_hidden=16)
        self.params = init_params(self.network, game, jax.random.key(3))

    def apply(self, params: Any, observations: jax.Array) -> tuple[jax.Array, jax.Array]:
        logits, values = self.network.apply(params, observations)
        return logits, jnp.stack([values[:, 0], -values[:, 0]], axis=1)


@pytest.mark.parametrize("game_name", ["tictactoe", "connect4"])
def test_maxn_with_two_zero_sum_players_is_mctx_negamax(game_name: str) -> None:
    # With two players whose values are opposite, max-n is negamax: the same Gumbel noise
    # (same key), the same moves, weights and root values as mctx's own search.
    from rlloop import games
    from rlloop.selfplay import new_games

    game = games.make(game_name)
    net = ZeroSum(game)
    states = new_games(game, jax.random.key(5), 24, random_opening_moves=3)
    knobs = dict(num_simulations=24, max_num_considered_actions=4, value_scale=1.0, max_actions=0)
    out = {}
    for case in ("paranoid", "maxn"):
        search = jax.jit(make_search(game, net, multiplayer=case, **knobs))
        out[case] = jax.tree.map(np.asarray, search(net.params, jax.random.key(7), states))
    live = ~np.asarray(states.terminated | states.truncated)
    assert live.sum() >= 16
    np.testing.assert_array_equal(out["maxn"].action[live], out["paranoid"].action[live])
    np.testing.assert_allclose(out["maxn"].action_weights[live], out["paranoid"].action_weights[live], atol=1e-5)
    mctx_tree, maxn_tree = out["paranoid"].search_tree, out["maxn"].search_tree
    np.testing.assert_array_equal(maxn_tree.children_visits[live], mctx_tree.children_visits[live])
    np.testing.assert_allclose(maxn_tree.node_values[live, 0], mctx_tree.node_values[live, 0], atol=1e-5)


def test_maxn_searches_three_player_ringrift() -> None:
    # The real thing: square8 with three players, slots and forced moves in the tree.
    from rlloop import games
    from rlloop.networks import init_params, make_network
    from rlloop.search import evaluate, greedy_action
    from rlloop.selfplay import new_games

    game = games.make("ringrift_square8_3p")
    network = make_network(game, num_blocks=1, channels=8, value_hidden=16)
    params = init_params(network, game, jax.random.key(0))
    states = new_games(game, jax.random.key(1), 4, random_opening_moves=12)
    search = jax.jit(make_search(game, network, num_simulations=8, max_num_considered_actions=4,
                                 max_actions=16, max_forced_moves=4, multiplayer="maxn"))  # fmt: skip
    out = jax.tree.map(np.asarray, search(params, jax.random.key(2), states))
    legal = np.asarray(states.legal_action_mask)
    np.testing.assert_allclose(out.action_weights.sum(-1), 1.0, atol=1e-5)
    assert np.all(out.action_weights[~legal] == 0.0)
    assert np.all(legal[np.arange(4), out.action])
    assert np.all(legal[np.arange(4), np.asarray(greedy_action(out))])
    assert np.all(out.search_tree.children_visits[:, 0].sum(-1) == 8)
    # The root's raw value in the returned (root player's) view is the mover's own value.
    _, values = evaluate(network, game, params, states)
    np.testing.assert_allclose(out.search_tree.raw_values[:, 0], np.asarray(values)[:, 0], atol=1e-6)
