"""Run history: every build and what happened to each step it considered.

Kept in the state store's database (`.makeflow/state.db`), in tables of their own with
their own schema version, so a change here never invalidates the step records. Rows wait
in memory and are written in the same transaction as the build's step records (before it
waits for a running step), so a crash loses at most the steps in flight and a step costs
no commit of its own. History writes never count
as a new generation of the store: the no-op shortcut stays valid after a build is logged.

A build that finds nothing to do writes one row; the steps that stayed fresh are kept as a
compressed list of ids (only when something else happened), not as a row each.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import time
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from makeflow.store.state import STATE_DIR

HISTORY_SCHEMA = 1
KEEP_RUNS = 100  # default retention: the last 100 builds...
KEEP_DAYS = 90.0  # ...and none older than 90 days

TABLES = """
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY, started REAL NOT NULL, finished REAL, command TEXT NOT NULL,
    targets TEXT NOT NULL, result TEXT NOT NULL, counts TEXT NOT NULL, fresh BLOB,
    metrics TEXT);
CREATE TABLE IF NOT EXISTS run_steps (
    run INTEGER NOT NULL, step TEXT NOT NULL, rule TEXT NOT NULL, status TEXT NOT NULL,
    reasons TEXT NOT NULL, started REAL, finished REAL, cpu REAL, peak_rss INTEGER,
    exit_status INTEGER, attempts INTEGER NOT NULL, worker TEXT, error TEXT, log TEXT,
    log_tail TEXT, recipe TEXT, params TEXT, PRIMARY KEY (run, step)) WITHOUT ROWID;
