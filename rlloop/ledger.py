"""The run ledger: one SQLite file per run recording models, matches, promotions and events.

Durability choices, for a loop that may be SIGKILLed at any moment:

* ``journal_mode=WAL``: a reader in another process (a notebook, a second self-play worker)
  never blocks the writer and always sees a consistent snapshot of committed transactions.
* ``synchronous=FULL``: in WAL mode, NORMAL already survives a *process* kill (a committed
  transaction is in the WAL file, i.e. the OS page cache, before ``COMMIT`` returns), but it may
  lose the last commits on power loss or an OS crash. The ledger writes a handful of rows per
  iteration, so the fsync per commit that FULL costs is negligible, and a promotion that was
  reported as committed then survives a machine crash too.
* Every write is one ``BEGIN IMMEDIATE`` … ``COMMIT`` transaction, so a multi-row change such as
  a promotion is all-or-nothing, and the write lock is taken up front (no read-then-upgrade
  deadlock with another writer).

Events are published to an in-process :class:`EventBus` only after their transaction commits;
other processes follow them by polling :meth:`Ledger.events_since`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sqlite3
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from rlloop.runs import json_default

__all__ = [
    "MODEL_PROMOTED",
    "MODEL_REJECTED",
    "SCHEMA_VERSION",
    "STATUSES",
    "Event",
    "EventBus",
    "Ledger",
    "LedgerError",
    "Match",
    "Model",
    "ProcessLedger",
    "Promotion",
]

log = logging.getLogger(__name__)

# 2: every model, match, promotion and iteration names its game configuration (``config``),
# so one ledger holds many lineages; a version-1 ledger is migrated when opened for writing.
SCHEMA_VERSION = 2
STATUSES = ("candidate", "champion", "rejected", "baseline", "retired")
MODEL_PROMOTED = "MODEL_PROMOTED"
MODEL_REJECTED = "MODEL_REJECTED"

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS models (
    id TEXT PRIMARY KEY,
    parent TEXT NULL REFERENCES models(id),
    iteration INTEGER NOT NULL,
    created REAL NOT NULL,
    status TEXT NOT NULL CHECK (status IN ({", ".join(repr(s) for s in STATUSES)})),
    elo REAL NULL,
    elo_low REAL NULL,
    elo_high REAL NULL,
    checkpoint TEXT NULL,
    note TEXT NULL,
    config TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS models_status ON models(status);
CREATE TABLE IF NOT EXISTS matches (
    id INTEGER PRIMARY KEY,
    model_a TEXT NOT NULL,
    model_b TEXT NOT NULL,
    wins_a INTEGER NOT NULL CHECK (wins_a >= 0),
    draws INTEGER NOT NULL CHECK (draws >= 0),
    wins_b INTEGER NOT NULL CHECK (wins_b >= 0),
    stage TEXT NOT NULL,
    iteration INTEGER NOT NULL,
    created REAL NOT NULL,
    mean_length REAL NULL,
    config TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS promotions (
    id INTEGER PRIMARY KEY,
    model_id TEXT NOT NULL REFERENCES models(id),
    previous_champion TEXT NULL,
    iteration INTEGER NOT NULL,
    score REAL NOT NULL,
    score_low REAL NOT NULL,
    score_high REAL NOT NULL,
    created REAL NOT NULL,
    config TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    payload TEXT NOT NULL,
    created REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS events_kind ON events(kind, id);
CREATE TABLE IF NOT EXISTS iterations (
    iteration INTEGER PRIMARY KEY,
    finished REAL NOT NULL,
    metrics TEXT NOT NULL,
    config TEXT NOT NULL DEFAULT ''
);
"""
_CONFIG_TABLES = ("models", "matches", "promotions", "iterations")


class LedgerError(RuntimeError):
    """The ledger file cannot be used: not SQLite, not a ledger, or from a newer rlloop."""


@dataclass(frozen=True)
class Model:
    """A row of the ``models`` table."""

    id: str
    parent: str | None
    iteration: int
    created: float
    status: str
    elo: float | None
    elo_low: float | None
    elo_high: float | None
    checkpoint: str | None
    note: str | None
    config: str = ""  # the game configuration (schema 2; "" in a version-1 ledger)


