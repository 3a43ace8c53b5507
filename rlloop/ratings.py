"""Ratings from match results: Wilson intervals, Elo, a Bradley–Terry fit and SPRT.

Host-side, pure Python + numpy (no JAX): the arena produces win/draw/loss counts, this module
turns them into scores with confidence intervals, Elo ratings anchored at the random player,
and sequential-test decisions for the promotion gate. Draws always count as half a win.

More than two players: the arena plays one agent against a *field* of ``field`` copies of its
opponent (``num_players - 1``), and a game is a win when the agent finishes ahead of all of
them. Ratings then follow the Luce choice model, the Bradley–Terry model's extension to one
winner among several: with strengths ``gamma = 10^(elo/400)``, P(A wins) =
``gamma_A / (gamma_A + field * gamma_B)``, so equal players win ``1 / (field + 1)`` of the
games (1/3 with three players) and every function here takes ``field`` (1: two players).
:func:`head_to_head_score` maps a win share against the field to the score the same players
would have head to head, which is what thresholds such as the gate's ``promote_score`` mean.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

__all__ = [
    "MatchResult",
    "Rating",
    "elo_difference",
    "expected_score",
    "fit_bradley_terry",
    "head_to_head_score",
    "score_interval",
    "sprt",
    "wilson_interval",
]

# Elo points per natural-log unit of the logistic model: P(win) = 1 / (1 + 10^(-d/400)).
ELO_PER_NAT = 400.0 / math.log(10.0)
_SCORE_CLIP = 1e-6


def _check_confidence(confidence: float) -> float:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in the open interval (0, 1), got {confidence!r}")
    # Two-sided: the interval leaves (1 - confidence)/2 in each tail.
    return NormalDist().inv_cdf(0.5 + confidence / 2.0)


def _check_count(name: str, value: float) -> None:
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a non-negative count, got {value!r}")


def wilson_interval(
    successes: float, trials: int, *, confidence: float = 0.95
) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion ``successes / trials``.

    ``successes`` may be fractional (draws as half points). Unlike the normal (Wald) interval it
    stays inside [0, 1] and is not degenerate at 0 or ``trials`` successes, which matters for the
    short screening matches of the gate.
    """
    z = _check_confidence(confidence)
    _check_count("successes", successes)
    if isinstance(trials, bool) or not isinstance(trials, int | np.integer) or trials <= 0:
        raise ValueError(f"trials must be a positive integer, got {trials!r}")
    if successes > trials:
        raise ValueError(f"successes ({successes!r}) must not exceed trials ({trials!r})")
    n = float(trials)
    p = successes / n
    z2 = z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z / (1 + z2 / n) * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def score_interval(
    wins: int, draws: int, losses: int, *, confidence: float = 0.95
) -> tuple[float, float, float]:
    """``(score, low, high)``: the score ``(wins + draws/2) / games`` and its Wilson interval."""
    for name, value in (("wins", wins), ("draws", draws), ("losses", losses)):
        _check_count(name, value)
    games = wins + draws + losses
    if games == 0:
        raise ValueError("no games: wins + draws + losses must be positive, got 0")
    points = wins + draws / 2.0
    low, high = wilson_interval(points, int(games), confidence=confidence)
    return points / games, low, high


def _check_field(field: int) -> int:
    if isinstance(field, bool) or not isinstance(field, int | np.integer) or field < 1:
        raise ValueError(f"field must be a positive integer (opponents per game), got {field!r}")
    return int(field)


def elo_difference(score: float, field: int = 1) -> float:
    """Logistic Elo difference (400 scale) implied by an expected ``score`` in [0, 1] against a
    field of ``field`` copies of the opponent (1: head to head; see the module's Luce model).

    The score is clipped into [1e-6, 1 - 1e-6] so a perfect result gives a large, finite value.
    """
    if not math.isfinite(score) or not 0.0 <= score <= 1.0:
        raise ValueError(f"score must be in [0, 1], got {score!r}")
    s = min(max(score, _SCORE_CLIP), 1.0 - _SCORE_CLIP)
    return 400.0 * math.log10(_check_field(field) * s / (1.0 - s))


