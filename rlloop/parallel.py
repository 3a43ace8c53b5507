"""Devices, the mesh and shardings; JAX process-level setup.

One ``Mesh`` over all devices with a single axis ``data``: game states, keys and training
batches are split along their batch axis, parameters and optimiser state are replicated.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from rlloop import distributed

log = logging.getLogger(__name__)
DATA_AXIS = "data"
DEFAULT_CACHE_DIR = Path(os.environ.get("RLLOOP_CACHE_DIR", Path.home() / ".cache" / "rlloop" / "xla"))


def _backends_initialized() -> bool:
    from jax._src import xla_bridge

    return bool(getattr(xla_bridge, "_backends", {}))


def configure_jax(hardware: Any, *, cache_dir: str | Path | None = None, game: str = "") -> None:
    """Process-level JAX setup from a ``hardware`` config node. Call before any JAX work.

    - ``num_cpu_devices`` virtual XLA host devices (one per core measured best on CPU);
    - the persistent compilation cache (compiles once per config across runs);
    - GPU memory fraction;
    - ``jax.distributed.initialize`` when the config or the environment asks for several
      processes (``rlloop.distributed``: which source wins, the bounded wait).

    If JAX's backends are already up (e.g. a notebook ran JAX first), device settings cannot
    change any more; this logs a warning and leaves them, and a multi-process start-up raises
    ``distributed.StartupError`` (unless ``jax.distributed`` is already initialised).
    """
    group = distributed.from_hardware(hardware)  # first: a missing value fails before any work
    if hardware.memory_fraction:
        os.environ.setdefault("XLA_PYTHON_CLIENT_MEM_FRACTION", str(hardware.memory_fraction))
    cache = bool(hardware.compilation_cache)
    multi_cpu = int(hardware.num_cpu_devices or 0) > 1 and hardware.platform in ("cpu", "auto")
    if cache and multi_cpu and game.startswith("ringrift"):
        # Measured (jax 0.10.2, XLA:CPU): a RingRift self-play program sharded over two
        # virtual host devices and loaded from the persistent cache deadlocked in its first
        # call every time (the two device threads waited in different collectives; XLA
        # aborts after 40 s), while the same program compiled afresh ran for 20 minutes.
        # Connect Four and tic-tac-toe programs have been loaded from it for two sessions
        # of test runs without a problem, and their compiles dominate the test suite's time.
        log.info("persistent compilation cache off: %s on %d virtual CPU devices",
                 game, int(hardware.num_cpu_devices))  # fmt: skip
        cache = False
    if cache:
        directory = Path(cache_dir) if cache_dir is not None else DEFAULT_CACHE_DIR
        directory.mkdir(parents=True, exist_ok=True)
        jax.config.update("jax_compilation_cache_dir", str(directory))
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
    if _backends_initialized():
        if group is not None and not jax.distributed.is_initialized():
            raise distributed.StartupError(
                f"jax.distributed must start before any JAX work, but JAX's backends are already "
                f"up in this process (process {group.process_id} of {group.num_processes}, "
                f"coordinator {group.coordinator_address}): configure in a fresh process"
            )
        if hardware.num_cpu_devices and len(jax.devices("cpu")) != hardware.num_cpu_devices:
            log.warning(
                "JAX is already initialised with %d CPU device(s); hardware.num_cpu_devices=%d "
                "applies only in a fresh process",
                len(jax.devices("cpu")), hardware.num_cpu_devices,
            )  # fmt: skip
        return
    if hardware.num_cpu_devices:
        jax.config.update("jax_num_cpu_devices", int(hardware.num_cpu_devices))
    if hardware.platform in ("cpu", "gpu", "tpu"):
        jax.config.update("jax_platforms", {"gpu": "cuda,cpu", "tpu": "tpu,cpu"}.get(hardware.platform, "cpu"))
    if group is not None:
        distributed.initialize(group)


def devices_for(platform: str = "auto") -> list[jax.Device]:
    """All (global) devices of ``platform``; ``auto`` means JAX's default backend."""
    return jax.devices() if platform == "auto" else jax.devices(platform if platform != "gpu" else "gpu")


