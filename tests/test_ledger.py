"""The run ledger: schema, WAL, lineage, atomic promotion, refusals, events, and SIGKILL safety."""

from __future__ import annotations

import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from rlloop import ledger as ledger_module
from rlloop.ledger import (
    MODEL_PROMOTED,
    MODEL_REJECTED,
    SCHEMA_VERSION,
    Event,
    EventBus,
    Ledger,
    LedgerError,
)

WRITER = Path(__file__).resolve().parent / "ledger_writer.py"


@pytest.fixture
def ledger(tmp_path: Path) -> Ledger:
    with Ledger(tmp_path / "run" / "ledger.sqlite") as opened:
        yield opened


def test_schema_created_with_wal_and_version(ledger: Ledger) -> None:
    raw = sqlite3.connect(ledger.path)
    tables = {r[0] for r in raw.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"models", "matches", "promotions", "events", "iterations"} <= tables
    assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert raw.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 2
    raw.close()
    assert ledger._conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert ledger.integrity_check() == "ok"
    assert ledger.last_iteration() == 0 and ledger.champion() is None
    # Reopening an existing ledger keeps its rows.
    ledger.add_model("m0", parent=None, iteration=0, status="baseline")
    with Ledger(ledger.path) as again:
        assert again.model("m0").status == "baseline"


def test_status_check_and_unknown_ids(ledger: Ledger) -> None:
    with pytest.raises(ValueError, match=r"status must be one of .*got 'best'"):
        ledger.add_model("m", parent=None, iteration=0, status="best")
    with pytest.raises(KeyError, match="unknown model id 'ghost'"):
        ledger.model("ghost")
    with pytest.raises(KeyError, match="'ghost'"):
        ledger.add_model("m", parent="ghost", iteration=1, status="candidate")
    with pytest.raises(KeyError, match="'ghost'"):
        ledger.promote("ghost", iteration=1, score=0.6, score_low=0.55, score_high=0.7)
    with pytest.raises(KeyError, match="'ghost'"):
        ledger.set_status("ghost", "retired")
    ledger.add_model("m", parent=None, iteration=0, status="candidate")
    with pytest.raises(ValueError, match="'m' is already in ledger"):
        ledger.add_model("m", parent=None, iteration=0, status="candidate")
    ledger.set_rating("m", 120.0, 100.0, 140.0)
    assert (ledger.model("m").elo, ledger.model("m").elo_low) == (120.0, 100.0)
    with pytest.raises(ValueError, match="low <= elo <= high"):
        ledger.set_rating("m", 120.0, 130.0, 140.0)


def test_lineage_three_generations(ledger: Ledger) -> None:
    ledger.add_model("g0", parent=None, iteration=0, status="baseline")
    ledger.add_model("g1", parent="g0", iteration=1, status="candidate")
    ledger.add_model("g2", parent="g1", iteration=2, status="candidate", checkpoint="ck/2")
    ledger.add_model("other", parent="g0", iteration=2, status="candidate")
    assert [m.id for m in ledger.lineage("g2")] == ["g2", "g1", "g0"]
    assert [m.id for m in ledger.lineage("g0")] == ["g0"]
    assert ledger.lineage("g2")[0].checkpoint == "ck/2"
    assert [m.id for m in ledger.models(status="candidate")] == ["g1", "g2", "other"]


