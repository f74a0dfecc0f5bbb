"""The local run cache's records, one row per cache key in SQLite (`runs.db`).

A remote keeps each record as its own object (`runs/<2 hex>/<key>.json`), which is what
put-if-absent on object storage needs. On the local disk a file per record cost a new
inode per step saved: on ext4 creating files is most of what a build of trivial steps
spends in the kernel. One table in one file holds the same bytes; a write is a row in the
write-ahead log, with no fsync (a record lost to a power cut only costs a cache miss).
Records a makeflow before this one wrote as files are still read (`legacy`).

Several builds may share a cache (`cache_dir` in `~/.cache`): SQLite's locking makes
their writes take turns. An index that is not a database reads as empty, as a damaged
record file did, and the first write sets it aside (`runs.db.damaged`) and starts a new
one; a write that fails otherwise (a full disk) raises OSError, which a build turns into a
warning.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from pathlib import Path

from makeflow.store.wal import BUSY_SECONDS, use_wal

NAME = "runs.db"


class RunIndex:
    """key → a record's bytes; opened on first use, from any thread."""

    def __init__(self, root: Path):
        self.root = root
        self.path = root / NAME
        self.lock = threading.Lock()
        self.db: sqlite3.Connection | None = None
        self.legacy = (root / "runs").is_dir()  # record files of an older makeflow

    def get(self, key: str) -> bytes | None:
        """The record's bytes, or None when this index has none (or cannot be read)."""
        try:
            with self.lock:
                db = self._open(create=False)
                row = db.execute("SELECT record FROM runs WHERE key=?", (key,)).fetchone() \
                    if db is not None else None
        except sqlite3.Error:
            row = None
        if row is not None:
            return bytes(row[0])
        return self._legacy(key)

    def put(self, key: str, data: bytes) -> None:
        """Keep `data` as the record of `key`, replacing one there; OSError on failure."""
        self.put_many([(key, data)])

    def put_many(self, rows: list[tuple[str, bytes]]) -> None:
        """Keep several records in one transaction (one commit for a batch of saves),
        replacing any there; OSError on failure."""
        if not rows:
            return
        try:
            with self.lock:
                db = self._open(create=True)
                assert db is not None
                with db:  # BEGIN ... COMMIT, or ROLLBACK on an error
                    db.execute("BEGIN")
                    db.executemany("INSERT OR REPLACE INTO runs VALUES (?, ?)", rows)
        except sqlite3.Error as exc:
            raise OSError(f"cannot write the run index {self.path}: {exc}") from None

    def has(self, key: str) -> bool:
        with contextlib.suppress(sqlite3.Error), self.lock:
            db = self._open(create=False)
            if db is not None and db.execute("SELECT 1 FROM runs WHERE key=?",
                                             (key,)).fetchone():
                return True
        return self.legacy and os.path.exists(self.root / record_file(key))

    def empty(self) -> bool:
        """Whether there is no record: a look that stops at the first one found."""
        with contextlib.suppress(sqlite3.Error), self.lock:
            db = self._open(create=False)
            if db is not None and db.execute("SELECT 1 FROM runs LIMIT 1").fetchone():
                return False
        if not self.legacy:
            return True
        with contextlib.suppress(OSError), os.scandir(self.root / "runs") as folders:
            for folder in folders:
                with contextlib.suppress(OSError), os.scandir(folder.path) as entries:
                    if next(entries, None) is not None:
                        return False
        return True

    def count(self) -> int:
        """How many records there are (rows, and files an older makeflow wrote)."""
        rows = 0
        with contextlib.suppress(sqlite3.Error), self.lock:
            db = self._open(create=False)
            rows = db.execute("SELECT count(*) FROM runs").fetchone()[0] if db else 0
        top = self.root / "runs"
        files = sum(len(os.listdir(d)) for d in top.iterdir()) if top.is_dir() else 0
        return rows + files

    def close(self) -> None:
        with self.lock:
            if self.db is not None:
                with contextlib.suppress(sqlite3.Error):
                    self.db.close()
                self.db = None

    def _legacy(self, key: str) -> bytes | None:
        if not self.legacy:
            return None
        try:
            return (self.root / record_file(key)).read_bytes()
        except OSError:
            return None

    def _open(self, create: bool) -> sqlite3.Connection | None:
        """The connection; None when there is no index yet and `create` is false (a
        lookup never makes the cache's folder)."""
        if self.db is not None:
            return self.db
        if not create and not self.path.exists():
            return None
        if create:
            self.root.mkdir(parents=True, exist_ok=True)
        try:
            self.db = _connect(self.path)
        except sqlite3.DatabaseError as exc:
            if not create or isinstance(exc, sqlite3.OperationalError):
                raise  # busy, or a full disk: not the file's fault
            # not a database (a damaged disk, a stray file): set aside, start anew
            os.replace(self.path, self.path.with_name(NAME + ".damaged"))
            self.db = _connect(self.path)
        return self.db


def _connect(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path, timeout=BUSY_SECONDS, isolation_level=None,
                         check_same_thread=False)
    try:
        use_wal(db, BUSY_SECONDS)
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("CREATE TABLE IF NOT EXISTS runs (key TEXT PRIMARY KEY, "
                   "record BLOB NOT NULL) WITHOUT ROWID")
    except BaseException:
        db.close()
        raise
    return db


def record_file(key: str) -> str:
    """Where a key's record is a file of its own below a store's root, with "/"
    separators: on a remote, and in a local cache an older makeflow wrote."""
    return f"runs/{key[:2]}/{key}.json"
