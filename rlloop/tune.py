"""``python -m rlloop.tune``: an Optuna study over a few config knobs, resumable from SQLite.

Examples::

    python -m rlloop.tune tictactoe                    # conf/tune/tictactoe.yaml -> sweeps/tictactoe
    python -m rlloop.tune smoke --dir /tmp/sweep       # six tiny trials in about two minutes
    python -m rlloop.tune tictactoe trials=40          # a spec key set on the command line
    python -m rlloop.tune tictactoe                    # again, after a kill: resumes the study

A *spec* (``conf/tune/<name>.yaml`` or a path; :class:`TuneSpec`) names the knobs (config keys
with an Optuna distribution), the run's base overrides, the trial budget and the objective.
Each trial composes ``base overrides + knob values`` as ``rlloop.compose`` would, runs a
:class:`rlloop.Loop` for ``iterations`` iterations in ``<sweep>/trials/<N>``,
and measures its latest network after every ``objective.every`` iterations.

Objective (maximised): the **Elo of the trial's latest network against fixed anchors**: it
plays ``objective.games`` arena games (pairs from shared random openings, seats swapped)
against the uniformly random player and against the one-ply greedy player (wins at once when
it can, else blocks, else random), searching with ``objective.simulations`` simulations and
the *base* config's search settings, so every trial is measured the same way whatever its
knobs; greedy also plays random once per process; Bradley–Terry over those matches with
random = 0 (:func:`rlloop.ratings.fit_bradley_terry`). The intermediate values are the same
measure, reported to Optuna per iteration, where a median pruner stops trials below the
median of earlier trials at the same iteration.

The sweep folder::

    <sweep>/spec.yaml            the spec the study started with
    <sweep>/study.sqlite         the Optuna study (RDB storage): the study resumes from it
    <sweep>/trials/<N>/          trial N's rlloop run directory
    <sweep>/results.csv|md|png   every trial's knobs, state and Elo; Elo per iteration

Resuming: running the same command on the same folder loads the study; a trial left
``RUNNING`` by a killed process is marked ``FAIL`` and its knobs are queued again, and the
study runs until ``trials`` trials are finished (complete or pruned). One process per sweep
folder (``<sweep>/tune.pid``).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from rlloop.config import CONF_DIR
from rlloop.runs import atomic_write_text

__all__ = ["Knob", "ObjectiveSpec", "PrunerSpec", "Sweep", "TuneSpec", "load_spec", "main", "tune"]


@dataclasses.dataclass
class Knob:
    """One config key searched by the study, e.g. ``search.num_simulations``.

    ``type``: ``int`` or ``float`` (from ``low`` to ``high``, optionally ``log`` scaled or in
    steps of ``step``; 0 = continuous) or ``categorical`` (one of ``choices``).
    """

    type: str = "float"
    low: float = 0.0
    high: float = 1.0
    step: float = 0.0
    log: bool = False
    choices: list[Any] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class ObjectiveSpec:
    """How a trial's network is measured (module doc)."""

    games: int = 32  # arena games against each anchor (even)
    simulations: int = 16  # the network's search budget in those games (0: raw policy)
    opening_moves: int = 2  # random opening moves of each pair of games
    every: int = 1  # report the Elo to the pruner every N iterations (and at the last)
    seed: int = 0


@dataclasses.dataclass
class PrunerSpec:
    """Optuna's MedianPruner: no pruning during the first ``startup_trials`` trials, nor
    before iteration ``warmup_iterations`` of a trial."""

    startup_trials: int = 3
    warmup_iterations: int = 1


@dataclasses.dataclass
class TuneSpec:
    name: str = "tune"
    trials: int = 20  # finished trials (complete or pruned) the study runs to
    iterations: int = 20  # K: loop iterations per trial
    overrides: list[str] = dataclasses.field(default_factory=list)  # rlloop.compose syntax
    knobs: dict[str, Knob] = dataclasses.field(default_factory=dict)
    objective: ObjectiveSpec = dataclasses.field(default_factory=ObjectiveSpec)
    pruner: PrunerSpec = dataclasses.field(default_factory=PrunerSpec)
    seed: int = 0  # the sampler's


