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
a chunk at a time.
"""

from __future__ import annotations

import contextlib
import marshal
import os
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, BinaryIO

from makeflow.define.loader import Pipeline
from makeflow.define.rules import Files, Rule
from makeflow.plan.claims import producers
from makeflow.plan.graph import NO_STEPS, Graph, Resolver, Step
from makeflow.store.fs import StatCache
from makeflow.store.hashing import Streamed, hash_bytes

NAME = "graph.cache"
FORMAT = 3  # raise whenever resolution (graph.py) decides differently, or the layout changes
CHUNK = 10_000  # steps per blob; part of the layout (the digest covers each chunk's text)


def resolve_cached(pipeline: Pipeline, key: tuple, stats: StatCache, folder: Path,
                   made: Callable[[], set[str]] | None = None) -> tuple[Graph, str]:
    """The graph for `key` (see `cache_key`), from the cache in `folder` when it holds,
    and a digest of the graph, equal for equal graphs however they were found.

    `made` lists the files makeflow recorded writing (see `Resolver._break`); a graph
    whose cycle was cut with its help is not kept, since the cache could not tell when
    the records change.
    """
    path = folder / NAME
    # What a rule's functions return rests on more than the files the resolver looked at
    # (a sample sheet, a checkpoint's output): such a graph is resolved on every build.
    dynamic = any(r.dynamic is not None or r.checkpoint for r in pipeline.rules)
    found = None if dynamic else _load(path, key, pipeline, stats)
    if found is not None:
        return found
    resolver = Resolver(pipeline, stats, made)
    graph = resolver.resolve(key[-1])
    probed, keep = resolver.probed, not resolver.broke_cycle and not dynamic
    del resolver  # its lookup tables: a third of the memory of a big graph, before saving
    if not keep:
        with contextlib.suppress(OSError):
            path.unlink()
    return graph, _save(path, key, graph, probed, write=keep)


def cache_key(pipeline: Pipeline, targets: Iterable[str]) -> tuple:
    """What the graph for `targets` is resolved from, besides the file system."""
    default = pipeline.default_rule
    shape = [(r.name, r.inputs.paths, r.inputs.names, r.outputs.paths, r.outputs.names,
              r.priority) for r in pipeline.rules]
    # repr, not marshal: marshal's bytes depend on how objects are shared, not only values
    rules = hash_bytes(repr((shape, default.name if default else None)).encode(
        "utf-8", "surrogateescape"))
    return (FORMAT, sys.version, rules, tuple(targets))


def _save(path: Path, key: tuple, graph: Graph, probed: dict[str, bool],
          write: bool = True) -> str:
    """Write the graph with the answers it rests on; return the graph's digest.

    Steps go in chunks of `CHUNK`, each digested and written as it is made, so a
    million-step graph never exists a second time as one string or one marshal blob.
    """
    temp = path.with_name(f"{NAME}.{os.getpid()}.tmp")
    try:
        with open(temp, "wb") if write else contextlib.nullcontext() as out:
            digest = _write(out, key, graph, probed)
        if write:
            os.replace(temp, path)
    except OSError:  # a cache: the build goes on without it
        with contextlib.suppress(OSError):
            temp.unlink()
        digest = _write(None, key, graph, probed)
    return digest


def _write(out: BinaryIO | None, key: tuple, graph: Graph, probed: dict[str, bool]) -> str:
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
    index = {sid: i for i, sid in enumerate(graph.steps)}
    upstream = graph.upstream
    digest = Streamed()  # by value (repr): marshal's bytes depend on how objects are shared
    for start in range(0, len(steps), CHUNK):
        chunk = steps[start:start + CHUNK]
        rows = ([_row(step) for step in chunk],
                [[index[u] for u in upstream[step.id]] for step in chunk])
        digest.update(repr(rows).encode("utf-8", "surrogateescape"))
        put(rows)
    tail = (graph.sources, graph.targets)
    digest.update(repr(tail).encode("utf-8", "surrogateescape"))
    put(tail)
    # the params each step's functions gave, and the names of the inputs they listed
    derived = [(s.id, s.rule.params_text, s.inputs.names) for s in steps
               if s.rule.dynamic is not None]
    if derived:
        digest.update(repr(derived).encode("utf-8", "surrogateescape"))
    put(digest.hexdigest())
    return digest.hexdigest()


def _row(step: Step) -> tuple:
    """A step as plain data; a step of an explicit rule shares the rule's files."""
    if step.inputs is step.rule.inputs and step.outputs is step.rule.outputs:
        return (step.id, step.rule.name, None, None, None)
    return (step.id, step.rule.name, tuple(step.wildcards.items()),
            step.inputs.paths, step.outputs.paths)


def _load(path: Path, key: tuple, pipeline: Pipeline,
          stats: StatCache) -> tuple[Graph, str] | None:
    try:
        with open(path, "rb") as f:
            saved_key, chunks = _get(f)
            if saved_key != key:
                return None
            existing, missing = _get(f)
            if not _same_files(existing, missing, stats):
                return None
            del existing, missing
            reader = _Steps(pipeline)
            for _ in range(chunks):
                reader.add(*_get(f))
            sources, targets = _get(f)
            digest = _get(f)
            if not isinstance(digest, str):
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


def _same_files(existing: list[str], missing: list[str], stats: StatCache) -> bool:
    """Whether every file the resolver looked at still exists, or still does not.

    The plain `os.stat` loop is the cost of a no-op build at 100,000 files, so the stat
    cache, which would keep a tuple per file, is only asked about the few missing ones.
    """
    stat = os.stat
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

    def graph(self, sources: list[str], targets: list[str]) -> Graph:
        at = self.ids.__getitem__
        ups: dict[str, list[Any]] = {sid: list(map(at, up)) if up else NO_STEPS
                                     for sid, up in zip(self.ids, self.upstream, strict=True)}
        # Made again rather than trusted: it checks the steps for clashing outputs, so no
        # graph saved before a check existed (or by a faulty build) can bypass it.
        return Graph(self.steps, ups, producers(self.steps), sources, targets)
