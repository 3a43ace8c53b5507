"""SelfplayScheduler alone, every dependency faked (rlloop/scheduler.py)."""

from __future__ import annotations

import pytest

from rlloop.scheduler import PriorityBounds, Rating, ReplayPressure, SelfplayScheduler

CONFIGS = ["square8_2p", "hex8_3p", "square19_2p", "hexagonal_4p"]


def test_pick_frequencies_follow_the_normalised_priorities() -> None:
    static = {"square8_2p": 8, "hex8_3p": 6, "square19_2p": 4, "hexagonal_4p": 3}
    scheduler = SelfplayScheduler(CONFIGS, static_priority=static, seed=1)
    expected = {c: p / sum(static.values()) for c, p in static.items()}
    assert scheduler.shares() == pytest.approx(expected)
    picks = [scheduler.pick_weighted_config() for _ in range(10_000)]
    for config, share in expected.items():
        # 10,000 draws: the standard error of a share is at most 0.005; allow 4 of them.
        assert picks.count(config) / len(picks) == pytest.approx(share, abs=0.02)
    assert sum(scheduler.picks.values()) == 10_000


def test_every_term_is_clamped_to_its_bounds() -> None:
    scheduler = SelfplayScheduler(
        ["a", "b", "c"],
        static_priority={"a": 20, "b": 0, "c": 5},
        ratings=lambda: {"a": Rating(elo=1000), "b": Rating(elo=-5000), "c": Rating(elo=990)},
        curriculum_weights=lambda: {"a": 10, "b": -10, "c": 1.5},
        priority_overrides=lambda: {"a": 100, "b": -3, "c": 2},
    )
    p = scheduler.priorities()
    assert (p["a"].static, p["a"].elo_boost, p["a"].curriculum, p["a"].override) == (8, 0, 3, 6)
    assert (p["b"].static, p["b"].elo_boost, p["b"].curriculum, p["b"].override) == (3, 3, -2, 0)
    # c: 10 Elo behind the best champion = 0.1 point of boost.
    assert p["c"].elo_boost == pytest.approx(0.1)
    assert p["c"].total == pytest.approx(5 + 0.1 + 1.5 + 2)
    assert p["a"].total == 17 and p["b"].total == 4


def test_lagging_and_stale_configurations_get_more() -> None:
    bounds = PriorityBounds(elo_lag_per_point=100, stale_iterations_per_point=50)
    ratings = {"a": Rating(elo=500, iterations_since_promotion=0),
               "b": Rating(elo=350, iterations_since_promotion=0),
               "c": Rating(elo=500, iterations_since_promotion=75),
               "d": Rating(elo=None, iterations_since_promotion=0)}  # fmt: skip
    scheduler = SelfplayScheduler(list(ratings), static_priority=dict.fromkeys(ratings, 4),
                                  ratings=lambda: ratings, bounds=bounds)  # fmt: skip
    boost = {c: p.elo_boost for c, p in scheduler.priorities().items()}
    assert boost == pytest.approx({"a": 0.0, "b": 1.5, "c": 1.5, "d": 0.0})
    shares = scheduler.shares()
    assert shares["b"] > shares["a"] and shares["c"] > shares["a"]


def test_backpressure_throttles_then_stops_then_resumes() -> None:
    pressure = ReplayPressure(4.0, chunk_samples=100, throttle_at=2, stop_at=4, resume_at=1)
    scheduler = SelfplayScheduler(
        ["ttt", "c4"], static_priority={"ttt": 5, "c4": 5},
        should_stop=pressure.should_stop, should_throttle=pressure.should_throttle,
        throttle_factor=pressure.throttle_factor,
    )  # fmt: skip
    assert scheduler.shares() == {"ttt": 0.5, "c4": 0.5}
    pressure.added("ttt", 200)  # 800 samples of training owed: 2 chunks' worth x 4, throttled
    assert pressure.state("ttt") == "throttled" and pressure.throttle_factor("ttt") == 1.0
    pressure.added("ttt", 100)  # 3 chunks owed: halfway to stop, factor 1 - 0.75 / 2
    assert pressure.throttle_factor("ttt") == pytest.approx(0.625)
    assert scheduler.shares()["ttt"] == pytest.approx(0.625 / 1.625)
    pressure.added("ttt", 100)  # 4 chunks owed: stopped
    assert pressure.state("ttt") == "stopped" and scheduler.shares()["ttt"] == 0.0
    assert all(scheduler.pick_weighted_config() == "c4" for _ in range(200))
    pressure.consumed("ttt", 1000)  # 1.5 chunks owed: still stopped (hysteresis)
    assert pressure.state("ttt") == "stopped"
    pressure.consumed("ttt", 240)  # 0.9 chunks: resumes
    assert pressure.state("ttt") == "running"
    assert scheduler.shares() == {"ttt": 0.5, "c4": 0.5}
    pressure.added("c4", 400)
    pressure.added("ttt", 400)  # both stopped: nothing to play, the caller trains
    assert scheduler.pick_weighted_config() is None


