"""Ratings: Wilson intervals, Elo conversions, the Bradley–Terry fit and SPRT, on known answers."""

from __future__ import annotations

import math

import pytest

from rlloop.ratings import (
    MatchResult,
    elo_difference,
    expected_score,
    fit_bradley_terry,
    head_to_head_score,
    score_interval,
    sprt,
    wilson_interval,
)


def test_wilson_interval_matches_hand_computation() -> None:
    # 8 successes in 10 trials at 95%: z = 1.959964; the textbook Wilson interval.
    low, high = wilson_interval(8, 10)
    assert low == pytest.approx(0.490164, abs=1e-5)
    assert high == pytest.approx(0.943318, abs=1e-5)
    # At 0 successes the interval still has width (the Wald interval would collapse to [0, 0]).
    low0, high0 = wilson_interval(0, 10)
    assert low0 == pytest.approx(0.0, abs=1e-12) and high0 == pytest.approx(0.277533, abs=1e-5)


def test_score_interval_counts_draws_as_half() -> None:
    score, low, high = score_interval(6, 4, 0)
    assert score == pytest.approx(0.8)
    assert (low, high) == pytest.approx(wilson_interval(8, 10))
    narrow = score_interval(600, 400, 0, confidence=0.95)
    assert narrow[2] - narrow[1] < high - low
    wide = score_interval(6, 4, 0, confidence=0.99)
    assert wide[1] < low and wide[2] > high


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        ((-1, 0, 3), {}, "wins must be a non-negative count, got -1"),
        ((1, -2, 3), {}, "draws must be a non-negative count, got -2"),
        ((1, 0, -3), {}, "losses must be a non-negative count, got -3"),
        ((0, 0, 0), {}, "no games"),
        ((1, 1, 1), {"confidence": 1.0}, r"confidence must be in the open interval \(0, 1\), got 1.0"),
        ((1, 1, 1), {"confidence": 0.0}, "got 0.0"),
    ],
)
def test_score_interval_errors_name_bad_input(args: tuple, kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        score_interval(*args, **kwargs)


def test_wilson_errors() -> None:
    with pytest.raises(ValueError, match="trials must be a positive integer, got 0"):
        wilson_interval(0, 0)
    with pytest.raises(ValueError, match=r"successes \(11\) must not exceed trials \(10\)"):
        wilson_interval(11, 10)


def test_elo_conversions() -> None:
    assert elo_difference(0.5) == 0.0
    assert elo_difference(0.75) == pytest.approx(190.848, abs=1e-3)
    assert expected_score(elo_difference(0.64)) == pytest.approx(0.64)
    assert expected_score(400.0) == pytest.approx(10 / 11)
    assert math.isfinite(elo_difference(1.0)) and elo_difference(1.0) > 2000
    assert elo_difference(0.0) == pytest.approx(-elo_difference(1.0))
    with pytest.raises(ValueError, match=r"score must be in \[0, 1\], got 1.5"):
        elo_difference(1.5)


def test_a_field_of_opponents_follows_the_luce_model() -> None:
    # Three players, A against two copies of B: equal players win a third of the games.
    assert elo_difference(1 / 3, field=2) == pytest.approx(0.0, abs=1e-9)
    assert expected_score(0.0, field=2) == pytest.approx(1 / 3)
    assert expected_score(0.0, field=3) == pytest.approx(1 / 4)
    # P(A wins) = g_A / (g_A + 2 g_B) with g = 10^(elo/400): +400 Elo wins 10 / 12.
    assert expected_score(400.0, field=2) == pytest.approx(10 / 12)
    assert expected_score(elo_difference(0.45, field=2), field=2) == pytest.approx(0.45)
    # Winning 45% against two is better than even; head to head the same as 62.1%.
    assert elo_difference(0.45, field=2) > 0 > elo_difference(0.45)
    assert head_to_head_score(1 / 3, 2) == pytest.approx(0.5)
    assert head_to_head_score(0.45, 2) == pytest.approx(expected_score(elo_difference(0.45, 2)))
    assert head_to_head_score(0.45, 2) == pytest.approx(0.9 / 1.45)
    assert head_to_head_score(0.0, 2) == 0.0 and head_to_head_score(1.0, 3) == 1.0
    assert head_to_head_score(0.37, 1) == 0.37
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="field must be a positive integer"):
            head_to_head_score(0.5, bad)
    with pytest.raises(ValueError, match=r"score must be in \[0, 1\], got -0.1"):
        head_to_head_score(-0.1, 2)