def load_spec(name_or_path: str, overrides: Sequence[str] = ()) -> TuneSpec:
    """The spec ``conf/tune/<name>.yaml`` (or a YAML path) with ``key=value`` overrides,
    checked. Raises ValueError naming a bad value; FileNotFoundError listing the specs."""
    path = Path(name_or_path)
    if not path.suffix:
        path = CONF_DIR / "tune" / f"{name_or_path}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in (CONF_DIR / "tune").glob("*.yaml"))
        raise FileNotFoundError(f"no tune spec {name_or_path!r} ({path}); known: {', '.join(known)}")
    merged = OmegaConf.merge(
        OmegaConf.structured(TuneSpec), OmegaConf.load(path), OmegaConf.from_dotlist(list(overrides))
    )
    spec: TuneSpec = OmegaConf.to_object(merged)  # type: ignore[assignment]
    problems = []
    if spec.trials < 1 or spec.iterations < 1:
        problems.append(f"trials={spec.trials} and iterations={spec.iterations} must be >= 1")
    if spec.objective.games < 2 or spec.objective.games % 2:
        problems.append(f"objective.games={spec.objective.games} must be even and >= 2")
    if spec.objective.every < 1:
        problems.append(f"objective.every={spec.objective.every} must be >= 1")
    if not spec.knobs:
        problems.append("knobs is empty: name at least one config key to search")
    for key, knob in spec.knobs.items():
        if knob.type not in ("int", "float", "categorical"):
            problems.append(f"knobs.{key}.type={knob.type!r}; valid: int, float, categorical")
        elif knob.type == "categorical" and not knob.choices:
            problems.append(f"knobs.{key}: a categorical knob needs choices")
        elif knob.type != "categorical" and not knob.low < knob.high:
            problems.append(f"knobs.{key}: low={knob.low} must be below high={knob.high}")
    if problems:
        raise ValueError(f"tune spec {path}: " + "; ".join(problems))
    return spec


@dataclasses.dataclass(frozen=True)
class Sweep:
    """The paths of a sweep folder (module doc)."""

    root: Path

    @property
    def storage(self) -> str:
        return f"sqlite:///{self.root.resolve() / 'study.sqlite'}"

    @property
    def spec(self) -> Path:
        return self.root / "spec.yaml"

    @property
    def pid(self) -> Path:
        return self.root / "tune.pid"

    def trial(self, number: int) -> Path:
        return self.root / "trials" / str(number)

    def results(self, suffix: str) -> Path:
        return self.root / f"results.{suffix}"


# ------------------------------------------------------------------------------ measuring
class Anchors:
    """Measures networks against random and greedy (module doc), compiling each match once
    per network shape and search: the players' act functions are kept and only their
    parameters change from trial to trial."""

    def __init__(self, objective: ObjectiveSpec, search_config: Any) -> None:
        self.objective = objective
        self.search_config = search_config
        self._candidates: dict[tuple[str, str], Any] = {}
        self._anchor_results: dict[str, Any] = {}

    def elo(self, game: Any, network: Any, params: Any, model_key: str) -> Any:
        """The :class:`rlloop.ratings.Rating` (Elo, interval) of ``params`` with random = 0."""
        import jax

        from rlloop.arena import baseline_players, field_size, gauntlet, network_player, play_match
        from rlloop.ratings import MatchResult, fit_bradley_terry
        from rlloop.search import search_knobs

        objective = self.objective
        key = (game.name, model_key)
        if key not in self._candidates:
            self._candidates[key] = network_player(
                "candidate", game, network, None, num_simulations=objective.simulations,
                search_knobs=search_knobs(self.search_config),
            )  # fmt: skip
        candidate = dataclasses.replace(self._candidates[key], params=params)
        anchors = baseline_players(game)
        seed = jax.random.key(objective.seed)
        outcomes = gauntlet(game, candidate, list(anchors.values()), num_games=objective.games,
                            key=seed, opening_moves=objective.opening_moves)  # fmt: skip
        if "greedy" in anchors and game.name not in self._anchor_results:
            self._anchor_results[game.name] = play_match(
                game, anchors["greedy"], anchors["random"], num_games=objective.games,
                key=jax.random.fold_in(seed, 99), opening_moves=objective.opening_moves,
            )  # fmt: skip
        if game.name in self._anchor_results:
            outcomes.append(self._anchor_results[game.name])
        field = field_size(game)  # more players: the candidate against a field (Luce Elo)
        results = [MatchResult(o.player_a, o.player_b, o.wins_a, o.draws, o.wins_b, field) for o in outcomes]
        return fit_bradley_terry(results, anchor="random")["candidate"]


