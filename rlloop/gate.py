"""The arena gate: is the candidate measurably stronger than the champion?

Two stages, as a careful lab does it: a short *screen* against the champion, then — only for
candidates that pass it — a *deep* match. Every match goes into the ledger as it finishes.
The candidate also plays the fixed anchors (``gate.anchors``: by default the baselines random and
one-ply greedy; RingRift can add its heuristic players) so that a Bradley-Terry fit over all
recorded matches can anchor Elo at random = 0.

Decision (see :class:`rlloop.config.GateConfig`):
- **promote** when the lower confidence bound of the candidate's score against the champion
  (screen + deep, draws as half) exceeds ``promote_score`` (or, with ``sprt``, when the SPRT
  accepts elo1 over elo0 = 0);
- **reject** when the candidate's fitted Elo is more than ``reject_elo_margin`` below the
  champion's (or the SPRT rejects);
- otherwise **inconclusive**: the candidate stays a candidate and training goes on.

With more than two players the candidate plays against a field of ``num_players - 1``
copies of its opponent, and equal players win ``1 / num_players`` of those games. Scores are
therefore judged as their head-to-head equivalents under the Luce model
(:func:`rlloop.ratings.head_to_head_score`: chance maps to 0.5), so ``promote_score`` and
``screen_min_score`` mean the same for every player count, and the Elo fit counts the field.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax

from rlloop import parallel, progress
from rlloop.arena import (
    BASELINES,
    MatchOutcome,
    Player,
    anchor_players,
    field_size,
    network_player,
    play_match_slices,
)
from rlloop.games.base import Game
from rlloop.ledger import Ledger
from rlloop.ratings import MatchResult, fit_bradley_terry, head_to_head_score, score_interval, sprt

__all__ = ["BASELINES", "Gate", "GateDecision", "decide", "screen_passed"]


@dataclasses.dataclass(frozen=True)
class GateDecision:
    """What the gate decided and why."""

    decision: str  # "promote" | "reject" | "inconclusive"
    # The candidate's score against the champion and its interval, as head-to-head
    # equivalents with more than two players (the reason gives the raw win share too).
    score: float
    score_low: float
    score_high: float
    games: int
    candidate_elo: float
    champion_elo: float
    reason: str


Counts = tuple[int, int, int]  # the candidate's (wins, draws, losses)


def _score(counts: Counts) -> float:
    wins, draws, losses = counts
    return (wins + draws / 2.0) / max(wins + draws + losses, 1)


def screen_passed(config: Any, screen: Counts | None, field: int = 1) -> bool:
    """Whether the candidate goes on to the deep match: no screen, or a screen score (its
    head-to-head equivalent against a ``field`` of champions) of at least ``screen_min_score``."""
    return screen is None or head_to_head_score(_score(screen), field) >= float(config.screen_min_score)


def decide(
    config: Any,
    *,
    screen: Counts | None,
    deep: Counts | None,
    candidate_elo: float,
    champion_elo: float,
    field: int = 1,
) -> GateDecision:
    """The gate's decision from its match counts and the refitted Elo (a pure function).

    Screen and deep games count together. **Promote** when the screen passed
    (:func:`screen_passed`) and the Wilson lower bound of the score (draws as half) exceeds
    ``promote_score`` — or, with ``sprt``, when the SPRT (Elo 0 vs ``sprt_elo1``) accepts;
    **reject** when the candidate's Elo is more than ``reject_elo_margin`` below the
    champion's (with ``sprt``: when it rejects); else **inconclusive**. Promotion wins over
    rejection. No games at all is inconclusive. ``field``: the champion's copies per game
    (``num_players - 1``); scores are judged as head-to-head equivalents.
    """
    passed = screen_passed(config, screen, field)
    stages = []
    wins = draws = losses = 0
    for name, counts in (("screen", screen), ("deep", deep)):
        if counts is not None:
            stages.append(f"{name} {head_to_head_score(_score(counts), field):.3f}")
            wins, draws, losses = wins + counts[0], draws + counts[1], losses + counts[2]
    games = wins + draws + losses
    if games == 0:
        reason = f"no games; Elo {candidate_elo:.0f} vs champion {champion_elo:.0f}"
        nan = float("nan")
        return GateDecision("inconclusive", nan, nan, nan, 0, candidate_elo, champion_elo, reason)
    raw = score_interval(wins, draws, losses, confidence=float(config.confidence))
    score, low, high = (head_to_head_score(value, field) for value in raw)
    if config.sprt:
        verdict, llr = sprt(wins, draws, losses, elo0=0.0, elo1=float(config.sprt_elo1), field=field)
        promote, reject = passed and verdict == "accept", verdict == "reject"
        rule = f"SPRT {verdict} (LLR {llr:.2f})"
    else:
        promote = passed and low > float(config.promote_score)
        reject = candidate_elo < champion_elo - float(config.reject_elo_margin)
        rule = f"lower bound {low:.3f} vs {float(config.promote_score):.2f}"
    decision = "promote" if promote else "reject" if reject else "inconclusive"
    against = ""
    if field > 1:
        against = (f" (head to head; won {raw[0]:.3f} [{raw[1]:.3f}, {raw[2]:.3f}] against "
                   f"{field} champions, chance {1 / (field + 1):.3f})")  # fmt: skip
    reason = (
        f"{', '.join(stages)}; score {score:.3f} [{low:.3f}, {high:.3f}]{against} over "
        f"{games} games; {rule}; Elo {candidate_elo:.0f} vs champion {champion_elo:.0f}"
    )
    return GateDecision(decision, score, low, high, games, candidate_elo, champion_elo, reason)


class Gate:
    """Plays and judges gate matches; writes every match and rating to ``ledger``.

    Args:
      game, network: what is being trained.
      gate_config: the ``gate`` config node.
      search_knobs: search settings shared by both sides (``num_simulations`` comes from the
        gate config).
      ledger: the run's ledger.
      config: the game configuration (lineage) whose matches these are; its matches alone
        are refitted (default: the ledger's).
      prefix: put before the baselines' model ids (a run of several lineages names its
        models ``<lineage>/<id>``, so each lineage has its own random anchor).
      slices, local_slices: every match is cut into ``slices`` slices (one per device of the
        run's mesh) of which this process plays ``local_slices`` (its devices' positions);
        the counts are summed over processes (``arena.play_match_slices``). Process 0 alone
        writes the ledger and fits the ratings; the decision is the same in every process.
    """

    def __init__(
        self, game: Game, network: Any, gate_config: Any, search_knobs: dict[str, Any], ledger: Ledger,
        *, config: str | None = None, prefix: str = "", slices: int = 1,
        local_slices: list[int] | None = None,
    ) -> None:  # fmt: skip
        self.slices, self.local_slices = int(slices), local_slices
        self.game = game
        self.field = field_size(game)  # the opponent's copies in every match
        self.config = gate_config
        self.ledger = ledger
        self.lineage = ledger.config if config is None else config
        self.prefix = prefix
        # Built once: arena programs are cached per act function, so new parameters reuse them.
        template = network_player(
            "network", game, network, None,
            num_simulations=int(gate_config.num_simulations), search_knobs=search_knobs,
        )  # fmt: skip
        self._act = template.act
        # The fixed anchors (gate.anchors; default the baselines random and greedy).
        self.baselines = anchor_players(
            game, list(getattr(gate_config, "anchors", BASELINES)), prefix=prefix,
            num_simulations=int(gate_config.num_simulations), search_knobs=search_knobs,
        )  # fmt: skip
        # Anchors beyond the fixed baselines (the newest side-trainer tree player): rated in
        # the same Elo fit, outside the network's lineage.
        self.extra_anchors: dict[str, Player] = {}

    @property
    def anchors(self) -> list[Player]:
        """Every player a candidate plays anchor games against."""
        return [*self.baselines.values(), *self.extra_anchors.values()]

    def player(self, model_id: str, params: Any) -> Player:
        """The network player for ``model_id`` with ``params`` (a copy on this process's first
        device: arena programs run on one device, outside the mesh)."""
        return Player(name=model_id, act=self._act, params=parallel.local_copy(params))

    def _match(self, a: Player, b: Player, games: int, stage: str, iteration: int, key: jax.Array) -> MatchOutcome:
        outcome = play_match_slices(
            self.game, a, b, num_games=games, key=key, opening_moves=int(self.config.opening_moves),
            slices=self.slices, local=self.local_slices,
        )  # fmt: skip
        wins, draws, losses, length = parallel.global_sum(
            [outcome.wins_a, outcome.draws, outcome.wins_b, float(outcome.lengths.sum())]
        )
        outcome = dataclasses.replace(outcome, wins_a=int(wins), draws=int(draws), wins_b=int(losses))
        self.ledger.record_match(
            a.name, b.name, outcome.wins_a, outcome.draws, outcome.wins_b,
            stage=stage, iteration=iteration, mean_length=float(length / max(outcome.games, 1)),
            config=self.lineage,
        )  # fmt: skip
        return outcome

    def refit_ratings(self) -> dict[str, float]:
        """Bradley-Terry over every recorded match of this lineage (its random = 0); store
        each model's Elo."""
        results = [
            MatchResult(m.model_a, m.model_b, m.wins_a, m.draws, m.wins_b, field=self.field)
            for m in self.ledger.matches(config=self.lineage or None)
        ]
        if not results:
            return {}
        ratings = fit_bradley_terry(
            results, anchor=self.prefix + "random", confidence=float(self.config.confidence)
        )
        known = {model.id for model in self.ledger.models()}
        for name, rating in ratings.items():
            if name in known:
                self.ledger.set_rating(name, rating.elo, rating.low, rating.high)
        return {name: rating.elo for name, rating in ratings.items()}

    def evaluate(
        self,
        *,
        candidate: Player,
        champion: Player,
        iteration: int,
        key: jax.Array,
    ) -> GateDecision:
        """Screen, deep match if passed, anchor games, rating fit, decision."""
        config = self.config
        anchors = self.anchors
        keys = jax.random.split(key, 2 + len(anchors))
        screen_counts = deep_counts = None
        planned = (int(config.screen_games) + int(config.deep_games)
                   + int(config.anchor_games) * len(anchors))  # fmt: skip
        with progress.bar(planned, f"gate {candidate.name}", unit="game") as games:
            if int(config.screen_games):
                screen = self._match(candidate, champion, int(config.screen_games), "screen", iteration, keys[0])
                screen_counts = (screen.wins_a, screen.draws, screen.wins_b)
                games.update(int(config.screen_games))
            if screen_passed(config, screen_counts, self.field) and int(config.deep_games):
                deep = self._match(candidate, champion, int(config.deep_games), "deep", iteration, keys[1])
                deep_counts = (deep.wins_a, deep.draws, deep.wins_b)
            games.update(int(config.deep_games))  # played or skipped
            for index, baseline in enumerate(anchors):
                if int(config.anchor_games):
                    self._match(candidate, baseline, int(config.anchor_games), "anchor", iteration, keys[2 + index])
                    games.update(int(config.anchor_games))
        elo = parallel.agree(self.refit_ratings)  # the ledger is process 0's
        return decide(
            config, screen=screen_counts, deep=deep_counts,
            candidate_elo=elo.get(candidate.name, float("nan")),
            champion_elo=elo.get(champion.name, float("nan")), field=self.field,
        )  # fmt: skip
