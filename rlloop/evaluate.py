"""How good is an agent really? ``python -m rlloop.evaluate COMMAND ...``

Commands (each prints a table, writes ``<out>/<command>.json`` and, where there is a series to
show, a PNG next to it; ``--out`` defaults to ``<run>/evaluation``):

``perfect-play RUN``
    Connect Four: mistake rate (the chosen move throws away a win or a draw) and value-head
    outcome accuracy on the perfect-play test sets (``../shared/data/connect4``, or
    ``--data-dir``) and on rlloop's bundled positions, for the raw policy (0 simulations) and
    search (``--simulations 0 16 64``). ``--champions`` scores every champion checkpoint the
    run kept; the PNG shows mistake rates over the run's champions (with the loop's own
    in-run scores from the ledger).
``gauntlet RUN``
    The run's agent against baselines (random, one-ply greedy), the run's earlier champions
    and, with ``--opponents tree``, the tree-model player of the run's side trainers
    (``rlloop.side.player``); on RingRift also ``heuristic`` (the reference heuristic's one-ply
    player) and ``heuristic-search`` (search with the heuristic as value, ``--simulations``),
    profile ``--heuristic-profile``; Bradley-Terry Elo anchored at random = 0 with 95% intervals. The PNG shows the
    Elo of the run's champions recorded by the gate. With more than two players the agent
    plays every seat in turn against ``num_players - 1`` copies of each opponent; the score
    is the share of games it won (chance ``1 / num_players``) and Elo follows the Luce model
    (:mod:`rlloop.ratings`), so equal strength is Elo 0 whatever the player count.
``match A B``
    Two agents head to head, seats swapped in pairs: W/D/L, score with its interval, Elo
    difference. ``A`` and ``B`` are run directories, optionally ``RUN@champion``,
    ``RUN@latest``, ``RUN@STEP`` (a training checkpoint) or ``RUN@champion:STEP``; a run
    that improves several configurations needs ``RUN#LINEAGE`` (e.g. ``RUN#connect4@champion``).

Exit status: 0 on success, 2 on bad input (a message names it).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from rlloop import progress
from rlloop.runs import RunDir, atomic_write_json

EXIT_BAD_INPUT = 2
# Gauntlet opponents: the fixed baselines, the side trainers' tree-model player (the run's
# newest side models, rlloop.side), the run's earlier champions.
# RingRift adds the reference heuristic's players (rlloop.games.ringrift.heuristic_players).
OPPONENTS = ("random", "greedy", "tree", "champions", "heuristic", "heuristic-search")


# ------------------------------------------------------------------------------- agents
def parse_spec(spec: str) -> tuple[Path, str, int | None, str | None]:
    """``RUN[#LINEAGE][@champion|@latest|@STEP|@champion:STEP]`` -> (run dir, which, step,
    lineage). ``#LINEAGE`` names the game configuration of a run that improves several."""
    path, _, selector = spec.partition("@")
    path, _, lineage = path.partition("#")
    name = lineage or None
    if not selector or selector == "auto":
        return Path(path), "auto", None, name
    if selector in ("champion", "latest"):
        return Path(path), selector, None, name
    if selector.startswith("champion:") and selector[len("champion:"):].isdigit():
        return Path(path), "champion", int(selector[len("champion:"):]), name
    if selector.isdigit():
        return Path(path), "latest", int(selector), name
    raise ValueError(
        f"agent {spec!r}: after '@' give champion, latest, a training step or champion:STEP"
    )


def load(spec: str) -> tuple[Any, str]:
    """(agent, label) for an agent spec (see :func:`parse_spec`)."""
    from rlloop.agent import load_agent

    run_dir, which, step, lineage = parse_spec(spec)
    agent = load_agent(run_dir, step=step, which=which, lineage=lineage)
    return agent, _label(run_dir, which, step, lineage)


def _label(run_dir: Path, which: str, step: int | None, lineage: str | None) -> str:
    from rlloop.agent import load_config, resolve_lineage

    name = resolve_lineage(run_dir, lineage)
    if which == "auto":
        which = "champion" if load_config(run_dir, name).gate.enabled and step is None else "latest"
    run = f"{run_dir.name}#{lineage}" if lineage else run_dir.name
    if which == "champion" and step is None:
        model = _ledger_champion(run_dir, name)
        return f"{run}:{model}" if model else f"{run}:champion"
    return f"{run}:{which}" + (f"-{step}" if step is not None else "")


