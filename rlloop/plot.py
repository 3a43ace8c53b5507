"""Plots of a run: ``python -m rlloop.plot RUN [--out DIR]`` (default ``RUN/plots``).

The loop also redraws them into ``<run>/plots/`` at every promotion and when a run ends. PNG files, one figure
each, drawn from what the run wrote (the ledger, ``metrics.jsonl``,
``learning_health.jsonl``), so they can be drawn while the run goes on or long after:

- ``elo.png``: each configuration's champions' Elo (random = 0) with their intervals, over
  iterations and over wall time;
- ``lineage.png``: every gated network at (iteration, Elo), joined to the champion it was
  gated against, coloured by the gate's decision: who beat whom;
- ``losses.png``: training loss, policy and value losses over iterations;
- ``throughput.png``: self-play games/s, and samples generated vs trained per second;
- ``entropy.png``: entropy of search's policy and of the raw network's over iterations;
- ``mistakes.png`` (games with perfect play, e.g. Connect Four): mistake rate per position
  set and simulation count of every scored model.

The same series are TensorBoard scalars (``<run>/tb``): the gate's ``candidate_elo`` and
``champion_elo``, the losses, throughput, entropies and ``perfect_play/...``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rlloop.ledger import Ledger
from rlloop.runs import RunDir

__all__ = ["main", "plot_run"]

DECISION_COLOURS = {"champion": "tab:green", "retired": "tab:green", "rejected": "tab:red",
                    "candidate": "tab:gray"}  # fmt: skip


def plot_run(run_dir: str | Path, out: str | Path | None = None) -> list[Path]:
    """Draw every plot of the run that has data; returns the files written. Raises
    FileNotFoundError naming the problem when ``run_dir`` is not a run."""
    run = RunDir(run_dir)
    if not run.is_run():
        raise FileNotFoundError(f"{run.root} is not an rlloop run directory (it has no config.yaml)")
    folder = Path(out) if out is not None else run.plots
    folder.mkdir(parents=True, exist_ok=True)
    data = _RunData(run)
    drawn = []
    plots: dict[str, Callable[[_RunData, Any], bool]] = {
        "elo": _elo, "lineage": _lineage, "losses": _losses, "throughput": _throughput,
        "entropy": _entropy, "mistakes": _mistakes,
    }  # fmt: skip
    from matplotlib.figure import Figure  # no pyplot: no global state, safe beside a loop

    for name, draw in plots.items():
        figure = Figure(figsize=(11, 4.5), layout="constrained")
        if draw(data, figure):
            path = folder / f"{name}.png"
            temporary = path.with_name(f".{path.name}.tmp")
            figure.savefig(temporary, dpi=100, format="png")
            temporary.replace(path)  # a reader never sees half an image
            drawn.append(path)
    return drawn


class _RunData:
    """What the plots read, once."""

    def __init__(self, run: RunDir) -> None:
        self.models, self.promotions, self.events = [], [], []
        if run.ledger.is_file():
            with Ledger(run.ledger, readonly=True) as ledger:
                self.models = ledger.models()
                self.promotions = ledger.promotions()
                self.events = ledger.events_since(kind="PERFECT_PLAY")
        self.metrics = _json_lines(run.metrics)
        self.health = _json_lines(run.learning_health_history)
        configs = list(dict.fromkeys(m.config for m in self.models if m.status != "baseline"))
        self.configs = configs or [""]
        self.started = min((m.created for m in self.models), default=0.0)

    def label(self, config: str) -> str:
        return config or "run"

    def metric_series(self, config: str, key: str) -> tuple[list[int], list[float]]:
        """(iterations, values) of ``key`` for ``config``: the row's own value when that
        configuration played (or the run has one), else ``<config>/<key>``."""
        xs, ys = [], []
        single = len(self.configs) == 1
        for row in self.metrics:
            value = row.get(key) if single or row.get("config") == config else row.get(f"{config}/{key}")
            if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
                xs.append(int(row["iteration"]))
                ys.append(float(value))
        return xs, ys


def _json_lines(path: Path) -> list[dict[str, Any]]:
    rows = []
    if path.is_file():
        for line in path.read_text().splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:  # a line cut by a kill
                continue
    return rows


def _champions(data: _RunData, config: str) -> list[Any]:
    """The configuration's champions in order: its first, then every promoted one."""
    models = {m.id: m for m in data.models if m.config == config}
    first = [m for m in models.values() if m.parent is None and m.status != "baseline"][:1]
    promoted = [models[p.model_id] for p in data.promotions if p.config == config and p.model_id in models]
    return [m for m in first + promoted if m.elo is not None]


