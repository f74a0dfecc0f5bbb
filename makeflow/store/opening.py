"""Opening the state store's SQLite file: checked, read-only, or refused with a reason.

Which errors mean a damaged store (set it aside, start empty: always safe) and which mean
a full disk, a read-only folder or a lock (setting it aside would cure nothing: stop and
say why) is decided here, as is whether makeflow may write its folder at all.
"""

from __future__ import annotations

import errno
import os
import sqlite3
import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path

from makeflow.errors import MakeflowError
from makeflow.store.fs import no_space
from makeflow.store.wal import BUSY_SECONDS, use_wal

SCHEMA = 4
SCHEMA_ROW = "SELECT value FROM meta WHERE key='schema'"

TABLES = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS files (
    path TEXT PRIMARY KEY, size INTEGER, mtime_ns INTEGER, inode INTEGER,
    digest TEXT NOT NULL, checked_ns INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS steps (
    id TEXT PRIMARY KEY, fingerprint TEXT NOT NULL, record TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS skips (id TEXT PRIMARY KEY, reason TEXT NOT NULL);
"""

# Errors that say something about the disk or other processes, never about the content.
NOT_DAMAGE = {sqlite3.SQLITE_FULL, sqlite3.SQLITE_READONLY, sqlite3.SQLITE_CANTOPEN,
              sqlite3.SQLITE_IOERR, sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED,
              sqlite3.SQLITE_PERM}
READ_ONLY_ERRORS = {errno.EROFS, errno.EACCES, errno.EPERM}


class StoreError(MakeflowError):
    """The state store cannot be read or written for a reason that is not damage (a full
    disk, a lock held too long): nothing is set aside, the command stops and says why."""

    exit_code = 2


def check_state_dir(folder: Path) -> None:
    """Refuse a file where makeflow keeps its folder, rather than fail on it later."""
    if folder.exists() and not folder.is_dir():
        raise MakeflowError(
            f"{folder} is a file, but makeflow keeps its records in a folder of that name",
            hint=f"Move or remove {folder.name} (makeflow never deletes a file it did not "
            "make), then run makeflow again.")


def writable(folder: Path, path: Path) -> bool:
    """Whether makeflow may write `folder` and the store `path` in it, creating the
    folder if need be; False in a read-only checkout."""
    check_state_dir(folder)
    try:
        folder.mkdir(exist_ok=True)
    except OSError as exc:
        if exc.errno in READ_ONLY_ERRORS:
            return False
        raise StoreError(f"cannot create {folder}: {exc.strerror}",
                         hint=free_space_hint(exc.errno)) from None
    if not os.access(folder, os.W_OK):
        return False
    return not path.exists() or os.access(path, os.W_OK)


def open_checked(target: Path | str, read_only: bool, uri: bool = False) -> sqlite3.Connection:
    """A connection to a store of this schema; sqlite3.DatabaseError when it is not one."""
    db = sqlite3.connect(target, isolation_level=None, timeout=BUSY_SECONDS, uri=uri)
    try:
        if not read_only:
            use_wal(db, BUSY_SECONDS)
            db.execute("PRAGMA synchronous=NORMAL")
            db.executescript(TABLES)
        row = db.execute(SCHEMA_ROW).fetchone()
        if row is None and not read_only:  # a new store; another opener may write it too
            db.execute("INSERT OR IGNORE INTO meta VALUES ('schema', ?)", (str(SCHEMA),))
            row = db.execute(SCHEMA_ROW).fetchone()
        if row is None or row[0] != str(SCHEMA):
            _wrong_schema(row[0] if row else "none")
        db.execute("SELECT count(*) FROM steps").fetchone()
    except BaseException:
        db.close()
        raise
    return db


def _wrong_schema(found: str) -> None:
    newer = " (written by a newer makeflow)" if found.isdigit() and int(found) > SCHEMA else ""
    raise sqlite3.DatabaseError(f"it has schema {found}{newer}, this makeflow reads {SCHEMA}")


def open_read_only(path: Path, warn: Callable[[str], None]) -> sqlite3.Connection:
    """The store as it is, without writing a byte; an empty one in memory when there is
    none or it cannot be used (it stays where it is: nothing may be moved)."""
    if path.exists():
        name = urllib.parse.quote(str(path))
        # A WAL store whose -shm file is missing opens only as immutable in a folder that
        # cannot be written; nothing can write it meanwhile, so that is true.
        for mode in ("mode=ro", "immutable=1"):
            try:
                return open_checked(f"file:{name}?{mode}", True, uri=True)
            except sqlite3.DatabaseError as exc:
                reason = exc
        warn(f"the state store {path} could not be used ({reason}); the folder is "
             "read-only, so it is left as it is and every step counts as out of date")
    return empty_store()


def empty_store() -> sqlite3.Connection:
    """A store in memory with nothing recorded: every step counts as never run."""
    db = sqlite3.connect(":memory:", isolation_level=None)
    db.executescript(TABLES)
    db.execute("INSERT INTO meta VALUES ('schema', ?)", (str(SCHEMA),))
    return db


def move_aside(path: Path) -> str:
    """Move a store that cannot be used (with its -wal and -shm) out of the way, keeping
    it for a look; the name it got."""
    aside = path.with_name(f"state.db.set-aside-{int(time.time())}")
    for suffix in ("", "-wal", "-shm"):
        src = Path(str(path) + suffix)
        if src.exists():
            os.replace(src, Path(str(aside) + suffix))
    return aside.name


def is_damage(exc: sqlite3.DatabaseError) -> bool:
    """Whether an error may mean damaged content, rather than a full disk, a read-only
    folder or a lock (which setting the store aside would not cure)."""
    return (getattr(exc, "sqlite_errorcode", 0) & 0xFF) not in NOT_DAMAGE


def intact(db: sqlite3.Connection) -> bool:
    """SQLite's integrity check, asked after a query failed."""
    try:
        return db.execute("PRAGMA integrity_check(1)").fetchone() == ("ok",)
    except sqlite3.DatabaseError:
        return False


def failure(exc: sqlite3.Error, path: Path) -> StoreError:
    """The error to stop with when the store at `path` cannot be used, in words."""
    code = getattr(exc, "sqlite_errorcode", 0) & 0xFF
    if code == sqlite3.SQLITE_IOERR and no_space(path.parent):
        code = sqlite3.SQLITE_FULL  # what SQLite reports when a full disk bites in WAL
    what = {sqlite3.SQLITE_FULL: "no space left on device",
            sqlite3.SQLITE_READONLY: "the folder is read-only"}.get(code, str(exc))
    full = code == sqlite3.SQLITE_FULL
    return StoreError(f"cannot use the state store {path}: {what}",
                      hint=free_space_hint(errno.ENOSPC) if full else None)


def free_space_hint(code: int | None) -> str | None:
    return "Free some space on the disk, then run makeflow again." if code == errno.ENOSPC \
        else None
