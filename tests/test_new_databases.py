"""Processes that create the same SQLite file at once all get to use it.

SQLite's busy timeout does not cover the switch of a new file to WAL mode: while another
connection holds the write lock of a file still in rollback mode, the switch fails at once
with "database is locked". Two builds sharing a new cache, or a build and `status` in a
fresh project, met exactly that; each opener now waits its turn, for a bounded time.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from makeflow.store.runindex import RunIndex
from makeflow.store.state import StateStore
from makeflow.store.wal import use_wal


def held_by_another_writer(path: Path, seconds: float) -> threading.Thread:
    """A connection that holds the write lock of a new database file, still in rollback
    mode, for `seconds`: what another process creating the same file does."""
    path.parent.mkdir(parents=True, exist_ok=True)
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")

    def release() -> None:
        time.sleep(seconds)
        holder.execute("COMMIT")
        holder.close()

    thread = threading.Thread(target=release)
    thread.start()
    return thread


def test_sqlite_itself_refuses_the_switch_at_once(tmp_path):
    """The behaviour this module works around; if SQLite ever waits here, it still holds."""
    path = tmp_path / "new.db"
    thread = held_by_another_writer(path, 2.0)
    db = sqlite3.connect(path, timeout=5, isolation_level=None)
    started = time.monotonic()
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        db.execute("PRAGMA journal_mode=WAL")
    assert time.monotonic() - started < 1.5  # refused, not waited for
    thread.join()
    db.close()


def test_the_run_index_waits_for_another_creator(tmp_path):
    thread = held_by_another_writer(tmp_path / "cache" / "runs.db", 0.3)
    index = RunIndex(tmp_path / "cache")
    index.put("ab" * 16, b"record")
    thread.join()
    assert index.get("ab" * 16) == b"record"
    index.close()


def test_the_state_store_waits_for_another_creator(tmp_path):
    thread = held_by_another_writer(tmp_path / ".makeflow" / "state.db", 0.3)
    with StateStore(tmp_path) as store:
        assert store.warnings == []
        assert not store.read_only
    thread.join()
    mode = sqlite3.connect(tmp_path / ".makeflow" / "state.db").execute(
        "PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def test_the_wait_is_bounded(tmp_path):
    path = tmp_path / "new.db"
    thread = held_by_another_writer(path, 3.0)
    db = sqlite3.connect(path, timeout=0.1, isolation_level=None)
    started = time.monotonic()
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        use_wal(db, 0.3)
    waited = time.monotonic() - started
    assert 0.3 <= waited < 2.5  # gave up, long before the other writer let go
    thread.join()
    db.close()


CHILD = textwrap.dedent("""
    import sys
    from pathlib import Path
    from makeflow.store.runindex import RunIndex
    from makeflow.store.state import StateStore

    root, me = Path(sys.argv[1]), sys.argv[2]
    sys.stdin.read(1)  # all start together: the parent writes to every child at once
    index = RunIndex(root / "cache")
    for n in range(20):
        index.put(f"{me}{n:030d}", b"x")
    with StateStore(root) as store:
        assert not store.warnings, store.warnings
    print("ok")
""")


def test_processes_creating_the_same_databases_at_once(tmp_path):
    children = 6
    for round_ in range(6):
        root = tmp_path / f"round-{round_}"
        root.mkdir()
        procs = [subprocess.Popen([sys.executable, "-c", CHILD, str(root), f"{n:02d}"],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True)
                 for n in range(children)]
        time.sleep(1.0)  # the children have imported makeflow and wait on their stdin
        for proc in procs:
            proc.stdin.write("g")
            proc.stdin.flush()
        outputs = [proc.communicate(timeout=120)[0] for proc in procs]
        assert [proc.returncode for proc in procs] == [0] * children, outputs
        index = RunIndex(root / "cache")
        assert index.count() == children * 20
        index.close()
