"""The resolved graph kept between builds, so a no-op build does no pattern matching.

Which steps lead to the targets depends on three things only: the rules' names and files,
the targets asked for, and which files existed when the resolver looked (a pattern rule
applies only when its inputs exist or can be made). The graph is saved with all three, and
used again only when the rules and targets are the same and every file the resolver
looked at still exists, or still does not, as before. Anything else resolves afresh.

The file is a private cache in `.makeflow/`: marshal, because it loads plain tuples and
strings several times faster than pickle or JSON; a file it cannot read is ignored. It is
a sequence of length-prefixed marshal blobs (the key, the files looked at, the steps in
chunks, the sources and targets, the graph's digest), so a big graph is written and read
a chunk at a time. The digest's blob is followed by its length, so a reader finds the
digest before the steps: the no-op snapshot (`uptodate.py`) is keyed by it, and the files
that snapshot has just statted need no second `stat` to show they still exist.
"""

from __future__ import annotations

import contextlib
import dataclasses
import marshal
import os
import sys
from collections.abc import Callable, Container, Iterable
from pathlib import Path
from typing import Any, BinaryIO

from makeflow.define.dynamic import recording
from makeflow.define.loader import Pipeline
from makeflow.define.rules import Files, Rule
from makeflow.plan.claims import producers
from makeflow.plan.graph import NO_STEPS, Graph, Resolver, Step
from makeflow.plan.graph_reads import Checks, checkpoint_checks, gather, still_hold
from makeflow.store.fs import StatCache
from makeflow.store.hashing import Streamed, hash_value
from makeflow.store.state import StateStore

NAME = "graph.cache"
FORMAT = 5  # raise whenever resolution (graph.py) decides differently, or the layout changes
CHUNK = 10_000  # steps per blob; part of the layout (the digest covers each chunk's text)


Vouch = Callable[[str], Container[str] | None]


def resolve_cached(pipeline: Pipeline, key: tuple, stats: StatCache, folder: Path,
                   made: Callable[[], set[str]] | None = None, state: StateStore | None = None,
                   vouch: Vouch | None = None) -> tuple[Graph, str, Callable[[], None]]:
    """The graph for `key` (see `cache_key`), from the cache in `folder` when it holds;
    a digest of the graph, equal for equal graphs however they were found; and what
    saves a graph of rules with functions, to call once the store's records of the
    files are up to date (after planning): it keeps the graph only when every
    checkpoint it read is as its record says.

    `made` lists the files makeflow recorded writing (see `Resolver._break`); a graph
    whose cycle was cut with its help is not kept, since the cache could not tell when
    the records change.

    `vouch`, given a saved graph's digest before its steps are read, may return the
    files it has just found to exist (the no-op snapshot's): those are not statted again.
    """
    path = folder / NAME
    dynamic = any(r.dynamic is not None or r.checkpoint for r in pipeline.rules)
    found = _load(path, key, pipeline, stats, state, vouch)
    if found is not None:
        return (*found, _nothing)
    resolver = Resolver(pipeline, stats, made)
    with recording() if dynamic else contextlib.nullcontext() as reads:
        graph = resolver.resolve(key[-1])
    probed, keep = resolver.probed, not resolver.broke_cycle
    checks = None
    if keep and dynamic:  # what the functions read decides whether the graph is kept
        checks = (gather(pipeline, [pipeline.reads, reads])
                  if pipeline.reads is not None and not resolver.unknown else None)
        keep = False
    del resolver  # its lookup tables: a third of the memory of a big graph, before saving
    if not keep:
        with contextlib.suppress(OSError):
            path.unlink()
    digest = _save(path, key, graph, probed, write=keep)
    if checks is None or state is None:
        return graph, digest, _nothing
    return graph, digest, lambda: _keep(path, key, graph, probed, checks, state)


def _nothing() -> None:
    """Nothing to save later (a static graph is saved at once)."""


def _keep(path: Path, key: tuple, graph: Graph, probed: dict[str, bool], checks: Checks,
          state: StateStore) -> None:
    """Save a graph of rules with functions, with what it rests on, when each checkpoint
    it read is on disk as recorded."""
    found = checkpoint_checks(state, checks.checkpoints)
    if found is not None:
        _save(path, key, graph, probed, checks=(checks.stats, checks.globs, found))