def _read_ledger(run_dir: Path, read: Any, default: Any) -> Any:
    """``read(ledger)`` on the run's ledger opened read-only, or ``default`` if it has none."""
    from rlloop.ledger import Ledger

    path = RunDir(run_dir).ledger
    if not path.is_file():
        return default
    with Ledger(path, readonly=True) as ledger:
        return read(ledger)


def _ledger_champion(run_dir: Path, lineage: str) -> str | None:
    champion = _read_ledger(run_dir, lambda ledger: ledger.champion(lineage), None)
    return champion.id if champion else None


def _out_dir(args: argparse.Namespace, run_dir: Path) -> Path:
    out = Path(args.out) if args.out else RunDir(run_dir).evaluation
    out.mkdir(parents=True, exist_ok=True)
    return out


def _write_json(path: Path, payload: dict[str, Any]) -> None:
    atomic_write_json(path, payload)  # never a half-written report


# ------------------------------------------------------------------------- perfect play
def cmd_perfect_play(args: argparse.Namespace) -> dict[str, Any]:
    import jax

    from rlloop import perfect_play as pp
    from rlloop.agent import champion_steps, load_agent

    run_dir, which, step, lineage = parse_spec(args.run)
    available = pp.available_sets(args.data_dir)
    names = args.sets or available
    for name in names:
        if name not in pp.ALL_SETS:
            raise ValueError(f"unknown set {name!r}; valid: {', '.join(pp.ALL_SETS)}")
        if name not in available:
            raise FileNotFoundError(
                f"set {name!r} is not available (test-set folder: "
                f"{args.data_dir or pp.default_data_dir() or 'none found'}); available: "
                + ", ".join(available)
            )
    if any(count < 0 for count in args.simulations):
        raise ValueError(f"--simulations must be >= 0, got {args.simulations}")
    sets = [pp.load_set(name, data_dir=args.data_dir, limit=args.limit) for name in names]
    mistake_sets = pp.ALL_SETS if args.score_all_moves else pp.MISTAKE_SETS
    oracle = pp.MoveOutcomes(None if args.no_cache else pp.default_cache_path())
    budget = args.budget_seconds or None

    if args.champions:
        targets = [("champion", s) for s in champion_steps(run_dir, lineage)]
        if not targets:
            raise FileNotFoundError(f"run {run_dir} has no champion checkpoints")
    else:
        targets = [(which, step)]
    evaluations = []
    for target_which, target_step in progress.each(targets, "perfect play", unit="model"):
        agent = load_agent(run_dir, step=target_step, which=target_which, lineage=lineage)
        label = _label(run_dir, target_which, target_step, lineage)
        if not agent.game.perfect_play:
            raise ValueError(
                f"perfect-play needs a Connect Four run (a game rlloop can solve); {run_dir} "
                f"plays {agent.game.name}"
            )
        start = time.perf_counter()
        results = pp.evaluate_agent(
            agent, sets, simulations=args.simulations, oracle=oracle,
            mistake_sets=mistake_sets, budget_seconds=budget, key=jax.random.key(args.seed),
        )  # fmt: skip
        seconds = time.perf_counter() - start
        print(pp.format_table(results, title=f"\n{label}  ({seconds:.1f} s)"))
        evaluations.append({
            "model": label, "step": target_step, "seconds": seconds,
            "results": [r.as_dict() for r in results],
        })  # fmt: skip
    out = _out_dir(args, run_dir)
    history = _perfect_play_history(run_dir)
    payload = {
        "command": "perfect-play", "run": str(run_dir), "simulations": list(args.simulations),
        "sets": names, "data_dir": str(args.data_dir or pp.default_data_dir() or ""),
        "mistake": "the chosen move's exact outcome (win/draw/loss) is worse than the position's",
        "value_accuracy": f"sign of the value (|v| < {pp.VALUE_THRESHOLD:.3f} = draw) equals the outcome",
        "evaluations": evaluations, "in_run_history": history,
        "solver": {"seconds": oracle.solver_seconds, "positions_solved": oracle.solved},
    }  # fmt: skip
    _write_json(out / "perfect_play.json", payload)
    png = out / "perfect_play.png"
    _plot_perfect_play(png, evaluations, history, run_dir.name)
    print(f"\nwrote {out / 'perfect_play.json'} and {png}")
    return payload


