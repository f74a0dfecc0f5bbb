"""`makeflow clean`: remove the outputs makeflow made, never a source or an edited file.

What is removed is decided by the records of the steps asked for, then checked against
the present: a file goes only if its content is still one makeflow wrote, the current
rules do not read it as a source (an older rule may have made what is now an input), and
it lies inside the project, symlinked folders followed.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from makeflow.define.loader import Pipeline
from makeflow.define.patterns import compile_pattern
from makeflow.errors import UserError
from makeflow.plan.graph import Resolver, resolve
from makeflow.plan.made import recorded_outputs
from makeflow.plan.staleness import Digests
from makeflow.store import fs
from makeflow.store.lock import ProjectLock
from makeflow.store.state import StateStore


@dataclass
class Cleaned:
    removed: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)  # edited since makeflow wrote them
    sources: list[str] = field(default_factory=list)  # the current rules read them
    outside: list[str] = field(default_factory=list)  # they resolve outside the project
    protected: list[str] = field(default_factory=list)  # read-only: kept, not confirmed


# Asked, with the protected (read-only) outputs about to go, whether to remove them; may
# raise a UserError to stop the clean before anything is removed.
Confirm = Callable[[list[str]], bool]


def clean(pipeline: Pipeline, targets: Iterable[str] = (), dry_run: bool = False,
          upstream: bool = False, confirm: Confirm | None = None) -> Cleaned:
    """Remove recorded outputs of the steps that make `targets` (all steps when empty).

    A target is a file, a rule's name (a pattern rule's: all its steps) or an alias (the
    files it lists); only the step that makes it is cleaned, or with `upstream` every
    step that leads to it too. A file is removed only if makeflow recorded it as an output
    and its content is still what makeflow wrote, so a hand-edited file is kept and
    reported; so are current sources and files outside the project. Protected outputs
    (read-only ones: `protected=True`) go only when `confirm` says so; without `confirm`
    they are kept.
    """
    targets = list(targets)
    with contextlib.chdir(pipeline.root), ProjectLock(pipeline.root) as lock:
        lock.acquire()
        return _clean(pipeline, targets, dry_run, upstream, confirm)


def _clean(pipeline: Pipeline, targets: list[str], dry_run: bool, upstream: bool,
           confirm: Confirm | None) -> Cleaned:
    done = Cleaned()
    with StateStore(pipeline.root) as state:
        stats = fs.StatCache()
        steps = _steps(pipeline, targets, upstream, stats, state) if targets else state.step_ids
        digests = Digests(state, stats)
        written: dict[str, set[str]] = {}  # two records can name one file (a renamed rule)
        for sid in steps:
            record = state.record(sid)
            if record is not None:
                for path, digest in record.outputs.items():
                    written.setdefault(path, set()).add(digest)
        keep = _Keep(pipeline, stats, lambda: recorded_outputs(state))
        keep.find_sources([p for p in written if not keep.outside(p)
                           and stats.get(p) is not None and keep.read(p)])
        for path, made in written.items():
            _clean_one(path, made, digests, keep, done)
        _ask_about_protected(done, dry_run, confirm)
        if not dry_run:
            for path in done.removed:
                fs.remove(path)
                digests.forget(path)
                _remove_empty_parents(path)
            kept = set(done.protected)
            for sid in steps:
                record = state.record(sid)
                if record is None or kept.isdisjoint(record.outputs):
                    state.forget_step(sid)  # a step whose protected output stays, stays
    return done


def _ask_about_protected(done: Cleaned, dry_run: bool, confirm: Confirm | None) -> None:
    """Keep the protected outputs among those to remove unless `confirm` allows them."""
    protected = [p for p in done.removed if fs.read_only(p)]
    if not protected or dry_run:
        return
    if confirm is None or not confirm(protected):
        done.protected = protected
        done.removed = [p for p in done.removed if p not in set(protected)]


def _steps(pipeline: Pipeline, targets: list[str], upstream: bool, stats: fs.StatCache,
           state: StateStore) -> list[str]:
    """The step ids whose records say what to remove for `targets`."""
    own: dict[str, None] = {}
    wanted: list[str] = []  # what the graph is resolved for
    for name in targets:
        rule = pipeline.rule(name)
        if rule is not None and rule.is_pattern:
            made = [sid for sid in state.step_ids if sid.startswith(name + "[")]
            own.update(dict.fromkeys(made))
            wanted.extend(_first_outputs(made, state))
        elif rule is not None and rule.is_alias:
            wanted.extend(rule.inputs.paths)
        else:
            wanted.append(name)
    if not wanted:
        return list(own)
    graph = resolve(pipeline, wanted, stats, lambda: recorded_outputs(state))
    if upstream:
        return list(dict.fromkeys([*own, *graph.steps]))
    for target in graph.targets:
        if target in graph.steps:
            own[target] = None
    return list(own)


def _first_outputs(step_ids: list[str], state: StateStore) -> list[str]:
    """A file each recorded step made, to find the steps before it (for `upstream`)."""
    out = []
    for sid in step_ids:
        record = state.record(sid)
        if record is not None and record.outputs:
            out.append(next(iter(record.outputs)))
    return out


class _Keep:
    """Why a recorded output must stay: the current rules read it as a source, or it lies
    outside the project."""

    def __init__(self, pipeline: Pipeline, stats: fs.StatCache, made: Callable[[], set[str]]):
        self.pipeline, self.stats, self.made = pipeline, stats, made
        self.inputs = {p for r in pipeline.rules if not r.is_pattern for p in r.inputs.paths}
        self.patterns = [compile_pattern(p) for r in pipeline.rules if r.is_pattern
                         for p in r.inputs.paths]
        self.boundary = fs.Boundary(".")
        self.sources: set[str] = set()

    def outside(self, path: str) -> bool:
        return os.path.isabs(path) or path.startswith("../") or not self.boundary.holds(path)

    def read(self, path: str) -> bool:
        """Whether a current rule lists `path`, or a pattern of it, as an input."""
        return path in self.inputs or any(p.match(path) is not None for p in self.patterns)

    def find_sources(self, paths: list[str]) -> None:
        """Of `paths` (files the current rules read), those the graph reads as sources.

        One graph for all of them, as a build would resolve it: a file no current rule
        makes, or where a cycle of pattern rules is cut, is a source. When that graph
        cannot be made (both ends of a `{f}.csv <-> {f}.csv.gz` pair were written by
        makeflow, so no cut is left), each file is asked alone, and one that lies on a
        cycle is kept too: it may be the only copy of its data.
        """
        if not paths:
            return
        try:
            self.sources.update(self._sources(paths, on_cycle=False))
        except UserError:
            for path in paths:
                try:
                    self.sources.update(self._sources([path], on_cycle=True))
                except UserError:
                    self.sources.add(path)

    def _sources(self, paths: list[str], on_cycle: bool) -> set[str]:
        resolver = Resolver(self.pipeline, self.stats, self.made)
        graph = resolver.resolve(paths)
        found = {*graph.sources, *resolver.cut_files}
        if on_cycle:
            found.update(p for sid in resolver.cut_steps for p in resolver.steps[sid].outputs.paths)
        return found

    def source(self, path: str) -> bool:
        return path in self.sources


def _clean_one(path: str, made: set[str], digests: Digests, keep: _Keep,
               done: Cleaned) -> None:
    """To be removed if its content is one that makeflow wrote (`made`), else kept."""
    if keep.outside(path):
        if os.path.lexists(path):
            done.outside.append(path)
        return
    now = digests.get(path)
    if now is None:
        return
    if now not in made:
        done.kept.append(path)
        return
    if keep.source(path):
        done.sources.append(path)
        return
    done.removed.append(path)  # removed once the protected ones are settled


def _remove_empty_parents(path: str) -> None:
    """Folders makeflow created for outputs go too, once nothing is left in them."""
    parent = os.path.dirname(path)
    while parent:
        try:
            os.rmdir(parent)
        except OSError:
            return
        parent = os.path.dirname(parent)