def cache_key(pipeline: Pipeline, targets: Iterable[str]) -> tuple:
    """What the graph for `targets` is resolved from, besides the file system."""
    default = pipeline.default_rule
    shape = [(r.name, r.inputs.paths, r.inputs.names, r.outputs.paths, r.outputs.names,
              r.priority) for r in pipeline.rules]
    facts: tuple = (shape, default.name if default else None)
    if any(r.dynamic is not None or r.checkpoint for r in pipeline.rules):
        # functions give what their code and the config make of what they read: the
        # rules file's text, the project modules it imports, and the config all count
        facts += (sorted(pipeline.sources.items()), pipeline.config, pipeline.overrides)
    rules = hash_value(facts)
    return (FORMAT, sys.version, rules, tuple(targets))


def _save(path: Path, key: tuple, graph: Graph, probed: dict[str, bool],
          write: bool = True, checks: tuple = ((), (), ())) -> str:
    """Write the graph with the answers it rests on; return the graph's digest.

    Steps go in chunks of `CHUNK`, each digested and written as it is made, so a
    million-step graph never exists a second time as one string or one marshal blob.
    """
    temp = path.with_name(f"{NAME}.{os.getpid()}.tmp")
    try:
        with open(temp, "wb") if write else contextlib.nullcontext() as out:
            digest = _write(out, key, graph, probed, checks)
        if write:
            os.replace(temp, path)
    except (OSError, ValueError):  # a cache (ValueError: a param marshal cannot keep)
        with contextlib.suppress(OSError):
            temp.unlink()
        digest = _write(None, key, graph, probed, checks)
    return digest