# ------------------------------------------------------------------------------ the study
def _suggest(trial: Any, knobs: dict[str, Knob]) -> dict[str, Any]:
    values = {}
    for key, knob in knobs.items():
        if knob.type == "categorical":
            values[key] = trial.suggest_categorical(key, list(knob.choices))
        elif knob.type == "int":
            values[key] = trial.suggest_int(key, int(knob.low), int(knob.high),
                                            step=int(knob.step) or 1, log=knob.log)  # fmt: skip
        else:
            values[key] = trial.suggest_float(key, knob.low, knob.high,
                                              step=knob.step or None, log=knob.log)  # fmt: skip
    return values


def _run_trial(trial: Any, spec: TuneSpec, sweep: Sweep, anchors: Anchors) -> float:
    """One trial: the loop for ``spec.iterations`` iterations, Elo reported as it goes."""
    import optuna

    import rlloop

    values = _suggest(trial, spec.knobs)
    overrides = [*spec.overrides, f"loop.iterations={spec.iterations}",
                 *(f"{key}={value}" for key, value in values.items())]  # fmt: skip
    config = rlloop.compose(overrides)
    run_dir = sweep.trial(trial.number)
    trial.set_user_attr("run_dir", str(run_dir))
    print(f"[tune] trial {trial.number}: {', '.join(f'{k}={v}' for k, v in values.items())}", flush=True)
    started = time.perf_counter()
    model_key = OmegaConf.to_yaml(config.model)
    rating = None
    with rlloop.Loop(config, run_dir=run_dir) as loop:
        lineage = loop.lineage
        for iteration in range(1, spec.iterations + 1):
            loop.run(iterations=1)
            if iteration % spec.objective.every and iteration != spec.iterations:
                continue
            rating = anchors.elo(lineage.game, lineage.network, lineage.snapshot_params(), model_key)
            trial.report(rating.elo, iteration)
            trial.set_user_attr("elo_low", rating.low)
            trial.set_user_attr("elo_high", rating.high)
            trial.set_user_attr("iterations", iteration)
            trial.set_user_attr("seconds", time.perf_counter() - started)
            print(f"[tune] trial {trial.number} iteration {iteration}: Elo {rating.elo:+.0f} "
                  f"[{rating.low:+.0f}, {rating.high:+.0f}]", flush=True)  # fmt: skip
            if trial.should_prune():
                print(f"[tune] trial {trial.number} pruned at iteration {iteration}", flush=True)
                raise optuna.TrialPruned(f"Elo {rating.elo:.0f} below the median at iteration {iteration}")
    assert rating is not None  # the last iteration always measures
    return float(rating.elo)