@dataclass(frozen=True)
class Match:
    """A row of the ``matches`` table (counts from ``model_a``'s side)."""

    id: int
    model_a: str
    model_b: str
    wins_a: int
    draws: int
    wins_b: int
    stage: str
    iteration: int
    created: float
    mean_length: float | None
    config: str = ""  # the game configuration (schema 2; "" in a version-1 ledger)


@dataclass(frozen=True)
class Promotion:
    """A row of the ``promotions`` table."""

    id: int
    model_id: str
    previous_champion: str | None
    iteration: int
    score: float
    score_low: float
    score_high: float
    created: float
    config: str = ""  # the game configuration (schema 2; "" in a version-1 ledger)


@dataclass(frozen=True)
class Event:
    """A row of the ``events`` table; ``payload`` is the decoded JSON object."""

    id: int
    kind: str
    payload: dict[str, Any]
    created: float


EventCallback = Callable[[Event], None]


class EventBus:
    """In-process publish/subscribe for ledger events.

    ``subscribe(kind, callback)`` registers for one event kind, or for every kind with
    ``kind="*"``. A subscriber that raises is logged and skipped: the event is already committed,
    so one broken listener must not make the writer believe the write failed.
    """

    def __init__(self) -> None:
        self._subscribers: dict[str, list[EventCallback]] = defaultdict(list)

    def subscribe(self, kind: str, callback: EventCallback) -> Callable[[], None]:
        """Call ``callback(event)`` for each published event of ``kind`` (``"*"``: all kinds).

        Returns a function that unsubscribes (idempotent).
        """
        if not callable(callback):
            raise TypeError(f"callback must be callable, got {callback!r}")
        self._subscribers[kind].append(callback)

        def unsubscribe() -> None:
            with contextlib.suppress(ValueError):
                self._subscribers[kind].remove(callback)

        return unsubscribe

    def publish(self, event: Event) -> None:
        """Deliver ``event`` to its kind's subscribers, then to the ``"*"`` subscribers."""
        for callback in [*self._subscribers.get(event.kind, ()), *self._subscribers.get("*", ())]:
            try:
                callback(event)
            except Exception:
                log.exception("event subscriber %r failed on %s #%d", callback, event.kind, event.id)


def _encode(payload: dict[str, Any]) -> str:
    if not isinstance(payload, dict):
        raise TypeError(f"event payload must be a dict, got {type(payload).__name__}")
    # Metrics and match results arrive as numpy/JAX scalars and small arrays: stored as the
    # plain numbers and lists they hold.
    return json.dumps(payload, sort_keys=True, allow_nan=False, default=json_default)


def _check_status(status: str) -> None:
    if status not in STATUSES:
        raise ValueError(f"status must be one of {STATUSES}, got {status!r}")


