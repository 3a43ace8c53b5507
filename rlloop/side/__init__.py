"""Side trainers: LightGBM tree models fitted on the host CPUs while the device loop runs.

Modules (JAX-free unless noted; the worker processes import only the JAX-free ones):

- :mod:`rlloop.side.jobs`: ``SideSnapshot``, ``SideJob``, ``SideResult`` (with its ledger
  payload), ``TrainerSettings``, ``model_jobs``, the model files' names;
- :mod:`rlloop.side.pool`: ``SidePool``, spawn-started worker processes with
  ``submit`` / ``poll`` / ``close``, timeouts, restarts and telemetry;
- :mod:`rlloop.side.worker`: a worker process's body;
- :mod:`rlloop.side.trainers`: the value and move models, k-fold and holdout metrics;
- :mod:`rlloop.side.calibration`: reliability curves, expected calibration error, the PNG;
- :mod:`rlloop.side.snapshot` (JAX): replay samples -> features, in the parent;
- :mod:`rlloop.side.player` (JAX): the tree-model player for the arena.

Nothing is imported here, so ``import rlloop.side.pool`` stays light.
"""
