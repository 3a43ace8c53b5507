"""Trained agents for notebooks and tools: ``rlloop.load_agent(run_dir)``.

An :class:`Agent` works on batches of game states (leading batch axis [B]):
``policy(states)`` [B, A], ``value(states)`` [B, N] and ``act(states, key, num_simulations)`` [B].
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
from omegaconf import DictConfig, OmegaConf

from rlloop import games
from rlloop.checkpoints import ChampionCheckpoints, TrainCheckpoints
from rlloop.config import Config
from rlloop.games.base import Game, State
from rlloop.ledger import Ledger
from rlloop.networks import PolicyValueNet, init_params, network_from_config
from rlloop.runs import RunDir
from rlloop.search import evaluate, greedy_action, search_from_config
from rlloop.train import init_train_state, make_optimizer


class Agent:
    """A network (and its search) bound to parameters.

    Args:
      game: the game the network was trained on.
      network: the policy-value network.
      params: its parameters.
      search_config: the ``search`` config node used by :meth:`act`.
    """

    def __init__(self, game: Game, network: PolicyValueNet, params: Any, search_config: Any) -> None:
        self.game = game
        self.network = network
        self.params = params
        self.search_config = search_config

    @functools.cached_property
    def _evaluate(self) -> Any:
        return jax.jit(lambda params, states: evaluate(self.network, self.game, params, states))

    def policy(self, states: State) -> jax.Array:
        """The network's move probabilities, illegal moves zeroed. float32 [B, A]."""
        logits, _ = self._evaluate(self.params, states)
        return jax.nn.softmax(logits, axis=-1) * states.legal_action_mask

    def value(self, states: State) -> jax.Array:
        """Predicted outcome for every player **by seat** (player 0 first). float32 [B, N]."""
        _, relative = self._evaluate(self.params, states)
        num_players = self.game.num_players
        # relative[:, k] is the value of the player k seats after the mover.
        offsets = (jnp.arange(num_players)[None, :] - states.current_player[:, None]) % num_players
        return jnp.take_along_axis(relative, offsets, axis=1)

    @functools.lru_cache(maxsize=8)  # noqa: B019 - one compiled search per simulation count
    def _act_fn(self, num_simulations: int) -> Any:
        if num_simulations == 0:
            return jax.jit(lambda params, key, states: jnp.argmax(
                evaluate(self.network, self.game, params, states)[0], axis=-1
            ).astype(jnp.int32))  # fmt: skip
        search = search_from_config(
            self.game, self.network, self.search_config, num_simulations=num_simulations
        )
        return jax.jit(lambda params, key, states: greedy_action(search(params, key, states)))

    def act(self, states: State, key: jax.Array, num_simulations: int | None = None) -> jax.Array:
        """Greedy moves int32 [B]: search's choice without its noise
        (:func:`rlloop.search.greedy_action`) with ``num_simulations`` (default: the run's),
        or the raw policy's argmax when 0."""
        count = int(self.search_config.num_simulations if num_simulations is None else num_simulations)
        if count < 0:
            raise ValueError(f"num_simulations must be >= 0, got {count}")
        return self._act_fn(count)(self.params, key, states)


def load_config(run_dir: str | Path, lineage: str | None = None) -> DictConfig:
    """The config a run was started with, on today's schema (keys added since the run was
    made take their defaults): the run's (``<run>/config.yaml``) or, with ``lineage``, that
    lineage's full config (``<run>/lineages/<lineage>/config.yaml``)."""
    run = RunDir(run_dir)
    if not run.config.is_file():
        raise FileNotFoundError(
            f"{Path(run_dir)} is not an rlloop run directory: it has no config.yaml"
        )
    path = run.config
    if lineage is not None and run.lineage(lineage).config.is_file():
        path = run.lineage(lineage).config
    return OmegaConf.merge(OmegaConf.structured(Config), OmegaConf.load(path))


def run_lineages(run_dir: str | Path) -> list[str]:
    """The lineages (game configurations) of a run, in its config's order."""
    config = load_config(run_dir)
    names = list(config.schedule.configurations) or [str(config.game.name)]
    return [str(name) for name in names]


