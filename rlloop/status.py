"""``python -m rlloop.status RUN [--watch [SECONDS]] [--json]``: what a run is doing.

Read-only and safe beside a running loop: it reads ``status.json`` (the loop rewrites it
atomically at every phase), ``metrics.jsonl`` and the ledger through a read-only SQLite
connection (WAL mode: the writer is never blocked). Shows the iteration and phase, whether
the loop's process is alive, each configuration's champion with its Elo and Elo trend, time
since the last promotion, games/s and moves/s of recent iterations, replay and the replay
ratio against ``train.samples_per_insert``, the resource guard's readings and warnings, and
and per configuration (lineage) the scheduler's share, chunks, priority, backpressure and
memory pauses, and the diversity of the games played.
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import time
from pathlib import Path
from typing import Any

from rlloop.runs import RunDir

RECENT = 5  # iterations averaged for the rates
STALE_SECONDS = 600.0  # a run on another machine whose status.json is older is not running


def _process_alive(pid: int) -> bool:
    import psutil

    return psutil.pid_exists(pid)


def _recent_metrics(path: Path, count: int) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    lines = path.read_text().splitlines()
    metrics = []
    for text in lines[-count:]:
        try:
            metrics.append(json.loads(text))
        except json.JSONDecodeError:  # a line being written
            continue
    return metrics


def _config(run: RunDir) -> dict[str, Any]:
    from omegaconf import OmegaConf

    return OmegaConf.to_container(OmegaConf.load(run.config), resolve=False)


def gather(run_dir: str | Path, *, now: float | None = None) -> dict[str, Any]:
    """Everything the status shows, as JSON-able data. Raises FileNotFoundError naming the
    problem when ``run_dir`` is not a run directory."""
    run = RunDir(run_dir)
    if not run.is_run():
        raise FileNotFoundError(f"{run.root} is not an rlloop run directory (it has no config.yaml)")
    now = time.time() if now is None else now
    config = _config(run)
    game = config.get("game", {}).get("name", "?")
    status: dict[str, Any] = {"run": str(run.root), "now": now}
    loop = json.loads(run.status.read_text()) if run.status.is_file() else {}
    pid = loop.get("pid")
    live = loop.get("phase") not in ("finished", "stopped", "failed")
    if loop.get("host", socket.gethostname()) != socket.gethostname():
        # Process 0 runs on another machine (a cluster job): its pid means nothing here, so a
        # status rewritten within STALE_SECONDS counts as running.
        running = live and now - float(loop.get("updated", 0)) < STALE_SECONDS
    else:
        running = bool(pid) and live and _process_alive(int(pid))
    status["loop"] = {
        **loop,
        "running": running,
        "phase_seconds": now - loop["phase_since"] if "phase_since" in loop else None,
        "updated_seconds_ago": now - loop["updated"] if "updated" in loop else None,
        "target_iterations": config.get("loop", {}).get("iterations"),
        "max_minutes": config.get("loop", {}).get("max_minutes"),
    }
    recent = _recent_metrics(run.metrics, RECENT + 1)
    rates: dict[str, Any] = {}
    if recent:
        last = recent[-1]
        window = recent[-RECENT:]
        for key in ("games_per_second", "moves_per_second"):
            values = [m[key] for m in window if isinstance(m.get(key), int | float)]
            rates[key] = sum(values) / len(values) if values else None
        rates.update(iteration=last.get("iteration"), games=last.get("games"),
                     replay_size=last.get("replay_size"), train_step=last.get("train_step"))  # fmt: skip
        resources = {k: last.get(k) for k in ("memory_used", "disk_used", "load_per_core")}
        status["resources"] = {k: v for k, v in resources.items() if v is not None}
    status["selfplay"] = rates
    names = list(loop.get("lineages") or {}) or list(
        (config.get("schedule") or {}).get("configurations") or {}
    ) or [game]
    scheduled = loop.get("lineages") or {}
    views = _ledger_view(run.ledger, now, names) if run.ledger.is_file() else {}
    configurations = []
    for name in names:
        own = scheduled.get(name, {})
        configuration: dict[str, Any] = {"name": name, "share": own.get("share", 1.0 if len(names) == 1 else None)}
        for key in ("picks", "priority", "backpressure", "lead_chunks", "paused", "replay", "games", "opponent"):
            if key in own:
                configuration[key] = own[key]
        configuration.update(views.get(name, {}))
        train = _lineage_config(run, name, config).get("train", {})
        added = configuration.pop("samples_added", None)
        step = own.get("train_step", rates.get("train_step") if len(names) == 1 else None) or 0
        trained = step * int(train.get("batch_size", 0) or 0)
        configuration["replay_ratio"] = trained / added if added else None
        configuration["replay_ratio_target"] = train.get("samples_per_insert") or None
        configurations.append(configuration)
    status["configurations"] = configurations
    status["lineages"] = {c["name"]: c for c in configurations}
    if run.ledger.is_file():
        status["resource_warnings"] = _resource_warnings(run.ledger)
    if loop.get("diversity"):
        status["diversity"] = loop["diversity"]
    if run.learning_health.is_file():
        try:
            status["health"] = json.loads(run.learning_health.read_text())
        except (OSError, json.JSONDecodeError) as error:  # written atomically: not by rlloop
            status["health_error"] = f"{run.learning_health} does not read ({error})"
    return status


def _lineage_config(run: RunDir, name: str, config: dict[str, Any]) -> dict[str, Any]:
    """A lineage's own config (``lineages/<name>/config.yaml``), else the run's."""
    from omegaconf import OmegaConf

    path = run.lineage(name).config
    if path.is_file():
        return OmegaConf.to_container(OmegaConf.load(path), resolve=False)
    return config


def _ledger_view(path: Path, now: float, names: list[str]) -> dict[str, dict[str, Any]]:
    from rlloop.ledger import Ledger

    result: dict[str, dict[str, Any]] = {}
    with Ledger(path, readonly=True) as ledger:
        models = {model.id: model for model in ledger.models()}
        for name in names:
            view: dict[str, Any] = {}
            champion = ledger.champion(name)
            promotions = ledger.promotions(config=name)
            view["champion"] = None if champion is None else {
                "id": champion.id, "elo": champion.elo, "elo_low": champion.elo_low,
                "elo_high": champion.elo_high, "iteration": champion.iteration,
            }  # fmt: skip
            view["promotions"] = len(promotions)
            if promotions:
                view["last_promotion"] = {"model": promotions[-1].model_id,
                                          "iteration": promotions[-1].iteration,
                                          "seconds_ago": now - promotions[-1].created}  # fmt: skip
            trend = [models[p.model_id].elo for p in promotions[-RECENT:] if p.model_id in models]
            view["elo_trend"] = [e for e in trend if e is not None]
            iterations = ledger.iterations(config=name)
            view["samples_added"] = sum(int(m.get("samples_added") or 0) for m in iterations.values())
            result[name] = view
    return result


def _resource_warnings(path: Path) -> list[dict[str, Any]]:
    from rlloop.ledger import Ledger

    latest: dict[str, dict[str, Any]] = {}
    with Ledger(path, readonly=True) as ledger:
        for event in ledger.events_since(kind="RESOURCE"):
            latest[event.payload["resource"]] = event.payload
    return [e for e in latest.values() if e.get("level") != "ok"]


def _ago(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _health_lines(health: dict[str, Any]) -> list[str]:
    """learning_health.json in two or three lines (rlloop.health.FIELDS says what each is)."""
    def number(value: Any, template: str) -> str:
        return template.format(value) if isinstance(value, int | float) else "-"

    lines = [
        f"  learning health (iteration {health.get('iteration')}): "
        f"samples {number(health.get('samples_generated_per_second'), '{:,.0f}')}/s made, "
        f"{number(health.get('samples_consumed_per_second'), '{:,.0f}')}/s trained; "
        f"optimiser step {number(health.get('training_time_avg_ms'), '{:,.1f}')} ms; "
        f"Elo trend {number(health.get('recent_reward_trend'), '{:+.0f}')} %"
    ]
    if health.get("inner_episode_throughput") is not None:
        lines.append(f"    side trainers: {health['inner_episode_throughput']:.2f} models/s, "
                     f"{health.get('models_trained_total') or 0:,} models")  # fmt: skip
    for name, config in (health.get("configurations") or {}).items():
        lines.append(
            f"    {name}: policy entropy {number(config.get('policy_entropy'), '{:.2f}')} "
            f"(raw {number(config.get('raw_policy_entropy'), '{:.2f}')}), "
            f"replay {number(config.get('replay_fill'), '{:.0%}')} full, "
            f"{config.get('iterations_since_promotion')} iterations since a promotion"
        )
    return lines


def _where(loop: dict[str, Any]) -> str:
    """`` on HOST`` for a run on another machine, ``, N processes`` for a multi-process run."""
    host = loop.get("host")
    text = f" on {host}" if host and host != socket.gethostname() else ""
    processes = int(loop.get("processes") or 1)
    return text + (f", {processes} processes" if processes > 1 else "")


def render(status: dict[str, Any]) -> str:
    """The status as lines of text."""
    loop, rates = status["loop"], status["selfplay"]
    lines = [f"run {status['run']}"]
    if loop.get("phase"):
        state = "running" if loop["running"] else "not running"
        lines.append(
            f"  {state} (pid {loop.get('pid')}{_where(loop)}): iteration {loop.get('iteration', 0)}"
            f"{' / ' + str(loop['target_iterations']) if loop.get('target_iterations') else ''}, "
            f"phase {loop['phase']} for {_ago(loop.get('phase_seconds'))}; "
            f"updated {_ago(loop.get('updated_seconds_ago'))} ago"
        )
    else:
        lines.append("  no status.json yet (the loop writes one when it starts)")
    if rates.get("games_per_second") is not None:
        lines.append(
            f"  self-play: {rates['games_per_second']:,.1f} games/s, "
            f"{rates['moves_per_second']:,.0f} moves/s (last {RECENT} iterations); "
            f"{rates.get('games') or 0:,} games, replay {rates.get('replay_size') or 0:,}"
        )
    if loop.get("lineage"):
        lines[-1] += f" ({loop['lineage']})"
    for config in status["configurations"]:
        champion = config.get("champion")
        if champion:
            interval = (f" [{champion['elo_low']:.0f}, {champion['elo_high']:.0f}]"
                        if champion.get("elo_low") is not None else "")  # fmt: skip
            elo = f"Elo {champion['elo']:.0f}{interval}" if champion.get("elo") is not None else "unrated"
            text = f"  {config['name']}: champion {champion['id']} ({elo})"
        else:
            text = f"  {config['name']}: no champion yet"
        if config.get("last_promotion"):
            last = config["last_promotion"]
            text += (f"; {config['promotions']} promotions, last at iteration {last['iteration']}, "
                     f"{_ago(last['seconds_ago'])} ago")  # fmt: skip
        lines.append(text)
        if config.get("elo_trend"):
            lines.append("    Elo trend: " + " -> ".join(f"{e:.0f}" for e in config["elo_trend"]))
        ratio, target = config.get("replay_ratio"), config.get("replay_ratio_target")
        if ratio is not None:
            lines.append(f"    replay ratio {ratio:.2f} trained per sample added"
                         + (f" (target {target:g})" if target else ""))  # fmt: skip
        if config.get("share") is not None:
            text = f"    scheduler share {config['share']:.0%}"
            if "picks" in config:
                text += f", {config['picks']} chunks, priority {config['priority']:.1f}"
            if config.get("backpressure") not in (None, "off"):
                text += f", backpressure {config['backpressure']} ({config['lead_chunks']:.1f} chunks owed)"
            if config.get("paused"):
                text += ", PAUSED (memory)"
            lines.append(text)
        if "games" in config:
            against = f"; asymmetric games against {config['opponent']}" if config.get("opponent") else ""
            lines.append(f"    {config['games']:,} games, replay {config.get('replay', 0):,}{against}")
    for warning in status.get("resource_warnings", []):
        lines.append(f"  resource warning: {warning['resource']} {warning['level']} "
                     f"({warning['value']:.0%}) at iteration {warning['iteration']}")  # fmt: skip
    health = status.get("health")
    if health:
        lines.extend(_health_lines(health))
    if status.get("health_error"):
        lines.append(f"  learning health: {status['health_error']}")
    diversity = status.get("diversity")
    if diversity and diversity.get("games"):
        parts = [f"{category} entropy {diversity[category]['entropy']:.2f}"
                 for category in ("config", "search_mode", "opponent") if category in diversity]  # fmt: skip
        lines.append(f"  diversity: {diversity['games']:,} games; " + ", ".join(parts)
                     + f"; asymmetric {diversity.get('asymmetric_share', 0):.0%}")  # fmt: skip
    resources = status.get("resources")
    if resources:
        parts = [f"memory {resources['memory_used']:.0%}" if "memory_used" in resources else "",
                 f"disk {resources['disk_used']:.0%}" if "disk_used" in resources else "",
                 f"load {resources['load_per_core']:.2f}/core" if "load_per_core" in resources else ""]  # fmt: skip
        lines.append("  resources: " + ", ".join(p for p in parts if p))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rlloop.status", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", help="the run directory")
    parser.add_argument("--watch", nargs="?", type=float, const=2.0, default=None,
                        metavar="SECONDS", help="refresh every SECONDS (default 2) until Ctrl-C")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    args = parser.parse_args(argv)
    if args.watch is not None and args.watch <= 0:
        parser.error(f"--watch {args.watch}: must be > 0 seconds")
    tty = sys.stdout.isatty()
    try:
        while True:
            try:
                status = gather(args.run)
            except FileNotFoundError as error:
                print(f"error: {error}", file=sys.stderr)
                return 2
            text = json.dumps(status, default=str) if args.json else render(status)
            if args.watch is not None and tty and not args.json:
                sys.stdout.write("\033[2J\033[H")  # clear the terminal, cursor home
            print(text, flush=True)
            if args.watch is None:
                return 0
            time.sleep(args.watch)
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
