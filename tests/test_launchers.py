"""The SLURM path as far as it goes without a cluster: ``python -m rlloop.run -m +launcher=slurm``
builds its sbatch submission through Hydra's submitit launcher; a stand-in ``sbatch`` keeps
the script and refuses the job, and the test reads what a cluster would have been given.

Needs the ``cluster`` extra (``pip install 'rlloop[cluster]'``); skipped without it.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("hydra_plugins.hydra_submitit_launcher", reason="pip install 'rlloop[cluster]'")

REPO = Path(__file__).resolve().parent.parent
SBATCH = """#!/bin/sh
cp "$1" "$RECORD/submission.sh"
echo "sbatch: error: no cluster here (rlloop test stand-in)" >&2
exit 1
"""


def test_slurm_submission_runs_one_task_per_node_through_srun(tmp_path: Path) -> None:
    bin_dir, record, sweep = tmp_path / "bin", tmp_path / "record", tmp_path / "sweep"
    bin_dir.mkdir()
    record.mkdir()
    for name, text in (("sbatch", SBATCH), ("srun", "#!/bin/sh\nexit 1\n")):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "RECORD": str(record)}
    command = [
        sys.executable, "-m", "rlloop.run", "-m", "+launcher=slurm", "+hardware=pod",
        "hydra.launcher.nodes=4", "hydra.launcher.partition=gpu", "hydra.launcher.gpus_per_node=8",
        f"hydra.sweep.dir={sweep}", "game=tictactoe", "loop=smoke",
    ]  # fmt: skip
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode != 0 and "no cluster here" in result.stderr, result.stderr[-3000:]
    script = (record / "submission.sh").read_text()
    flags = {line.split("=", 1)[0]: line.split("=", 1)[1] for line in script.splitlines()
             if line.startswith("#SBATCH --") and "=" in line}  # fmt: skip
    assert flags["#SBATCH --nodes"] == "4"
    assert flags["#SBATCH --ntasks-per-node"] == "1"  # one process per machine
    assert flags["#SBATCH --partition"] == "gpu"
    assert flags["#SBATCH --gpus-per-node"] == "8"
    assert flags["#SBATCH --time"] == "1440"
    # Every task runs the pickled Hydra job under srun, which sets the SLURM_* start-up variables.
    run_line = next(line for line in script.splitlines() if line.startswith("srun "))
    assert "submitit.core._submit" in run_line and sys.executable in run_line
    # The job each task unpickles: rlloop's Hydra job with the command line's overrides.
    (pickled,) = sweep.glob(".submitit/*.pkl")
    with pickled.open("rb") as handle:
        job = pickle.load(handle)
    overrides = job.args[0]
    assert {"+hardware=pod", "game=tictactoe", "loop=smoke"} <= set(overrides), overrides
    assert job.function.task_function.__name__ == "main"  # rlloop.run's, run as __main__
    assert job.function.config.hydra.launcher.nodes == 4
