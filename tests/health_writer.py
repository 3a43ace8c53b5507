"""Helper for tests/test_health.py: rewrites a run's learning health until it is killed.

Usage: ``python tests/health_writer.py RUN_DIR``. Prints ``ready`` once the first document is
written, then rewrites it as fast as it can (each time a little bigger than the last).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rlloop.health import LearningHealth
from rlloop.ledger import Ledger


def main() -> None:
    run_dir = Path(sys.argv[1])
    health = LearningHealth(run_dir)
    with Ledger(run_dir / "ledger.sqlite") as ledger:
        iteration = 0
        while True:
            iteration += 1
            names = [f"config{i}" for i in range(1 + iteration % 40)]  # documents of many sizes
            for name in names:
                health.record(name, {"games_this_iteration": iteration, "train_steps": 2, "train_seconds": 0.1})
            facts = {"champion": "", "replay": iteration, "capacity": 1000, "batch_size": 8,
                     "samples_added": 10 * iteration, "samples_trained": 16 * iteration}  # fmt: skip
            health.write(iteration, seconds=0.5, ledger=ledger, lineages=dict.fromkeys(names, facts))
            if iteration == 1:
                print("ready", flush=True)


if __name__ == "__main__":
    main()