def _write(out: BinaryIO | None, key: tuple, graph: Graph, probed: dict[str, bool],
           checks: tuple) -> str:
    """The blobs of the file, in the order `_load` reads them (to `out` unless None)."""
    def put(value: Any) -> None:
        if out is not None:
            blob = marshal.dumps(value)
            out.write(len(blob).to_bytes(8, "little"))
            out.write(blob)

    steps = list(graph.steps.values())
    put((key, -(-len(steps) // CHUNK)))
    put(([p for p, found in probed.items() if found], [p for p, found in probed.items()
                                                        if not found]))
    put(checks)
    index = {sid: i for i, sid in enumerate(graph.steps)}
    upstream = graph.upstream
    # by value: marshal's format 2, which writes no sharing or interning (`hash_value`)
    digest = Streamed()
    for start in range(0, len(steps), CHUNK):
        chunk = steps[start:start + CHUNK]
        rows = ([_row(step) for step in chunk],
                [[index[u] for u in upstream[step.id]] for step in chunk])
        digest.update(_by_value(rows))
        put(rows)
    tail = (graph.sources, graph.targets)
    digest.update(_by_value(tail))
    put(tail)
    # the params each step's functions gave, and the names of the inputs they listed
    derived = [(s.id, s.rule.params_text, s.inputs.names) for s in steps
               if s.rule.dynamic is not None]
    if derived:
        digest.update(repr(derived).encode("utf-8", "surrogateescape"))
    put(_derived(steps) if out is not None else None)
    last = marshal.dumps(digest.hexdigest())
    put(digest.hexdigest())
    if out is not None:  # the digest's length last: `_digest` reads it from the end
        out.write(len(last).to_bytes(8, "little"))
    return digest.hexdigest()


def _by_value(value: Any) -> bytes:
    """The bytes a digest of plain data is taken over: as `hashing.hash_value`, several
    times quicker than repr over a million rows."""
    try:
        return marshal.dumps(value, 2)
    except ValueError:  # a value marshal cannot write
        return b"repr:" + repr(value).encode("utf-8", "surrogateescape")


def _derived(steps: list[Step]) -> dict[str, tuple]:
    """What a step of a rule with functions holds beyond its paths: its inputs' names
    and, when its params came from functions, the params and their text."""
    found = {}
    for step in steps:
        rule = step.rule
        if rule.dynamic is not None:
            own = (rule.params, rule.params_text) if rule.dynamic.params else None
            found[step.id] = (step.inputs.names, own)
    return found


def _row(step: Step) -> tuple:
    """A step as plain data; a step of an explicit rule shares the rule's files."""
    if step.inputs is step.rule.inputs and step.outputs is step.rule.outputs:
        return (step.id, step.rule.name, None, None, None)
    return (step.id, step.rule.name, tuple(step.wildcards.items()),
            step.inputs.paths, step.outputs.paths)


def _load(path: Path, key: tuple, pipeline: Pipeline, stats: StatCache,
          state: StateStore | None, vouch: Vouch | None = None) -> tuple[Graph, str] | None:
    try:
        with open(path, "rb") as f:
            saved_key, chunks = _get(f)
            if saved_key != key:
                return None
            shape = _digest(f)
            seen = vouch(shape) if vouch is not None else None
            existing, missing = _get(f)
            if not _same_files(existing, missing, stats, seen):
                return None
            del existing, missing, seen
            if not still_hold(*_get(f), state):
                return None
            reader = _Steps(pipeline)
            for _ in range(chunks):
                reader.add(*_get(f))
            sources, targets = _get(f)
            reader.derive(_get(f))
            digest = _get(f)
            if not isinstance(digest, str) or digest != shape:
                return None
        return reader.graph(sources, targets), digest
    except (OSError, EOFError, ValueError, TypeError, KeyError, IndexError):
        return None


def _get(f: BinaryIO) -> Any:
    """The next blob; ValueError for a length no file of this size can hold (damage)."""
    size = int.from_bytes(f.read(8), "little")
    if size > os.fstat(f.fileno()).st_size:
        raise ValueError("damaged graph cache")
    return marshal.loads(f.read(size))


def _digest(f: BinaryIO) -> str:
    """The graph's digest, read from the end of the file; the reader stays where it was."""
    here = f.tell()
    f.seek(-8, os.SEEK_END)
    size = int.from_bytes(f.read(8), "little")
    f.seek(-8 - size, os.SEEK_END)
    digest = marshal.loads(f.read(size))
    f.seek(here)
    if not isinstance(digest, str):
        raise ValueError("damaged graph cache")
    return digest


def _same_files(existing: list[str], missing: list[str], stats: StatCache,
                seen: Container[str] | None = None) -> bool:
    """Whether every file the resolver looked at still exists, or still does not.

    The plain `os.stat` loop is the cost of a no-op build at 100,000 files, so the stat
    cache, which would keep a tuple per file, is only asked about the few missing ones;
    files in `seen` were found to exist a moment ago and are not statted again.
    """
    stat = os.stat
    if seen:
        existing = [p for p in existing if p not in seen]
    try:
        for p in existing:
            stat(p)
    except (FileNotFoundError, NotADirectoryError):
        return False
    except OSError:  # unreadable: let resolution say what is wrong
        return False
    return all(stats.get(p) is None for p in missing)


class _Steps:
    """Steps made again from saved rows, chunk by chunk."""

    def __init__(self, pipeline: Pipeline):
        self.rules: dict[str, Rule] = {r.name: r for r in pipeline.rules}
        self.steps: dict[str, Step] = {}
        self.ids: list[str] = []
        self.upstream: list[list[int]] = []

    def add(self, rows: list[tuple], upstream: list[list[int]]) -> None:
        rules, steps = self.rules, self.steps
        new = tuple.__new__  # skips the named tuples' Python-level __new__: 100,000 calls
        for sid, name, wildcards, inputs, outputs in rows:
            r = rules[name]
            if wildcards is None:
                steps[sid] = new(Step, (sid, r, {}, r.inputs, r.outputs))
            else:
                steps[sid] = new(Step, (sid, r, dict(wildcards),
                                        new(Files, (inputs, r.inputs.names)),
                                        new(Files, (outputs, r.outputs.names))))
            self.ids.append(sid)
        self.upstream += upstream

    def derive(self, derived: dict[str, tuple]) -> None:
        """Give the steps of rules with functions their inputs' names and params."""
        steps, new = self.steps, tuple.__new__
        for sid, (names, own) in derived.items():
            step = steps[sid]
            rule = step.rule
            if own is not None:
                rule = dataclasses.replace(rule, params=own[0], params_text=own[1])
            steps[sid] = new(Step, (sid, rule, step.wildcards,
                                    new(Files, (step.inputs.paths, tuple(map(tuple, names)))),
                                    step.outputs))

    def graph(self, sources: list[str], targets: list[str]) -> Graph:
        at = self.ids.__getitem__
        ups: dict[str, list[Any]] = {sid: list(map(at, up)) if up else NO_STEPS
                                     for sid, up in zip(self.ids, self.upstream, strict=True)}
        # Made again rather than trusted: it checks the steps for clashing outputs, so no
        # graph saved before a check existed (or by a faulty build) can bypass it.
        return Graph(self.steps, ups, producers(self.steps), sources, targets)