def expected_score(elo_difference: float, field: int = 1) -> float:
    """Expected score of a player rated ``elo_difference`` above its opponent (logistic), or
    against a field of ``field`` copies of it (Luce)."""
    if math.isnan(elo_difference):
        raise ValueError("elo_difference must be a number, got nan")
    return 1.0 / (1.0 + _check_field(field) * 10.0 ** (-elo_difference / 400.0))


def head_to_head_score(score: float, field: int = 1) -> float:
    """The head-to-head score equivalent to a win share ``score`` against a field of ``field``
    copies of the opponent: ``expected_score(elo_difference(score, field))`` without the
    clipping, i.e. ``field * s / (field * s + 1 - s)``. Chance (``1 / (field + 1)``) maps to
    0.5; the map is increasing, so it carries an interval's bounds too. Identity at
    ``field=1``."""
    if not math.isfinite(score) or not 0.0 <= score <= 1.0:
        raise ValueError(f"score must be in [0, 1], got {score!r}")
    k = _check_field(field)
    if k == 1:
        return float(score)
    return k * score / (k * score + 1.0 - score)


@dataclass(frozen=True)
class MatchResult:
    """Results of games between ``player_a`` and ``player_b`` (counts from a's side); with
    more than two players, a against a field of ``field`` copies of b (``wins_b``: one of
    them finished ahead of a)."""

    player_a: str
    player_b: str
    wins_a: int
    draws: int
    wins_b: int
    field: int = 1


@dataclass(frozen=True)
class Rating:
    """An Elo rating with its confidence interval and the number of real games behind it."""

    elo: float
    low: float
    high: float
    games: int


def _sigmoid(x: np.ndarray) -> np.ndarray:
    # exp(-log(1 + e^-x)): no overflow, and full relative precision in the far tails too
    # (the tanh form 0.5·(1 + tanh(x/2)) cancels to nothing for x below about -20).
    return np.exp(-np.logaddexp(0.0, -x))


