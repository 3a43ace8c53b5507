"""Replay: joining self-play samples with their games' outcomes, and the replay buffer.

Both live on the host (numpy): the device hands over one chunk at a time.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from rlloop.runs import atomic_savez

log = logging.getLogger(__name__)
Samples = dict[str, np.ndarray]
# A sample's policy target is sparse: the K actions of search's policy and their weights
# (``rlloop.selfplay.sparse_policy``); the train step densifies it on the device.
SAMPLE_FIELDS = ("observation", "policy_actions", "policy_weights", "value")


def sparse_from_dense(policy: np.ndarray, slots: int) -> tuple[np.ndarray, np.ndarray]:
    """Host version of ``rlloop.selfplay.sparse_policy`` for dense targets written before
    targets were sparse (replay and waiting-move files): ``[..., A]`` -> two ``[..., K]``."""
    num_actions = policy.shape[-1]
    if slots >= num_actions:
        actions = np.broadcast_to(np.arange(num_actions, dtype=np.int32), policy.shape).copy()
        return actions, policy.astype(np.float32)
    actions = np.argpartition(-policy, slots - 1, axis=-1)[..., :slots].astype(np.int32)
    return actions, np.take_along_axis(policy, actions, axis=-1).astype(np.float32)


def mover_relative(outcomes: np.ndarray, player: np.ndarray) -> np.ndarray:
    """Rotate per-seat outcomes [..., N] so index 0 is ``player`` [...], index k the k-th next."""
    num_players = outcomes.shape[-1]
    seats = (player[..., None] + np.arange(num_players)) % num_players
    return np.take_along_axis(outcomes, seats, axis=-1)


class PendingGames:
    """Holds each batch slot's moves until its game ends, then labels them with the outcome.

    Self-play chunks are time-major [T, B]; slot ``b`` plays its games one after the other, so
    the moves still waiting for an outcome are, per slot, those after its last finished game.
    At most one unfinished game per slot is held (so at most ``max_steps`` rows).

    Value targets: ``value_lambda`` = 1 (AlphaZero) labels every move with its game's final
    outcome. Below 1 (two-player games only), the mover's target is the TD(lambda) return
    over the game's later moves, bootstrapped from search's root values (``root_value``):
    ``G_t = z`` on the game's last move, else ``G_t = s * ((1 - lambda) * v_{t+1} + lambda *
    G_{t+1})`` with ``s`` = +1 when the same player moves at ``t + 1`` and -1 otherwise; the
    other player's target is ``-G_t``. It trades the outcome's variance (one result for a
    hundred moves) for the search's bias.
    """

    def __init__(
        self, value_lambda: float = 1.0, num_players: int = 2, *, policy_slots: int | None = None
    ) -> None:
        if not 0.0 <= value_lambda <= 1.0:
            raise ValueError(f"value lambda must be in [0, 1], got {value_lambda}")
        if value_lambda < 1.0 and num_players != 2:
            raise ValueError(
                f"TD(lambda) value targets (lambda={value_lambda}) need a two-player game; "
                f"this one has {num_players} players (use lambda = 1)"
            )
        self.value_lambda = float(value_lambda)
        self.policy_slots = policy_slots  # K of dense rows converted on load (None: every action)
        self._rows: dict[str, np.ndarray] | None = None  # time-major [P, B, ...]
        self._waiting: np.ndarray | None = None  # [P, B] bool: row still needs its outcome

    @property
    def num_waiting(self) -> int:
        """Moves held back until their game ends."""
        return 0 if self._waiting is None else int(self._waiting.sum())

    def add(self, chunk: Mapping[str, np.ndarray]) -> Samples:
        """Add a chunk (fields of :class:`rlloop.selfplay.SelfplayChunk` as numpy [T, B, ...]).

        Returns the moves whose games have now ended, flattened to [M, ...]:
        ``observation``, ``policy_actions`` and ``policy_weights`` (search's policy target,
        sparse; all-zero weights for a forced move — one legal action —, which trains the
        value only), ``value`` (outcome per player relative to the mover, [M, N]) and
        ``game_length``.
        """
        fields = ("observation", "policy_actions", "policy_weights", "player", "done",
                  "final_rewards", "game_length", "forced", "root_value")  # fmt: skip
        chunk = self._sparse_rows(chunk)
        incoming = {name: np.asarray(chunk[name]) for name in fields if name in chunk}
        if "forced" not in incoming:
            incoming["forced"] = np.zeros(incoming["done"].shape, dtype=bool)
        if "root_value" not in incoming:
            incoming["root_value"] = np.zeros(incoming["done"].shape, dtype=np.float32)
        incoming_waiting = np.ones(incoming["done"].shape, dtype=bool)
        if self._rows is None:
            rows, waiting = incoming, incoming_waiting
        else:
            rows = {k: np.concatenate([self._rows[k], incoming[k]]) for k in fields}
            waiting = np.concatenate([self._waiting, incoming_waiting])
        length = rows["done"].shape[0]
        times = np.arange(length)[:, None]
        end_time = np.where(rows["done"], times, length)
        # Next end at or after each row: reverse cumulative minimum along time.
        next_end = np.minimum.accumulate(end_time[::-1], axis=0)[::-1]
        resolved = waiting & (next_end < length)
        t_idx, b_idx = np.nonzero(resolved)
        ends = next_end[t_idx, b_idx]
        outcomes = rows["final_rewards"][ends, b_idx]  # [M, N] per seat
        # Forced moves (a single legal action) get no policy target: their one-hot target
        # teaches nothing but a bias towards that action (in RingRift, nearly half of all
        # decisions are forced bookkeeping passes, and the shared PASS logit learnt to skip
        # real choices). They keep their value target: search evaluates such positions too,
        # and a value network never trained on them misled it.
        weights = rows["policy_weights"][t_idx, b_idx]
        weights = np.where(rows["forced"][t_idx, b_idx][:, None], 0.0, weights).astype(np.float32)
        value = mover_relative(outcomes, rows["player"][t_idx, b_idx]).astype(np.float32)
        if self.value_lambda < 1.0:
            returns = self._td_returns(rows, resolved)[t_idx, b_idx]
            value = np.stack([returns, -returns], axis=-1).astype(np.float32)
        samples = {
            "observation": rows["observation"][t_idx, b_idx],
            "policy_actions": rows["policy_actions"][t_idx, b_idx],
            "policy_weights": weights,
            "value": value,
            "game_length": rows["game_length"][ends, b_idx],
        }
        still_waiting = waiting & ~resolved
        if still_waiting.any():
            first = int(np.argmax(still_waiting.any(axis=1)))
            self._rows = {k: v[first:] for k, v in rows.items()}
            self._waiting = still_waiting[first:]
        else:
            self._rows, self._waiting = None, None
        return samples

    def _td_returns(self, rows: Mapping[str, np.ndarray], resolved: np.ndarray) -> np.ndarray:
        """TD(lambda) returns [P, B] from each row's mover's view (see the class doc); only
        rows in ``resolved`` (their game has ended within ``rows``) are meaningful."""
        lam = self.value_lambda
        done, player = rows["done"], rows["player"]
        final = np.take_along_axis(rows["final_rewards"], player[..., None], axis=-1)[..., 0]
        values = rows["root_value"].astype(np.float64)
        returns = np.zeros(done.shape, dtype=np.float64)
        following = np.zeros(done.shape[1], dtype=np.float64)  # G_{t+1}
        for t in range(done.shape[0] - 1, -1, -1):
            if t + 1 < done.shape[0]:
                sign = np.where(player[t + 1] == player[t], 1.0, -1.0)
                bootstrap = sign * ((1.0 - lam) * values[t + 1] + lam * following)
            else:
                bootstrap = np.zeros(done.shape[1])
            returns[t] = np.where(done[t], final[t], bootstrap)
            following = returns[t]
        return np.where(resolved, returns, 0.0)

    def _sparse_rows(self, rows: Mapping[str, np.ndarray]) -> Mapping[str, np.ndarray]:
        """Rows with a dense ``improved_policy`` [.., A] (chunks and saved rows from before
        targets were sparse) get ``policy_actions``/``policy_weights`` instead."""
        if "improved_policy" not in rows:
            return rows
        dense = np.asarray(rows["improved_policy"])
        slots = self.policy_slots or dense.shape[-1]
        actions, weights = sparse_from_dense(dense, slots)
        rest = {k: v for k, v in rows.items() if k != "improved_policy"}
        return {**rest, "policy_actions": actions, "policy_weights": weights}

    def state_dict(self) -> dict[str, np.ndarray]:
        """Arrays to persist the waiting moves with a checkpoint."""
        if self._rows is None:
            return {}
        return {**{f"rows/{k}": v for k, v in self._rows.items()}, "waiting": self._waiting}

    def load_state_dict(self, state: Mapping[str, np.ndarray]) -> None:
        """Restore what :meth:`state_dict` returned."""
        if not state:
            self._rows, self._waiting = None, None
            return
        rows = {k.split("/", 1)[1]: np.asarray(v) for k, v in state.items() if k.startswith("rows/")}
        self._rows = dict(self._sparse_rows(rows))
        if "forced" not in self._rows:  # saved before forced moves were recorded
            self._rows["forced"] = np.zeros(self._rows["done"].shape, dtype=bool)
        if "root_value" not in self._rows:  # saved before root values were kept
            self._rows["root_value"] = np.zeros(self._rows["done"].shape, dtype=np.float32)
        self._waiting = np.asarray(state["waiting"])


def quality_problems(samples: Mapping[str, np.ndarray], *, min_mean_game_length: float) -> list[str]:
    """Why a batch of finished self-play games must not be trained on (empty when it is fine):
    non-finite values, every position identical, or games shorter than the minimum on average."""
    problems = []
    count = len(samples["policy_weights"])
    if count == 0:
        return problems
    for name in SAMPLE_FIELDS:
        bad = int((~np.isfinite(samples[name])).any(axis=tuple(range(1, samples[name].ndim))).sum())
        if bad:
            problems.append(f"{bad} of {count} samples have non-finite {name}")
    if count > 1:
        flat = samples["observation"].reshape(count, -1)
        same_policy = all(np.all(samples[name] == samples[name][0])
                          for name in ("policy_actions", "policy_weights"))  # fmt: skip
        if np.all(flat == flat[0]) and same_policy:
            problems.append(f"all {count} samples are identical (collapsed self-play?)")
    lengths = np.asarray(samples.get("game_length", []))
    if lengths.size and float(lengths.mean()) < min_mean_game_length:
        problems.append(
            f"games average {float(lengths.mean()):.2f} moves, below train.min_mean_game_length="
            f"{min_mean_game_length}"
        )
    return problems


class ReplayBuffer:
    """Fixed-capacity ring buffer of (observation, sparse policy target, value target) samples.

    Args:
      capacity: samples kept; the oldest are overwritten first.
      observation_shape, num_actions, num_players: sample shapes.
      policy_slots: entries kept of each policy target (K; default every action).
    """

    def __init__(
        self, capacity: int, *, observation_shape: tuple[int, ...], num_actions: int,
        num_players: int, policy_slots: int | None = None,
    ) -> None:  # fmt: skip
        if capacity <= 0:
            raise ValueError(f"replay capacity must be > 0, got {capacity}")
        slots = num_actions if policy_slots is None else int(policy_slots)
        if not 1 <= slots <= num_actions:
            raise ValueError(f"policy_slots={policy_slots} must be in [1, {num_actions}]")
        self.capacity = capacity
        self.num_actions, self.policy_slots = num_actions, slots
        self._data = {
            "observation": np.zeros((capacity, *observation_shape), dtype=np.float32),
            "policy_actions": np.zeros((capacity, slots), dtype=np.int32),
            "policy_weights": np.zeros((capacity, slots), dtype=np.float32),
            "value": np.zeros((capacity, num_players), dtype=np.float32),
        }
        self._size = 0
        self._cursor = 0
        self.total_added = 0

    def __len__(self) -> int:
        return self._size

    @property
    def bytes_per_sample(self) -> int:
        return sum(array[0].nbytes for array in self._data.values())

    @property
    def nbytes(self) -> int:
        """Host memory the samples held now occupy (the arrays are allocated for the
        capacity, but untouched pages cost nothing)."""
        return self._size * self.bytes_per_sample

    def add(self, samples: Mapping[str, np.ndarray]) -> None:
        """Append samples (``observation`` [M, ...], ``policy_actions`` and ``policy_weights``
        [M, K], ``value`` [M, N])."""
        count = len(samples["policy_weights"])
        if count == 0:
            return
        self.total_added += count
        if count > self.capacity:  # only the newest fit
            samples = {k: samples[k][-self.capacity :] for k in SAMPLE_FIELDS}
            count = self.capacity
        positions = (self._cursor + np.arange(count)) % self.capacity
        for name in SAMPLE_FIELDS:
            self._data[name][positions] = samples[name]
        self._cursor = int((self._cursor + count) % self.capacity)
        self._size = min(self._size + count, self.capacity)

    def sample(self, rng: np.random.Generator, *, batch_size: int, num_batches: int) -> Samples:
        """Uniform samples with replacement: each field [num_batches, batch_size, ...]."""
        if self._size == 0:
            raise ValueError("cannot sample from an empty replay buffer")
        index = rng.integers(0, self._size, size=(num_batches, batch_size))
        return {name: self._data[name][index] for name in SAMPLE_FIELDS}

    def snapshot(self, rng: np.random.Generator, *, max_samples: int) -> Samples:
        """Up to ``max_samples`` distinct samples (drawn without replacement, in random
        order) as copies: each field [M, ...] with M = min(max_samples, len(self)). For
        consumers that must not see a sample twice (the side trainers' folds and holdout)."""
        if max_samples <= 0:
            raise ValueError(f"max_samples must be > 0, got {max_samples}")
        count = min(max_samples, self._size)
        index = rng.permutation(self._size)[:count]
        return {name: self._data[name][index] for name in SAMPLE_FIELDS}

    def state_dict(self, prefix: str = "") -> dict[str, np.ndarray]:
        """The arrays :meth:`save` writes (names after ``prefix``)."""
        return {
            f"{prefix}size": np.asarray(self._size), f"{prefix}cursor": np.asarray(self._cursor),
            f"{prefix}total_added": np.asarray(self.total_added),
            **{f"{prefix}{name}": self._data[name][: self._size] for name in SAMPLE_FIELDS},
        }  # fmt: skip

    def save(self, path: str | Path) -> None:
        """Write the buffer to ``path`` (.npz), atomically (temp file then rename)."""
        atomic_savez(path, **self.state_dict())

    def load(self, path: str | Path) -> None:
        """Read a buffer written by :meth:`save` (shapes must match this buffer's)."""
        with np.load(path) as data:
            self.load_state_dict({name: data[name] for name in data.files}, where=f"replay file {path}")

    def load_state_dict(self, state: Mapping[str, np.ndarray], *, prefix: str = "", where: str = "replay") -> None:
        """Restore what :meth:`state_dict` returned (ValueError naming ``where`` when a field
        has another shape: another game or config)."""
        fields = {name[len(prefix):]: state[name] for name in state if name.startswith(prefix)}
        size = int(fields["size"])
        if "policy" in fields:  # written before targets were sparse
            if fields["policy"].shape[1:] != (self.num_actions,):
                raise ValueError(
                    f"{where}: field 'policy' has sample shape {fields['policy'].shape[1:]}, this "
                    f"buffer expects ({self.num_actions},) (another game or config?)"
                )
            actions, weights = sparse_from_dense(fields.pop("policy"), self.policy_slots)
            fields.update(policy_actions=actions, policy_weights=weights)
        for name in SAMPLE_FIELDS:
            stored = fields[name]
            expected = self._data[name].shape[1:]
            if stored.shape[1:] != expected:
                raise ValueError(
                    f"{where}: field {name!r} has sample shape {stored.shape[1:]}, "
                    f"this buffer expects {expected} (another game or config?)"
                )
            kept = min(size, self.capacity)
            self._data[name][:kept] = stored[-kept:]
        self._size = min(size, self.capacity)
        self._cursor = int(fields["cursor"]) % self.capacity if size <= self.capacity else 0
        self.total_added = int(fields["total_added"])

    def samples(self) -> Samples:
        """Every sample held (views, oldest first only before the buffer wrapped)."""
        return {name: self._data[name][: self._size] for name in SAMPLE_FIELDS}


class ShardedReplay:
    """A lineage's replay split by device: one :class:`ReplayBuffer` shard per device of the
    mesh (``train.replay_capacity`` / devices samples each), holding the finished games that
    device played and feeding that device's slice of every training batch, sampled with the
    shard's own generator (seeded by the run's seed and the device's position on the mesh).

    A process holds the shards of its own devices (``positions``). Batches therefore come out
    the same whether a mesh of N devices is one process or N: the multi-process run equals the
    one-process run with the same seeds. ``len()``, :attr:`total_added` and :attr:`capacity`
    are the run's (every shard, every process) as of the last :meth:`sync`, which sums them
    over processes (a collective: every process calls it at the same point); :attr:`nbytes`
    and :meth:`snapshot` are this process's.

    Args:
      capacity: samples kept in all (split evenly over ``num_devices`` shards, rounded up).
      positions: this process's devices' positions on the mesh's ``data`` axis.
      num_devices: devices on the axis.
      seed: the generators' seed prefix (each shard appends its position).
      **buffer: ``observation_shape``, ``num_actions``, ``num_players``, ``policy_slots``.
    """

    def __init__(
        self, capacity: int, *, positions: list[int], num_devices: int, seed: list[int], **buffer: Any
    ) -> None:
        if capacity <= 0:
            raise ValueError(f"replay capacity must be > 0, got {capacity}")
        self.positions, self.num_devices, self.seed = list(positions), int(num_devices), list(seed)
        self.per_shard = -(-int(capacity) // self.num_devices)
        self._buffer = dict(buffer)
        self.shards = [ReplayBuffer(self.per_shard, **buffer) for _ in self.positions]
        self.rngs = [np.random.default_rng([*self.seed, position]) for position in self.positions]
        self._counts = np.zeros((self.num_devices, 2))  # every shard's (size, total added)
        self.sync(local_only=True)

    # -------------------------------------------------------------- the run's counts
    def sync(self, *, local_only: bool = False) -> None:
        """Refresh the run's counts: every shard's size and samples added, summed over
        processes (``local_only``: no communication; other processes' shards count as empty)."""
        from rlloop import parallel

        counts = np.zeros((self.num_devices, 2))
        for position, shard in zip(self.positions, self.shards, strict=True):
            counts[position] = (len(shard), shard.total_added)
        self._counts = counts if local_only else parallel.global_sum(counts)

    def __len__(self) -> int:
        return int(self._counts[:, 0].sum())

    @property
    def total_added(self) -> int:
        return int(self._counts[:, 1].sum())

    @property
    def capacity(self) -> int:
        return self.per_shard * self.num_devices

    @property
    def smallest_shard(self) -> int:
        """Samples in the emptiest shard (training needs every shard non-empty)."""
        return int(self._counts[:, 0].min())

    @property
    def bytes_per_sample(self) -> int:
        return self.shards[0].bytes_per_sample

    @property
    def nbytes(self) -> int:
        """This process's shards' host memory."""
        return sum(shard.nbytes for shard in self.shards)

    @property
    def local_size(self) -> int:
        return sum(len(shard) for shard in self.shards)

    # -------------------------------------------------------------- data
    def add(self, per_shard: list[Mapping[str, np.ndarray]]) -> None:
        """Append each local shard's samples (in ``positions`` order). Other processes'
        shards are counted as of the last :meth:`sync`."""
        if len(per_shard) != len(self.shards):
            raise ValueError(f"{len(per_shard)} sample sets for {len(self.shards)} replay shards")
        for position, shard, samples in zip(self.positions, self.shards, per_shard, strict=True):
            shard.add(samples)
            self._counts[position] = (len(shard), shard.total_added)  # others': at the next sync

    def sample(self, *, batch_size: int, num_batches: int) -> Samples:
        """This process's columns of ``num_batches`` global batches of ``batch_size``: each
        local shard's ``batch_size / num_devices`` samples, side by side in position order,
        each field [num_batches, local columns, ...]."""
        if batch_size % self.num_devices:
            raise ValueError(f"batch size {batch_size} is not a multiple of the {self.num_devices} devices")
        per_device = batch_size // self.num_devices
        parts = [
            shard.sample(rng, batch_size=per_device, num_batches=num_batches)
            for shard, rng in zip(self.shards, self.rngs, strict=True)
        ]
        return {name: np.concatenate([part[name] for part in parts], axis=1) for name in SAMPLE_FIELDS}

    def snapshot(self, rng: np.random.Generator, *, max_samples: int) -> Samples:
        """Up to ``max_samples`` distinct samples of this process's shards, in random order, as
        copies (:meth:`ReplayBuffer.snapshot`)."""
        if max_samples <= 0:
            raise ValueError(f"max_samples must be > 0, got {max_samples}")
        sizes = [len(shard) for shard in self.shards]
        order = rng.permutation(sum(sizes))[:max_samples]
        starts = np.cumsum([0, *sizes])
        owner = np.searchsorted(starts, order, side="right") - 1
        out = {name: np.zeros((len(order), *self.shards[0]._data[name].shape[1:]),
                              self.shards[0]._data[name].dtype) for name in SAMPLE_FIELDS}  # fmt: skip
        for index, shard in enumerate(self.shards):
            mine = owner == index
            for name in SAMPLE_FIELDS:
                out[name][mine] = shard._data[name][order[mine] - starts[index]]
        return out

    # -------------------------------------------------------------- files
    def save(self, path: str | Path) -> None:
        """Write this process's shards, their generators and positions to ``path`` (.npz),
        atomically."""
        import json

        arrays: dict[str, Any] = {"positions": np.asarray(self.positions, np.int64),
                                  "num_devices": np.asarray(self.num_devices)}  # fmt: skip
        for position, shard, rng in zip(self.positions, self.shards, self.rngs, strict=True):
            arrays.update(shard.state_dict(f"{position}/"))
            arrays[f"{position}/rng"] = np.asarray(json.dumps(rng.bit_generator.state))
        atomic_savez(path, **arrays)

    def load(self, paths: list[Path]) -> None:
        """Read this process's shards back (:meth:`save`), then :meth:`sync` locally.

        A replay of another layout (written by a run with another number of devices, or by
        rlloop before replays were split by device: one buffer) is read whole from ``paths``
        and dealt round-robin over the local shards, with fresh generators; with several
        processes, only the same layout resumes (ValueError)."""
        import json

        from rlloop import parallel

        if len(paths) == 1:
            with np.load(paths[0]) as data:
                state = {name: data[name] for name in data.files}
            if "positions" in state and state["positions"].tolist() == self.positions \
                    and int(state["num_devices"]) == self.num_devices:  # fmt: skip
                for position, shard, index in zip(self.positions, self.shards, range(len(self.shards)), strict=True):
                    shard.load_state_dict(state, prefix=f"{position}/", where=f"replay file {paths[0]}")
                    self.rngs[index].bit_generator.state = json.loads(str(state[f"{position}/rng"]))
                self.sync(local_only=True)
                return
        if parallel.process_count() > 1:
            raise ValueError(
                f"replay files {', '.join(str(p) for p in paths)} were written with another device "
                f"layout; a run of {parallel.process_count()} processes resumes only on the layout "
                f"it saved ({self.num_devices} devices, positions {self.positions} in this process)"
            )
        merged: list[Samples] = []
        added = 0
        for path in paths:
            with np.load(path) as data:
                state = {name: data[name] for name in data.files}
            prefixes = [f"{p}/" for p in state["positions"].tolist()] if "positions" in state else [""]
            for prefix in prefixes:
                size = int(state[f"{prefix}size"])
                probe = ReplayBuffer(max(size, 1), **self._buffer)
                probe.load_state_dict(state, prefix=prefix, where=f"replay file {path}")
                merged.append(probe.samples())
                added += probe.total_added
        everything = {name: np.concatenate([m[name] for m in merged]) for name in SAMPLE_FIELDS}
        count = len(everything["policy_weights"])
        for index, shard in enumerate(self.shards):
            shard.add({name: everything[name][index :: len(self.shards)] for name in SAMPLE_FIELDS})
            shard.total_added = added // len(self.shards) + (index < added % len(self.shards))
        log.info("replay of %d samples re-split over %d device shards", count, len(self.shards))
        self.sync(local_only=True)


def split_pending_state(state: Mapping[str, np.ndarray], parts: int) -> list[dict[str, np.ndarray]]:
    """A :meth:`PendingGames.state_dict` over B batch slots as ``parts`` states over B / parts
    consecutive slots each (waiting moves saved before they were kept per device)."""
    if not state:
        return [{} for _ in range(parts)]
    width = np.asarray(state["waiting"]).shape[1]
    if width % parts:
        raise ValueError(f"waiting moves of {width} games do not split over {parts} devices")
    step = width // parts
    return [{name: np.asarray(value)[:, k * step : (k + 1) * step] for name, value in state.items()}
            for k in range(parts)]  # fmt: skip