def make_mesh(devices: list[jax.Device] | None = None) -> Mesh:
    """A 1-D mesh with axis ``data`` over ``devices`` (default: all devices)."""
    devices = devices if devices is not None else jax.devices()
    return Mesh(np.asarray(devices), (DATA_AXIS,))


def batch_sharding(mesh: Mesh, *, axis: int = 0) -> NamedSharding:
    """Sharding that splits dimension ``axis`` over ``data`` and replicates the rest."""
    return NamedSharding(mesh, PartitionSpec(*([None] * axis), DATA_AXIS))


def replicated(mesh: Mesh) -> NamedSharding:
    """Sharding that keeps a full copy on every device."""
    return NamedSharding(mesh, PartitionSpec())


def jit_selfplay(play: Any, mesh: Mesh, *, against: bool = False) -> Any:
    """``play(params, states[B], key) -> (states[B], chunk[T, B])`` jitted over ``mesh``, one
    independent program per device (``shard_map``): each device plays its own games with its
    own key (``key`` folded with the device's index) and never talks to the others.

    ``against``: ``play(params, opponent, states[B], seats[B], key) -> (states, seats,
    chunk)`` instead (``selfplay.make_selfplay_against``; the opponent replicated, seats
    split like the games).

    Plain ``jit`` with batch shardings lets XLA's SPMD partitioner split the vmapped program;
    for search and rules engines it inserted all-gathers and all-reduces inside the while
    loops (48 in RingRift's chunk: every loop condition, the top-k, gathers and scatters),
    which kept two CPU devices in lock step at ~1.2x one device's throughput.
    """
    games, chunk, whole = PartitionSpec(DATA_AXIS), PartitionSpec(None, DATA_AXIS), PartitionSpec()

    def local(*args: Any) -> Any:
        *rest, key = args
        return play(*rest, jax.random.fold_in(key, jax.lax.axis_index(DATA_AXIS)))

    # Arguments: params, [opponent,] states, [seats,] key; results: states, [seats,] chunk.
    in_specs = (whole, whole, games, games, whole) if against else (whole, games, whole)
    out_specs = (games, games, chunk) if against else (games, chunk)
    mapped = jax.shard_map(local, mesh=mesh, in_specs=in_specs, out_specs=out_specs, check_vma=False)
    shardings = {whole: replicated(mesh), games: batch_sharding(mesh), chunk: batch_sharding(mesh, axis=1)}
    return jax.jit(
        mapped,
        in_shardings=tuple(shardings[spec] for spec in in_specs),
        out_shardings=tuple(shardings[spec] for spec in out_specs),
    )


def put_batch(tree: Any, mesh: Mesh, *, axis: int = 0) -> Any:
    """Place every leaf of ``tree`` split along ``axis`` on ``data``."""
    return jax.device_put(tree, batch_sharding(mesh, axis=axis))


def put_replicated(tree: Any, mesh: Mesh) -> Any:
    """Place a full copy of ``tree`` on every device of ``mesh``."""
    return jax.device_put(tree, replicated(mesh))


# ---------------------------------------------------------------------- several processes
# A run over several processes (``jax.distributed``) has one global mesh; each process holds
# the shards of its own devices. Control flow must be the same in every process (every
# jitted call over the mesh is a collective), so every decision that reads host state (the
# ledger, the clock, memory) is taken by process 0 and shared (:func:`agree`), and every count
# that differs by process (samples added, games finished) is summed (:func:`global_sum`).
# With one process each helper is the plain local operation, with no communication.


def process_count() -> int:
    return jax.process_count()


def agree(decide: Any) -> Any:
    """``decide()`` evaluated by process 0 and returned in every process (one broadcast of its
    JSON text); other processes do not call it. With one process: ``decide()``."""
    if jax.process_count() == 1:
        return decide()
    import json

    from jax.experimental import multihost_utils

    text = json.dumps(decide()).encode() if jax.process_index() == 0 else b""
    size = int(multihost_utils.broadcast_one_to_all(np.array(len(text), np.int64)))
    data = np.zeros(size, np.uint8)
    if jax.process_index() == 0:
        data[:] = np.frombuffer(text, np.uint8)
    data = np.asarray(multihost_utils.broadcast_one_to_all(data))
    return json.loads(data.tobytes().decode())


