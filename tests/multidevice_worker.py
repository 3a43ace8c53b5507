"""Run one self-play chunk and one training call on N virtual CPU devices; save the results.

Used by tests/test_parallel.py in a subprocess: ``python multidevice_worker.py N OUT.npz``.
Self-play runs one program per device (``parallel.jit_selfplay``): device ``d`` plays its slice
of the games with key ``fold_in(key, d)``, so the worker also plays each slice with the plain
one-device program (``reference_*``) to compare. Training runs on batches built from those
reference games, the same for every N, so its results must match across N.
"""

from __future__ import annotations

import sys

import jax
import numpy as np

import rlloop


def main() -> None:
    num_devices, out = int(sys.argv[1]), sys.argv[2]
    config = rlloop.compose(
        [
            "game=connect4",
            "loop=smoke",
            "loop.tensorboard=false",
            "search.num_simulations=8",
            "train.batch_size=32",
            "train.steps_per_iteration=4",
            "train.min_replay_size=1",
            f"hardware.num_cpu_devices={num_devices}",
            f"hardware.games_per_device={16 // num_devices}",
            "hardware.compilation_cache=false",
            "perfect_play.enabled=false",  # not under test here
        ]
    )
    loop = rlloop.Loop(config, run_dir=out + ".run")
    assert loop.num_devices == num_devices, (loop.num_devices, jax.devices())
    lineage = loop.lineage
    assert len(lineage.states.current_player.sharding.device_set) == num_devices
    key = jax.random.key(42)
    states = jax.device_get(lineage.states)
    lineage.states, chunk = lineage.programs.play(lineage.params, lineage.states, key)
    chunk = jax.device_get(chunk)
    local = jax.jit(lineage.programs.play_local)  # the one-device program, on one device

    def played_in_slices(count: int) -> dict[str, np.ndarray]:
        """The 16 games split into ``count`` slices, slice d played alone with fold_in(key, d)."""
        size = 16 // count
        parts = [
            jax.device_get(local(
                lineage.params, jax.tree.map(lambda x, d=d: x[d * size:(d + 1) * size], states),
                jax.random.fold_in(key, d),
            )[1])
            for d in range(count)
        ]  # fmt: skip
        return {k: np.concatenate([p[k] for p in parts], axis=1) for k in parts[0]}

    reference = played_in_slices(num_devices)
    # Training batches that do not depend on N: the games of a 2-way split.
    train_chunk = reference if num_devices == 2 else played_in_slices(2)
    batches = {
        "observation": train_chunk["observation"][:4, :8].reshape(4, 8, 6, 7, 2).repeat(4, axis=1),
        "policy_actions": train_chunk["policy_actions"][:4, :8].repeat(4, axis=1),
        "policy_weights": train_chunk["policy_weights"][:4, :8].repeat(4, axis=1),
        "value": np.zeros((4, 32, 2), np.float32),
    }
    from rlloop import parallel

    state, on_device = lineage.train_state, parallel.put_batch(batches, loop.mesh, axis=1)
    losses = []
    for index in range(4):
        state, metrics = lineage.programs.train_step(state, on_device, np.int32(index), jax.random.key(index))
        losses.append(metrics["loss"])
    leaves = jax.tree.leaves(jax.device_get(state.params))
    np.savez(
        out,
        policy=chunk["policy_weights"],
        policy_actions=chunk["policy_actions"],
        player=chunk["player"],
        done=chunk["done"],
        reference_policy=reference["policy_weights"],
        reference_policy_actions=reference["policy_actions"],
        reference_player=reference["player"],
        reference_done=reference["done"],
        loss=np.asarray(jax.device_get(losses)),
        **{f"param{i}": leaf for i, leaf in enumerate(leaves)},
    )


if __name__ == "__main__":
    main()
