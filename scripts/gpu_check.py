"""The GPU check: rlloop's headline figures on one accelerator in under ten minutes.

    scripts/gpu_check.sh [--dry-run] [--out DIR] [--total-seconds S]

(the shell wrapper installs the carried wheels first; see docs/benchmarks.md, "GPU"). Steps,
each a subprocess with its own time limit, run one after the other:

  env       the device, jax and every dependency's version (and ``nvidia-smi`` into the log)
  selfplay  ``python -m rlloop.bench --suite selfplay``: Connect Four, nets 2x32 and 6x128,
            32 and 128 simulations, batches 1,024 / 4,096 / 16,384, beside the pgx+mctx
            reference and the sequential baseline
  train     ``--suite train``: batches 4,096 / 8,192, one jitted step called K times vs
            ``lax.scan`` over K steps
  ringrift  ``--suite ringrift``: square8 2p, hex8 3p, square19 2p; random play at batch
            1,024 / 4,096 / 16,384 and self-play
  loop      ``python -m rlloop.run +experiment=connect4_perfect +hardware=h200
            loop.max_minutes=5`` with its in-loop perfect-play scores

The bench steps compile their programs on many threads at once (``--compile-workers``) and
have a soft budget (``--budget``: configurations not started in time are reported as
skipped) inside a hard limit. The loop gets what is left of the total, at most 5 minutes;
it is stopped with SIGINT (it saves and exits) if it overruns.

Into ``--out`` (default ``$OUT``, else ``gpu_check_out``): ``results.jsonl`` (every figure,
one JSON object a line, tagged with its step), ``log.txt`` (everything the steps printed),
``loop_metrics.jsonl`` (the loop's per-iteration metrics) and ``summary.md`` (the tables
printed last), rewritten after every step so that a run cut short still leaves them.

``--dry-run`` runs the same steps at tiny sizes on the CPU (a minute or two on 2 cores), so
the script is known to work before a GPU is at hand; ``tests/test_gpu_check.py`` runs it.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # rlloop from this tree (the GPU machine does not install it)
    sys.path.insert(0, str(ROOT))

# The GPU grid, most wanted first: a bench step's budget cuts configurations from the end.
GPU_SELFPLAY = [
    "2x32:32:1024", "2x32:32:4096", "2x32:32:16384",
    "2x32:128:4096", "6x128:32:4096", "6x128:128:4096",
    "6x128:128:16384", "2x32:128:16384", "2x32:128:1024",
    "6x128:32:1024", "6x128:32:16384", "6x128:128:1024",
]  # fmt: skip
GPU_RINGRIFT = "square8_2p,hex8_3p,square19_2p"
LOOP_MINUTES = 5.0


@dataclasses.dataclass
class Step:
    name: str
    argv: list[str]
    limit: float  # hard seconds (the loop's is set from what is left)
    interrupt: bool = False  # stop with SIGINT first (the loop saves), else SIGTERM


def plan(dry_run: bool, python: str, run_dir: Path) -> list[Step]:
    """The steps, sized for one H200 or (``dry_run``) for a few CPU seconds each."""
    bench = [python, "-m", "rlloop.bench", "--devices", "0"]
    env = [python, "-c", PROBE]
    if dry_run:
        selfplay = ["--selfplay-config", "2x32:2:8", "--sequential-games", "2",
                    "--seconds", "0.05", "--compile-workers", "2", "--budget", "60"]
        train = ["--train-net", "2x32", "--train-batch", "64", "--train-steps", "2",
                 "--seconds", "0.05", "--compile-workers", "2", "--budget", "40"]
        ringrift = ["--ringrift-configs", "square8_2p", "--ringrift-batches", "8",
                    "--ringrift-selfplay", "2x32:2:4", "--ringrift-length-seconds", "5",
                    "--seconds", "0.05", "--compile-workers", "2", "--budget", "60"]
        loop = ["+experiment=connect4_perfect", "+hardware=cpu", "hardware.games_per_device=8",
                "search.num_simulations=2", "train.batch_size=32", "train.min_replay_size=32",
                "train.steps_per_iteration=2", "loop.moves_per_chunk=4", "gate.every=1",
                "gate.screen_games=4", "gate.deep_games=4", "gate.anchor_games=2",
                "gate.num_simulations=2", "loop.checkpoint_every=2",
                "perfect_play.sets=[bundled]", "perfect_play.simulations=[0]",
                "loop.tensorboard=false"]  # fmt: skip
        limits = {"env": 60, "selfplay": 120, "train": 90, "ringrift": 150}
    else:
        selfplay = [arg for config in GPU_SELFPLAY for arg in ("--selfplay-config", config)]
        selfplay += ["--sequential-games", "3", "--seconds", "0.5", "--compile-workers", "16",
                     "--budget", "90"]
        train = ["--train-net", "2x32,6x128", "--train-batch", "4096,8192", "--train-steps", "8",
                 "--seconds", "0.5", "--compile-workers", "8", "--budget", "60"]
        ringrift = ["--ringrift-configs", GPU_RINGRIFT, "--ringrift-batches", "1024,4096,16384",
                    "--ringrift-selfplay", "2x32:32:1024", "--ringrift-length-seconds", "8",
                    "--seconds", "0.5", "--compile-workers", "12", "--budget", "75"]
        # The check measures speed, not the resource guard: the GPU machine's disk holds a
        # large image, and a guard stop at its default 70 % would lose the 5-minute run.
        loop = ["+experiment=connect4_perfect", "+hardware=h200", "resources.disk_warn=0.95",
                "resources.disk_critical=0.99"]
        # Measured on the H200 (2026-12-04): env 4 s, selfplay 89 s, train ~70 s (the 6x128
        # train step compiles in ~45 s), ringrift 86 s, the loop 5 minutes + ~20 s.
        limits = {"env": 30, "selfplay": 105, "train": 80, "ringrift": 95}
    loop += [f"hydra.run.dir={run_dir}"]
    return [
        Step("env", env, limits["env"]),
        Step("selfplay", [*bench, "--suite", "selfplay", *selfplay], limits["selfplay"]),
        Step("train", [*bench, "--suite", "train", *train], limits["train"]),
        Step("ringrift", [*bench, "--suite", "ringrift", *ringrift], limits["ringrift"]),
        Step("loop", [python, "-m", "rlloop.run", *loop], 0.0, interrupt=True),
    ]


# The env step: one JSON line per fact (a figure's "value" is 1 where the fact is text).
PROBE = r"""
import importlib.metadata as md, json, platform, sys
def line(name, value=1.0, unit="", **config):
    print(json.dumps({"name": name, "value": float(value), "unit": unit, "config": config}), flush=True)
