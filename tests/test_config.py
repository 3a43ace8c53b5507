"""Every config file composes and validates; bad input fails with a message that names it."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra.errors import HydraException
from omegaconf import OmegaConf

import rlloop
from rlloop.config import CONF_DIR


def _options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))


@pytest.mark.parametrize(
    "override",
    [f"{group}={name}" for group in ("game", "model", "search", "train", "loop") for name in _options(group)]
    + [f"+hardware={name}" for name in _options("hardware")]
    + [f"+experiment={name}" for name in _options("experiment")],
)
def test_every_config_file_composes(override: str) -> None:
    config = rlloop.compose([override])
    OmegaConf.to_container(config, resolve=True)  # every interpolation resolves
    if override.startswith("+hardware="):
        assert config.hardware.name == override.split("=", 1)[1]


@pytest.mark.parametrize("name", _options("launcher"))
def test_every_launcher_composes(name: str) -> None:
    """``+launcher=NAME`` selects a Hydra launcher plugin (the ``cluster`` extra)."""
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher", reason="pip install 'rlloop[cluster]'")
    from hydra import compose, initialize_config_dir

    rlloop.config.register_schemas()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        config = compose("config", overrides=[f"+launcher={name}", "+hardware=pod"], return_hydra_config=True)
    assert config.hydra.runtime.choices["hydra/launcher"] == f"submitit_{name}"
    assert config.hydra.launcher.tasks_per_node == 1  # one process per machine
    assert config.hydra.launcher._target_.endswith("SlurmLauncher")
    rlloop.config.validate(config)


def test_hardware_is_appended_not_defaulted() -> None:
    assert "hardware" not in (CONF_DIR / "config.yaml").read_text().split("defaults:")[1].split("\n\n")[0]
    with pytest.raises(HydraException, match=r"\+hardware=zeus"):
        rlloop.compose(["hardware=zeus"])
    zeus = rlloop.compose(["+hardware=zeus"])
    assert zeus.hardware.name == "zeus" and zeus.search.num_simulations == 128


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("model.chanels=3", "model.chanels"),
        ("search.algorithm=best", r"expected one of \[gumbel, puct\]"),
        ("model.channels=wide", "model.channels"),
        ("game=chess", "Available options in 'game'"),
        ("train.optimizer=lion", r"expected one of \[adamw, sgd\]"),
        ("search.multiplayer=maxm", r"expected one of \[paranoid, maxn\]"),
    ],
)
def test_bad_keys_and_types_are_named(override: str, expected: str) -> None:
    with pytest.raises(HydraException, match=expected):
        rlloop.compose([override])


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("game.name=chess", "game.name='chess' is not a registered game; valid: connect4"),
        ("search.num_simulations=0", "search.num_simulations=0 must be > 0"),
        ("model.architecture=transformer", "valid: resnet, mlp"),
        ("hardware.memory_fraction=1.5", "hardware.memory_fraction=1.5"),
        ("train.min_replay_size=10", None),
        ("hardware.init_timeout_seconds=0", "hardware.init_timeout_seconds=0.0 must be > 0"),
        ("hardware.process_id=-1", r"hardware.process_id=-1 must be >= 0"),
        ("hardware.num_processes=0", r"hardware.num_processes=0 must be >= 1"),
        ("hardware.process_id=2", None),  # the count may come from the environment
    ],
)
def test_bad_values_are_named(override: str, expected: str | None) -> None:
    if expected is None:
        rlloop.compose([override])  # in range: accepted
        return
    with pytest.raises(ValueError, match=expected):
        rlloop.compose([override])


def test_maxn_search_needs_gumbel() -> None:
    assert rlloop.compose(["search.multiplayer=maxn"]).search.multiplayer.value == "maxn"
    with pytest.raises(ValueError, match=r"search\.multiplayer=maxn needs search\.algorithm=gumbel"):
        rlloop.compose(["search=puct", "search.multiplayer=maxn"])


def test_config_dir_is_the_repository_conf() -> None:
    assert Path(CONF_DIR, "config.yaml").is_file()
