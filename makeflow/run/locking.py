"""Keeping `makeflow.lock` up to date after a successful build.

Only the entries of steps this build ran, restored or adopted change; the others are kept
as they were, so a build of one target does not drop the rest. A build that changed
nothing, with a lock in place, does not touch it (the no-op path stays a few stats), and
one that changed a few steps replaces their entries without parsing the whole file
(`LockFile.update`).
"""

from __future__ import annotations

from makeflow.plan.graph import Graph
from makeflow.plan.staleness import Digests
from makeflow.run.outcome import BuildResult
from makeflow.store.lockfile import LockFile, entry_of
from makeflow.store.state import StateStore


def update_lock(lock: LockFile, graph: Graph, state: StateStore, digests: Digests,
                result: BuildResult) -> bool:
    """Write the lock's entries for this build's steps; whether the file changed."""
    changed = [*result.ran, *result.restored, *digests.adopted, *state.forgotten,
               *result.skipped, *result.touched]
    kept = lock.ours() or lock.readable  # else it is written whole, from every step
    if not changed and kept:
        return False
    steps = {s: graph.steps[s] for s in changed if s in graph.steps} if kept else graph.steps
    state.flush()

    def size(path: str) -> int | None:
        known = state.file(path)
        return known.size if known is not None else None

    entries: dict[str, dict | None] = {}
    for sid, step in steps.items():
        if step.rule.is_alias:
            continue
        record = state.record(sid)
        skipped = record is None or record.skipped  # a skip: this machine's decision to redo
        entries[sid] = None if skipped else entry_of(record, size)
    if kept:
        return lock.update(entries)
    return lock.write({sid: entry for sid, entry in entries.items() if entry is not None})