def test_bradley_terry_counts_the_field() -> None:
    # A rated +200 over random wins 1 / (1 + 2 * 10^-0.5) of its 3-player games against two
    # random players; B, +100 over A, wins 1 / (1 + 3 * 10^-0.25) of 4-player games.
    n = 200_000
    wins_a = round(n * expected_score(200.0, field=2))
    wins_b = round(n * expected_score(100.0, field=3))
    matches = [MatchResult("a", "random", wins_a, 0, n - wins_a, field=2),
               MatchResult("b", "a", wins_b, 0, n - wins_b, field=3)]  # fmt: skip
    ratings = fit_bradley_terry(matches, prior_games=1e-6)
    assert ratings["a"].elo == pytest.approx(200.0, abs=0.05)
    assert ratings["b"].elo == pytest.approx(300.0, abs=0.05)
    # Read as two-player scores the same counts put A below random.
    two = fit_bradley_terry([MatchResult("a", "random", wins_a, 0, n - wins_a)], prior_games=1e-6)
    assert two["a"].elo < 100.0
    with pytest.raises(ValueError, match="field must be a positive integer"):
        fit_bradley_terry([MatchResult("a", "random", 1, 0, 1, field=0)])


def test_sprt_with_a_field_judges_against_chance() -> None:
    # 45% won against two copies of the champion over 600 games: about +85 Elo (Luce), which
    # accepts elo1 = 35; as a two-player score (45%) it would be rejected.
    assert sprt(270, 0, 330, elo0=0.0, elo1=35.0, field=2)[0] == "accept"
    assert sprt(270, 0, 330, elo0=0.0, elo1=35.0)[0] == "reject"
    # Chance (a third) rejects, given games enough.
    assert sprt(667, 0, 1333, elo0=0.0, elo1=35.0, field=2)[0] == "reject"


def test_symmetric_matches_give_equal_ratings() -> None:
    matches = [
        MatchResult("random", "a", 10, 5, 30),
        MatchResult("random", "b", 10, 5, 30),
        MatchResult("a", "b", 20, 10, 20),
    ]
    ratings = fit_bradley_terry(matches)
    assert ratings["a"].elo == pytest.approx(ratings["b"].elo, abs=1e-7)
    assert ratings["a"].low == pytest.approx(ratings["b"].low, abs=1e-7)
    assert ratings["a"].elo > 0


def test_two_players_75_percent_is_191_elo() -> None:
    ratings = fit_bradley_terry([MatchResult("a", "random", 60, 30, 10)], prior_games=1e-6)
    assert ratings["random"].elo == 0.0 and ratings["random"].low == ratings["random"].high == 0.0
    assert ratings["a"].elo == pytest.approx(190.85, abs=0.05)
    assert ratings["a"].games == 100 and ratings["random"].games == 100
    assert ratings["a"].low < ratings["a"].elo < ratings["a"].high
    # The prior pulls towards the anchor: a full virtual draw lowers the estimate a little.
    assert fit_bradley_terry([MatchResult("a", "random", 60, 30, 10)])["a"].elo < 190.0