def _perfect_play_history(run_dir: Path) -> list[dict[str, Any]]:
    """The loop's in-run perfect-play scores (ledger ``PERFECT_PLAY`` events)."""
    from rlloop.perfect_play import PERFECT_PLAY_EVENT

    return _read_ledger(run_dir, lambda ledger: [
        event.payload for event in ledger.events_since(kind=PERFECT_PLAY_EVENT)
    ], [])  # fmt: skip


def _iteration_of(model: str, fallback: int | None) -> int | None:
    tail = model.rsplit("-", 1)[-1]
    return int(tail) if tail.isdigit() else fallback


def _plot_perfect_play(
    path: Path, evaluations: list[dict[str, Any]], history: list[dict[str, Any]], title: str
) -> None:
    """Mistake rate per set and simulation count against the model's iteration."""
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(10, 5))
    series: dict[tuple[str, int, str], list[tuple[int, float]]] = {}
    for source, rows in (("in run", history), ("evaluated", evaluations)):
        for row in rows:
            model = row.get("model_id") or row.get("model", "")
            iteration = row.get("iteration", _iteration_of(model, row.get("step")))
            if iteration is None:
                continue
            for result in row["results"]:
                if result["mistake_rate"] is not None:
                    key = (result["set"], result["simulations"], source)
                    series.setdefault(key, []).append((iteration, 100 * result["mistake_rate"]))
    # One colour per set, one line style per simulation count, markers for the source.
    colours = {name: f"C{i}" for i, name in enumerate(dict.fromkeys(k[0] for k in sorted(series)))}
    counts = sorted({k[1] for k in series})
    styles = {count: ("-", "--", ":", "-.")[i % 4] for i, count in enumerate(counts)}
    for (name, sims, source), points in sorted(series.items()):
        points.sort()
        xs, ys = zip(*points, strict=True)
        axis.plot(
            xs, ys, linestyle=styles[sims], marker="o" if source == "in run" else "s",
            color=colours[name], markersize=4 if source == "in run" else 7,
            label=f"{name}, {sims} sims ({source})",
        )  # fmt: skip
    axis.set_xlabel("iteration of the model")
    axis.set_ylabel("mistake rate (%)")
    axis.set_title(f"{title}: moves that lose a win or a draw")
    axis.set_ylim(bottom=0)
    axis.grid(alpha=0.3)
    if series:
        axis.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # files only, no display needed
    import matplotlib.pyplot as plt

    return plt


# ---------------------------------------------------------------------------- gauntlet
def _network_player(label: str, agent: Any, simulations: int) -> Any:
    """``agent`` as an arena player: its run's search settings at ``simulations``."""
    from rlloop.arena import network_player
    from rlloop.search import search_knobs

    return network_player(label, agent.game, agent.network, agent.params,
                          num_simulations=simulations,
                          search_knobs=search_knobs(agent.search_config))  # fmt: skip


def _opponent_players(
    agent: Any, run_dir: Path, lineage: str | None, args: argparse.Namespace
) -> list[Any]:
    from rlloop.agent import champion_steps, load_agent
    from rlloop.arena import BASELINES, baseline_players

    players = []
    baselines = baseline_players(agent.game)
    for name in args.opponents:
        if name in BASELINES:
            if name not in baselines:
                print(f"({name} skipped: {agent.game.name} has {agent.game.num_actions} actions)")
                continue
            players.append(baselines[name])
        elif name == "champions":
            steps = champion_steps(run_dir, lineage)[-args.max_champions :]
            for step in steps:
                earlier = load_agent(run_dir, step=step, which="champion", lineage=lineage)
                players.append(_network_player(f"champion-{step}", earlier, args.simulations))
        elif name in ("heuristic", "heuristic-search"):
            from rlloop.games.ringrift.heuristic_players import make_player, player_name
            from rlloop.search import search_knobs

            players.append(make_player(
                agent.game, player_name(name, args.heuristic_profile),
                num_simulations=args.simulations, search_knobs=search_knobs(agent.search_config),
            ))  # fmt: skip
        elif name == "tree":
            from rlloop.agent import resolve_lineage
            from rlloop.side.player import load_tree_player

            players.append(load_tree_player(run_dir, resolve_lineage(run_dir, lineage), agent.game))
        else:
            raise ValueError(f"unknown opponent {name!r}; valid: {', '.join(OPPONENTS)}")
    return players


