"""Joining moves with outcomes across chunks, and the replay buffer."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rlloop.replay import PendingGames, ReplayBuffer, mover_relative


def _chunk(done: list[list[int]], rewards: dict[tuple[int, int], list[float]], start: int) -> dict:
    """A fake 2-player chunk [T, B]: observation encodes (time, slot) so samples are traceable."""
    done_array = np.array(done, dtype=bool)
    steps, batch = done_array.shape
    final = np.zeros((steps, batch, 2), np.float32)
    for (t, b), value in rewards.items():
        final[t, b] = value
    times = np.arange(start, start + steps)[:, None].repeat(batch, 1)
    slots = np.arange(batch)[None, :].repeat(steps, 0)
    return {
        "observation": np.stack([times, slots], -1).astype(np.float32),
        "improved_policy": np.ones((steps, batch, 3), np.float32) / 3,
        "player": (times % 2).astype(np.int32),
        "done": done_array,
        "final_rewards": final,
        "game_length": np.where(done_array, 1, 0).astype(np.int32),
    }


def test_moves_wait_for_their_game_to_end_across_chunks() -> None:
    pending = PendingGames()
    # Slot 0: game ends at t=1 (player 1 wins... rewards by seat), next game runs on.
    # Slot 1: one game spans both chunks and ends at t=3.
    first = _chunk([[0, 0], [1, 0]], {(1, 0): [1.0, -1.0]}, start=0)
    samples = pending.add(first)
    assert sorted(map(tuple, samples["observation"].astype(int).tolist())) == [(0, 0), (1, 0)]
    assert pending.num_waiting == 2  # slot 1's two moves
    # Player 0 moved at t=0 (won: +1 from its view), player 1 at t=1 (lost).
    by_time = {int(o[0]): v for o, v in zip(samples["observation"], samples["value"], strict=True)}
    np.testing.assert_array_equal(by_time[0], [1.0, -1.0])
    np.testing.assert_array_equal(by_time[1], [-1.0, 1.0])

    second = _chunk([[0, 0], [0, 1]], {(1, 1): [-1.0, 1.0]}, start=2)
    samples = pending.add(second)
    got = sorted(map(tuple, samples["observation"].astype(int).tolist()))
    assert got == [(0, 1), (1, 1), (2, 1), (3, 1)]
    assert pending.num_waiting == 2  # slot 0's game that began at t=2
    values = {int(o[0]): v for o, v in zip(samples["observation"], samples["value"], strict=True)}
    np.testing.assert_array_equal(values[0], [-1.0, 1.0])  # player 0 lost
    np.testing.assert_array_equal(values[3], [1.0, -1.0])  # player 1 won, seen by player 1


def test_pending_state_round_trips() -> None:
    pending = PendingGames()
    pending.add(_chunk([[0, 0], [1, 0]], {(1, 0): [1.0, -1.0]}, start=0))
    restored = PendingGames()
    restored.load_state_dict(pending.state_dict())
    assert restored.num_waiting == pending.num_waiting == 2
    later = _chunk([[0, 1], [0, 0]], {(0, 1): [1.0, -1.0]}, start=2)
    a, b = pending.add(later), restored.add(later)
    np.testing.assert_array_equal(a["observation"], b["observation"])


def test_mover_relative_rotation() -> None:
    outcomes = np.array([[1.0, 0.0, -1.0]] * 3)
    rotated = mover_relative(outcomes, np.array([0, 1, 2]))
    np.testing.assert_array_equal(rotated, [[1, 0, -1], [0, -1, 1], [-1, 1, 0]])


def _samples(start: int, count: int) -> dict[str, np.ndarray]:
    ids = np.arange(start, start + count, dtype=np.float32)
    return {
        "observation": ids[:, None, None].repeat(2, 1).repeat(2, 2),
        "policy_actions": np.tile(np.arange(3, dtype=np.int32), (count, 1)),
        "policy_weights": np.tile(ids[:, None], (1, 3)),
        "value": np.tile(ids[:, None], (1, 2)),
    }


def test_ring_buffer_overwrites_oldest_and_samples_shapes() -> None:
    buffer = ReplayBuffer(5, observation_shape=(2, 2), num_actions=3, num_players=2)
    buffer.add(_samples(0, 4))
    buffer.add(_samples(4, 3))
    assert len(buffer) == 5 and buffer.total_added == 7
    batch = buffer.sample(np.random.default_rng(0), batch_size=64, num_batches=2)
    assert batch["observation"].shape == (2, 64, 2, 2) and batch["value"].shape == (2, 64, 2)
    assert set(np.unique(batch["policy_weights"][..., 0]).astype(int)) <= {2, 3, 4, 5, 6}
    assert batch["policy_actions"].shape == (2, 64, 3) and batch["policy_actions"].dtype == np.int32
    with pytest.raises(ValueError, match="empty"):
        ReplayBuffer(2, observation_shape=(2, 2), num_actions=3, num_players=2).sample(
            np.random.default_rng(0), batch_size=1, num_batches=1
        )


def test_buffer_save_load_and_shape_check(tmp_path: Path) -> None:
    buffer = ReplayBuffer(5, observation_shape=(2, 2), num_actions=3, num_players=2)
    buffer.add(_samples(0, 7))
    buffer.save(tmp_path / "replay.npz")
    loaded = ReplayBuffer(5, observation_shape=(2, 2), num_actions=3, num_players=2)
    loaded.load(tmp_path / "replay.npz")
    assert len(loaded) == 5 and loaded.total_added == 7
    assert set(loaded._data["policy_weights"][:, 0].astype(int)) == {2, 3, 4, 5, 6}
    other = ReplayBuffer(5, observation_shape=(3, 3), num_actions=3, num_players=2)
    with pytest.raises(ValueError, match="another game or config"):
        other.load(tmp_path / "replay.npz")


def test_quality_gate_names_what_is_wrong() -> None:
    from rlloop.replay import quality_problems

    good = {**_samples(0, 4), "game_length": np.array([9, 9, 7, 7])}
    assert quality_problems(good, min_mean_game_length=2) == []
    nan = {**good, "value": np.where(np.arange(8).reshape(4, 2) == 3, np.nan, good["value"])}
    assert quality_problems(nan, min_mean_game_length=2) == ["1 of 4 samples have non-finite value"]
    same = {k: np.repeat(v[:1], 4, axis=0) for k, v in good.items()}
    assert "all 4 samples are identical" in quality_problems(same, min_mean_game_length=2)[0]
    short = {**good, "game_length": np.array([1, 1, 1, 1])}
    assert "below train.min_mean_game_length=2" in quality_problems(short, min_mean_game_length=2)[0]


def test_forced_moves_train_the_value_only() -> None:
    """A move with a single legal action carries no policy information: its policy target is
    empty (zero loss), its value target is the game's outcome like every other move."""
    pending = PendingGames()
    chunk = _chunk([[0, 0], [0, 0], [1, 1]], {(2, 0): [1.0, -1.0], (2, 1): [-1.0, 1.0]}, start=0)
    chunk["forced"] = np.array([[0, 1], [1, 0], [0, 0]], dtype=bool)
    samples = pending.add(chunk)
    assert len(samples["observation"]) == 6
    assert pending.num_waiting == 0
    rows = {(int(o[0]), int(o[1])): (p, v) for o, p, v in
            zip(samples["observation"], samples["policy_weights"], samples["value"], strict=True)}  # fmt: skip
    np.testing.assert_array_equal(rows[(2, 0)][1], [1.0, -1.0])  # player 0 moved at t=2 and won
    forced_rows = [(0, 1), (1, 0)]
    for key, (policy, value) in rows.items():
        if key in forced_rows:
            assert np.all(policy == 0.0), key
        else:
            assert policy.sum() > 0, key
        assert np.all(np.abs(value) == 1.0), key
    # Waiting moves saved before `forced` existed still load.
    old = PendingGames()
    old.add(_chunk([[0, 0]], {}, start=0))
    state = {k: v for k, v in old.state_dict().items() if k != "rows/forced"}
    restored = PendingGames()
    restored.load_state_dict(state)
    assert restored.num_waiting == 2


