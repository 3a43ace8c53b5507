"""Start one process of a multi-process run through rlloop's start-up; print what it sees.

Used by tests/test_distributed.py in subprocesses: ``python distributed_worker.py TIMEOUT``.
The process group comes from the environment the test sets (SLURM's or RLLOOP_*), the rest
from ``conf/hardware/pod.yaml`` on one CPU device. Prints one JSON line: the process index and
count, global and local device counts, every process's id gathered over gloo, and the seconds
the start-up took; a StartupError prints ``startup-error: <message>`` and exits 3.
"""

from __future__ import annotations

import json
import logging
import sys
import time

from omegaconf import OmegaConf

from rlloop.config import CONF_DIR, HardwareConfig


def main() -> None:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    pod = OmegaConf.load(CONF_DIR / "hardware" / "pod.yaml").hardware
    hardware = OmegaConf.merge(OmegaConf.structured(HardwareConfig), pod)
    hardware.platform, hardware.num_cpu_devices, hardware.compilation_cache = "cpu", 1, False
    hardware.init_timeout_seconds = float(sys.argv[1])
    from rlloop import distributed, parallel

    start = time.monotonic()
    try:
        parallel.configure_jax(hardware)
    except distributed.StartupError as error:
        print(f"startup-error: {error}", flush=True)
        print(json.dumps({"seconds": time.monotonic() - start}), flush=True)
        sys.exit(3)
    seconds = time.monotonic() - start
    import jax
    import numpy as np
    from jax.experimental import multihost_utils

    gathered = multihost_utils.process_allgather(np.array([jax.process_index()], np.int32))
    print(json.dumps({
        "process_index": jax.process_index(), "process_count": jax.process_count(),
        "device_count": jax.device_count(), "local_device_count": jax.local_device_count(),
        "gathered": np.asarray(gathered).ravel().tolist(), "seconds": seconds,
    }), flush=True)  # fmt: skip
    jax.distributed.shutdown()


if __name__ == "__main__":
    main()
