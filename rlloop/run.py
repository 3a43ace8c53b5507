"""``python -m rlloop.run``: the self-play loop as a Hydra application.

Examples::

    python -m rlloop.run                                   # Connect Four on the CPU defaults
    python -m rlloop.run +experiment=tictactoe             # learn tic-tac-toe to perfect play
    python -m rlloop.run game=tictactoe loop=smoke         # a few seconds end to end
    python -m rlloop.run +hardware=zeus model=resnet10     # a GPU workstation
    python -m rlloop.run -m search.num_simulations=16,64   # a Hydra multirun sweep

The run writes into Hydra's output directory (``outputs/<date>/<time>``).
"""

from __future__ import annotations

import logging
import sys

import hydra
from omegaconf import DictConfig

from rlloop.config import register_schemas, validate

register_schemas()


@hydra.main(config_path="../conf", config_name="config", version_base="1.3")
def main(config: DictConfig) -> None:
    """Hydra entry point: validate, then run the loop."""
    from rlloop.checkpoints import CheckpointError
    from rlloop.distributed import StartupError
    from rlloop.ledger import LedgerError
    from rlloop.loop import Loop

    # Orbax logs every save at INFO through absl; keep the console for progress lines.
    logging.getLogger("absl").setLevel(logging.WARNING)
    # JAX reports at INFO that it found no TPU on every machine without one.
    logging.getLogger("jax._src.xla_bridge").setLevel(logging.WARNING)

    try:
        validate(config)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    try:
        loop = Loop(config)
    except (CheckpointError, LedgerError, StartupError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    with loop:
        loop.run()


def _other_process_overrides(argv: list[str], environ: dict[str, str]) -> list[str]:
    """Hydra overrides for a process other than 0 of a multi-process run (from the command
    line's ``hardware.*`` values and the environment, as ``rlloop.distributed`` resolves them):
    no ``.hydra/`` files and no job log file, which process 0 writes; its log goes to its
    stdout (the launcher's per-task output)."""
    from rlloop.distributed import StartupError, resolve

    found: dict[str, str] = {}
    for arg in argv:
        key, equals, value = arg.lstrip("+").partition("=")
        if equals and key in ("hardware.coordinator_address", "hardware.num_processes", "hardware.process_id"):
            found[key.split(".", 1)[1]] = value
    try:
        group = resolve(
            coordinator_address=found.get("coordinator_address", ""),
            num_processes=int(found["num_processes"]) if found.get("num_processes", "null") != "null" else None,
            process_id=int(found["process_id"]) if found.get("process_id", "null") != "null" else None,
            environ=environ,
        )  # fmt: skip
    except (StartupError, ValueError):  # the Loop reports it with the whole config
        return []
    if group is None or group.process_id == 0:
        return []
    return ["hydra.output_subdir=null", "hydra/job_logging=stdout"]


if __name__ == "__main__":
    import os

    sys.argv += _other_process_overrides(sys.argv[1:], dict(os.environ))
    main()