def _claim(sweep: Sweep) -> None:
    """Write ``tune.pid``; refuse when another live process holds the folder."""
    if sweep.pid.is_file():
        try:
            other = int(sweep.pid.read_text().strip())
        except ValueError:
            other = 0
        if other and other != os.getpid() and _alive(other):
            raise RuntimeError(
                f"sweep {sweep.root} is in use by tune process {other} ({sweep.pid}); "
                "wait for it, or give another --dir"
            )
    atomic_write_text(sweep.pid, f"{os.getpid()}\n")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _requeue_killed(study: Any) -> list[int]:
    """Mark trials a dead process left RUNNING as FAIL and queue their knobs again."""
    from optuna.trial import TrialState

    killed = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    for trial in killed:
        study.tell(trial.number, state=TrialState.FAIL)
        study.enqueue_trial(dict(trial.params), user_attrs={"retry_of": trial.number})
    return [trial.number for trial in killed]


def _finished(study: Any) -> int:
    from optuna.trial import TrialState

    return len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)))


def tune(spec: TuneSpec, sweep_dir: str | Path) -> Any:
    """Run (or resume) the study of ``spec`` in ``sweep_dir`` until ``spec.trials`` trials
    are finished; write the results table and plot; return the ``optuna.Study``."""
    import optuna

    import rlloop

    sweep = Sweep(Path(sweep_dir))
    sweep.root.mkdir(parents=True, exist_ok=True)
    _claim(sweep)
    if not sweep.spec.is_file():
        atomic_write_text(sweep.spec, OmegaConf.to_yaml(OmegaConf.structured(spec)))
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # Seeded by the trials already made, so a resumed study does not repeat its first draws.
    existing = _count_trials(sweep, spec.name)
    study = optuna.create_study(
        study_name=spec.name, storage=sweep.storage, direction="maximize", load_if_exists=True,
        sampler=optuna.samplers.TPESampler(seed=spec.seed + existing),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=spec.pruner.startup_trials,
                                           n_warmup_steps=spec.pruner.warmup_iterations),
    )  # fmt: skip
    requeued = _requeue_killed(study)
    remaining = spec.trials - _finished(study)
    print(f"[tune] study {spec.name!r} in {sweep.root}: {_finished(study)} of {spec.trials} "
          f"trials finished" + (f"; requeued killed trials {requeued}" if requeued else ""), flush=True)  # fmt: skip
    if remaining > 0:
        anchors = Anchors(spec.objective, rlloop.compose(list(spec.overrides)).search)
        study.optimize(lambda trial: _run_trial(trial, spec, sweep, anchors), n_trials=remaining)
    write_results(study, spec, sweep)
    return study


def _count_trials(sweep: Sweep, name: str) -> int:
    import optuna

    if not (sweep.root / "study.sqlite").is_file():
        return 0
    try:
        return len(optuna.load_study(study_name=name, storage=sweep.storage).trials)
    except KeyError:  # another study's file, or none of this name yet
        return 0


# ------------------------------------------------------------------------------ results
def results_rows(study: Any, spec: TuneSpec) -> list[dict[str, Any]]:
    """One row per trial: number, state, Elo (value, interval), knobs, iterations, seconds."""
    rows = []
    for trial in study.trials:
        attrs = trial.user_attrs
        rows.append({
            "trial": trial.number, "state": trial.state.name,
            "elo": trial.value if trial.value is not None else _last(trial.intermediate_values),
            "elo_low": attrs.get("elo_low"), "elo_high": attrs.get("elo_high"),
            **{key: trial.params.get(key) for key in spec.knobs},
            "iterations": attrs.get("iterations"), "seconds": attrs.get("seconds"),
            "run_dir": attrs.get("run_dir", ""),
        })  # fmt: skip
    return rows


