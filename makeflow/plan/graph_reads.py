"""What a graph of rules with functions rests on, and the cheap checks that it still holds.

A rule's input and param functions (define/dynamic.py) may read a sample sheet, list a
folder, or glob what a checkpoint wrote, and the rules file may read such things as it
loads. Every read is noted (`Reads`); a graph kept in `graph.cache` is used again only
while each read would give what it gave:

- a file read, or a path that was looked for: its stat (size, mtime, inode), or that it
  is still missing;
- a folder listed: its own stat, since adding, removing or renaming an entry changes a
  folder's mtime; a glob whose folders themselves hold wildcards is run again instead;
- anything inside a checkpoint's output: the checkpoint's record (the digests of its
  outputs). The folder is not listed again: a no-op build checks that the output is as
  recorded by its stats anyway, and if it is not, the checkpoint runs again, and its new
  record makes the graph resolve afresh.

A stat taken within a second of the read is not trusted (a coarse clock could hide a
change made in the same tick), and a graph that rests on something that cannot be checked
(a program a function started) is not kept: it is resolved on every build, as before.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import Any

from makeflow.define.dynamic import ABSENT, Reads, seen_now
from makeflow.define.loader import Pipeline
from makeflow.plan.dynamic import checkpoint_making, glob_bases
from makeflow.plan.graph import step_id
from makeflow.store.fs import deep_stat
from makeflow.store.state import StateStore

SETTLE_NS = 1_000_000_000  # as FileRecord.settled: a coarse clock's tick, with room


class Checks:
    """The checks a kept graph must pass: `stats` (path, size, mtime_ns, inode; size
    ABSENT for a missing path), `globs` (pattern, recursive, sorted matches) and
    `checkpoints` (step ids, whose records are read when the graph is saved)."""

    def __init__(self, stats: list[tuple], globs: list[tuple], checkpoints: list[str]):
        self.stats, self.globs, self.checkpoints = stats, globs, checkpoints


def gather(pipeline: Pipeline, reads: Iterable[Reads]) -> Checks | None:
    """The checks for what was read; None when some read cannot be checked again."""
    checkpoint_rules = [r for r in pipeline.rules if r.checkpoint]
    stats: dict[str, tuple] = {}
    globs: dict[tuple, None] = {}
    checkpoints: dict[str, None] = {}
    code = {os.path.relpath(p) for p in pipeline.sources}  # in the key, by content
    for journal in reads:
        if journal.opaque:
            return None
        for entry, seen in journal.seen.items():
            if entry[0] == "open" and entry[1] in code:
                continue
            owner = _checkpoint_of(checkpoint_rules, entry[1])
            if owner is not None:
                checkpoints[owner] = None
            elif seen[0] == "glob":
                globs[(entry[1], entry[2], seen[1])] = None
            elif seen[0] == "stat":
                if seen[1] != ABSENT and seen[2] >= journal.since_ns - SETTLE_NS:
                    return None  # changed just before it was read: not to be trusted
                stats.setdefault(entry[1], (entry[1], *seen[1:]))
    return Checks(list(stats.values()), list(globs), list(checkpoints))


def _checkpoint_of(rules: list, path: str) -> str | None:
    """The step of the checkpoint whose output holds `path` (or a pattern's folder)."""
    if not rules:
        return None
    for base in glob_bases([path]):
        found = checkpoint_making(rules, base)
        if found is not None:
            return step_id(found[0].name, found[1])
    return None


def still_hold(stats: list[tuple], globs: list[tuple], checkpoints: list[tuple],
               state: StateStore | None) -> bool:
    """Whether every check saved with a graph passes now."""
    if any(seen_now(("open", s[0])) != ("stat", *s[1:]) for s in stats):
        return False
    if any(seen_now(("glob", p, r)) != ("glob", tuple(found)) for p, r, found in globs):
        return False
    if checkpoints and state is None:
        return False
    return all(recorded(state, sid) == tuple(tuple(o) for o in outputs)
               for sid, outputs in checkpoints)


def recorded(state: StateStore | None, sid: str) -> tuple | None:
    """The checkpoint's recorded outputs and digests; None when it has no usable record
    (never ran, skipped itself, or an input moved while it ran)."""
    record = state.record(sid) if state is not None else None
    if record is None or record.moved or record.skipped:
        return None
    return tuple(sorted(record.outputs.items()))


def checkpoint_checks(state: StateStore, checkpoints: list[str],
                      stat: Callable[[str], Any] = deep_stat) -> list[tuple] | None:
    """Each checkpoint's record, when its outputs on disk are what it records (so the
    functions read what the record describes); None when one is not."""
    found = []
    for sid in checkpoints:
        outputs = recorded(state, sid)
        if outputs is None:
            return None
        for path, digest in outputs:
            entry = state.file(path)
            st = stat(path)
            if entry is None or st is None or not entry.matches(st) or entry.digest != digest:
                return None
        found.append((sid, outputs))
    return found
