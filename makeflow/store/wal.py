"""Switching a new SQLite file to write-ahead logging when others open it at the same time.

SQLite's busy timeout does not cover `PRAGMA journal_mode=WAL`: while another connection
holds the write lock of a file still in rollback mode (another process creating the same
new database: two builds sharing a cache, a build and `status` in a fresh project), the
switch fails at once with "database is locked" instead of waiting. Once a file is in WAL
mode the switch is a no-op that takes no lock, so only the first moments of a database
meet this; waiting a few milliseconds and asking again is all it takes.
"""

from __future__ import annotations

import sqlite3
import time

BUSY = (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
BUSY_SECONDS = 30.0  # how long any of makeflow's SQLite files waits for another writer
FIRST_PAUSE = 0.001  # seconds; doubled after each refusal, up to LONGEST_PAUSE
LONGEST_PAUSE = 0.05


def is_busy(exc: sqlite3.Error) -> bool:
    """Whether SQLite refused because another connection holds a lock (not damage)."""
    return (getattr(exc, "sqlite_errorcode", 0) & 0xFF) in BUSY


def use_wal(db: sqlite3.Connection, seconds: float) -> None:
    """Put `db`'s file in WAL mode, waiting up to `seconds` while another connection
    holds the lock the switch needs; SQLite's OperationalError when that is not enough."""
    deadline = time.monotonic() + seconds
    pause = FIRST_PAUSE
    while True:
        try:
            db.execute("PRAGMA journal_mode=WAL").fetchall()
            return
        except sqlite3.OperationalError as exc:
            if not is_busy(exc) or time.monotonic() >= deadline:
                raise
        time.sleep(pause)
        pause = min(pause * 2, LONGEST_PAUSE)
