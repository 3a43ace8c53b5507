"""The tree-model player: one-ply lookahead on a side trainer's LightGBM value model, ties
broken by its move model; an arena :class:`rlloop.arena.Player` like the baselines.

LightGBM predicts on the host, but an arena player must be a jittable function of device
arrays. So the models' trees are read once (``Booster.dump_model``) into padded arrays, a
:class:`TreeEnsemble`, and evaluated by :func:`predict_raw`, a pure function (every tree
walked at once, one level per step of a ``while_loop``, until all have reached a leaf). It
equals LightGBM's own raw prediction (thresholds are rounded down to float32, so ``x <=
threshold`` decides as LightGBM's double comparison does; ``tests/test_side.py`` checks).
The ensembles are the player's ``params``, so a newer model reuses the compiled match.

A move (:func:`tree_player`): for each candidate action, step the game; a finished game is
worth its reward to the mover; otherwise the value model predicts the outcome from the view of
the player to move there (its training target: replay's ``value[:, 0]``), negated when that
is another player (two players; with more it is a paranoid reading: every other player is
against us). The best value wins; among values within ``TIE_TOLERANCE`` of the best the move
model's log-probability of the action decides, then chance. Candidates: every action when the
game has at most ``max_candidates`` (tic-tac-toe, Connect Four), else the ``max_candidates``
legal actions the move model likes best (RingRift: one step per candidate per position).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from rlloop.arena import Player
from rlloop.games.base import Game, State
from rlloop.runs import RunDir
from rlloop.side.jobs import model_iteration, newest_model_files, report_path

TIE_TOLERANCE = 1e-6
DEFAULT_MAX_CANDIDATES = 64
# LightGBM's zero threshold: with missing_type "Zero", |x| <= this counts as missing.
_ZERO_THRESHOLD = 1e-35


class TreeEnsemble(NamedTuple):
    """A LightGBM model as arrays; T trees padded to N nodes each (leaves point to
    themselves). ``class_matrix`` [T, C] adds tree t's output to class t mod C."""

    feature: jax.Array  # [T, N] int32, the split's feature (0 at leaves)
    threshold: jax.Array  # [T, N] float32, go left when feature <= threshold
    left: jax.Array  # [T, N] int32 child node (itself at a leaf)
    right: jax.Array  # [T, N] int32
    zero_goes_left: jax.Array  # [T, N] int8: -1 no special case, else where zero goes (0/1)
    leaf_value: jax.Array  # [T, N] float32 (0 at internal nodes)
    class_matrix: jax.Array  # [T, C] float32 one-hot


def ensemble_from_booster(booster: Any) -> TreeEnsemble:
    """Read a ``lightgbm.Booster``'s trees into a :class:`TreeEnsemble` (numpy arrays).
    Raises ValueError for what the player does not evaluate (categorical splits)."""
    dump = booster.dump_model()
    trees = [info["tree_structure"] for info in dump["tree_info"]]
    num_classes = int(dump.get("num_tree_per_iteration", 1))
    nodes = [_flatten(tree) for tree in trees]
    width = max((len(n) for n in nodes), default=1)
    shape = (len(trees), width)
    feature = np.zeros(shape, np.int32)
    threshold = np.zeros(shape, np.float32)
    left = np.tile(np.arange(width, dtype=np.int32), (len(trees), 1))
    right = left.copy()
    zero_goes_left = np.full(shape, -1, np.int8)
    leaf_value = np.zeros(shape, np.float32)
    for t, tree_nodes in enumerate(nodes):
        for index, node in enumerate(tree_nodes):
            if node["leaf"]:
                leaf_value[t, index] = node["value"]
                continue
            feature[t, index] = node["feature"]
            threshold[t, index] = _float32_at_most(node["threshold"])
            left[t, index], right[t, index] = node["left"], node["right"]
            if node["zero_missing"]:
                zero_goes_left[t, index] = int(node["default_left"])
    class_matrix = np.zeros((len(trees), num_classes), np.float32)
    class_matrix[np.arange(len(trees)), np.arange(len(trees)) % num_classes] = 1.0
    return TreeEnsemble(feature, threshold, left, right, zero_goes_left, leaf_value, class_matrix)


def _float32_at_most(value: float) -> np.float32:
    """The largest float32 <= ``value``: for float32 x, x <= value iff x <= this."""
    rounded = np.float32(value)
    if float(rounded) > value:
        rounded = np.nextafter(rounded, np.float32(-np.inf))
    return rounded


