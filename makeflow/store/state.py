"""The state store: the last successful run of every step, and what each file hashed to.

SQLite in `.makeflow/state.db`, in WAL mode so a crash mid-write leaves the last commit
intact. A step's record is written only after it succeeded, so an interrupted build keeps
everything that finished. The stat cache and fingerprints are read in one go on first use;
records only when a step is stale, so a no-op build reads one row per step at most.

A store that cannot be trusted (not SQLite, another schema, damaged pages found when a
query fails and SQLite's integrity check agrees) is moved aside with a warning and an
empty one takes its place: every step counts as never run, which is always safe. In a
folder makeflow cannot write (a read-only checkout), the store is read as it is and
nothing is written.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from makeflow.store.opening import (
    StoreError,
    empty_store,
    failure,
    intact,
    is_damage,
    move_aside,
    open_checked,
    open_read_only,
    writable,
)
from makeflow.store.records import (
    FileRecord,
    StepRecord,
    dump,
    fingerprint_of,
    from_db,
    to_db,
)
from makeflow.store.skips import Skips, write_skips

STATE_DIR = ".makeflow"
__all__ = ["STATE_DIR", "FileRecord", "StateStore", "StepRecord", "dump", "fingerprint_of"]


class StateStore:
    """Reads and writes `.makeflow/state.db`; used by the build's main thread only.

    `on_warning`, when set, hears of a store set aside during the build; such warnings
    are also kept in `warnings`.
    """

    def __init__(self, root: Path):
        self.dir = Path(root) / STATE_DIR
        self.path = self.dir / "state.db"
        self.warnings: list[str] = []
        self.on_warning: Callable[[str], None] | None = None
        self.read_only = not writable(self.dir, self.path)
        self.db = self._connect()
        self._files: dict[str, FileRecord] | None = None  # all of them, once loaded
        self._fingerprints: dict[str, str] = {}
        self._some_files: dict[str, FileRecord | None] = {}  # read one by one until then
        self._some_fingerprints: dict[str, str | None] = {}
        self._lookups = 0
        self._records: dict[str, StepRecord] = {}
        self._pending_steps: list[tuple] = []
        self._pending_files: list[tuple] = []
        self.version = self._version()
        self.updated_files: set[str] = set()  # whose record this build wrote
        self.resets = 0  # how many times a damaged store was set aside: see `_recover`
        self.forgotten: set[str] = set()  # steps whose record this build dropped
        self._skips = Skips()  # step -> reason, for skipped records

    def _connect(self) -> sqlite3.Connection:
        if self.read_only:
            return open_read_only(self.path, self.warn)
        try:
            return open_checked(self.path, False)
        except sqlite3.DatabaseError as exc:
            if not is_damage(exc):
                raise failure(exc, self.path) from None
            self._move_aside(exc)
            return open_checked(self.path, False)

    def _move_aside(self, exc: BaseException) -> None:
        aside = move_aside(self.path)
        self.warn(
            f"the state store {self.path} could not be used ({exc}); it was moved to "
            f"{aside}, and every step counts as out of date until it runs again"
        )

    def warn(self, text: str) -> None:
        """Keep a warning for the command to show; tell `on_warning` at once."""
        self.warnings.append(text)
        if self.on_warning is not None:
            self.on_warning(text)

    def _recover(self, exc: sqlite3.DatabaseError) -> None:
        """After a query failed: if the store is damaged (SQLite's integrity check says
        so), set it aside and go on with an empty one, as if every step never ran;
        anything else stops the command with a message."""
        if not is_damage(exc) or intact(self.db):
            raise failure(exc, self.path) from None
        with contextlib.suppress(sqlite3.Error):
            self.db.close()
        if self.read_only:
            self.warn(f"the state store {self.path} is damaged ({exc}); the folder is "
                       "read-only, so it is left as it is and every step counts as out of date")
            self.db = empty_store()
        else:
            self._move_aside(exc)
            self.db = open_checked(self.path, False)
        self._files, self._fingerprints = {}, {}
        self._some_files.clear()
        self._some_fingerprints.clear()
        self._records.clear()
        self._skips = Skips()
        self.version = self._version()
        self.resets += 1  # a plan made with the old store's entries must be made again

    def _version(self) -> tuple[str, int]:
        """This store's identity and how many times it was written, read without loading it.

        Together they change whenever any record changes, or the store is replaced, so a
        summary saved beside the store can tell whether it still describes it.
        """
        query = "SELECT key, value FROM meta WHERE key IN ('store', 'generation')"
        meta = dict(self.db.execute(query))
        if len(meta) < 2 and self.read_only:
            return "read-only", 0
        if len(meta) < 2:  # a new store
            self.db.execute("INSERT OR IGNORE INTO meta VALUES ('store', ?), ('generation', '0')",
                            (os.urandom(8).hex(),))
            meta = dict(self.db.execute(query))
        return meta["store"], int(meta["generation"])

    def file(self, path: str) -> FileRecord | None:
        """The stat and digest `path` had when last hashed, if it ever was."""
        if self._files is not None:
            return self._files.get(path)
        return self._read_one(self._some_files, path, "SELECT size, mtime_ns, inode, digest, "
                              "checked_ns FROM files WHERE path=?", FileRecord._make)

    def fingerprint(self, step_id: str) -> str | None:
        """The fingerprint of the step's last successful run, if it ever ran."""
        if self._files is not None:
            return self._fingerprints.get(step_id)
        return self._read_one(self._some_fingerprints, step_id,
                              "SELECT fingerprint FROM steps WHERE id=?", lambda row: row[0])

    def _read_one(self, known: dict[str, Any], key: str, query: str,
                  make: Callable[[tuple], Any]) -> Any:
        """One entry, read from disk on first use while the store is read entry by entry."""
        found = known.get(key, _UNREAD)
        if found is _UNREAD:
            self._count_lookup()
            try:
                row = self.db.execute(query, (to_db(key),)).fetchone()
            except sqlite3.DatabaseError as exc:
                self._recover(exc)
                return None
            found = known[key] = make(row) if row else None
        return found

    def prefetch(self, paths: Iterable[str]) -> None:
        """Read the entries of many files in a few queries, for a step with many inputs
        (an aggregate of 10,000 files) when the store is read entry by entry."""
        if self._files is not None:
            return
        unknown = [p for p in dict.fromkeys(paths) if p not in self._some_files]
        if len(unknown) < 8:
            return
        for start in range(0, len(unknown), 500):
            chunk = unknown[start:start + 500]
            self._count_lookup()
            if self._files is not None:
                return
            try:
                rows = self.db.execute(
                    "SELECT * FROM files WHERE path IN (" + ",".join("?" * len(chunk)) + ")",
                    [to_db(p) for p in chunk]).fetchall()
            except sqlite3.DatabaseError as exc:
                self._recover(exc)
                return
            found = {from_db(row[0]): FileRecord._make(row[1:]) for row in rows}
            for p in chunk:
                self._some_files[p] = found.get(p)

    def _count_lookup(self) -> None:
        """Past a few thousand single reads, reading everything at once is cheaper."""
        self._lookups += 1
        if self._lookups > 2000:
            self.load_all()

    @property
    def files(self) -> dict[str, FileRecord]:
        """The stat and digest of every file hashed before."""
        self.load_all()
        assert self._files is not None
        return self._files

    @property
    def fingerprints(self) -> dict[str, str]:
        """Each recorded step's fingerprint."""
        self.load_all()
        return self._fingerprints

    def load_all(self) -> None:
        """Read every file entry and fingerprint in one go: what a plan of every step needs.

        Until then, entries are read one by one, which is cheaper when only a few steps
        are looked at (one changed input in a big pipeline).
        """
        if self._files is not None:
            return
        self.flush()
        make = FileRecord._make
        try:
            files = {row[0]: make(row[1:]) for row in self.db.execute(
                "SELECT * FROM files WHERE typeof(path) = 'text'")}
            files.update((from_db(row[0]), make(row[1:])) for row in self.db.execute(
                "SELECT * FROM files WHERE typeof(path) = 'blob'"))
            fingerprints = {from_db(sid): fp for sid, fp in self.db.execute(
                "SELECT id, fingerprint FROM steps")}
        except sqlite3.DatabaseError as exc:
            self._recover(exc)  # every entry is gone with the damaged store
            return
        self._fingerprints = fingerprints
        self._files = files
        self._some_files.clear()
        self._some_fingerprints.clear()

    def _set_files(self, entries: dict[str, FileRecord]) -> None:
        (self._files if self._files is not None else self._some_files).update(entries)
        self.updated_files.update(entries)

    def _set_fingerprint(self, step_id: str, fingerprint: str | None) -> None:
        if self._files is not None:
            if fingerprint is None:
                self._fingerprints.pop(step_id, None)
            else:
                self._fingerprints[step_id] = fingerprint
        else:
            self._some_fingerprints[step_id] = fingerprint

    def record(self, step_id: str) -> StepRecord | None:
        """A step's last successful run, read on first use: a no-op build reads none."""
        known = self._records.get(step_id)
        if known is None and self.fingerprint(step_id) is not None:
            self.flush()
            try:
                row = self.db.execute("SELECT record FROM steps WHERE id=?",
                                      (to_db(step_id),)).fetchone()
            except sqlite3.DatabaseError as exc:
                self._recover(exc)
                return None
            if row is None:
                return None
            known = self._records[step_id] = StepRecord(**json.loads(row[0]))
        return known

    @property
    def step_ids(self) -> list[str]:
        return list(self.fingerprints)

    @property
    def skips(self) -> dict[str, str]:
        """The steps whose last run decided to skip, with the reason (see store/skips.py)."""
        return self._skips.known(self.db, self._recover)

    def remember_files(self, entries: dict[str, FileRecord]) -> None:
        """Store stat-cache entries (for files hashed this build) in one transaction."""
        if not entries:
            return
        self._set_files(entries)
        rows = [(to_db(p), r.size, r.mtime_ns, r.inode, r.digest, r.checked_ns)
                for p, r in entries.items()]
        self._write(lambda: self.db.executemany(
            "INSERT OR REPLACE INTO files VALUES (?,?,?,?,?,?)", rows))

    def record_step(self, step_id: str, record: StepRecord,
                    files: dict[str, FileRecord]) -> None:
        """Record one successful step and its outputs' stat entries.

        The rows wait in memory until `flush()`, which the scheduler calls whenever it is
        about to wait for a running step, so steps that finish together share one
        transaction and a killed build loses no step that finished before it waited.
        """
        fp = record.fingerprint
        self._set_fingerprint(step_id, fp)
        self._records.pop(step_id, None)  # read again if asked: records are big, asks rare
        self._set_files(files)
        self._skips.note(self.db, self._recover, step_id, record.skipped)
        self._pending_steps.append((to_db(step_id), fp, dump(record.as_json())))
        self._pending_files.extend(
            (to_db(p), r.size, r.mtime_ns, r.inode, r.digest, r.checked_ns)
            for p, r in files.items())

    def flush(self, rider: Callable[[], object] | None = None) -> None:
        """Write the recorded steps in one transaction; `rider`, which never raises, writes
        the run history's rows in it too (one commit per wait), when there are steps."""
        if not self._pending_steps and not self._pending_files and not self._skips.pending:
            return
        steps, files = self._pending_steps, self._pending_files
        skips = self._skips.take()
        self._pending_steps, self._pending_files = [], []

        def write() -> None:
            self.db.executemany("INSERT OR REPLACE INTO steps VALUES (?,?,?)", steps)
            self.db.executemany("INSERT OR REPLACE INTO files VALUES (?,?,?,?,?,?)", files)
            write_skips(self.db, skips)
            if rider is not None:
                rider()

        self._write(write)


    def forget_step(self, step_id: str) -> None:
        """Drop a step's record, so it counts as never run (its outputs are suspect)."""
        self.flush()
        self._records.pop(step_id, None)
        self.forgotten.add(step_id)
        self._skips.note(self.db, self._recover, step_id, "")
        self.flush()
        if self.fingerprint(step_id) is not None:
            self._set_fingerprint(step_id, None)
            self._write(lambda: self.db.execute("DELETE FROM steps WHERE id=?",
                                                (to_db(step_id),)))

    def _write(self, work: Callable[[], object]) -> None:
        """Run `work` in one transaction; nothing in a read-only folder. A damaged store
        is set aside and the write goes to the new one."""
        if self.read_only:
            return
        try:
            with _Transaction(self):
                work()
        except sqlite3.DatabaseError as exc:
            self._recover(exc)
            with _Transaction(self):
                work()

    def close(self) -> None:
        with contextlib.suppress(sqlite3.Error, StoreError):  # the build has reported it
            self.flush()
        self.db.close()

    def __enter__(self) -> StateStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Transaction:
    """One write; each one that commits counts one more generation of the store."""

    def __init__(self, store: StateStore):
        self.store = store
        self.db = store.db

    def __enter__(self) -> None:
        self.db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, *rest: object) -> None:
        if exc_type:
            with contextlib.suppress(sqlite3.Error):  # the error that got here says it all
                self.db.execute("ROLLBACK")
            return
        (generation,), = self.db.execute(
            "UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'generation' "
            "RETURNING value").fetchall()
        self.db.execute("COMMIT")
        self.store.version = (self.store.version[0], int(generation))


_UNREAD = object()