def test_promote_and_reject(ledger: Ledger) -> None:
    bus = EventBus()
    seen: list[Event] = []
    bus.subscribe(MODEL_PROMOTED, seen.append)
    ledger.bus = bus
    ledger.add_model("a", parent=None, iteration=0, status="baseline")
    ledger.add_model("b", parent="a", iteration=1, status="candidate")
    ledger.add_model("c", parent="b", iteration=2, status="candidate")
    first = ledger.promote("a", iteration=0, score=0.5, score_low=0.5, score_high=0.5)
    second = ledger.promote("b", iteration=1, score=0.7, score_low=0.6, score_high=0.8)
    assert second > first
    assert ledger.champion().id == "b" and ledger.model("a").status == "retired"
    assert [p.previous_champion for p in ledger.promotions()] == [None, "a"]
    assert [e.payload["model_id"] for e in seen] == ["a", "b"]
    assert seen[1].payload["previous_champion"] == "a" and seen[1].payload["score_low"] == 0.6
    with pytest.raises(ValueError, match="status is 'champion'"):
        ledger.promote("b", iteration=2, score=0.7, score_low=0.6, score_high=0.8)
    ledger.reject("c", iteration=2, reason="Elo 60 below champion")
    assert ledger.model("c").status == "rejected"
    rejected = ledger.events_since(kind=MODEL_REJECTED)
    assert [e.payload for e in rejected] == [
        {"model_id": "c", "iteration": 2, "reason": "Elo 60 below champion"}
    ]
    with pytest.raises(ValueError, match="status is 'rejected'"):
        ledger.promote("c", iteration=3, score=0.9, score_low=0.8, score_high=0.95)


def test_promote_is_atomic(ledger: Ledger, monkeypatch: pytest.MonkeyPatch) -> None:
    ledger.add_model("old", parent=None, iteration=0, status="candidate")
    ledger.promote("old", iteration=0, score=0.6, score_low=0.56, score_high=0.7)
    ledger.add_model("new", parent="old", iteration=1, status="candidate")
    events_before = ledger.events_since()

    def fail(payload: dict) -> str:
        # Called after the status updates and the promotions insert: a failure mid-transaction.
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(ledger_module, "_encode", fail)
    with pytest.raises(RuntimeError, match="disk on fire"):
        ledger.promote("new", iteration=1, score=0.7, score_low=0.6, score_high=0.8)
    monkeypatch.undo()
    with Ledger(ledger.path, readonly=True) as reader:  # what another process would see
        for view in (ledger, reader):
            assert view.champion().id == "old"
            assert view.model("new").status == "candidate"
            assert len(view.promotions()) == 1
            assert view.events_since() == events_before
    # And the ledger is still writable afterwards (no transaction left open).
    ledger.promote("new", iteration=1, score=0.7, score_low=0.6, score_high=0.8)
    assert ledger.champion().id == "new"


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "future.sqlite"
    Ledger(path).close()
    raw = sqlite3.connect(path)
    raw.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    raw.commit()
    raw.close()
    for readonly in (False, True):
        with pytest.raises(LedgerError, match=r"schema version 3.*version 2 at most.*upgrade rlloop"):
            Ledger(path, readonly=readonly)
    assert issubclass(LedgerError, RuntimeError)