def test_memory_pressure_shrinks_the_largest_consumer_and_room_grows() -> None:
    used = [0.9]
    per_game = {"small": 1_000.0, "big": 80_000.0}
    scheduler = SelfplayScheduler(
        ["small", "big"], games_per_device={"small": 256, "big": 64}, moves_per_chunk=12,
        memory_fraction=lambda: used[0], bytes_per_game=per_game.get,
        memory_budget=40e6, min_games=16,
    )  # fmt: skip
    # Critical: only the largest consumer (big: 5.1 MB vs 0.26 MB) halves, down to min_games.
    assert scheduler.target_games("small").games_per_device == 256
    assert scheduler.target_games("big").games_per_device == 32
    assert scheduler.target_games("big").games_per_device == 16
    assert scheduler.target_games("big").games_per_device == 16
    # Between warn and critical: nothing moves.
    used[0] = 0.75
    assert scheduler.target_games("big").games_per_device == 16
    # Below warn: doubled while the budget holds (big at 256 games = 20.5 MB + small).
    used[0] = 0.5
    sizes = [scheduler.target_games("big").games_per_device for _ in range(6)]
    assert sizes == [32, 64, 128, 256, 256, 256]
    assert scheduler.target_games("big").moves_per_chunk == 12
    with pytest.raises(KeyError, match="unknown configuration 'nope'"):
        scheduler.target_games("nope")


def test_unknown_memory_grows_only_to_a_stated_maximum() -> None:
    low = SelfplayScheduler(["a"], games_per_device=64, memory_fraction=lambda: 0.1)
    assert low.target_games("a").games_per_device == 64  # no budget, no max: stays
    capped = SelfplayScheduler(["a"], games_per_device=64, max_games=256,
                               memory_fraction=lambda: 0.1)  # fmt: skip
    assert [capped.target_games("a").games_per_device for _ in range(3)] == [128, 256, 256]


def test_diversity_counts_and_entropy() -> None:
    scheduler = SelfplayScheduler(["ttt", "c4"])
    assert scheduler.diversity_metrics()["games"] == 0
    scheduler.track_diversity("ttt", games=30)
    scheduler.track_diversity("c4", games=30, opponent="champion:iter-000004")
    scheduler.track_diversity("c4", games=40, difficulty="hard", search_mode="puct")
    metrics = scheduler.diversity_metrics()
    assert metrics["games"] == 100
    assert metrics["config"]["games"] == {"ttt": 30, "c4": 70}
    assert metrics["config"]["shares"] == pytest.approx({"ttt": 0.3, "c4": 0.7})
    assert metrics["asymmetric_share"] == pytest.approx(0.3)
    assert metrics["opponent"]["games"] == {"self": 70, "champion:iter-000004": 30}
    assert 0 < metrics["config"]["entropy"] < 1
    even = SelfplayScheduler(["a", "b"])
    even.track_diversity("a", games=5)
    even.track_diversity("b", games=5)
    assert even.diversity_metrics()["config"]["entropy"] == pytest.approx(1.0)
    assert even.diversity_metrics()["search_mode"]["entropy"] == 0.0
    with pytest.raises(ValueError, match="games=-1"):
        even.track_diversity("a", games=-1)


def test_bad_input_gets_one_clear_error() -> None:
    with pytest.raises(ValueError, match="at least one configuration"):
        SelfplayScheduler([])
    with pytest.raises(ValueError, match="named twice"):
        SelfplayScheduler(["a", "a"])
    with pytest.raises(ValueError, match=r"unknown configurations \['z'\]"):
        SelfplayScheduler(["a"], static_priority={"z": 5})
    with pytest.raises(ValueError, match="warn"):
        SelfplayScheduler(["a"], warn=0.9, critical=0.8)
    with pytest.raises(ValueError, match="resume_at"):
        ReplayPressure(4.0, chunk_samples=10, throttle_at=5, stop_at=4)
    with pytest.raises(ValueError, match="samples_per_insert"):
        ReplayPressure(0.0, chunk_samples=10)


def test_utilisation_is_recorded_and_picks_are_reproducible() -> None:
    seen: list[tuple[str, float]] = []
    first = SelfplayScheduler(CONFIGS, record_utilisation=lambda c, s: seen.append((c, s)), seed=7)
    second = SelfplayScheduler(CONFIGS, seed=7)
    a = [first.pick_weighted_config() for _ in range(50)]
    assert a == [second.pick_weighted_config() for _ in range(50)]
    assert len(seen) == 50 and seen[0] == (a[0], 1.0)
    assert seen[-1][1] == pytest.approx(a.count(seen[-1][0]) / 50)