def _elo(data: _RunData, figure: Any) -> bool:
    by_iteration, by_time = figure.subplots(1, 2, sharey=True)
    drawn = False
    promoted_at = {p.model_id: p for p in data.promotions}
    for config in data.configs:
        champions = _champions(data, config)
        if not champions:
            continue
        drawn = True
        iterations = [m.iteration for m in champions]
        hours = [((promoted_at[m.id].created if m.id in promoted_at else m.created) - data.started) / 3600
                 for m in champions]  # fmt: skip
        elo = [m.elo for m in champions]
        low = [m.elo - (m.elo_low if m.elo_low is not None else m.elo) for m in champions]
        high = [(m.elo_high if m.elo_high is not None else m.elo) - m.elo for m in champions]
        for axes, xs in ((by_iteration, iterations), (by_time, hours)):
            axes.errorbar(xs, elo, yerr=[low, high], marker="o", capsize=3, drawstyle="steps-post",
                          label=data.label(config))  # fmt: skip
    if not drawn:
        return False
    by_iteration.set(xlabel="iteration", ylabel="Elo (random = 0)", title="Champions' Elo, 95% interval")
    by_time.set(xlabel="wall time (hours since the first model)", title="Champions' Elo over time")
    for axes in (by_iteration, by_time):
        axes.grid(alpha=0.3)
        axes.legend(fontsize="small")
    return True


def _lineage(data: _RunData, figure: Any) -> bool:
    configs = [c for c in data.configs if any(m.config == c and m.elo is not None and m.status != "baseline"
                                              for m in data.models)]  # fmt: skip
    if not configs:
        return False
    columns = min(3, len(configs))
    rows = math.ceil(len(configs) / columns)
    figure.set_size_inches(11, 4.5 * rows if rows == 1 else 3.2 * rows)
    panels = figure.subplots(rows, columns, squeeze=False).ravel()
    promoted = {p.model_id for p in data.promotions}
    for axes, config in zip(panels, configs, strict=False):
        models = {m.id: m for m in data.models
                  if m.config == config and m.status != "baseline" and m.elo is not None}  # fmt: skip
        for model in models.values():
            parent = models.get(model.parent or "")
            if parent is not None:
                colour = "tab:green" if model.id in promoted else DECISION_COLOURS.get(model.status, "tab:gray")
                axes.plot([parent.iteration, model.iteration], [parent.elo, model.elo], color=colour,
                          alpha=0.5, lw=1)  # fmt: skip
        for status, colour, label in (("rejected", "tab:red", "rejected"),
                                      ("candidate", "tab:gray", "kept training (inconclusive)")):  # fmt: skip
            points = [m for m in models.values() if m.status == status and m.id not in promoted]
            axes.scatter([m.iteration for m in points], [m.elo for m in points], color=colour, s=16, label=label)
        champions = [m for m in models.values() if m.id in promoted or m.parent is None]
        axes.scatter([m.iteration for m in champions], [m.elo for m in champions], color="tab:green", s=50,
                     marker="*", label="champion", zorder=3)  # fmt: skip
        axes.set(xlabel="iteration", ylabel="Elo (random = 0)", title=data.label(config))
        axes.grid(alpha=0.3)
    for axes in panels[len(configs):]:
        axes.set_visible(False)
    panels[0].legend(fontsize="small")
    figure.suptitle("Lineage: each network joined to the champion it was gated against (green: promoted)")
    return True