def cmd_gauntlet(args: argparse.Namespace) -> dict[str, Any]:
    import jax

    from rlloop.arena import field_size, gauntlet
    from rlloop.ratings import MatchResult, elo_difference, fit_bradley_terry, score_interval

    _check_games(args.games)
    agent, label = load(args.run)
    run_dir, _, _, lineage = parse_spec(args.run)
    candidate = _network_player(label, agent, args.simulations)
    opponents = _opponent_players(agent, run_dir, lineage, args)
    if not opponents:
        raise ValueError("no opponents to play")
    start = time.perf_counter()
    outcomes = gauntlet(agent.game, candidate, opponents, num_games=args.games,
                        key=jax.random.key(args.seed), opening_moves=args.opening_moves)  # fmt: skip
    seconds = time.perf_counter() - start
    field = field_size(agent.game)  # copies of the opponent in every game (Luce Elo)
    results = [MatchResult(o.player_a, o.player_b, o.wins_a, o.draws, o.wins_b, field) for o in outcomes]
    anchored = any(o.player_b == "random" for o in outcomes)
    ratings = fit_bradley_terry(results, anchor="random" if anchored else label)
    rows = []
    print(f"\n{label} ({args.simulations} sims) vs {len(opponents)} opponents, {args.games} games each"
          f" ({seconds:.1f} s); Elo anchored at {'random' if anchored else label} = 0")  # fmt: skip
    if field > 1:
        print(f"{agent.game.num_players} players: {label} against {field} copies of each opponent, seats "
              f"rotated; score = games won, chance {1 / (field + 1):.3f}")  # fmt: skip
    print(f"{'opponent':<22} {'W-D-L':>13} {'score':>21} {'Elo diff':>9} {'opponent Elo':>22}")
    for outcome in outcomes:
        score, low, high = score_interval(outcome.wins_a, outcome.draws, outcome.wins_b)
        rating = ratings[outcome.player_b]
        rows.append({
            "opponent": outcome.player_b, "wins": outcome.wins_a, "draws": outcome.draws,
            "losses": outcome.wins_b, "score": score, "score_low": low, "score_high": high,
            "elo_difference": elo_difference(score, field), "opponent_elo": rating.elo,
            "opponent_elo_low": rating.low, "opponent_elo_high": rating.high,
            "mean_length": float(outcome.lengths.mean()),
        })  # fmt: skip
        print(f"{outcome.player_b:<22} {outcome.wins_a:>4}-{outcome.draws}-{outcome.wins_b:<4} "
              f"{score:6.3f} [{low:.3f}, {high:.3f}] {elo_difference(score, field):>+9.0f} "
              f"{rating.elo:>8.0f} [{rating.low:.0f}, {rating.high:.0f}]")  # fmt: skip
    own = ratings[label]
    print(f"{label}: Elo {own.elo:.0f} [{own.low:.0f}, {own.high:.0f}]")
    out = _out_dir(args, run_dir)
    champions = _champion_elos(run_dir, lineage)
    payload = {
        "command": "gauntlet", "agent": label, "simulations": args.simulations,
        "games_per_opponent": args.games, "seconds": seconds, "field": field,
        "elo": {"value": own.elo, "low": own.low, "high": own.high,
                "anchor": "random" if anchored else label},
        "opponents": rows, "run_champions": champions,
    }  # fmt: skip
    _write_json(out / "gauntlet.json", payload)
    png = out / "gauntlet.png"
    _plot_elo(png, champions, own, run_dir.name)
    print(f"\nwrote {out / 'gauntlet.json'} and {png}")
    return payload