def test_non_sqlite_and_foreign_files_are_refused(tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("this is not a database, it is a shopping list\n" * 50)
    for readonly in (False, True):
        with pytest.raises(LedgerError, match=r"notes\.txt is not an rlloop ledger"):
            Ledger(text, readonly=readonly)
    assert text.read_text().startswith("this is not")  # untouched
    other = tmp_path / "other.sqlite"
    raw = sqlite3.connect(other)
    raw.execute("CREATE TABLE people (name TEXT)")
    raw.commit()
    raw.close()
    with pytest.raises(LedgerError, match=r"other\.sqlite is an SQLite database but not"):
        Ledger(other)
    with pytest.raises(LedgerError, match="does not exist"):
        Ledger(tmp_path / "missing.sqlite", readonly=True)


def test_reader_sees_committed_rows_while_writer_open(ledger: Ledger) -> None:
    ledger.add_model("a", parent=None, iteration=0, status="candidate")
    with Ledger(ledger.path, readonly=True) as reader:
        assert [m.id for m in reader.models()] == ["a"]
        match_id = ledger.record_match("a", "random", 7, 1, 2, stage="screen", iteration=1)
        ledger.record_iteration(1, {"loss": 0.5})
        assert [m.id for m in reader.matches()] == [match_id]
        assert reader.matches()[0].wins_a == 7 and reader.last_iteration() == 1
        assert reader.iterations() == {1: {"loss": 0.5}}
        with pytest.raises(LedgerError, match="read-only"):
            reader.add_event("X", {})
    ledger.close()
    # A read-only open after the writer has gone (WAL files checkpointed away) still works.
    with Ledger(ledger.path, readonly=True) as reader:
        assert reader.last_iteration() == 1 and reader.integrity_check() == "ok"


def test_events_polling_and_bus(ledger: Ledger) -> None:
    bus = EventBus()
    everything: list[str] = []
    custom: list[dict] = []
    unsubscribe = bus.subscribe("CUSTOM", lambda e: custom.append(e.payload))
    bus.subscribe("*", lambda e: everything.append(e.kind))

    def broken(event: Event) -> None:
        raise RuntimeError("subscriber bug")

    bus.subscribe("CUSTOM", broken)  # logged, does not break the writer or other subscribers
    ledger.bus = bus
    first = ledger.add_event("CUSTOM", {"n": 1})
    second = ledger.add_event("OTHER", {"n": 2})
    unsubscribe()
    unsubscribe()  # idempotent
    third = ledger.add_event("CUSTOM", {"n": 3})
    assert custom == [{"n": 1}]
    assert everything == ["CUSTOM", "OTHER", "CUSTOM"]
    assert [e.id for e in ledger.events_since()] == [first, second, third]
    assert [e.payload["n"] for e in ledger.events_since(first)] == [2, 3]
    assert [e.id for e in ledger.events_since(kind="CUSTOM")] == [first, third]
    assert ledger.events_since(third) == []
    with pytest.raises(TypeError, match="payload must be a dict"):
        ledger.add_event("CUSTOM", [1, 2])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="Out of range float values"):
        ledger.add_event("CUSTOM", {"x": float("nan")})
    assert len(ledger.events_since()) == 3
    # numpy scalars and arrays (as metrics and arena results arrive) are stored as plain JSON.
    ledger.record_iteration(4, {"loss": np.float32(0.25), "lengths": np.array([5, 7])})
    assert ledger.iterations()[4] == {"loss": 0.25, "lengths": [5, 7]}
    wins, draws = np.int64(3), np.int32(1)
    ledger.record_match(
        "a", "b", wins, draws, 2, stage="full", iteration=np.int64(4), mean_length=np.float32(7.5)
    )
    assert ledger.matches()[-1].wins_a == 3 and ledger.matches()[-1].mean_length == 7.5
    with pytest.raises(TypeError, match="is not JSON data"):
        ledger.add_event("CUSTOM", {"x": object()})