def _flatten(tree: dict[str, Any]) -> list[dict[str, Any]]:
    """Preorder list of a dumped tree's nodes; children referenced by list index."""
    nodes: list[dict[str, Any]] = []

    def visit(node: dict[str, Any]) -> int:
        index = len(nodes)
        if "leaf_value" in node:
            nodes.append({"leaf": True, "value": float(node["leaf_value"])})
            return index
        if node.get("decision_type", "<=") != "<=":
            raise ValueError(
                f"split {node.get('split_index')} is {node['decision_type']!r}: the tree player "
                "evaluates numerical '<=' splits only (no categorical features)"
            )
        nodes.append({})  # placeholder, filled after the children get their indices
        left, right = visit(node["left_child"]), visit(node["right_child"])
        nodes[index] = {
            "leaf": False, "feature": int(node["split_feature"]),
            "threshold": float(node["threshold"]), "left": left, "right": right,
            "zero_missing": node.get("missing_type") == "Zero",
            "default_left": bool(node.get("default_left", True)),
        }  # fmt: skip
        return index

    visit(tree)
    return nodes


def predict_raw(ensemble: TreeEnsemble, features: jax.Array) -> jax.Array:
    """Raw scores float32 [B, C] of ``features`` [B, F] (LightGBM's ``raw_score``: the value
    for a regressor, class logits for a multiclass model). Features must not be NaN."""
    count = features.shape[0]
    trees = jnp.arange(ensemble.feature.shape[0])

    def at(table: jax.Array, node: jax.Array) -> jax.Array:
        return table[trees[None, :], node]  # [B, T]

    def internal(node: jax.Array) -> jax.Array:
        return at(ensemble.left, node) != node

    def descend(node: jax.Array) -> jax.Array:
        x = jnp.take_along_axis(features, at(ensemble.feature, node), axis=1)
        go_left = x <= at(ensemble.threshold, node)
        zero_rule = at(ensemble.zero_goes_left, node)
        go_left = jnp.where((zero_rule >= 0) & (jnp.abs(x) <= _ZERO_THRESHOLD), zero_rule == 1, go_left)
        return jnp.where(go_left, at(ensemble.left, node), at(ensemble.right, node))

    start = jnp.zeros((count, trees.shape[0]), jnp.int32)
    leaves = jax.lax.while_loop(lambda node: jnp.any(internal(node)), descend, start)
    return at(ensemble.leaf_value, leaves) @ ensemble.class_matrix


def empty_ensemble(num_features: int) -> TreeEnsemble:
    """No trees: every raw score is 0 (one class). Stands in for a missing move model."""
    del num_features
    zeros = np.zeros((0, 1), np.int32)
    return TreeEnsemble(zeros, zeros.astype(np.float32), zeros, zeros, zeros.astype(np.int8),
                        zeros.astype(np.float32), np.zeros((0, 1), np.float32))  # fmt: skip


# -------------------------------------------------------------------------- the models
@dataclasses.dataclass(frozen=True)
class TreeModels:
    """A lineage's side models as the player uses them."""

    value: TreeEnsemble
    move: TreeEnsemble
    move_class_of_action: np.ndarray  # [num_actions] int32: the move model's class, -1 none
    value_path: Path
    move_path: Path | None

    @property
    def params(self) -> tuple[TreeEnsemble, TreeEnsemble, np.ndarray]:
        return (self.value, self.move, self.move_class_of_action)


def load_tree_models(side_dir: str | Path, game: Game) -> TreeModels:
    """The newest value model in ``side_dir`` and the newest move model (if any).

    Raises:
      FileNotFoundError: no value model in ``side_dir``.
      ValueError: a model made for another number of features (another game).
    """
    import lightgbm

    found = newest_model_files(side_dir)
    if "value" not in found:
        raise FileNotFoundError(
            f"no side value model in {side_dir} (side trainers write value-<iteration>.txt "
            "there when the run has side.enabled=true)"
        )

    def booster(path: Path) -> Any:
        model = lightgbm.Booster(model_file=str(path))
        if model.num_feature() != game.num_features:
            raise ValueError(
                f"side model {path} has {model.num_feature()} features; {game.name} has "
                f"{game.num_features} (a model of another game?)"
            )
        return model

    value = ensemble_from_booster(booster(found["value"]))
    class_of_action = np.zeros(game.num_actions, np.int32)
    move, move_path = empty_ensemble(game.num_features), found.get("move")
    if move_path is not None:
        report = json.loads(report_path(side_dir, "move", model_iteration(move_path)).read_text())
        classes = np.asarray(report["classes"], dtype=np.int64)
        class_of_action = np.full(game.num_actions, -1, np.int32)
        class_of_action[classes] = np.arange(len(classes), dtype=np.int32)
        move = ensemble_from_booster(booster(move_path))
    return TreeModels(value, move, class_of_action, found["value"], move_path)