def _champion_elos(run_dir: Path, lineage: str | None = None) -> list[dict[str, Any]]:
    """Every model the run (lineage) ever promoted, with the gate's Bradley-Terry Elo."""
    from rlloop.agent import resolve_lineage

    name = resolve_lineage(run_dir, lineage)
    return _read_ledger(run_dir, lambda ledger: _promoted_elos(ledger, name), [])


def _promoted_elos(ledger: Any, lineage: str) -> list[dict[str, Any]]:
    promoted = {p.model_id for p in ledger.promotions(config=lineage)}
    champion = ledger.champion(lineage)
    if champion is not None:
        promoted.add(champion.id)
    return [
        {"model": m.id, "iteration": m.iteration, "elo": m.elo, "low": m.elo_low,
         "high": m.elo_high, "status": m.status}
        for m in sorted(ledger.models(config=lineage), key=lambda m: m.iteration)
        if m.id in promoted and m.elo is not None
    ]  # fmt: skip


def _plot_elo(path: Path, champions: list[dict[str, Any]], own: Any, title: str) -> None:
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(8, 4.5))
    if champions:
        xs = [c["iteration"] for c in champions]
        ys = [c["elo"] for c in champions]
        low = [c["elo"] - (c["low"] if c["low"] is not None else c["elo"]) for c in champions]
        high = [(c["high"] if c["high"] is not None else c["elo"]) - c["elo"] for c in champions]
        axis.errorbar(xs, ys, yerr=[low, high], fmt="-o", capsize=3, label="champions (gate Elo)")
    axis.axhline(own.elo, color="tab:red", linestyle="--",
                 label=f"evaluated agent: {own.elo:.0f} (gauntlet)")  # fmt: skip
    axis.axhline(0, color="grey", linewidth=0.8)
    axis.set_xlabel("iteration of promotion")
    axis.set_ylabel("Elo (random = 0)")
    axis.set_title(f"{title}: Elo of the run's champions")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


# ------------------------------------------------------------------------------- match
def cmd_match(args: argparse.Namespace) -> dict[str, Any]:
    import jax

    from rlloop.arena import field_size, play_match
    from rlloop.ratings import elo_difference, score_interval

    _check_games(args.games)
    agent_a, label_a = load(args.a)
    agent_b, label_b = load(args.b)
    if agent_a.game.name != agent_b.game.name:
        raise ValueError(f"{label_a} plays {agent_a.game.name} but {label_b} plays {agent_b.game.name}")
    if label_a == label_b:
        label_b += " (B)"
    player_a = _network_player(label_a, agent_a, args.simulations)
    player_b = _network_player(label_b, agent_b, args.simulations)
    start = time.perf_counter()
    outcome = play_match(agent_a.game, player_a, player_b, num_games=args.games,
                         key=jax.random.key(args.seed), opening_moves=args.opening_moves)  # fmt: skip
    seconds = time.perf_counter() - start
    score, low, high = score_interval(outcome.wins_a, outcome.draws, outcome.wins_b)
    field = field_size(agent_a.game)  # copies of B in every game (Luce Elo)
    elo, elo_low, elo_high = (elo_difference(value, field) for value in (score, low, high))
    print(f"\n{label_a} vs {label_b}: {args.games} games, {args.simulations} sims ({seconds:.1f} s)")
    if field > 1:
        print(f"  {agent_a.game.num_players} players: A against {field} copies of B, seats rotated; "
              f"score = games won, chance {1 / (field + 1):.3f}")  # fmt: skip
    print(f"  W-D-L {outcome.wins_a}-{outcome.draws}-{outcome.wins_b}  score {score:.3f} "
          f"[{low:.3f}, {high:.3f}]  Elo difference {elo:+.0f} [{elo_low:+.0f}, {elo_high:+.0f}]")  # fmt: skip
    payload = {
        "command": "match", "a": label_a, "b": label_b, "games": args.games,
        "simulations": args.simulations, "seconds": seconds, "field": field, "wins_a": outcome.wins_a,
        "draws": outcome.draws, "wins_b": outcome.wins_b, "score_a": score, "score_low": low,
        "score_high": high, "elo_difference": elo, "elo_low": elo_low, "elo_high": elo_high,
        "mean_length": float(outcome.lengths.mean()),
    }  # fmt: skip
    out = _out_dir(args, parse_spec(args.a)[0])
    _write_json(out / "match.json", payload)
    print(f"wrote {out / 'match.json'}")
    return payload