def resolve_lineage(run_dir: str | Path, lineage: str | None = None) -> str:
    """``lineage``, checked against the run's; None picks a run's only lineage. Raises
    ValueError naming the run's lineages when it is unknown or the run has several."""
    names = run_lineages(run_dir)
    if lineage is None:
        if len(names) > 1:
            raise ValueError(
                f"run {run_dir} improves several configurations ({', '.join(names)}): name one "
                "(lineage=NAME, or RUN#NAME on the command line)"
            )
        return names[0]
    if lineage not in names:
        raise ValueError(f"run {run_dir} has no lineage {lineage!r}; it has {', '.join(names)}")
    return lineage


def load_agent(
    run_dir: str | Path, *, step: int | None = None, which: str = "auto", lineage: str | None = None
) -> Agent:
    """The agent of run ``run_dir`` (of its ``lineage``: needed when the run improves several
    configurations).

    ``which``: ``"champion"`` (the ledger's champion, or the champion checkpoint ``step``),
    ``"latest"`` (the newest training checkpoint, or ``step``), or ``"auto"``: the champion
    when the run gates its models (``gate.enabled``) and no ``step`` is given, else the latest.

    Raises:
      FileNotFoundError: ``run_dir`` is not a run, or it has no such checkpoint yet.
      ValueError: an unknown ``which`` or lineage.
    """
    if which not in ("auto", "champion", "latest"):
        raise ValueError(f"which={which!r}; valid: auto, champion, latest")
    run_dir = Path(run_dir)
    name = resolve_lineage(run_dir, lineage)
    paths = RunDir(run_dir).lineage(name)
    config = load_config(run_dir, name)
    game = games.make(config.game.name)
    network = network_from_config(game, config.model)
    # Restore onto this process's first device whatever the saving run's topology was.
    device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])

    def on_device(tree: Any) -> Any:
        return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=device), tree)

    params_shape = jax.eval_shape(lambda: init_params(network, game, jax.random.key(0)))
    if which == "auto":
        which = "champion" if config.gate.enabled and step is None else "latest"
    if which == "champion":
        manager: Any = ChampionCheckpoints(paths.champion_checkpoints)
        try:
            if step is None:
                chosen = int(_champion(run_dir, name).split("/")[-1])
            elif step in manager.steps():
                chosen = step
            else:
                raise FileNotFoundError(
                    f"run {run_dir} has no champion checkpoint {step}; it has {manager.steps()}"
                )
            items, _ = manager.restore(chosen, {"params": on_device(params_shape)})
        finally:
            manager.close()
        return Agent(game, network, items["params"], config.search)
    train_shape = jax.eval_shape(lambda: init_train_state(
        init_params(network, game, jax.random.key(0)), make_optimizer(config.train)
    ))  # fmt: skip
    manager = TrainCheckpoints(paths.train_checkpoints, keep=10**6)
    try:
        chosen = step if step is not None else manager.latest_step()
        if chosen is None:
            raise FileNotFoundError(f"run {run_dir} has no training checkpoint yet")
        items, _ = manager.restore(chosen, {"state": on_device(train_shape)})
    finally:
        manager.close()
    return Agent(game, network, items["state"].params, config.search)


def champion_steps(run_dir: str | Path, lineage: str | None = None) -> list[int]:
    """Steps (iterations) of the champion checkpoints a run (lineage) keeps, oldest first."""
    directory = RunDir(run_dir).lineage(resolve_lineage(run_dir, lineage)).champion_checkpoints
    if not directory.is_dir():
        return []
    manager = ChampionCheckpoints(directory)
    try:
        return sorted(manager.steps())
    finally:
        manager.close()


def _champion(run_dir: Path, lineage: str) -> str:
    """The champion's checkpoint path (``champions/<step>``) from the run's ledger."""
    path = RunDir(run_dir).ledger
    if not path.is_file():
        raise FileNotFoundError(f"run {run_dir} has no ledger.sqlite, so no champion")
    with Ledger(path, readonly=True) as ledger:
        champion = ledger.champion(lineage)
    if champion is None or not champion.checkpoint:
        raise FileNotFoundError(f"run {run_dir} has no champion with a checkpoint yet")
    return champion.checkpoint
