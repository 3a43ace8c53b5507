"""The game protocol: pure, jittable, vmappable functions on frozen pytree states.

Every game in rlloop is a :class:`Game`: static metadata plus three pure functions,

- ``init(key) -> State``                 a new game (the key seeds random openings, if any),
- ``step(state, action) -> State``       one decision by ``state.current_player``,
- ``observe(state, player) -> Array``    the network input from ``player``'s point of view,

all usable unbatched or under ``jax.jit(jax.vmap(...))``. The cross-game plumbing lives
here, once (``Game.step``), so that games only write their rules (``Game._step``):

- **Finished games.** Stepping a terminated or truncated state is a no-op: the state is
  returned unchanged except that ``rewards`` are zero (so summing rewards over a trajectory
  counts each outcome once).
- **Illegal actions.** An action that is out of range or masked out in
  ``legal_action_mask`` ends the game at once: the player who chose it gets -1 and every
  other player gets +1/(N-1) (the rank-based value of sharing first place among the rest),
  ``terminated`` is set and the position is left as it was. It is never silently applied.
- **Truncation.** A game that reaches ``max_steps`` decisions without a result is
  ``truncated`` with zero rewards.
- **Masks.** ``legal_action_mask`` is truthful: it is all False once the game is over.
  Code that normalises over the mask (search, sampling) must handle that case.

A game-specific position lives in ``State.board`` (any pytree of fixed-shape arrays).
"""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Callable
from typing import Any

import chex
import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array
PRNGKey = jax.Array


@chex.dataclass(frozen=True)
class State:
    """One game position. Batched states carry a leading batch axis on every field.

    Attributes:
      current_player: int32 []; the player to move, in ``0..num_players-1``.
      legal_action_mask: bool [num_actions]; legal actions for ``current_player``
        (all False once the game is over).
      rewards: float32 [num_players]; outcome of the last step, nonzero only on the step
        that ended the game.
      terminated: bool []; the game ended by its rules (or an illegal action).
      truncated: bool []; the game was cut at ``max_steps``.
      step_count: int32 []; decisions taken so far.
      board: game-specific pytree of fixed-shape arrays (the position itself).
    """

    current_player: Array  # [] int32
    legal_action_mask: Array  # [num_actions] bool
    rewards: Array  # [num_players] float32
    terminated: Array  # [] bool
    truncated: Array  # [] bool
    step_count: Array  # [] int32
    board: Any  # game-specific pytree


@dataclasses.dataclass(frozen=True)
class Symmetry:
    """A symmetry of the game that maps (observation, policy) pairs to equivalent pairs.

    The tables are host-side and built once per game:

    - ``observation_permutation``: int32 [prod(observation_shape)]; the transformed
      observation is ``observation.reshape(-1)[observation_permutation]`` reshaped back.
    - ``action_permutation``: int32 [num_actions]; the transformed policy is
      ``policy[..., action_permutation]`` (a transformed action ``a'`` stands for the
      original action ``action_permutation[a']``).
    """

    name: str
    observation_shape: tuple[int, ...]
    observation_permutation: np.ndarray  # [prod(observation_shape)] int32
    action_permutation: np.ndarray  # [num_actions] int32

    def apply(self, observations: Array, policies: Array) -> tuple[Array, Array]:
        """Transform observations [..., *observation_shape] and policies [..., num_actions]."""
        batch_shape = observations.shape[: observations.ndim - len(self.observation_shape)]
        flat = observations.reshape((*batch_shape, -1))
        transformed = jnp.take(flat, self.observation_permutation, axis=-1)
        return (
            transformed.reshape(observations.shape),
            jnp.take(policies, self.action_permutation, axis=-1),
        )


