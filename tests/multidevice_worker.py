"""Run one self-play chunk and one training call on N virtual CPU devices; save the results.

Used by tests/test_parallel.py in a subprocess: ``python multidevice_worker.py N OUT.npz``.
The total batch is the same for every N, so the results must match across N.
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
    assert len(loop.states.current_player.sharding.device_set) == num_devices
    loop.states, chunk = loop._play(loop.params, loop.states, jax.random.key(42))
    chunk = jax.device_get(chunk)
    batches = {
        "observation": chunk["observation"][:4, :8].reshape(4, 8, 6, 7, 2).repeat(4, axis=1),
        "policy": chunk["improved_policy"][:4, :8].repeat(4, axis=1),
        "value": np.zeros((4, 32, 2), np.float32),
    }
    from rlloop import parallel

    state, on_device = loop.train_state, parallel.put_batch(batches, loop.mesh, axis=1)
    losses = []
    for index in range(4):
        state, metrics = loop._train_step(state, on_device, np.int32(index), jax.random.key(index))
        losses.append(metrics["loss"])
    leaves = jax.tree.leaves(jax.device_get(state.params))
    np.savez(
        out,
        policy=chunk["improved_policy"],
        player=chunk["player"],
        done=chunk["done"],
        loss=np.asarray(jax.device_get(losses)),
        **{f"param{i}": leaf for i, leaf in enumerate(leaves)},
    )


if __name__ == "__main__":
    main()
