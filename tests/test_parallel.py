"""Self-play and training on several simulated CPU devices match one device.

Self-play: each device's games equal its slice played alone by the one-device program with
the device's key. Training (a gradient all-reduce across devices) equals one device's.

Each configuration runs in its own process (the device count is fixed when JAX starts) with a
hard timeout, so a stalled cross-device collective fails the test instead of hanging it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

WORKER = Path(__file__).with_name("multidevice_worker.py")


def _run(num_devices: int, tmp_path: Path) -> dict[str, np.ndarray]:
    out = tmp_path / f"devices{num_devices}.npz"
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    env.pop("XLA_FLAGS", None)
    try:
        result = subprocess.run(
            [sys.executable, str(WORKER), str(num_devices), str(out)],
            capture_output=True, text=True, timeout=240, env=env,
        )  # fmt: skip
    except subprocess.TimeoutExpired as error:
        pytest.fail(f"{num_devices}-device run hung for {error.timeout}s (collective stall?)")
    assert result.returncode == 0, result.stderr[-3000:]
    with np.load(out) as data:
        return dict(data)


@pytest.mark.long
def test_two_devices_match_one(tmp_path: Path) -> None:
    one, two = _run(1, tmp_path), _run(2, tmp_path)
    for run in (one, two):
        np.testing.assert_array_equal(run["player"], run["reference_player"])
        np.testing.assert_array_equal(run["done"], run["reference_done"])
        np.testing.assert_allclose(run["policy"], run["reference_policy"], atol=1e-5)
        np.testing.assert_array_equal(run["policy_actions"], run["reference_policy_actions"])
    # The two devices play different games from each other (their keys differ).
    assert not np.allclose(two["policy"][:, :8], two["policy"][:, 8:])
    np.testing.assert_allclose(one["loss"], two["loss"], rtol=1e-5)
    params = sorted(k for k in one if k.startswith("param"))
    assert params
    for name in params:
        np.testing.assert_allclose(one[name], two[name], rtol=1e-4, atol=1e-6)