def grid_symmetry(
    name: str,
    *,
    height: int,
    width: int,
    channels: int,
    cell_map: Callable[[int, int], tuple[int, int]],
    action_permutation: np.ndarray,
) -> Symmetry:
    """Build a :class:`Symmetry` for an observation of shape [height, width, channels].

    ``cell_map(row, col)`` gives the source cell whose content lands on ``(row, col)``.
    """
    permutation = np.empty((height, width, channels), dtype=np.int32)
    for row in range(height):
        for col in range(width):
            source_row, source_col = cell_map(row, col)
            for channel in range(channels):
                permutation[row, col, channel] = (
                    source_row * width + source_col
                ) * channels + channel
    return Symmetry(
        name=name,
        observation_shape=(height, width, channels),
        observation_permutation=permutation.reshape(-1),
        action_permutation=np.asarray(action_permutation, dtype=np.int32),
    )


class Game(abc.ABC):
    """Base class of every game: static metadata, the public pure functions and plumbing.

    Subclasses set the metadata attributes and implement ``_init``, ``_step``,
    ``observe``, ``render``, and optionally ``symmetries`` and ``features``.
    """

    name: str
    num_players: int
    num_actions: int
    observation_shape: tuple[int, ...]
    max_steps: int

    # ----------------------------------------------------------------- public, pure
    def init(self, key: PRNGKey) -> State:
        """A new game. ``key``: PRNG key [2] (unused by deterministic games). Returns State."""
        return self._init(key)

    def step(self, state: State, action: Array) -> State:
        """Apply ``action`` (int32 [], in ``0..num_actions-1``) for ``state.current_player``.

        See the module docstring for finished games, illegal actions and truncation.
        """
        action = jnp.asarray(action, dtype=jnp.int32)
        in_range = (action >= 0) & (action < self.num_actions)
        safe_action = jnp.clip(action, 0, self.num_actions - 1)
        is_legal = in_range & state.legal_action_mask[safe_action]
        finished = state.terminated | state.truncated
        zero_rewards = jnp.zeros_like(state.rewards)

        played = self._step(state.replace(rewards=zero_rewards), safe_action)
        step_count = state.step_count + 1
        played = played.replace(
            step_count=step_count,
            truncated=~played.terminated & (step_count >= self.max_steps),
        )
        played = played.replace(
            legal_action_mask=played.legal_action_mask
            & ~(played.terminated | played.truncated)
        )

        mover_loses = jnp.where(
            jnp.arange(self.num_players) == state.current_player,
            -1.0,
            1.0 / max(self.num_players - 1, 1),
        ).astype(state.rewards.dtype)
        forfeited = state.replace(
            rewards=mover_loses,
            terminated=jnp.bool_(True),
            step_count=step_count,
            legal_action_mask=jnp.zeros_like(state.legal_action_mask),
        )
        unchanged = state.replace(rewards=zero_rewards)

        return _select(finished, unchanged, _select(is_legal, played, forfeited))

    @abc.abstractmethod
    def observe(self, state: State, player: Array) -> Array:
        """Network input for ``player`` (int32 []): float32 [*observation_shape]."""

    # ----------------------------------------------------------------- per game
    @abc.abstractmethod
    def _init(self, key: PRNGKey) -> State:
        """A fresh State (step_count 0, zero rewards, not terminated/truncated)."""

    @abc.abstractmethod
    def _step(self, state: State, action: Array) -> State:
        """Apply a legal ``action`` of a live game: update ``board``, ``current_player``,
        ``legal_action_mask``, ``rewards`` and ``terminated``. The base class handles
        ``step_count``, truncation, illegal actions and finished games."""

    @abc.abstractmethod
    def render(self, state: State) -> str:
        """Plain-text picture of one (unbatched) state, for logs, tests and notebooks."""

    def symmetries(self) -> tuple[Symmetry, ...]:
        """Symmetries for data augmentation; the identity comes first."""
        size = int(np.prod(self.observation_shape))
        return (
            Symmetry(
                name="identity",
                observation_shape=tuple(self.observation_shape),
                observation_permutation=np.arange(size, dtype=np.int32),
                action_permutation=np.arange(self.num_actions, dtype=np.int32),
            ),
        )

    # Optional fixed evaluation that a network may add to its value logits
    # (``model.value_prior_weight``): ``value_prior(observations [B, *observation_shape])`` ->
    # float32 [B, num_players] from each observation's viewer (index 0 the viewer, k the k-th
    # next seat), roughly in [-1, 1]. Games that have one define it as a method.
    value_prior: Callable[[Array], Array] | None = None

    # Whether rlloop can score this game's models against perfect play (an exact solver and
    # labelled positions, ``rlloop.perfect_play``): the loop then scores every champion in the
    # background and ``rlloop.evaluate perfect-play`` accepts its runs.
    perfect_play: bool = False

    @property
    def num_features(self) -> int:
        """Length of the ``features`` vector."""
        return int(np.prod(self.observation_shape)) + 1

    def features(self, state: State, player: Array) -> Array:
        """Flat float32 [num_features] description of the position for tree models
        (``rlloop.side``): :meth:`observation_features` of ``player``'s observation."""
        return self.observation_features(self.observe(state, player))

    def observation_features(self, observation: Array) -> Array:
        """Tree-model features float32 [num_features] of one observation
        [*observation_shape].

        Tree models train on replay, which keeps observations and not states, so features
        are a function of the observation: the tree player's features of a live state and
        the trainer's features of a replay sample are then the same by construction.
        Default: the flattened observation plus its sum (for stone games, the stones on the
        board: a count a tree cannot add up itself). Games override this with hand-made
        features where they help (and ``num_features`` with it).
        """
        flat = observation.reshape(-1).astype(jnp.float32)
        return jnp.concatenate([flat, jnp.sum(flat)[None]])

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(name={self.name!r}, num_players={self.num_players}, "
            f"num_actions={self.num_actions}, observation_shape={self.observation_shape}, "
            f"max_steps={self.max_steps})"
        )


