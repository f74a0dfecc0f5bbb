"""`makeflow clean`: remove the outputs makeflow made, never a source or an edited file."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable
from dataclasses import dataclass, field

from makeflow.define.loader import Pipeline
from makeflow.plan.graph import resolve
from makeflow.plan.staleness import Digests
from makeflow.store import fs
from makeflow.store.lock import ProjectLock
from makeflow.store.state import StateStore


@dataclass
class Cleaned:
    removed: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)  # edited since makeflow wrote them


def clean(pipeline: Pipeline, targets: Iterable[str] = (), dry_run: bool = False) -> Cleaned:
    """Remove recorded outputs of the steps leading to `targets` (all rules when empty).

    A file is removed only if makeflow recorded it as an output and its content is still
    what makeflow wrote, so a hand-edited file is kept and reported.
    """
    targets = list(targets)
    with contextlib.chdir(pipeline.root), ProjectLock(pipeline.root) as lock:
        lock.acquire()
        return _clean(pipeline, targets, dry_run)


def _clean(pipeline: Pipeline, targets: list[str], dry_run: bool) -> Cleaned:
    done = Cleaned()
    with StateStore(pipeline.root) as state:
        stats = fs.StatCache()
        steps = _steps(pipeline, targets, stats, state)
        digests = Digests(state, stats)
        written: dict[str, set[str]] = {}  # two records can name one file (a renamed rule)
        for sid in steps:
            record = state.record(sid)
            if record is not None:
                for path, digest in record.outputs.items():
                    written.setdefault(path, set()).add(digest)
        for path, made in written.items():
            _clean_one(path, made, digests, done, dry_run)
        if not dry_run:
            for sid in steps:
                state.forget_step(sid)
    return done


def _steps(pipeline: Pipeline, targets: list[str], stats: fs.StatCache,
           state: StateStore) -> list[str]:
    if targets:
        return list(resolve(pipeline, targets, stats).steps)
    return state.step_ids


def _clean_one(path: str, made: set[str], digests: Digests, done: Cleaned,
               dry_run: bool) -> None:
    """Remove `path` if its content is one that makeflow wrote (`made`), else keep it."""
    now = digests.get(path)
    if now is None:
        return
    if now not in made:
        done.kept.append(path)
        return
    if not dry_run:
        fs.remove(path)
        digests.forget(path)
        _remove_empty_parents(path)
    done.removed.append(path)


def _remove_empty_parents(path: str) -> None:
    """Folders makeflow created for outputs go too, once nothing is left in them."""
    parent = os.path.dirname(path)
    while parent:
        try:
            os.rmdir(parent)
        except OSError:
            return
        parent = os.path.dirname(parent)