def gather(value: Any) -> list[Any]:
    """Every process's JSON-able ``value``, in process order (an all-gather of JSON text)."""
    if jax.process_count() == 1:
        return [value]
    import json

    from jax.experimental import multihost_utils

    text = np.frombuffer(json.dumps(value).encode(), np.uint8)
    sizes = np.asarray(multihost_utils.process_allgather(np.array(text.size, np.int64))).ravel()
    padded = np.zeros(int(sizes.max()), np.uint8)
    padded[: text.size] = text
    rows = np.asarray(multihost_utils.process_allgather(padded)).reshape(len(sizes), -1)
    return [json.loads(row[:size].tobytes().decode()) for row, size in zip(rows, sizes, strict=True)]


def global_sum(values: Any) -> np.ndarray:
    """The element-wise sum over processes of a numeric array (float64)."""
    local = np.asarray(values, dtype=np.float64)
    if jax.process_count() == 1:
        return local
    from jax.experimental import multihost_utils

    # As bytes: without jax_enable_x64 JAX would carry float64 as float32 (counts past 2**24
    # would round).
    raw = np.asarray(multihost_utils.process_allgather(np.ascontiguousarray(local).reshape(-1).view(np.uint8)))
    return raw.reshape(jax.process_count(), -1).view(np.float64).reshape(-1, *local.shape).sum(axis=0)


def local_positions(mesh: Mesh) -> list[int]:
    """Positions on the ``data`` axis of this process's devices, in order (their shards of a
    batch are the local rows, :func:`local_rows`)."""
    return [index for index, device in enumerate(mesh.devices.flat) if device.process_index == jax.process_index()]


def local_rows(tree: Any, *, axis: int = 0) -> Any:
    """The rows of every leaf of ``tree`` (arrays split along ``axis`` over ``data``) that this
    process's devices hold, concatenated in order, as numpy: the whole array with one process."""

    def rows(x: Any) -> np.ndarray:
        if jax.process_count() == 1 or not isinstance(x, jax.Array):
            return np.asarray(jax.device_get(x))
        shards = sorted(x.addressable_shards, key=lambda shard: shard.index[axis].start or 0)
        return np.concatenate([np.asarray(shard.data) for shard in shards], axis=axis)

    return jax.tree.map(rows, tree)


def put_local_batch(tree: Any, mesh: Mesh, *, axis: int = 0) -> Any:
    """Every leaf of ``tree`` (this process's rows, :func:`local_rows`) as one global array
    split along ``axis`` over ``data``; with one process the same as :func:`put_batch`."""
    if jax.process_count() == 1:
        return put_batch(tree, mesh, axis=axis)
    sharding = batch_sharding(mesh, axis=axis)
    return jax.tree.map(lambda x: jax.make_array_from_process_local_data(sharding, np.asarray(x)), tree)


def local_copy(tree: Any) -> Any:
    """A copy of replicated ``tree`` on this process's first device (programs that run on one
    device, like the arena's, take it without joining the mesh)."""
    device = jax.local_devices()[0]

    def copy(x: Any) -> Any:
        if isinstance(x, jax.Array) and not x.is_fully_addressable:
            return jax.device_put(x.addressable_data(0), device)
        return jax.device_put(x, device) if isinstance(x, jax.Array) else x

    return jax.tree.map(copy, tree)


def fingerprint(tree: Any) -> str:
    """A SHA-256 of this process's copy of replicated ``tree`` (every leaf's bytes, in order)."""
    import hashlib

    digest = hashlib.sha256()
    for leaf in jax.tree.leaves(tree):
        local = leaf.addressable_data(0) if isinstance(leaf, jax.Array) else leaf
        digest.update(np.ascontiguousarray(np.asarray(local)).tobytes())
    return digest.hexdigest()