def _losses(data: _RunData, figure: Any) -> bool:
    axes_list = figure.subplots(1, 3)
    drawn = False
    for axes, key, title in zip(axes_list, ("loss", "policy_loss", "value_loss"),
                                ("total loss", "policy loss (cross-entropy)", "value loss (MSE)"), strict=True):  # fmt: skip
        for config in data.configs:
            xs, ys = data.metric_series(config, key)
            if xs:
                drawn = True
                axes.plot(xs, ys, label=data.label(config))
        axes.set(xlabel="iteration", title=title)
        axes.grid(alpha=0.3)
        if axes.has_data():
            axes.legend(fontsize="small")
    return drawn


def _throughput(data: _RunData, figure: Any) -> bool:
    games, samples = figure.subplots(1, 2)
    drawn = False
    for config in data.configs:
        xs, ys = data.metric_series(config, "games_per_second")
        if xs:
            drawn = True
            games.plot(xs, ys, ".", label=data.label(config))
    for key, style in (("samples_generated_per_second", "-"), ("samples_consumed_per_second", "--")):
        rows = [(d["iteration"], d[key]) for d in data.health if isinstance(d.get(key), int | float)]
        if rows:
            drawn = True
            samples.plot(*zip(*rows, strict=True), style, label=key.replace("_per_second", "").replace("_", " "))
    games.set(xlabel="iteration", ylabel="games / s (while playing)", title="Self-play games per second")
    samples.set(xlabel="iteration", ylabel="samples / s (wall time)", title="Samples generated vs trained")
    for axes in (games, samples):
        axes.grid(alpha=0.3)
        if axes.has_data():
            axes.legend(fontsize="small")
    return drawn


def _entropy(data: _RunData, figure: Any) -> bool:
    axes = figure.subplots()
    for config in data.configs:
        for key, style, what in (("policy_entropy", "-", "search"), ("prior_entropy", "--", "raw network")):
            xs, ys = data.metric_series(config, key)
            if xs:
                axes.plot(xs, ys, style, label=f"{data.label(config)}: {what}")
    if not axes.has_data():
        return False
    axes.set(xlabel="iteration", ylabel="entropy (nats)",
             title="Policy entropy at positions with a choice (0: collapsed)")  # fmt: skip
    axes.grid(alpha=0.3)
    axes.legend(fontsize="small")
    return True


def _mistakes(data: _RunData, figure: Any) -> bool:
    axes = figure.subplots()
    series: dict[str, list[tuple[int, float]]] = {}
    for event in data.events:
        payload = event.payload
        for result in payload.get("results", []):
            if result.get("mistake_rate") is None:
                continue
            prefix = f"{payload['config']}: " if len(data.configs) > 1 and payload.get("config") else ""
            searched = f"{result['simulations']} simulations" if result["simulations"] else "raw policy"
            name = f"{prefix}{result['set']}, {searched}"
            series.setdefault(name, []).append((int(payload["iteration"]), 100 * float(result["mistake_rate"])))
    if not series:
        return False
    for name, points in series.items():
        axes.plot(*zip(*sorted(points), strict=True), marker="o", label=name)
    axes.set(xlabel="iteration of the scored model", ylabel="mistakes (% of positions)",
             title="Perfect-play mistake rate (lower is better)")  # fmt: skip
    axes.grid(alpha=0.3)
    axes.legend(fontsize="small")
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rlloop.plot", description=__doc__.split("\n\n")[0])
    parser.add_argument("run", help="a run directory (outputs/<date>/<time>)")
    parser.add_argument("--out", help="where the PNGs go (default RUN/plots)")
    args = parser.parse_args(argv)
    try:
        paths = plot_run(args.run, args.out)
    except FileNotFoundError as error:
        print(f"rlloop.plot: {error}", file=sys.stderr)
        return 2
    if not paths:
        print(f"rlloop.plot: {args.run} has nothing to plot yet (no rated model, metrics or health)")
        return 1
    for path in paths:
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