def _check_games(games: int) -> None:
    if games < 2 or games % 2:
        raise ValueError(f"--games must be an even number >= 2 (seats swap in pairs), got {games}")


# -------------------------------------------------------------------------------- main
def build_parser() -> argparse.ArgumentParser:
    from rlloop.perfect_play import ALL_SETS

    parser = argparse.ArgumentParser(
        prog="python -m rlloop.evaluate", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    commands = parser.add_subparsers(dest="command", required=True)

    def common(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--out", help="report folder (default: <run>/evaluation)")
        sub.add_argument("--seed", type=int, default=0)

    sub = commands.add_parser("perfect-play", help="Connect Four mistake rate vs perfect play")
    sub.add_argument("run", help="run directory (RUN, RUN@champion, RUN@latest, RUN@STEP; RUN#LINEAGE@... for one lineage of a run of several)")
    sub.add_argument("--sets", nargs="+", metavar="SET",
                     help=f"position sets (default: all available of {', '.join(ALL_SETS)})")  # fmt: skip
    sub.add_argument("--simulations", nargs="+", type=int, default=[0, 16],
                     help="0 = the raw policy's argmax; N = search with N simulations")  # fmt: skip
    sub.add_argument("--limit", type=int, help="first N positions of each set")
    sub.add_argument("--budget-seconds", type=float, default=300.0,
                     help="solver time per set and simulation count (0: unlimited)")  # fmt: skip
    sub.add_argument("--score-all-moves", action="store_true",
                     help="also score moves on begin-medium (slow: about a second per position)")  # fmt: skip
    sub.add_argument("--champions", action="store_true",
                     help="score every champion checkpoint the run kept")  # fmt: skip
    sub.add_argument("--data-dir", help="folder of the Test_L* files (default: ../shared/data/connect4)")
    sub.add_argument("--no-cache", action="store_true", help="do not read or write the solver cache")
    common(sub)
    sub.set_defaults(handler=cmd_perfect_play)

    sub = commands.add_parser("gauntlet", help="an agent against baselines and earlier champions")
    sub.add_argument("run", help="run directory or agent spec")
    sub.add_argument("--opponents", nargs="+", default=["random", "greedy", "champions"],
                     choices=OPPONENTS, metavar="OPPONENT",
                     help=f"any of {', '.join(OPPONENTS)} (tree: the newest side-trainer "
                          "models of the run's lineage)")  # fmt: skip
    sub.add_argument("--max-champions", type=int, default=5, help="the newest N earlier champions")
    sub.add_argument("--heuristic-profile", default="balanced",
                     choices=("balanced", "aggressive", "territorial", "defensive"),
                     help="weight profile of the heuristic opponents (RingRift)")  # fmt: skip
    sub.add_argument("--games", type=int, default=200, help="games per opponent (even)")
    sub.add_argument("--simulations", type=int, default=16)
    sub.add_argument("--opening-moves", type=int, default=2)
    common(sub)
    sub.set_defaults(handler=cmd_gauntlet)

    sub = commands.add_parser("match", help="two agents head to head")
    sub.add_argument("a", help="agent A: RUN[@champion|@latest|@STEP|@champion:STEP]")
    sub.add_argument("b", help="agent B")
    sub.add_argument("--games", type=int, default=200)
    sub.add_argument("--simulations", type=int, default=16)
    sub.add_argument("--opening-moves", type=int, default=2)
    common(sub)
    sub.set_defaults(handler=cmd_match)
    return parser


def main(argv: list[str] | None = None) -> int:
    from rlloop.checkpoints import CheckpointError
    from rlloop.ledger import LedgerError

    args = build_parser().parse_args(argv)
    try:
        args.handler(args)
    except (ValueError, FileNotFoundError, CheckpointError, LedgerError) as error:
        print(f"rlloop.evaluate {args.command}: error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    return 0


if __name__ == "__main__":
    sys.exit(main())