"""
DROP = "DROP TABLE IF EXISTS runs; DROP TABLE IF EXISTS run_steps;"
STEP_COLUMNS = ("step", "rule", "status", "reasons", "started", "finished", "cpu",
                "peak_rss", "exit_status", "attempts", "worker", "error", "log", "log_tail",
                "recipe", "params")
INSERT_STEP = "INSERT OR REPLACE INTO run_steps VALUES (" + ",".join("?" * 17) + ")"
STATUSES = ("ran", "restored", "failed", "skipped", "cut_off", "fresh")
LOG_TAIL_BYTES = 4096


@dataclass
class Retention:
    """How much history to keep: at most `runs` builds, none older than `days` (0: no limit)."""

    runs: int = KEEP_RUNS
    days: float = KEEP_DAYS


@dataclass
class StepEntry:
    """What happened to one step in one build."""

    step: str
    rule: str
    status: str  # one of STATUSES
    reasons: list[str] = field(default_factory=list)
    started: float | None = None
    finished: float | None = None
    cpu: float | None = None
    peak_rss: int | None = None
    exit_status: int | None = None
    attempts: int = 0
    worker: str | None = None
    error: str = ""
    log: str = ""
    log_tail: str = ""
    recipe: str = ""
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def seconds(self) -> float | None:
        if self.started is None or self.finished is None:
            return None
        return self.finished - self.started

    def as_json(self) -> dict[str, Any]:
        data = {name: getattr(self, name) for name in STEP_COLUMNS}
        data["seconds"] = self.seconds
        return data


@dataclass
class RunEntry:
    """One build: when, how it was asked for, how it ended, and the steps it considered."""

    id: int
    started: float
    finished: float | None
    command: str
    targets: list[str]
    result: str  # running (or crashed), ok, failed, interrupted, error
    counts: dict[str, int]
    fresh: list[str] | None = None
    metrics: dict[str, Any] | None = None
    steps: list[StepEntry] = field(default_factory=list)

    @property
    def seconds(self) -> float | None:
        return None if self.finished is None else self.finished - self.started

    def as_json(self, steps: bool = False) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": self.id, "started": self.started, "finished": self.finished,
            "seconds": self.seconds, "command": self.command, "targets": self.targets,
            "result": self.result, "counts": self.counts,
        }
        if self.metrics is not None:
            data["metrics"] = self.metrics
        if steps:
            data["steps"] = [s.as_json() for s in self.steps]
            data["fresh"] = self.fresh or []
        return data


def prepare(db: sqlite3.Connection) -> list[str]:
    """Create the history tables; a history of another schema is dropped (with a warning),
    never the step records."""
    row = db.execute("SELECT value FROM meta WHERE key='history_schema'").fetchone()
    warnings = []
    if row is not None and row[0] != str(HISTORY_SCHEMA):
        warnings.append(f"the run history has schema {row[0]}, this makeflow writes "
                        f"{HISTORY_SCHEMA}; the old history was dropped")
    if row is None or warnings:  # one transaction: fewer pages written to the log
        with db:
            db.execute("BEGIN")
            for statement in (DROP + TABLES).split(";"):
                if statement.strip():
                    db.execute(statement)
            db.execute("INSERT OR REPLACE INTO meta VALUES ('history_schema', ?)",
                       (str(HISTORY_SCHEMA),))
    return warnings


class Recorder:
    """Records one build as it goes; the run stage calls it, the state store's connection
    holds the rows. Used by the build's main thread only."""

    def __init__(self, db: sqlite3.Connection, command: str, targets: Iterable[str],
                 retention: Retention | None = None, clock: Any = time.time):
        self.db = db
        self.clock = clock
        self.retention = retention or Retention()
        self.warnings = prepare(db)
        self.pending: list[tuple] = []
        self._params: dict[int, tuple[dict[str, Any], str]] = {}
        self._reasons: dict[tuple[str, ...], str] = {}
        self.counts = dict.fromkeys(STATUSES, 0)
        self.started = clock()
        self.begun = False  # the run's row is written with the first steps, or at the end
        self.row = (self.started, _text(command), json.dumps(list(targets)))
        (last,), = db.execute("SELECT coalesce(max(id), 0) FROM runs")
        self.run_id: int = last + 1

    def step(self, entry: StepEntry) -> None:
        """Remember one step's outcome; written at the next `flush()`."""
        self.counts[entry.status] = self.counts.get(entry.status, 0) + 1
        self.pending.append((self.run_id, _text(entry.step), _text(entry.rule), entry.status,
                             self._reasons_json(entry.reasons), entry.started, entry.finished,
                             entry.cpu, entry.peak_rss, entry.exit_status, entry.attempts,
                             entry.worker, _text(entry.error), _text(entry.log),
                             _text(entry.log_tail[-LOG_TAIL_BYTES:]), _text(entry.recipe),
                             self._params_json(entry.params)))

    def _reasons_json(self, reasons: list[str]) -> str:
        """Reasons as JSON; most steps of a build share a few lists ("never ran")."""
        key = tuple(reasons)
        known = self._reasons.get(key)
        if known is None:
            known = json.dumps(reasons)
            if len(self._reasons) < 256:
                self._reasons[key] = known
        return known

    def _params_json(self, params: dict[str, Any]) -> str:
        """Parameters as JSON, worked out once per dict: the steps of a rule share theirs."""
        known = self._params.get(id(params))
        if known is None or known[0] is not params:
            known = self._params[id(params)] = (params, json.dumps(params, sort_keys=True,
                                                                   default=repr))
        return known[1]

    def flush(self) -> None:
        """Write the steps recorded since the last flush, in a transaction of their own."""
        if not self.pending:
            return
        with self.db:
            self.db.execute("BEGIN")
            self.write_inside()

    def write_inside(self) -> None:
        """Write the pending rows inside a transaction the caller holds (the state store's,
        with its step records), in a savepoint: when they fail, only they are undone, and
        the error is raised for the caller to report."""
        if not self.pending:
            return
        rows, self.pending = self.pending, []
        begun = self.begun
        self.db.execute("SAVEPOINT history")
        try:
            self._begin()
            self.db.executemany(INSERT_STEP, rows)
        except sqlite3.Error:
            self.begun = begun
            self.db.execute("ROLLBACK TO history")
            raise
        finally:
            self.db.execute("RELEASE history")

    def _begin(self) -> None:
        """The run's own row, marked running until `finish` (a killed build leaves it so)."""
        if not self.begun:
            self.db.execute("INSERT OR REPLACE INTO runs (id, started, command, targets, "
                            "result, counts) VALUES (?, ?, ?, ?, 'running', '{}')",
                            (self.run_id, *self.row))
            self.begun = True

    def finish(self, result: str, fresh: list[str],
               metrics: dict[str, Any] | None = None) -> None:
        """Close the run: its result, counts, fresh steps; then apply the retention."""
        self.flush()
        self.counts["fresh"] = len(fresh)
        packed = None
        if fresh and any(n for k, n in self.counts.items() if k != "fresh"):
            packed = zlib.compress(json.dumps(fresh).encode(), 1)
        with self.db:
            self.db.execute("BEGIN")
            self._begin()
            self.db.execute(
                "UPDATE runs SET finished=?, result=?, counts=?, fresh=?, metrics=? WHERE id=?",
                (self.clock(), result, json.dumps(self.counts), packed,
                 None if metrics is None else json.dumps(metrics), self.run_id))
            self._prune()

    def _prune(self) -> None:
        keep = self.retention
        if keep.runs > 0:
            self.db.execute("DELETE FROM runs WHERE id <= ?", (self.run_id - keep.runs,))
        if keep.days > 0:
            self.db.execute("DELETE FROM runs WHERE started < ?",
                            (self.clock() - keep.days * 86400,))
        self.db.execute("DELETE FROM run_steps WHERE run < (SELECT coalesce(min(id), 0) "
                        "FROM runs)")


