"""Outputs hashed as their step ended are hashed once more before the build ends, so the
next build trusts them by their stat: a no-op right after a build reads nothing, and a
file that changed after its hash is never settled with the old digest."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from makeflow.run.settling import settle_outputs
from makeflow.store import hashing
from makeflow.store.records import FileRecord
from makeflow.store.state import StateStore

RULES = """
from makeflow import rule

rule("copy", inputs="in.txt", outputs="copy.txt", shell="cp {inputs} {outputs}")
rule("last", inputs="copy.txt", outputs="last.txt", default=True,
     shell="tr a-z A-Z < {inputs} > {outputs}; sleep 0.4")
"""

SECOND = 1_000_000_000


def fine_mtimes(folder: Path) -> bool:
    """Whether the file system keeps mtimes finer than a millisecond (ext4, xfs, tmpfs,
    btrfs, APFS, NTFS do); on one that does not, a second is needed before a hash counts."""
    probe = folder / ".probe"
    for _ in range(3):  # a fine mtime is a whole millisecond once in a thousand
        probe.write_text("x")
        if probe.stat().st_mtime_ns % 1_000_000:
            return True
        time.sleep(0.002)
    return False


def test_the_build_after_a_build_reads_nothing(project):
    project.rules(RULES)
    project.write("in.txt", "hello\n")
    assert set(project.build().ran) == {"copy", "last"}
    before = hashing.bytes_hashed
    second = project.build()
    assert second.ran == []
    if fine_mtimes(project.root):
        assert second.plan.quick, "every output was settled by the build that made it"
        assert hashing.bytes_hashed == before
    assert project.read("last.txt") == "HELLO\n"


def test_an_edit_right_after_the_build_is_still_seen(project):
    project.rules(RULES)
    project.write("in.txt", "hello\n")
    project.build()
    project.write("in.txt", "HELLO\n")
    assert set(project.build().ran) == {"copy", "last"}
    assert project.read("copy.txt") == "HELLO\n"


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with StateStore(tmp_path) as state:
        yield state


def old_file(path: Path, text: str, age_ns: int) -> os.stat_result:
    """A file whose last write was `age_ns` ago, with an mtime finer than a millisecond."""
    path.write_text(text)
    mtime = time.time_ns() - age_ns
    mtime += 0 if mtime % 1_000_000 else 1  # a fine mtime, whatever the file system keeps
    os.utime(path, ns=(mtime, mtime))
    return path.stat()


def record_of(st: os.stat_result, digest: str) -> FileRecord:
    """A record hashed right after the write, as a step's landing makes it."""
    return FileRecord(st.st_size, st.st_mtime_ns, st.st_ino, digest, st.st_mtime_ns + 1000)


def test_a_file_that_holds_its_digest_is_settled(store, tmp_path):
    st = old_file(tmp_path / "out.txt", "made\n", SECOND // 2)
    store.remember_files({"out.txt": record_of(st, hashing.hash_path("out.txt"))})
    assert not store.file("out.txt").settled
    assert settle_outputs(store, {"out.txt"}) == 1
    assert store.file("out.txt").settled


def test_a_file_whose_bytes_changed_under_the_same_stat_is_not(store, tmp_path):
    """A write in the same clock tick as the hashed one leaves the stat as it was; the
    second hash sees the new bytes, so the record stays unsettled and the next build
    hashes the file again."""
    st = old_file(tmp_path / "out.txt", "made\n", SECOND // 2)
    store.remember_files({"out.txt": record_of(st, hashing.hash_text("other\n"))})
    assert settle_outputs(store, {"out.txt"}) == 0
    assert not store.file("out.txt").settled


def test_a_file_written_a_moment_ago_or_changed_is_left_to_the_next_build(store, tmp_path):
    st = old_file(tmp_path / "new.txt", "new\n", 0)
    store.remember_files({"new.txt": record_of(st, hashing.hash_path("new.txt"))})
    moved = old_file(tmp_path / "moved.txt", "one\n", SECOND // 2)
    store.remember_files({"moved.txt": record_of(moved, hashing.hash_path("moved.txt"))})
    old_file(tmp_path / "moved.txt", "two!\n", SECOND // 2)
    assert settle_outputs(store, {"new.txt", "moved.txt", "gone.txt"}) == 0


@pytest.mark.parametrize(("mtime", "gap", "settled"), [
    (1_700_000_000_123_456_789, SECOND // 5, True),  # fine mtime, 200 ms
    (1_700_000_000_123_456_789, SECOND // 20, False),  # fine mtime, 50 ms
    (1_700_000_000_123_000_000, SECOND // 5, False),  # whole milliseconds: a second needed
    (1_700_000_000_000_000_000, SECOND + 1, True),
    (1_700_000_000_123_456_789, -SECOND // 5, True),  # an mtime in the future
])
def test_when_a_record_is_settled(mtime, gap, settled):
    assert FileRecord(1, mtime, 1, "d", mtime + gap).settled is settled