class Ledger:
    """One run's SQLite ledger. See the module docstring for the durability guarantees.

    ``Ledger(path)`` creates the file if needed; ``readonly=True`` opens an existing ledger for
    reading only (safe while another process writes). Use as a context manager or call
    :meth:`close`. Events written by this object are published to ``bus`` after they commit.

    ``config`` names the game configuration that writes without one of their own record and
    that :meth:`champion` means by default (a run of one configuration passes its game's
    name). A version-1 ledger (one game, no ``config`` column) opened for writing is migrated
    to version 2 in one transaction, its rows labelled ``config``; opened read-only it is read
    as it is (``config`` ""), and filters by configuration do not apply to it.
    """

    def __init__(
        self, path: str | Path, *, readonly: bool = False, bus: EventBus | None = None,
        config: str = "",
    ) -> None:  # fmt: skip
        self.path = Path(path)
        self.readonly = readonly
        self.bus = bus
        self.config = str(config)
        self._version = SCHEMA_VERSION
        if readonly and not self.path.is_file():
            raise LedgerError(f"no ledger at {self.path}: the file does not exist")
        try:
            if readonly:
                uri = f"{self.path.resolve().as_uri()}?mode=ro"
                self._conn = sqlite3.connect(uri, uri=True, timeout=30.0, isolation_level=None)
            else:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                # isolation_level=None: we issue BEGIN IMMEDIATE ourselves (see _write).
                self._conn = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
        except sqlite3.Error as error:
            raise LedgerError(f"cannot open ledger {self.path}: {error}") from error
        try:
            self._open()
        except sqlite3.DatabaseError as error:
            self._conn.close()
            raise LedgerError(
                f"{self.path} is not an rlloop ledger (not a readable SQLite database): {error}"
            ) from error
        except LedgerError:
            self._conn.close()
            raise

    def _open(self) -> None:
        conn = self._conn
        conn.row_factory = sqlite3.Row
        # Reading user_version forces SQLite to read the header: this is where a non-SQLite
        # file fails ("file is not a database").
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise LedgerError(
                f"ledger {self.path} has schema version {version}, but this rlloop supports "
                f"schema version {SCHEMA_VERSION} at most: upgrade rlloop to open it"
            )
        conn.execute("PRAGMA foreign_keys=ON")
        self._version = version or SCHEMA_VERSION
        if self.readonly:
            if version == 0:
                raise LedgerError(
                    f"{self.path} is not an rlloop ledger (schema version 0, no ledger tables)"
                )
            return
        mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if mode.lower() != "wal":
            raise LedgerError(f"cannot put ledger {self.path} in WAL mode (got {mode!r})")
        conn.execute("PRAGMA synchronous=FULL")
        if version == 0:
            tables = {
                r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
            }
            if tables:
                raise LedgerError(
                    f"{self.path} is an SQLite database but not an rlloop ledger "
                    f"(schema version 0 with tables {sorted(tables)})"
                )
            with self._write():
                # Statement by statement: executescript() would COMMIT our transaction early.
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        conn.execute(statement)
                conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        elif version == 1:
            self._migrate_from_1()

    def _migrate_from_1(self) -> None:
        """Version 1 -> 2: a ``config`` column on models, matches, promotions and iterations,
        set to this ledger's ``config`` (a version-1 ledger held one game), in one
        transaction with a ``LEDGER_MIGRATED`` event."""
        with self._write() as conn:
            for table in _CONFIG_TABLES:
                conn.execute(f"ALTER TABLE {table} ADD COLUMN config TEXT NOT NULL DEFAULT ''")
                conn.execute(f"UPDATE {table} SET config = ?", (self.config,))
            conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            event = self._insert_event(conn, "LEDGER_MIGRATED",
                                       {"from": 1, "to": SCHEMA_VERSION, "config": self.config},
                                       time.time())  # fmt: skip
        self._version = SCHEMA_VERSION
        self._publish([event])

    def _config_filter(self, config: str | None) -> tuple[str, tuple[Any, ...]]:
        """(SQL condition, arguments) selecting rows of ``config``; none for ``None`` or a
        version-1 ledger (which has no such column)."""
        if config is None or self._version < 2:
            return "1", ()
        return "config = ?", (str(config),)

    # -- plumbing -------------------------------------------------------------------------

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction: BEGIN IMMEDIATE, COMMIT on success, ROLLBACK on any error."""
        if self.readonly:
            raise LedgerError(f"ledger {self.path} was opened read-only")
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        with conn:  # commits on success, rolls back on exception
            yield conn

    def close(self) -> None:
        """Close the connection (idempotent)."""
        self._conn.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _publish(self, events: list[Event]) -> None:
        if self.bus is not None:
            for event in events:
                self.bus.publish(event)

    def _require_model(self, conn: sqlite3.Connection, model_id: str) -> sqlite3.Row:
        row = conn.execute("SELECT * FROM models WHERE id = ?", (model_id,)).fetchone()
        if row is None:
            raise KeyError(f"unknown model id {model_id!r} in ledger {self.path}")
        return row

    @staticmethod
    def _insert_event(
        conn: sqlite3.Connection, kind: str, payload: dict[str, Any], created: float
    ) -> Event:
        encoded = _encode(payload)
        cursor = conn.execute(
            "INSERT INTO events (kind, payload, created) VALUES (?, ?, ?)",
            (kind, encoded, created),
        )
        return Event(int(cursor.lastrowid), kind, json.loads(encoded), created)

    # -- writes ---------------------------------------------------------------------------

    def add_model(
        self,
        model_id: str,
        *,
        parent: str | None,
        iteration: int,
        status: str,
        checkpoint: str | None = None,
        note: str | None = None,
        config: str | None = None,
    ) -> None:
        """Add a model of ``config`` (default: the ledger's). ``parent`` must already be in the
        ledger (or None for a root)."""
        _check_status(status)
        with self._write() as conn:
            if parent is not None:
                self._require_model(conn, parent)
            if conn.execute("SELECT 1 FROM models WHERE id = ?", (model_id,)).fetchone():
                raise ValueError(f"model id {model_id!r} is already in ledger {self.path}")
            conn.execute(
                "INSERT INTO models (id, parent, iteration, created, status, checkpoint, note, "
                "config) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (model_id, parent, int(iteration), time.time(), status, checkpoint, note,
                 self.config if config is None else str(config)),
            )  # fmt: skip

    def set_status(self, model_id: str, status: str) -> None:
        """Set a model's status (one of :data:`STATUSES`)."""
        _check_status(status)
        with self._write() as conn:
            self._require_model(conn, model_id)
            conn.execute("UPDATE models SET status = ? WHERE id = ?", (status, model_id))

    def set_checkpoint(self, model_id: str, checkpoint: str) -> None:
        """Record where a model's parameters are saved (relative to the run dir)."""
        with self._write() as conn:
            self._require_model(conn, model_id)
            conn.execute("UPDATE models SET checkpoint = ? WHERE id = ?", (checkpoint, model_id))

    def set_rating(self, model_id: str, elo: float, low: float, high: float) -> None:
        """Store a model's Elo and its confidence interval."""
        if not low <= elo <= high:
            raise ValueError(f"need low <= elo <= high, got low={low}, elo={elo}, high={high}")
        with self._write() as conn:
            self._require_model(conn, model_id)
            conn.execute(
                "UPDATE models SET elo = ?, elo_low = ?, elo_high = ? WHERE id = ?",
                (float(elo), float(low), float(high), model_id),
            )

    def record_match(
        self,
        model_a: str,
        model_b: str,
        wins_a: int,
        draws: int,
        wins_b: int,
        *,
        stage: str,
        iteration: int,
        mean_length: float | None = None,
        config: str | None = None,
    ) -> int:
        """Record a match's result (counts from ``model_a``'s side); returns the match id.

        Players need not be models in the ledger: fixed baselines such as ``"random"`` or
        ``"greedy"`` are recorded by name.
        """
        for name, value in (("wins_a", wins_a), ("draws", draws), ("wins_b", wins_b)):
            if value < 0:
                raise ValueError(f"{name} must be a non-negative count, got {value!r}")
        with self._write() as conn:
            cursor = conn.execute(
                "INSERT INTO matches (model_a, model_b, wins_a, draws, wins_b, stage, iteration, "
                "created, mean_length, config) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    model_a, model_b, int(wins_a), int(draws), int(wins_b), stage,
                    int(iteration), time.time(), None if mean_length is None else float(mean_length),
                    self.config if config is None else str(config),
                ),
            )  # fmt: skip
            return int(cursor.lastrowid)

    def promote(
        self,
        model_id: str,
        *,
        iteration: int,
        score: float,
        score_low: float,
        score_high: float,
    ) -> int:
        """Make ``model_id`` the champion; returns the promotion id.

        In one transaction: the previous champion becomes 'retired', this model 'champion', a
        ``promotions`` row and a ``MODEL_PROMOTED`` event are written. After the commit the event
        is published to the bus. Raises KeyError for an unknown model, ValueError if it is
        already the champion or was rejected.
        """
        now = time.time()
        # Plain floats: numpy float32 would neither bind to SQLite nor encode as JSON.
        score, score_low, score_high = float(score), float(score_low), float(score_high)
        with self._write() as conn:
            row = self._require_model(conn, model_id)
            if row["status"] in ("champion", "rejected"):
                raise ValueError(
                    f"cannot promote {model_id!r}: its status is {row['status']!r} "
                    "(promotable: candidate, baseline, retired)"
                )
            # The champion of the model's own configuration steps down; other lineages keep theirs.
            config = row["config"]
            previous = conn.execute(
                "SELECT id FROM models WHERE status = 'champion' AND config = ?", (config,)
            ).fetchall()
            previous_id = previous[0]["id"] if previous else None
            conn.execute(
                "UPDATE models SET status = 'retired' WHERE status = 'champion' AND config = ?",
                (config,),
            )
            conn.execute("UPDATE models SET status = 'champion' WHERE id = ?", (model_id,))
            cursor = conn.execute(
                "INSERT INTO promotions (model_id, previous_champion, iteration, score, score_low, "
                "score_high, created, config) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (model_id, previous_id, int(iteration), score, score_low, score_high, now, config),
            )
            promotion_id = int(cursor.lastrowid)
            event = self._insert_event(
                conn,
                MODEL_PROMOTED,
                {
                    "model_id": model_id,
                    "previous_champion": previous_id,
                    "iteration": int(iteration),
                    "score": score,
                    "score_low": score_low,
                    "score_high": score_high,
                    "promotion_id": promotion_id,
                    "checkpoint": row["checkpoint"],
                },
                now,
            )
        self._publish([event])
        return promotion_id

    def reject(self, model_id: str, *, iteration: int, reason: str) -> int:
        """Mark ``model_id`` 'rejected' and write a ``MODEL_REJECTED`` event; returns its id."""
        now = time.time()
        with self._write() as conn:
            row = self._require_model(conn, model_id)
            if row["status"] == "champion":
                raise ValueError(f"cannot reject {model_id!r}: it is the current champion")
            conn.execute("UPDATE models SET status = 'rejected' WHERE id = ?", (model_id,))
            event = self._insert_event(
                conn,
                MODEL_REJECTED,
                {"model_id": model_id, "iteration": int(iteration), "reason": reason},
                now,
            )
        self._publish([event])
        return event.id

    def add_event(self, kind: str, payload: dict[str, Any]) -> int:
        """Append an event (``payload``: a JSON-serialisable dict); returns its id."""
        if not kind:
            raise ValueError("event kind must be a non-empty string")
        with self._write() as conn:
            event = self._insert_event(conn, kind, payload, time.time())
        self._publish([event])
        return event.id

    def record_iteration(
        self, iteration: int, metrics: dict[str, Any], *, config: str | None = None
    ) -> None:
        """Mark ``iteration`` finished with its metrics and the configuration it fed
        (default: the ledger's); replaces an earlier record of it."""
        encoded = _encode(metrics)
        with self._write() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO iterations (iteration, finished, metrics, config) "
                "VALUES (?, ?, ?, ?)",
                (int(iteration), time.time(), encoded, self.config if config is None else str(config)),
            )

    # -- reads ----------------------------------------------------------------------------

    def events_since(self, after_id: int = 0, kind: str | None = None) -> list[Event]:
        """Events with id > ``after_id`` (optionally of one ``kind``), oldest first.

        A follower in another process polls this with the last id it has seen.
        """
        query = "SELECT * FROM events WHERE id > ?"
        args: tuple[Any, ...] = (after_id,)
        if kind is not None:
            query += " AND kind = ?"
            args += (kind,)
        rows = self._conn.execute(query + " ORDER BY id", args).fetchall()
        return [Event(r["id"], r["kind"], json.loads(r["payload"]), r["created"]) for r in rows]

    def champion(self, config: str | None = None) -> Model | None:
        """The current champion of ``config`` (default: the ledger's ``config``), or None if
        none has been promoted. With neither, the one champion of the ledger; ValueError
        naming them when several configurations have one."""
        config = self.config if config is None else config
        condition, args = self._config_filter(config or None)
        rows = self._conn.execute(
            f"SELECT * FROM models WHERE status = 'champion' AND {condition}", args
        ).fetchall()
        if len(rows) > 1:
            names = sorted(f"{row['id']} ({row['config']})" for row in rows)
            raise ValueError(f"champions of several configurations: {', '.join(names)}; name one")
        return Model(**dict(rows[0])) if rows else None

    def model(self, model_id: str) -> Model:
        """One model by id; KeyError naming the id if it is not in the ledger."""
        return Model(**dict(self._require_model(self._conn, model_id)))

    def models(self, status: str | None = None, *, config: str | None = None) -> list[Model]:
        """All models (optionally only those with ``status``, of ``config``), in creation
        order."""
        condition, args = self._config_filter(config)
        if status is not None:
            _check_status(status)
            condition, args = f"{condition} AND status = ?", (*args, status)
        rows = self._conn.execute(
            f"SELECT * FROM models WHERE {condition} ORDER BY created, rowid", args
        )
        return [Model(**dict(r)) for r in rows.fetchall()]

    def lineage(self, model_id: str) -> list[Model]:
        """``model_id`` and its ancestors, from the model up through parents to the root."""
        self._require_model(self._conn, model_id)
        rows = self._conn.execute(
            """
            WITH RECURSIVE chain(id, depth) AS (
                SELECT id, 0 FROM models WHERE id = ?
                UNION ALL
                SELECT m.parent, chain.depth + 1 FROM models m JOIN chain ON m.id = chain.id
                WHERE m.parent IS NOT NULL AND chain.depth < 100000
            )
            SELECT models.* FROM chain JOIN models ON models.id = chain.id ORDER BY chain.depth
            """,
            (model_id,),
        ).fetchall()
        return [Model(**dict(r)) for r in rows]

    def matches(self, *, config: str | None = None) -> list[Match]:
        """All recorded matches (optionally of ``config``), oldest first."""
        condition, args = self._config_filter(config)
        rows = self._conn.execute(f"SELECT * FROM matches WHERE {condition} ORDER BY id", args)
        return [Match(**dict(r)) for r in rows.fetchall()]

    def promotions(self, *, config: str | None = None) -> list[Promotion]:
        """All promotions (optionally of ``config``), oldest first."""
        condition, args = self._config_filter(config)
        rows = self._conn.execute(f"SELECT * FROM promotions WHERE {condition} ORDER BY id", args)
        return [Promotion(**dict(r)) for r in rows.fetchall()]

    def iterations(self, *, config: str | None = None) -> dict[int, dict[str, Any]]:
        """Finished iterations (optionally those that fed ``config``) and their metrics."""
        condition, args = self._config_filter(config)
        rows = self._conn.execute(
            f"SELECT iteration, metrics FROM iterations WHERE {condition} ORDER BY iteration", args
        )
        return {r["iteration"]: json.loads(r["metrics"]) for r in rows.fetchall()}

    def last_iteration(self) -> int:
        """The highest finished iteration, 0 if none."""
        row = self._conn.execute("SELECT MAX(iteration) FROM iterations").fetchone()
        return int(row[0]) if row[0] is not None else 0

    def integrity_check(self) -> str:
        """``PRAGMA integrity_check``: ``'ok'`` for a sound file, otherwise the problems found."""
        rows = self._conn.execute("PRAGMA integrity_check").fetchall()
        return "\n".join(str(r[0]) for r in rows)


_WRITES = frozenset({
    "add_model", "set_status", "set_checkpoint", "set_rating", "record_match", "promote", "reject",
    "add_event", "record_iteration",
})  # fmt: skip


class ProcessLedger:
    """The ledger as processes other than 0 of a multi-process run see it: process 0 alone
    writes the run's ledger, so writes here are dropped (returning 0), and reads raise
    (LedgerError): a decision must come from process 0 (``parallel.agree``), never from a
    ledger this process may see half-written or, on another machine, not at all."""

    def __init__(self, *, config: str = "", process: int = 1) -> None:
        self.config = str(config)
        self.process = process
        self.readonly = False

    def close(self) -> None:
        pass

    def __getattr__(self, name: str) -> Any:
        if name in _WRITES:
            return lambda *args, **kwargs: 0
        if name.startswith("__"):
            raise AttributeError(name)
        raise LedgerError(
            f"process {self.process} read the ledger ({name}); only process 0 reads and writes it "
            "in a multi-process run (a decision taken from it must be shared with parallel.agree)"
        )