def _select(predicate: Array, on_true: State, on_false: State) -> State:
    """Pick between two states leaf by leaf (branch-free, vmap-friendly)."""
    return jax.tree.map(lambda a, b: jnp.where(predicate, a, b), on_true, on_false)


def select_games(mask: Array, new: State, old: State) -> State:
    """Per game of a batch: ``new`` where ``mask`` [B] is True, else ``old`` (states [B])."""
    return jax.tree.map(
        lambda a, b: jnp.where(mask.reshape(mask.shape + (1,) * (b.ndim - 1)), a, b), new, old
    )


# --------------------------------------------------------------------------- registry
_REGISTRY: dict[str, Callable[[], Game]] = {}
_INSTANCES: dict[str, Game] = {}


def register(name: str, factory: Callable[[], Game]) -> None:
    """Register ``factory`` (a zero-argument callable returning a Game) under ``name``."""
    if name in _REGISTRY:
        raise ValueError(f"game {name!r} is already registered")
    _REGISTRY[name] = factory


def names() -> list[str]:
    """Names of every registered game, sorted."""
    return sorted(_REGISTRY)


def make(name: str) -> Game:
    """The game registered as ``name`` (one shared instance per name).

    Raises:
      ValueError: for an unknown name; the message lists the valid names.
    """
    if name not in _REGISTRY:
        raise ValueError(f"unknown game {name!r}; valid names: {', '.join(names())}")
    if name not in _INSTANCES:
        _INSTANCES[name] = _REGISTRY[name]()
    return _INSTANCES[name]


def play_forced(game: Game, states: State, max_moves: int) -> State:
    """Play the only legal action in every live game that has exactly one, up to
    ``max_moves`` times (a bounded loop that stops as soon as no game has a forced move).

    A game that ends keeps its final ``rewards`` (finished games are not stepped again).
    """
    if max_moves <= 0:
        return states

    def forced(states: State) -> jax.Array:
        live = ~(states.terminated | states.truncated)
        return live & (jnp.sum(states.legal_action_mask, axis=-1) == 1)

    def cond(carry: tuple[State, jax.Array]) -> jax.Array:
        states, count = carry
        return (count < max_moves) & jnp.any(forced(states))

    def body(carry: tuple[State, jax.Array]) -> tuple[State, jax.Array]:
        states, count = carry
        which = forced(states)
        action = jnp.argmax(states.legal_action_mask, axis=-1).astype(jnp.int32)
        played = jax.vmap(game.step)(states, action)
        return select_games(which, played, states), count + 1

    return jax.lax.while_loop(cond, body, (states, jnp.int32(0)))[0]