def test_transitivity_recovers_known_differences() -> None:
    truth = {"random": 0.0, "b": 120.0, "c": 300.0, "d": -50.0}
    n = 200_000
    matches = []
    for a, b in [("b", "random"), ("c", "b"), ("d", "random"), ("c", "d")]:
        wins = round(n * expected_score(truth[a] - truth[b]))
        matches.append(MatchResult(a, b, wins, 0, n - wins))
    ratings = fit_bradley_terry(matches, prior_games=1e-6)
    for name, elo in truth.items():
        assert ratings[name].elo == pytest.approx(elo, abs=0.05), name


def test_anchor_is_exact_and_can_be_moved() -> None:
    matches = [MatchResult("x", "random", 7, 2, 3), MatchResult("y", "x", 4, 4, 4)]
    assert fit_bradley_terry(matches)["random"].elo == 0.0
    shifted = fit_bradley_terry(matches, anchor="x", anchor_elo=1000.0)
    assert shifted["x"].elo == 1000.0
    base = fit_bradley_terry(matches, anchor="x", anchor_elo=0.0)
    assert shifted["y"].elo - 1000.0 == pytest.approx(base["y"].elo, abs=1e-9)


def test_intervals_shrink_with_more_games() -> None:
    small = fit_bradley_terry([MatchResult("a", "random", 6, 2, 2)])["a"]
    large = fit_bradley_terry([MatchResult("a", "random", 600, 200, 200)])["a"]
    assert large.high - large.low < (small.high - small.low) / 5
    assert large.low < large.elo < large.high


def test_unbeaten_player_stays_finite() -> None:
    ratings = fit_bradley_terry([MatchResult("a", "random", 50, 0, 0)])
    assert math.isfinite(ratings["a"].elo) and 300 < ratings["a"].elo < 2000
    assert math.isfinite(ratings["a"].high)
    # Far out on the logistic tail (tiny prior, lopsided results) Newton still converges, and
    # matches the one-player closed form: σ(r) = (wins + prior/2) / (wins + prior).
    prior = 1e-9
    lopsided = fit_bradley_terry([MatchResult("a", "random", 100, 0, 0)], prior_games=prior)
    assert lopsided["a"].elo == pytest.approx(-400 * math.log10(prior / 2 / (100 + prior / 2)), rel=1e-6)
    assert lopsided["a"].elo > 4000  # beyond elo_difference's clipping, hence the exact form
    with pytest.raises(ValueError, match="prior_games must be a finite number > 0, got 0"):
        fit_bradley_terry([MatchResult("a", "random", 1, 0, 1)], prior_games=0)


def test_unconnected_players_are_named() -> None:
    matches = [MatchResult("a", "random", 5, 0, 5), MatchResult("island", "atoll", 3, 0, 1)]
    with pytest.raises(ValueError, match=r"not connected to the anchor 'random'.*\['atoll', 'island'\]"):
        fit_bradley_terry(matches)
    with pytest.raises(ValueError, match="wins_b must be a non-negative count, got -1"):
        fit_bradley_terry([MatchResult("a", "random", 1, 0, -1)])


def test_sprt_decides_clear_results() -> None:
    better, llr_better = sprt(700, 200, 100)
    assert better == "accept" and llr_better > math.log(0.95 / 0.05)
    worse, llr_worse = sprt(100, 200, 700)
    assert worse == "reject" and llr_worse < math.log(0.05 / 0.95)
    undecided, _ = sprt(5, 2, 4)
    assert undecided == "continue"
    # A single win is not proof, thanks to the pseudo-counts.
    assert sprt(1, 0, 0)[0] == "continue"
    # Even results favour H0 (elo0 = 0) over H1 (+35) as games accumulate.
    assert sprt(500, 0, 500)[0] == "reject"
    with pytest.raises(ValueError, match="elo1 must be greater than elo0"):
        sprt(1, 1, 1, elo0=10, elo1=5)
    with pytest.raises(ValueError, match=r"alpha must be in \(0, 0.5\), got 0.7"):
        sprt(1, 1, 1, alpha=0.7)
