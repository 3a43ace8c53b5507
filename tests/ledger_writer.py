"""Helper for tests/test_ledger.py: writes to a ledger in a loop until it is killed.

Usage: ``python tests/ledger_writer.py LEDGER TAG``. After each write commits it prints
``<kind> <id>`` and flushes, so every line the parent has read names a committed row.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Importable without installing rlloop; `import rlloop` is lazy, so this does not load JAX.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rlloop.ledger import Ledger


def main() -> None:
    """Loop: add a candidate, record a match against the champion, promote; print each id."""
    path, tag = sys.argv[1], sys.argv[2]
    with Ledger(path) as ledger:
        champion = ledger.champion()
        parent = champion.id if champion else None
        step = 0
        print("ready", flush=True)
        while True:
            model_id = f"{tag}-{step}"
            ledger.add_model(model_id, parent=parent, iteration=step, status="candidate")
            print(f"model {model_id}", flush=True)
            match_id = ledger.record_match(
                model_id, parent or "random", 6, 2, 2, stage="screen", iteration=step
            )
            print(f"match {match_id}", flush=True)
            promotion_id = ledger.promote(
                model_id, iteration=step, score=0.7, score_low=0.56, score_high=0.8
            )
            print(f"promotion {promotion_id} {model_id}", flush=True)
            ledger.record_iteration(step, {"step": step})
            parent = model_id
            step += 1


if __name__ == "__main__":
    main()