line("python", 1, "", version=platform.python_version(), executable=sys.executable)
for package in ("jax", "jaxlib", "jax-cuda13-plugin", "jax-cuda12-plugin", "flax", "optax",
                "chex", "mctx", "orbax-checkpoint", "numpy", "hydra-core", "omegaconf",
                "tensorboardX", "lightgbm", "pgx"):
    try:
        line("package", 1, "", package=package, version=md.version(package))
    except md.PackageNotFoundError:
        pass
import jax
for device in jax.devices():
    stats = device.memory_stats() if hasattr(device, "memory_stats") else None
    limit = (stats or {}).get("bytes_limit", 0)
    line("device", limit, "bytes", platform=device.platform, kind=device.device_kind,
         id=device.id, backend=jax.default_backend())
"""


class Run:
    """The output folder: results, log, summary."""

    def __init__(self, out: Path) -> None:
        out.mkdir(parents=True, exist_ok=True)
        self.out = out
        self.results: list[dict[str, Any]] = []
        self.steps: list[dict[str, Any]] = []
        self._results = (out / "results.jsonl").open("w")
        self._log = (out / "log.txt").open("w")
        self._lock = threading.Lock()

    def log(self, text: str) -> None:
        with self._lock:
            self._log.write(text if text.endswith("\n") else text + "\n")
            self._log.flush()

    def add(self, step: str, line: dict[str, Any]) -> None:
        line = {**line, "step": step}
        with self._lock:
            self.results.append(line)
            self._results.write(json.dumps(line) + "\n")
            self._results.flush()

    def close(self) -> None:
        self._results.close()
        self._log.close()


def run_step(run: Run, step: Step, limit: float, env: dict[str, str]) -> dict[str, Any]:
    """Run one step under ``limit`` seconds; its JSON lines go to the results, all its output
    to the log. Returns its status record."""
    run.log(f"=== {step.name}: {' '.join(step.argv)} (limit {limit:.0f} s)")
    print(f"[gpu_check] {step.name} (limit {limit:.0f} s)", flush=True)
    start = time.perf_counter()
    process = subprocess.Popen(
        step.argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, start_new_session=True,
    )  # fmt: skip
    stopped: list[str] = []

    def stop() -> None:
        stopped.append("time limit")
        try:
            os.killpg(process.pid, signal.SIGINT if step.interrupt else signal.SIGTERM)
            time.sleep(20 if step.interrupt else 3)
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    timer = threading.Timer(limit, stop)
    timer.daemon = True
    timer.start()
    assert process.stdout is not None
    for text in process.stdout:
        run.log(text)
        if text.startswith("{"):
            try:
                line = json.loads(text)
            except json.JSONDecodeError:
                continue
            if isinstance(line, dict) and "name" in line and "value" in line:
                run.add(step.name, line)
    code = process.wait()
    timer.cancel()
    seconds = time.perf_counter() - start
    status = "timeout" if stopped else ("ok" if code == 0 else f"failed (exit {code})")
    record = {"step": step.name, "status": status, "seconds": round(seconds, 1)}
    run.log(f"=== {step.name}: {status} after {seconds:.1f} s")
    print(f"[gpu_check] {step.name}: {status} after {seconds:.1f} s", flush=True)
    run.steps.append(record)
    return record


def loop_figures(run_dir: Path) -> list[dict[str, Any]]:
    """The 5-minute run's figures from its run directory: iterations, games, self-play and
    training speed, promotions and every champion's perfect-play scores."""
    lines: list[dict[str, Any]] = []

    def add(name: str, value: float, unit: str, **config: Any) -> None:
        lines.append({"name": name, "value": float(value), "unit": unit, "config": config})

    metrics_path = run_dir / "metrics.jsonl"
    metrics = []
    if metrics_path.is_file():
        for text in metrics_path.read_text().splitlines():
            with contextlib.suppress(json.JSONDecodeError):  # a line cut by the stop
                metrics.append(json.loads(text))
    if metrics:
        last = metrics[-1]
        add("loop_iterations", len(metrics), "iterations")
        add("loop_games", last.get("games", 0), "games")
        later = metrics[1:] or metrics  # the first iteration includes compiling
        for key, unit in (("moves_per_second", "moves/s"), ("games_per_second", "games/s")):
            values = [m[key] for m in later if isinstance(m.get(key), int | float)]
            if values:
                add(f"loop_selfplay_{key}", statistics.median(values), unit,
                    statistic="median over iterations after the first")  # fmt: skip
        seconds = [m.get("iteration_seconds") for m in metrics]
        seconds = [s for s in seconds if isinstance(s, int | float)]
        if seconds:
            add("loop_first_iteration_seconds", seconds[0], "s")
            add("loop_iteration_seconds", statistics.median(seconds[1:] or seconds), "s",
                statistic="median over iterations after the first")  # fmt: skip
        for key in ("selfplay_seconds", "train_seconds", "gate_seconds"):
            values = [m[key] for m in metrics if isinstance(m.get(key), int | float)]
            if values:
                add(f"loop_total_{key}", sum(values), "s")
    ledger_path = run_dir / "ledger.sqlite"
    if ledger_path.is_file():
        from rlloop.ledger import Ledger  # sqlite only: no JAX in this process

        ledger = Ledger(ledger_path, readonly=True)
        try:
            add("loop_promotions", len(ledger.promotions()), "promotions")
            for event in ledger.events_since(kind="PERFECT_PLAY"):
                for result in event.payload.get("results", []):
                    if result.get("mistake_rate") is None:
                        continue
                    add("loop_perfect_play_mistake_rate", result["mistake_rate"], "share",
                        model=event.payload.get("model_id"),
                        iteration=event.payload.get("iteration"), set=result.get("set"),
                        simulations=result.get("simulations"), positions=result.get("scored"),
                        mistakes=result.get("mistakes"),
                        value_accuracy=result.get("value_accuracy"))  # fmt: skip
        finally:
            ledger.close()
    return lines