def load_tree_player(run_dir: str | Path, lineage: str, game: Game, *, name: str = "tree",
                     max_candidates: int = DEFAULT_MAX_CANDIDATES) -> Player:  # fmt: skip
    """The tree player of a run's lineage, from the newest models in its ``side/`` folder.
    Raises FileNotFoundError (naming the folder) when the lineage has no value model yet."""
    side_dir = RunDir(run_dir).lineage(lineage).side_dir
    try:
        models = load_tree_models(side_dir, game)
    except FileNotFoundError as error:
        raise FileNotFoundError(f"run {run_dir}, lineage {lineage}: {error}") from None
    return tree_player(game, models, name=name, max_candidates=max_candidates)


# --------------------------------------------------------------------------- the player
def tree_player(game: Game, models: TreeModels, *, name: str = "tree",
                max_candidates: int = DEFAULT_MAX_CANDIDATES) -> Player:  # fmt: skip
    """An arena player that looks one move ahead with ``models`` (see the module doc)."""
    if max_candidates < 1:
        raise ValueError(f"max_candidates={max_candidates} must be >= 1")
    candidates_count = min(game.num_actions, max_candidates)
    all_actions = game.num_actions <= max_candidates

    def choose(params: Any, key: jax.Array, states: State) -> jax.Array:
        value_model, move_model, class_of_action = params
        batch = states.current_player.shape[0]
        mover = states.current_player
        legal = states.legal_action_mask
        here = jax.vmap(game.features)(states, mover)  # [B, F]
        move_logits = predict_raw(move_model, here)  # [B, C]
        move_log_probs = jax.nn.log_softmax(move_logits, axis=-1)
        class_index = jnp.clip(class_of_action, 0, None)
        move_score = jnp.where(class_of_action[None, :] >= 0, move_log_probs[:, class_index],
                               jnp.finfo(jnp.float32).min / 2)  # [B, A]  # fmt: skip
        if all_actions:
            candidates = jnp.broadcast_to(jnp.arange(game.num_actions, dtype=jnp.int32),
                                          (batch, game.num_actions))  # fmt: skip
        else:
            ranking = jnp.where(legal, move_score, -jnp.inf)
            candidates = jax.lax.top_k(ranking, candidates_count)[1].astype(jnp.int32)
        candidate_legal = jnp.take_along_axis(legal, candidates, axis=1)  # [B, K]
        after = jax.vmap(jax.vmap(game.step, in_axes=(None, 0)))(states, candidates)  # [B, K]
        next_mover = after.current_player
        flat = jax.tree.map(lambda x: x.reshape((batch * candidates_count, *x.shape[2:])), after)
        features = jax.vmap(game.features)(flat, flat.current_player)
        predicted = jnp.clip(predict_raw(value_model, features)[:, 0], -1.0, 1.0)
        predicted = predicted.reshape(batch, candidates_count)
        ours = jnp.where(next_mover == mover[:, None], predicted, -predicted)
        reward = jnp.take_along_axis(
            after.rewards, jnp.broadcast_to(mover[:, None, None], (batch, candidates_count, 1)), axis=2
        )[..., 0]  # fmt: skip
        ours = jnp.where(after.terminated | after.truncated, reward, ours)
        ours = jnp.where(candidate_legal, ours, -jnp.inf)
        tied = candidate_legal & (ours >= jnp.max(ours, axis=1, keepdims=True) - TIE_TOLERANCE)
        tie_break = jnp.take_along_axis(move_score, candidates, axis=1)
        tie_break = tie_break + 1e-6 * jax.random.uniform(key, tie_break.shape)
        choice = jnp.argmax(jnp.where(tied, tie_break, -jnp.inf), axis=1)
        return jnp.take_along_axis(candidates, choice[:, None], axis=1)[:, 0]

    return Player(name=name, act=choose, params=jax.tree.map(jnp.asarray, models.params))
