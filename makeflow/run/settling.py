"""Outputs hashed as their step ended, hashed once more before the build ends, so the next
build trusts them by their stat alone.

A digest taken right after a file's last write is not trusted by the next build
(`FileRecord.settled`): a write just after the hash could have left the same mtime. A
build hashes each output as its step ends, so without this every output of a build would
be read again by the next one, which at a million steps turns the first no-op after a
full build into minutes. Once the clock has moved on, a second hash that finds the same
bytes under the same stat makes the record one the next build can trust: any write after
it gets a later mtime. Only outputs whose last write is old enough are hashed again (an
output of the build's last moments is left to the next build, as before), so a build
never waits for the clock.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from makeflow.store import fs
from makeflow.store.hashing import hash_path
from makeflow.store.opening import StoreError
from makeflow.store.records import REMOTE_ONLY, settle_margin_ns
from makeflow.store.state import FileRecord, StateStore

BATCH = 10_000  # records per transaction: a million settled never sit in memory at once


def settle_outputs(state: StateStore, paths: set[str],
                   warn: Callable[[str], None] | None = None) -> int:
    """Hash again each of `paths` whose record this build wrote too soon after its last
    write, and that has not changed since; record the ones that still hold their digest.
    Returns how many were settled. A store that cannot take them costs the next build a
    read of those files, never this build: `warn` is told."""
    now = time.time_ns()
    due = [(path, record) for path in paths
           if (record := state.file(path)) is not None and _due(record, now)]
    count = 0
    try:
        for start in range(0, len(due), BATCH):
            settled = _hashed_again(due[start:start + BATCH])
            state.remember_files(settled)
            count += len(settled)
    except StoreError as exc:
        if warn is not None:
            warn(f"could not record that the outputs of this build are settled ({exc}); "
                 "the next build reads them once more")
    return count


def _hashed_again(due: list[tuple[str, FileRecord]]) -> dict[str, FileRecord]:
    """The records of `due` hashed again now, for those whose stat and bytes are still
    the recorded ones."""
    settled = {}
    for path, record in due:
        checked = time.time_ns()  # before the stat and the read, as `landing.file_record`
        st = fs.stat(path)
        if st is None or st.is_dir or not record.same_stat(st):
            continue  # gone or changed since: the next build hashes it
        try:
            digest = hash_path(path)
        except OSError:
            continue
        if digest == record.digest:
            settled[path] = record._replace(checked_ns=checked)
    return settled


def _due(record: FileRecord, now: int) -> bool:
    """Whether a record is unsettled, of a file on this disk, and old enough that a hash
    now would settle it."""
    if record.settled or record.inode == REMOTE_ONLY:
        return False
    if record.digest.startswith("tree:"):
        return False  # a folder's record goes by its tree's stat: left to the next build
    return now - record.mtime_ns > settle_margin_ns(record.mtime_ns)