def fit_bradley_terry(
    matches: Sequence[MatchResult],
    *,
    anchor: str = "random",
    anchor_elo: float = 0.0,
    confidence: float = 0.95,
    prior_games: float = 1.0,
) -> dict[str, Rating]:
    """Maximum-likelihood Bradley–Terry ratings (Elo scale) over all ``matches``.

    Model: P(i beats j) = 1 / (1 + 10^((elo_j - elo_i)/400)); a draw is half a win and half a
    loss. A match against a field of ``field`` copies of j (more than two players) counts with
    P(i wins) = 1 / (1 + field * 10^((elo_j - elo_i)/400)) (Luce; see the module docstring).
    ``anchor`` is fixed at exactly ``anchor_elo``. Regulariser: every other player gets
    ``prior_games`` virtual *draws* against the anchor (half a virtual win, half a virtual loss),
    which pulls it weakly towards the anchor's rating and keeps unbeaten or winless players
    finite (it must be > 0); set it small (e.g. 1e-6) to approach the plain maximum-likelihood fit.

    Solved by damped Newton's method to a step below 1e-9 (the anchored, regularised
    log-likelihood is strictly concave). Intervals are ``elo ± z·σ`` with σ from the inverse of
    the observed Fisher information (negative Hessian) of the anchored log-likelihood, so they
    are intervals *relative to the anchor*; the anchor's own interval is a point.

    Raises ValueError naming players not connected to the anchor by real games, negative
    counts, or a bad ``prior_games``/``confidence``.
    """
    z = _check_confidence(confidence)
    # Strictly positive: without the prior an unbeaten or winless player has no finite
    # maximum-likelihood rating at all. Use a tiny value (1e-6) for a near-plain ML fit.
    if not math.isfinite(prior_games) or prior_games <= 0:
        raise ValueError(f"prior_games must be a finite number > 0, got {prior_games!r}")
    players: dict[str, int] = {anchor: 0}
    games: dict[str, int] = {anchor: 0}
    neighbours: dict[str, set[str]] = {anchor: set()}
    rows: list[tuple[int, int, float, float, float]] = []  # (i, j, points_i, games, log field)
    for match in matches:
        for name in ("wins_a", "draws", "wins_b"):
            value = getattr(match, name)
            if value < 0:
                raise ValueError(
                    f"{name} must be a non-negative count, got {value!r} in {match!r}"
                )
        _check_field(match.field)
        if match.player_a == match.player_b:
            raise ValueError(f"a player cannot play itself: {match!r}")
        n = match.wins_a + match.draws + match.wins_b
        for p in (match.player_a, match.player_b):
            players.setdefault(p, len(players))
            games[p] = games.get(p, 0) + n
            neighbours.setdefault(p, set())
        if n == 0:
            continue
        neighbours[match.player_a].add(match.player_b)
        neighbours[match.player_b].add(match.player_a)
        rows.append(
            (players[match.player_a], players[match.player_b], match.wins_a + match.draws / 2, n,
             math.log(match.field))
        )

    # Connectivity through real games: the prior alone would "rate" an isolated group, but
    # that rating would be the prior's invention, not a measurement.
    seen = {anchor}
    frontier = [anchor]
    while frontier:
        for other in neighbours[frontier.pop()]:
            if other not in seen:
                seen.add(other)
                frontier.append(other)
    unconnected = sorted(set(players) - seen)
    if unconnected:
        raise ValueError(
            f"players not connected to the anchor {anchor!r} by any games: {unconnected}; "
            "every rated player needs a chain of matches leading to the anchor"
        )

    k = len(players)
    i_idx = np.array([r[0] for r in rows], dtype=np.int64)
    j_idx = np.array([r[1] for r in rows], dtype=np.int64)
    points = np.array([r[2] for r in rows], dtype=np.float64)
    counts = np.array([r[3] for r in rows], dtype=np.float64)
    offsets = np.array([r[4] for r in rows], dtype=np.float64)
    if k > 1:
        others = np.arange(1, k)
        i_idx = np.concatenate([i_idx, others])
        j_idx = np.concatenate([j_idx, np.zeros_like(others)])
        points = np.concatenate([points, np.full(k - 1, prior_games / 2)])
        counts = np.concatenate([counts, np.full(k - 1, float(prior_games))])
        offsets = np.concatenate([offsets, np.zeros(k - 1)])

    def loglik(r: np.ndarray) -> float:
        d = r[i_idx] - r[j_idx] - offsets
        # log σ(d) = -log1p(e^-d), written stably with logaddexp.
        return float(
            -np.sum(points * np.logaddexp(0.0, -d) + (counts - points) * np.logaddexp(0.0, d))
        )

    def grad_hess(r: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        d = r[i_idx] - r[j_idx] - offsets
        p, q = _sigmoid(d), _sigmoid(-d)
        # q = σ(-d), never 1 - p, and the gradient as points·q - (counts - points)·p rather than
        # points - counts·p: for lopsided results both forms cancel to a few significant digits.
        w = counts * p * q
        g_pair = points * q - (counts - points) * p
        grad = np.zeros(k)
        np.add.at(grad, i_idx, g_pair)
        np.add.at(grad, j_idx, -g_pair)
        hess = np.zeros((k, k))
        np.add.at(hess, (i_idx, i_idx), -w)
        np.add.at(hess, (j_idx, j_idx), -w)
        np.add.at(hess, (i_idx, j_idx), w)
        np.add.at(hess, (j_idx, i_idx), w)
        return grad[1:], hess[1:, 1:]  # the anchor (index 0) is fixed, not a parameter

    r = np.zeros(k)  # natural-log units; anchor stays at 0
    if k > 1:
        ll = loglik(r)
        for _ in range(500):
            grad, hess = grad_hess(r)
            step = np.linalg.solve(hess, -grad)
            # Converged: steps below 1e-9 nats, or a Newton decrement (the predicted gain in
            # log-likelihood) at rounding level — far out on a flat tail (an unbeaten player with
            # a tiny prior) the curvature is so small that rounding in the gradient alone moves
            # the step by more than 1e-9 although the fit cannot improve any further.
            if np.max(np.abs(step)) < 1e-9 or float(grad @ step) < 1e-24 * max(1.0, abs(ll)):
                break
            # Damping: halve until the likelihood does not drop, so lopsided results (where the
            # optimum is far out on the flat tail) cannot make Newton overshoot and diverge.
            scale = 1.0
            while True:
                trial = r.copy()
                trial[1:] += scale * step
                trial_ll = loglik(trial)
                if trial_ll >= ll - 1e-12 * abs(ll) or scale < 1e-8:
                    break
                scale *= 0.5
            r, ll = trial, trial_ll
        else:  # pragma: no cover - strictly concave problems converge in a few dozen steps
            raise RuntimeError("Bradley–Terry fit did not converge in 500 Newton steps")
        _, hess = grad_hess(r)
        sigma = np.sqrt(np.clip(np.diag(np.linalg.inv(-hess)), 0.0, None))
        sigma = np.concatenate([[0.0], sigma])
    else:
        sigma = np.zeros(1)

    ratings: dict[str, Rating] = {}
    for name, index in players.items():
        elo = anchor_elo + float(r[index]) * ELO_PER_NAT
        half = z * float(sigma[index]) * ELO_PER_NAT
        if index == 0:
            elo, half = float(anchor_elo), 0.0  # exact, not anchor + rounding
        ratings[name] = Rating(elo=elo, low=elo - half, high=elo + half, games=int(games[name]))
    return ratings


def sprt(
    wins: int,
    draws: int,
    losses: int,
    *,
    elo0: float = 0.0,
    elo1: float = 35.0,
    alpha: float = 0.05,
    beta: float = 0.05,
    field: int = 1,
) -> tuple[str, float]:
    """Sequential probability ratio test of H1: Elo = ``elo1`` against H0: Elo = ``elo0``.

    Returns ``("accept" | "reject" | "continue", llr)``: "accept" means H1 (the candidate is
    ``elo1`` stronger) with false-positive rate ``alpha``; "reject" means H0 with false-negative
    rate ``beta``. The log-likelihood ratio is the trinomial GSPRT approximation with logistic
    Elo used by fishtest and cutechess (M. Van den Bergh): with per-game score mean ``s`` and
    variance ``var`` estimated from the counts, and ``s_k = expected_score(elo_k, field)``
    (``field``: the opponent's copies per game, more than two players),
    ``llr = N (s1 - s0) (2 s - s0 - s1) / (2 var)``. Bounds are Wald's:
    ``log(beta / (1 - alpha))`` and ``log((1 - beta) / alpha)``.

    A result category with no games gets a pseudo-count of 0.5 so that the variance is never
    zero (otherwise a single win would count as infinitely convincing).
    """
    for name, value in (("wins", wins), ("draws", draws), ("losses", losses)):
        _check_count(name, value)
    if wins + draws + losses == 0:
        raise ValueError("no games: wins + draws + losses must be positive, got 0")
    for name, value in (("alpha", alpha), ("beta", beta)):
        if not 0.0 < value < 0.5:
            raise ValueError(f"{name} must be in (0, 0.5), got {value!r}")
    if not elo1 > elo0:
        raise ValueError(f"elo1 must be greater than elo0, got elo0={elo0!r}, elo1={elo1!r}")
    counts = np.array([wins, draws, losses], dtype=np.float64)
    if np.any(counts == 0):
        counts = np.where(counts == 0, 0.5, counts)
    n = counts.sum()
    w, d, _ = counts / n
    s = w + d / 2
    var = w + d / 4 - s * s
    s0, s1 = expected_score(elo0, field), expected_score(elo1, field)
    llr = float(n * (s1 - s0) * (2 * s - s0 - s1) / (2 * var))
    lower = math.log(beta / (1 - alpha))
    upper = math.log((1 - beta) / alpha)
    if llr >= upper:
        return "accept", llr
    if llr <= lower:
        return "reject", llr
    return "continue", llr