def _last(values: dict[int, float]) -> float | None:
    return values[max(values)] if values else None


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def write_results(study: Any, spec: TuneSpec, sweep: Sweep) -> None:
    """``results.csv`` and ``results.md`` (best first) and ``results.png``."""
    rows = results_rows(study, spec)
    if not rows:
        return
    columns = list(rows[0])
    with open(sweep.results("csv"), "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    ranked = sorted(rows, key=lambda r: (r["state"] != "COMPLETE", -(r["elo"] if r["elo"] is not None else -1e9)))
    shown = [c for c in columns if c != "run_dir"]
    lines = [f"# Study {spec.name}: Elo after {spec.iterations} iterations (random = 0)", ""]
    complete = [r for r in rows if r["state"] == "COMPLETE"]
    if complete:
        best = max(complete, key=lambda r: r["elo"])
        knobs = ", ".join(f"{k}={_cell(best[k])}" for k in spec.knobs)
        lines += [f"Best: trial {best['trial']}, Elo {best['elo']:.0f} with {knobs}.", ""]
    lines += ["| " + " | ".join(shown) + " |", "|" + "---|" * len(shown)]
    lines += ["| " + " | ".join(_cell(r[c]) for c in shown) + " |" for r in ranked]
    atomic_write_text(sweep.results("md"), "\n".join(lines) + "\n")
    _plot(study, spec, sweep.results("png"))


def _plot(study: Any, spec: TuneSpec, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator, NullFormatter

    knobs = list(spec.knobs)
    figure, axes = plt.subplots(1, 1 + len(knobs), figsize=(5 * (1 + len(knobs)), 4), squeeze=False)
    curves = axes[0][0]
    styles = {"COMPLETE": "-", "PRUNED": "--", "FAIL": ":", "RUNNING": ":"}
    for trial in study.trials:
        values = trial.intermediate_values
        if not values:
            continue
        steps = sorted(values)
        curves.plot(steps, [values[s] for s in steps], styles.get(trial.state.name, "-"), marker="o",
                    label=f"{trial.number} ({trial.state.name.lower()})")  # fmt: skip
    curves.xaxis.set_major_locator(MaxNLocator(integer=True))
    curves.set_xlabel("iteration")
    curves.set_ylabel("Elo vs anchors (random = 0)")
    curves.set_title("Elo per iteration (dashed: pruned)")
    if len(study.trials) <= 12:
        curves.legend(title="trial", fontsize="small", loc="best")
    complete = [t for t in study.trials if t.state.name == "COMPLETE"]
    for axis, key in zip(axes[0][1:], knobs, strict=True):
        xs = [t.params[key] for t in complete if key in t.params]
        axis.scatter(xs, [t.value for t in complete if key in t.params], label="complete")
        pruned = [t for t in study.trials if t.state.name == "PRUNED" and t.intermediate_values]
        axis.scatter([t.params[key] for t in pruned], [_last(t.intermediate_values) for t in pruned],
                     marker="x", label="pruned (last value)")  # fmt: skip
        if spec.knobs[key].log:
            axis.set_xscale("log")
            axis.xaxis.set_minor_formatter(NullFormatter())
        axis.set_xlabel(key)
        axis.set_ylabel(f"Elo after {spec.iterations} iterations")
        axis.set_title(f"Elo against {key}")
        axis.legend(fontsize="small")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


# ------------------------------------------------------------------------------ CLI
def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m rlloop.tune", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    parser.add_argument("spec", nargs="?", default="tictactoe",
                        help="conf/tune/<spec>.yaml or a YAML path (default: tictactoe)")  # fmt: skip
    parser.add_argument("overrides", nargs="*", help="spec keys, e.g. trials=40 iterations=10")
    parser.add_argument("--dir", default="", help="the sweep folder (default: sweeps/<spec name>)")
    args = parser.parse_args(argv)
    try:
        spec = load_spec(args.spec, args.overrides)
    except (FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    sweep_dir = Path(args.dir or Path("sweeps") / spec.name)
    try:
        study = tune(spec, sweep_dir)
    except RuntimeError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(Path(Sweep(sweep_dir).results("md")).read_text())
    print(f"[tune] {len(study.trials)} trials; wrote {sweep_dir}/results.csv, results.md, results.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
