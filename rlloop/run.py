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


if __name__ == "__main__":
    main()