@contextlib.contextmanager
def reading(root: Path) -> Iterator[sqlite3.Connection | None]:
    """The state store opened read-only, for the commands that only show history; None when
    there is no store yet."""
    path = Path(root).resolve() / STATE_DIR / "state.db"
    if not path.exists():
        yield None
        return
    db = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True, timeout=30)
    try:
        yield db
    finally:
        db.close()


def runs(db: sqlite3.Connection, limit: int = 20) -> list[RunEntry]:
    """The most recent builds, newest first, without their steps."""
    if not _has_tables(db):
        return []
    rows = db.execute("SELECT id, started, finished, command, targets, result, counts, "
                      "metrics FROM runs ORDER BY id DESC LIMIT ?", (limit,))
    return [_run(row) for row in rows]


def run(db: sqlite3.Connection, run_id: int | None = None) -> RunEntry | None:
    """One build with its steps: `run_id`, or the last one."""
    if not _has_tables(db):
        return None
    where = "ORDER BY id DESC LIMIT 1" if run_id is None else "WHERE id = ?"
    row = db.execute("SELECT id, started, finished, command, targets, result, counts, "
                     f"metrics, fresh FROM runs {where}",
                     () if run_id is None else (run_id,)).fetchone()
    if row is None:
        return None
    entry = _run(row[:8])
    entry.fresh = json.loads(zlib.decompress(row[8])) if row[8] else None
    cols = ", ".join(STEP_COLUMNS)
    for values in db.execute(f"SELECT {cols} FROM run_steps WHERE run = ? ORDER BY started, step",
                             (entry.id,)):
        data = dict(zip(STEP_COLUMNS, values, strict=True))
        data["reasons"] = json.loads(data["reasons"])
        data["params"] = json.loads(data["params"] or "{}")
        entry.steps.append(StepEntry(**data))
    return entry


def _run(row: tuple) -> RunEntry:
    rid, started, finished, command, targets, result, counts, metrics = row
    return RunEntry(rid, started, finished, command, json.loads(targets), result,
                    json.loads(counts), metrics=json.loads(metrics) if metrics else None)


def _text(value: str) -> str:
    """Text SQLite can store: a file name that is not UTF-8 (Linux allows any bytes) keeps
    its odd bytes as \\xNN escapes; history is for reading, not for finding the file."""
    if value.isascii():  # the usual case, and much quicker to tell
        return value
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return value.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return value


def _has_tables(db: sqlite3.Connection) -> bool:
    return db.execute("SELECT 1 FROM sqlite_master WHERE name='run_steps'").fetchone() is not None