def _td_chunk() -> dict:
    """Slot 0: movers 0, 0, 1, 0, the game ends at t=3 and player 0 wins. Slot 1: no end."""
    players = np.array([[0, 0], [0, 1], [1, 0], [0, 1]], dtype=np.int32)
    done = np.array([[0, 0], [0, 0], [0, 0], [1, 0]], dtype=bool)
    final = np.zeros((4, 2, 2), np.float32)
    final[3, 0] = [1.0, -1.0]
    return {
        "observation": np.arange(8, dtype=np.float32).reshape(4, 2, 1),
        "improved_policy": np.ones((4, 2, 3), np.float32) / 3,
        "player": players,
        "done": done,
        "final_rewards": final,
        "game_length": np.where(done, 4, 0).astype(np.int32),
        "root_value": np.array([[0.1, 0.0], [0.2, 0.0], [0.3, 0.0], [0.4, 0.0]], np.float32),
    }


def test_td_lambda_value_targets_by_hand() -> None:
    samples = PendingGames(value_lambda=0.5).add(_td_chunk())
    by_time = {int(o[0]) // 2: v for o, v in zip(samples["observation"], samples["value"], strict=True)}
    # G3 = z = 1 (mover 0 won); G2 (mover 1) = -(0.5 * 0.4 + 0.5 * 1) = -0.7;
    # G1 (mover 0) = -(0.5 * 0.3 + 0.5 * -0.7) = 0.2; G0 (mover 0) = 0.5 * 0.2 + 0.5 * 0.2 = 0.2
    expected = {3: 1.0, 2: -0.7, 1: 0.2, 0: 0.2}
    assert sorted(by_time) == [0, 1, 2, 3]  # slot 1's game has not ended
    for t, g in expected.items():
        np.testing.assert_allclose(by_time[t], [g, -g], atol=1e-6)


def test_td_lambda_one_is_the_outcome_and_bad_lambdas_are_refused() -> None:
    outcome = PendingGames(value_lambda=1.0).add(_td_chunk())
    pending = PendingGames(value_lambda=1.0)
    pending.value_lambda = 1.0 - 1e-12  # the TD path with lambda -> 1 gives the outcome
    td = pending.add(_td_chunk())
    np.testing.assert_allclose(td["value"], outcome["value"], atol=1e-6)
    np.testing.assert_array_equal(outcome["value"][:, 0], [1.0, 1.0, -1.0, 1.0])
    with pytest.raises(ValueError, match="two-player"):
        PendingGames(value_lambda=0.9, num_players=3)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        PendingGames(value_lambda=1.5)


def test_snapshot_draws_distinct_samples_without_replacement() -> None:
    buffer = ReplayBuffer(5, observation_shape=(2, 2), num_actions=3, num_players=2)
    buffer.add(_samples(0, 7))  # holds samples 2..6
    snapshot = buffer.snapshot(np.random.default_rng(0), max_samples=4)
    ids = snapshot["policy_weights"][:, 0].astype(int)
    assert len(ids) == 4 and len(set(ids)) == 4 and set(ids) <= {2, 3, 4, 5, 6}
    everything = buffer.snapshot(np.random.default_rng(1), max_samples=100)
    assert sorted(everything["policy_weights"][:, 0].astype(int)) == [2, 3, 4, 5, 6]
    everything["value"][:] = 99  # a copy: the buffer is untouched
    assert not (buffer._data["value"] == 99).any()
    with pytest.raises(ValueError, match="max_samples must be > 0, got 0"):
        buffer.snapshot(np.random.default_rng(0), max_samples=0)