# --------------------------------------------------------------------------------- summary


def _fmt(value: Any, digits: int = 0) -> str:
    if value is None:
        return "–"
    if isinstance(value, str):
        return value
    return f"{value:,.{digits}f}"


def _find(results: list[dict[str, Any]], name: str, **config: Any) -> dict[str, Any] | None:
    for line in results:
        if line["name"] == name and all(line["config"].get(k) == v for k, v in config.items()):
            return line
    return None


def _value(results: list[dict[str, Any]], name: str, **config: Any) -> float | None:
    line = _find(results, name, **config)
    return None if line is None else line["value"]


def _section(out: list[str], title: str, columns: str, align: str) -> None:
    """A table's title, header row (``columns``, ``|``-separated) and alignment row."""
    out += [f"\n## {title}\n", f"| {columns} |", f"|{align}|"]


def summary(run: Run) -> str:
    """Markdown tables of the figures gathered so far."""
    results, out = run.results, []
    out.append("## Steps\n\n| step | status | seconds |\n|---|---|---:|")
    out += [f"| {s['step']} | {s['status']} | {s['seconds']:.1f} |" for s in run.steps]
    facts = [line for line in results if line["step"] == "env"]
    if facts:
        out.append("\n## Environment\n")
        for line in facts:
            config = ", ".join(f"{k}={v}" for k, v in line["config"].items())
            extra = f" ({line['value'] / 2**30:.1f} GiB)" if line["unit"] == "bytes" else ""
            out.append(f"- {line['name']}: {config}{extra}")
    rows = [line for line in results if line["name"] == "selfplay_ratio_vs_reference"]
    if rows:
        _section(out, "Connect Four self-play (moves/s; games/s = moves/s ÷ the sequential "
                 "baseline's mean game length)", "net | sims | batch | rlloop moves/s | pgx+mctx "
                 "moves/s | ratio | rlloop games/s | sequential games/s | vs sequential | compile "
                 "rlloop / ref (s)", "---|---:|---:|---:|---:|---:|---:|---:|---:|---:")  # fmt: skip
        for line in rows:
            c = {k: line["config"][k] for k in ("net", "simulations", "batch_size")}
            seq = {"net": c["net"], "simulations": c["simulations"], "engine": "sequential"}
            out.append(
                f"| {c['net']} | {c['simulations']} | {c['batch_size']:,} "
                f"| {_fmt(_value(results, 'selfplay_moves', **c, engine='rlloop'))} "
                f"| {_fmt(_value(results, 'selfplay_moves', **c, engine='pgx+mctx'))} "
                f"| {line['value']:.2f}x "
                f"| {_fmt(_value(results, 'selfplay_games', **c, engine='rlloop'), 1)} "
                f"| {_fmt(_value(results, 'selfplay_games', **seq), 2)} "
                f"| {_fmt(_value(results, 'selfplay_games_ratio_vs_sequential', **c), 1)}x "
                f"| {_fmt(_value(results, 'selfplay_compile', **c, engine='rlloop'), 1)} / "
                f"{_fmt(_value(results, 'selfplay_compile', **c, engine='pgx+mctx'), 1)} |"
            )
    rows = [line for line in results if line["name"] == "train_steps"]
    if rows:
        _section(out, "Training (Connect Four)",
                 "net | batch | steps/call | style | steps/s | samples/s | compile (s)",
                 "---|---:|---:|---|---:|---:|---:")  # fmt: skip
        for line in rows:
            c = line["config"]
            key = {k: c[k] for k in ("net", "batch_size", "style")}
            out.append(
                f"| {c['net']} | {c['batch_size']:,} | {c['steps_per_call']} | {c['style']} "
                f"| {line['value']:,.1f} "
                f"| {_fmt(_value(results, 'train_samples', **key))} "
                f"| {_fmt(_value(results, 'train_compile', **key), 1)} |"
            )
    rows = [line for line in results if line["name"] == "ringrift_random_play"]
    if rows:
        _section(out, "RingRift random play", "config | batch | steps/s | XLA memory (GiB) | "
                 "compile (s)", "---|---:|---:|---:|---:")  # fmt: skip
        for line in rows:
            c = {k: line["config"][k] for k in ("game", "batch_size")}
            memory = _value(results, "ringrift_random_play_memory", **c)
            out.append(
                f"| {c['game']} | {c['batch_size']:,} | {line['value']:,.0f} "
                f"| {_fmt(None if memory is None else memory / 2**30, 2)} "
                f"| {_fmt(_value(results, 'ringrift_random_play_compile', **c), 1)} |"
            )
    rows = [line for line in results if line["name"] == "ringrift_selfplay_moves"]
    if rows:
        _section(out, "RingRift self-play", "config | net | sims | batch | moves/s | mean game "
                 "length | games/s | compile (s)", "---|---|---:|---:|---:|---:|---:|---:")  # fmt: skip
        for line in rows:
            c = line["config"]
            games = _find(results, "ringrift_selfplay_games", game=c["game"])
            length = _find(results, "ringrift_mean_game_length", game=c["game"])
            bound = _find(results, "ringrift_mean_game_length_lower_bound", game=c["game"])
            length_text = (f"{length['value']:.0f}" if length else
                           f"> {bound['value']:.0f}" if bound else "–")  # fmt: skip
            out.append(
                f"| {c['game']} | {c['net']} | {c['simulations']} | {c['batch_size']:,} "
                f"| {line['value']:,.0f} | {length_text} "
                f"| {_fmt(games['value'] if games else None, 2)} "
                f"| {_fmt(_value(results, 'ringrift_selfplay_compile', game=c['game']), 1)} |"
            )
    skipped = [line for line in results if line["name"].endswith("_skipped")]
    if skipped:
        out.append("\n## Skipped\n")
        out += [f"- {line['name']}: {json.dumps(line['config'])}" for line in skipped]
    loop = [line for line in results if line["step"] == "loop"]
    if loop:
        out.append("\n## The loop (connect4_perfect)\n")
        for line in loop:
            if line["name"] == "loop_perfect_play_mistake_rate":
                c = line["config"]
                out.append(
                    f"- perfect play, {c['model']} (iteration {c['iteration']}), {c['set']}, "
                    f"{c['simulations']} sims: mistake rate {line['value']:.3f} "
                    f"({c['mistakes']}/{c['positions']}), value accuracy "
                    f"{_fmt(c['value_accuracy'], 3)}"
                )
            else:
                out.append(f"- {line['name']}: {line['value']:,.2f} {line['unit']}")
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/gpu_check.sh", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dry-run", action="store_true",
                        help="the same steps at tiny sizes on the CPU")
    parser.add_argument("--out", default=os.environ.get("OUT") or "gpu_check_out",
                        help="output folder (default $OUT, else gpu_check_out)")
    parser.add_argument("--total-seconds", type=float, default=0.0,
                        help="all steps together (default 570 on a GPU, 600 dry)")
    parser.add_argument("--run-dir", default="",
                        help="the loop's run directory (default: a fresh one under /tmp)")
    parser.add_argument("--python", default=sys.executable, help="the Python of the steps")
    parser.add_argument("--loop-override", action="append", default=[], metavar="KEY=VALUE",
                        help="a Hydra override appended to the loop's command (repeatable), "
                             "e.g. train.steps_per_iteration=160")
    parser.add_argument("--steps", default="env,selfplay,train,ringrift,loop",
                        help="comma-separated subset of the steps")
    args = parser.parse_args(argv)

    total = args.total_seconds or (600.0 if args.dry_run else 570.0)
    deadline = time.perf_counter() + total
    run_dir = Path(args.run_dir or f"/tmp/rlloop_gpu_check_{os.getpid()}_{int(time.time())}")
    if run_dir.exists():
        parser.error(f"--run-dir {run_dir} exists; the loop must start a fresh run")
    run = Run(Path(args.out))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH", "")]))
    env["PYTHONUNBUFFERED"] = "1"
    if args.dry_run:
        env["JAX_PLATFORMS"] = "cpu"
    chosen = [name.strip() for name in args.steps.split(",") if name.strip()]
    steps = plan(args.dry_run, args.python, run_dir)
    for override in args.loop_override:
        if "=" not in override:
            parser.error(f"--loop-override {override!r}: expected KEY=VALUE")
        steps[-1].argv.append(override)
    unknown = set(chosen) - {step.name for step in steps}
    if unknown:
        parser.error(f"--steps: unknown {sorted(unknown)}; valid: {[s.name for s in steps]}")
    if not args.dry_run and "env" in chosen:
        try:
            smi = subprocess.run(["nvidia-smi"], capture_output=True, text=True, timeout=20)
            run.log("=== nvidia-smi\n" + smi.stdout + smi.stderr)
        except (OSError, subprocess.TimeoutExpired) as error:
            run.log(f"=== nvidia-smi: {error}")
    for step in steps:
        if step.name not in chosen:
            continue
        left = deadline - time.perf_counter()
        if step.name == "loop":
            # What is left, less the start-up and the final save; at most 5 minutes.
            reserve = 30.0 if args.dry_run else 45.0
            minutes = min(LOOP_MINUTES, (left - reserve) / 60.0)
            if args.dry_run:
                minutes = min(minutes, 0.5)
            if minutes < 0.2:
                run.steps.append({"step": "loop", "status": "skipped (no time left)",
                                  "seconds": 0.0})  # fmt: skip
                continue
            step.argv.append(f"loop.max_minutes={minutes:.2f}")
            run_step(run, step, max(left - 5.0, 30.0), env)
            for line in loop_figures(run_dir):
                run.add("loop", line)
            metrics = run_dir / "metrics.jsonl"
            if metrics.is_file():
                (run.out / "loop_metrics.jsonl").write_bytes(metrics.read_bytes())
        else:
            if left < 10:
                run.steps.append({"step": step.name, "status": "skipped (no time left)",
                                  "seconds": 0.0})  # fmt: skip
                continue
            run_step(run, step, min(step.limit, left), env)
        (run.out / "summary.md").write_text(summary(run))
    text = summary(run)
    (run.out / "summary.md").write_text(text)
    run.close()
    print(text, flush=True)
    failed = [s for s in run.steps if s["status"] != "ok"]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