def _run_writer_and_kill(path: Path, tag: str, delay: float, wait_ready: bool) -> list[str]:
    """Start the writer, SIGKILL it ``delay`` s later; return the lines it printed."""
    proc = subprocess.Popen(
        [sys.executable, str(WRITER), str(path), tag],
        stdout=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []
    if wait_ready:
        lines.append(proc.stdout.readline().strip())
        assert lines[0] == "ready", lines
        # While it writes, another process-level reader polls events without disturbing it.
        with Ledger(path, readonly=True) as follower:
            last = 0
            deadline = time.monotonic() + delay
            while time.monotonic() < deadline:
                for event in follower.events_since(last):
                    assert event.id > last
                    last = event.id
                time.sleep(0.01)
    else:
        time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    out, _ = proc.communicate(timeout=10)
    assert proc.returncode == -signal.SIGKILL
    # Each line is one write(2) of under PIPE_BUF bytes; a line without "\n" is ignored anyway.
    lines += out.splitlines()
    return [line for line in lines if line and line != "ready"]


def test_sigkill_never_loses_committed_rows(tmp_path: Path) -> None:
    path = tmp_path / "killed.sqlite"
    rng = random.Random(4)
    committed_models: list[str] = []
    committed_matches: list[int] = []
    committed_promotions: list[tuple[int, str]] = []
    # Round 0 kills during start-up (possibly mid schema creation); the rest mid write loop.
    plans = [(0.15, False)] + [(rng.uniform(0.1, 0.6), True) for _ in range(4)]
    for round_, (delay, wait_ready) in enumerate(plans):
        for line in _run_writer_and_kill(path, f"r{round_}", delay, wait_ready):
            kind, *rest = line.split()
            if kind == "model":
                committed_models.append(rest[0])
            elif kind == "match":
                committed_matches.append(int(rest[0]))
            elif kind == "promotion":
                committed_promotions.append((int(rest[0]), rest[1]))
        with Ledger(path) as after:  # opening for writing also recovers the WAL
            assert after.integrity_check() == "ok"
            models = {m.id for m in after.models()}
            assert set(committed_models) <= models
            assert set(committed_matches) <= {m.id for m in after.matches()}
            promotions = {(p.id, p.model_id) for p in after.promotions()}
            assert set(committed_promotions) <= promotions
            # Promotion is all-or-nothing: exactly one champion, the latest promotion's model,
            # and one MODEL_PROMOTED event per promotions row.
            champions = after.models(status="champion")
            if promotions:
                assert [c.id for c in champions] == [max(promotions)[1]]
            events = after.events_since(kind=MODEL_PROMOTED)
            assert sorted(e.payload["promotion_id"] for e in events) == sorted(
                p for p, _ in promotions
            )
    # The kills must actually have landed mid-run, or this test proves nothing.
    assert len(committed_promotions) >= 4, committed_promotions
    with Ledger(path) as final:
        chain = final.lineage(final.champion().id)
        assert chain[-1].parent is None and len(chain) == len(final.promotions())


# A version-1 ledger as rlloop wrote it before 2026-12-04 (one game, no config column).
V1_SCHEMA = [
    "CREATE TABLE models (id TEXT PRIMARY KEY, parent TEXT NULL REFERENCES models(id), "
    "iteration INTEGER NOT NULL, created REAL NOT NULL, status TEXT NOT NULL, elo REAL NULL, "
    "elo_low REAL NULL, elo_high REAL NULL, checkpoint TEXT NULL, note TEXT NULL)",
    "CREATE TABLE matches (id INTEGER PRIMARY KEY, model_a TEXT NOT NULL, model_b TEXT NOT NULL, "
    "wins_a INTEGER NOT NULL, draws INTEGER NOT NULL, wins_b INTEGER NOT NULL, stage TEXT NOT NULL, "
    "iteration INTEGER NOT NULL, created REAL NOT NULL, mean_length REAL NULL)",
    "CREATE TABLE promotions (id INTEGER PRIMARY KEY, model_id TEXT NOT NULL REFERENCES models(id), "
    "previous_champion TEXT NULL, iteration INTEGER NOT NULL, score REAL NOT NULL, "
    "score_low REAL NOT NULL, score_high REAL NOT NULL, created REAL NOT NULL)",
    "CREATE TABLE events (id INTEGER PRIMARY KEY, kind TEXT NOT NULL, payload TEXT NOT NULL, "
    "created REAL NOT NULL)",
    "CREATE TABLE iterations (iteration INTEGER PRIMARY KEY, finished REAL NOT NULL, "
    "metrics TEXT NOT NULL)",
    "INSERT INTO models VALUES ('iter-000000', NULL, 0, 1.0, 'retired', NULL, NULL, NULL, NULL, NULL)",
    "INSERT INTO models VALUES ('iter-000004', 'iter-000000', 4, 2.0, 'champion', 120.0, 80.0, "
    "160.0, 'champions/4', NULL)",
    "INSERT INTO matches VALUES (1, 'iter-000004', 'iter-000000', 40, 0, 24, 'screen', 4, 2.0, 9.0)",
    "INSERT INTO promotions VALUES (1, 'iter-000004', 'iter-000000', 4, 0.62, 0.56, 0.68, 2.0)",
    """INSERT INTO iterations VALUES (4, 2.0, '{"games": 10}')""",
    "PRAGMA user_version=1",
]


def _v1_ledger(path: Path) -> Path:
    raw = sqlite3.connect(path)
    for statement in V1_SCHEMA:
        raw.execute(statement)
    raw.commit()
    raw.close()
    return path


def test_a_version_1_ledger_reads_as_is_and_migrates_when_written(tmp_path: Path) -> None:
    path = _v1_ledger(tmp_path / "v1.sqlite")
    with Ledger(path, readonly=True, config="connect4") as old:  # read-only: no migration
        assert old.champion().id == "iter-000004" and old.champion().config == ""
        assert [m.id for m in old.models(config="anything")] == ["iter-000000", "iter-000004"]
    raw = sqlite3.connect(path)
    assert raw.execute("PRAGMA user_version").fetchone()[0] == 1
    raw.close()
    with Ledger(path, config="connect4") as ledger:
        assert ledger.champion().id == "iter-000004" and ledger.champion().config == "connect4"
        assert {m.config for m in ledger.models()} == {"connect4"}
        assert ledger.matches()[0].config == "connect4" and ledger.promotions()[0].config == "connect4"
        assert ledger.iterations(config="connect4") == {4: {"games": 10}}
        (event,) = ledger.events_since(kind="LEDGER_MIGRATED")
        assert event.payload == {"from": 1, "to": 2, "config": "connect4"}
        ledger.add_model("iter-000008", parent="iter-000004", iteration=8, status="candidate")
        ledger.promote("iter-000008", iteration=8, score=0.6, score_low=0.55, score_high=0.65)
        assert ledger.champion().id == "iter-000008"
        assert ledger.model("iter-000004").status == "retired"
        assert ledger.integrity_check() == "ok"
    raw = sqlite3.connect(path)
    assert raw.execute("PRAGMA user_version").fetchone()[0] == 2
    raw.close()


def test_each_configuration_keeps_its_own_champion(tmp_path: Path) -> None:
    with Ledger(tmp_path / "two.sqlite", config="tictactoe") as ledger:
        ledger.add_model("ttt/iter-1", parent=None, iteration=1, status="candidate")
        ledger.add_model("c4/iter-1", parent=None, iteration=1, status="candidate", config="connect4")
        ledger.add_model("c4/iter-2", parent="c4/iter-1", iteration=2, status="candidate",
                         config="connect4")  # fmt: skip
        ledger.promote("ttt/iter-1", iteration=1, score=0.7, score_low=0.6, score_high=0.8)
        ledger.promote("c4/iter-1", iteration=1, score=0.7, score_low=0.6, score_high=0.8)
        ledger.promote("c4/iter-2", iteration=2, score=0.7, score_low=0.6, score_high=0.8)
        assert ledger.champion().id == "ttt/iter-1"  # the ledger's own configuration
        assert ledger.champion("connect4").id == "c4/iter-2"
        assert ledger.model("ttt/iter-1").status == "champion"  # untouched by connect4's
        assert ledger.model("c4/iter-1").status == "retired"
        assert [p.model_id for p in ledger.promotions(config="connect4")] == ["c4/iter-1", "c4/iter-2"]
        assert ledger.promotions(config="connect4")[1].previous_champion == "c4/iter-1"
        ledger.record_match("c4/iter-2", "random", 30, 0, 2, stage="anchor", iteration=2,
                            config="connect4")  # fmt: skip
        assert len(ledger.matches(config="connect4")) == 1 and ledger.matches(config="tictactoe") == []
        ledger.record_iteration(3, {"games": 5}, config="connect4")
        assert ledger.iterations(config="tictactoe") == {}
    with Ledger(tmp_path / "two.sqlite", readonly=True) as reader:
        with pytest.raises(ValueError, match=r"several configurations: c4/iter-2 \(connect4\)"):
            reader.champion()
        assert reader.champion("tictactoe").id == "ttt/iter-1"
