"""The gate's decision as a pure function of its match counts (rlloop.gate.decide), checked
against hand-computed Wilson bounds."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest

from rlloop.gate import decide, screen_passed

CONFIG = SimpleNamespace(screen_min_score=0.5, promote_score=0.55, confidence=0.95,
                         reject_elo_margin=50.0, sprt=False, sprt_elo1=35.0)  # fmt: skip


def hand_wilson(points: float, games: int, z: float = 1.959964) -> tuple[float, float]:
    p = points / games
    centre = (p + z * z / (2 * games)) / (1 + z * z / games)
    margin = z * math.sqrt(p * (1 - p) / games + z * z / (4 * games * games)) / (1 + z * z / games)
    return centre - margin, centre + margin


def test_screen_and_deep_count_together_and_the_lower_bound_decides() -> None:
    # 40-0-24 then 120-0-72: 160 of 256, score 0.625; Wilson 95 %: [0.5643, 0.6821].
    low, high = hand_wilson(160, 256)
    assert low == pytest.approx(0.5643, abs=1e-4) and high == pytest.approx(0.6821, abs=1e-4)
    result = decide(CONFIG, screen=(40, 0, 24), deep=(120, 0, 72), candidate_elo=80, champion_elo=0)
    assert result.decision == "promote" and result.games == 256
    assert (result.score, result.score_low, result.score_high) == pytest.approx((0.625, low, high))
    assert "screen 0.625, deep 0.625" in result.reason and "lower bound 0.564 vs 0.55" in result.reason
    stricter = SimpleNamespace(**{**vars(CONFIG), "promote_score": 0.57})
    assert decide(stricter, screen=(40, 0, 24), deep=(120, 0, 72), candidate_elo=80,
                  champion_elo=0).decision == "inconclusive"  # fmt: skip


def test_draws_count_half_and_a_failed_screen_never_promotes() -> None:
    even = decide(CONFIG, screen=(10, 20, 10), deep=None, candidate_elo=0, champion_elo=0)
    assert even.score == 0.5 and even.decision == "inconclusive"
    assert even.score_low == pytest.approx(hand_wilson(20, 40)[0])
    # 20-0-44: 0.3125 < 0.5, no deep match; 100 Elo below the champion (> 50): reject.
    assert not screen_passed(CONFIG, (20, 0, 44)) and screen_passed(CONFIG, (32, 0, 32))
    assert screen_passed(CONFIG, None)
    weak = decide(CONFIG, screen=(20, 0, 44), deep=None, candidate_elo=-100, champion_elo=0)
    assert weak.decision == "reject" and weak.games == 64
    # A failed screen does not promote even with a lower bound above promote_score.
    lenient = SimpleNamespace(**{**vars(CONFIG), "screen_min_score": 0.95, "promote_score": 0.5})
    assert decide(lenient, screen=(50, 0, 14), deep=None, candidate_elo=0,
                  champion_elo=0).decision == "inconclusive"  # fmt: skip
    # Promotion wins over the Elo rejection rule.
    both = decide(CONFIG, screen=(60, 0, 4), deep=None, candidate_elo=-500, champion_elo=0)
    assert both.decision == "promote"


def test_no_games_is_inconclusive_and_sprt_decides_when_asked() -> None:
    none = decide(CONFIG, screen=None, deep=None, candidate_elo=0, champion_elo=0)
    assert none.decision == "inconclusive" and none.games == 0 and "no games" in none.reason
    sprt = SimpleNamespace(**{**vars(CONFIG), "sprt": True})
    assert decide(sprt, screen=None, deep=(200, 0, 0), candidate_elo=0, champion_elo=0).decision == "promote"
    assert decide(sprt, screen=None, deep=(0, 0, 200), candidate_elo=0, champion_elo=0).decision == "reject"
    assert "SPRT" in decide(sprt, screen=None, deep=(5, 0, 5), candidate_elo=0, champion_elo=0).reason


def test_more_players_judge_the_head_to_head_equivalent() -> None:
    # Three players: the candidate against two champions, chance 1/3. 120 of 256 games won
    # (0.469, Wilson [0.408, 0.530]) is better than chance; head to head that is a score of
    # 2s / (2s + 1 - s), lower bound 0.580 > promote_score 0.55.
    low, high = hand_wilson(120, 256)
    h2h = [2 * s / (2 * s + 1 - s) for s in (120 / 256, low, high)]
    three = decide(CONFIG, screen=None, deep=(120, 0, 136), candidate_elo=60, champion_elo=0, field=2)
    assert three.decision == "promote"
    assert (three.score, three.score_low, three.score_high) == pytest.approx(h2h)
    assert "against 2 champions, chance 0.333" in three.reason
    # The same counts as a two-player match lose.
    assert decide(CONFIG, screen=None, deep=(120, 0, 136), candidate_elo=60, champion_elo=0).decision != "promote"
    # Chance exactly is no evidence either way, and the screen is judged the same way.
    even = decide(CONFIG, screen=None, deep=(100, 0, 200), candidate_elo=0, champion_elo=0, field=2)
    assert even.decision == "inconclusive" and even.score == pytest.approx(0.5)
    assert screen_passed(CONFIG, (24, 0, 40), field=2) and not screen_passed(CONFIG, (24, 0, 40))
    assert not screen_passed(CONFIG, (20, 0, 44), field=2)
