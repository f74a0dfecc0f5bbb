"""The resolved graph kept between builds, so a no-op build does no pattern matching.

Which steps lead to the targets depends on three things only: the rules' names and files,
the targets asked for, and which files existed when the resolver looked (a pattern rule
applies only when its inputs exist or can be made). The graph is saved with all three, and
used again only when the rules and targets are the same and every file the resolver
looked at still exists, or still does not, as before. Anything else resolves afresh.

The file is a private cache in `.makeflow/`: marshal, because it loads plain tuples and
strings several times faster than pickle or JSON; a file it cannot read is ignored.
"""

from __future__ import annotations

import contextlib
import marshal
import os
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from makeflow.define.loader import Pipeline
from makeflow.define.rules import Files, Rule
from makeflow.plan.claims import producers
from makeflow.plan.graph import Graph, Resolver, Step
from makeflow.store.fs import StatCache
from makeflow.store.hashing import hash_bytes

NAME = "graph.cache"
FORMAT = 2  # raise whenever resolution (graph.py) decides differently


def resolve_cached(pipeline: Pipeline, key: tuple, stats: StatCache, folder: Path,
                   made: Callable[[], set[str]] | None = None) -> tuple[Graph, str]:
    """The graph for `key` (see `cache_key`), from the cache in `folder` when it holds,
    and a digest of the graph, equal for equal graphs however they were found.

    `made` lists the files makeflow recorded writing (see `Resolver._break`); a graph
    whose cycle was cut with its help is not kept, since the cache could not tell when
    the records change.
    """
    path = folder / NAME
    found = _load(path, key, pipeline, stats)
    if found is not None:
        return found
    resolver = Resolver(pipeline, stats, made)
    graph = resolver.resolve(key[-1])
    if resolver.broke_cycle:
        with contextlib.suppress(OSError):
            path.unlink()
    return graph, _save(path, key, graph, resolver.probed, write=not resolver.broke_cycle)


def cache_key(pipeline: Pipeline, targets: Iterable[str]) -> tuple:
    """What the graph for `targets` is resolved from, besides the file system."""
    default = pipeline.default_rule
    shape = [(r.name, r.inputs.paths, r.inputs.names, r.outputs.paths, r.outputs.names)
             for r in pipeline.rules]
    # repr, not marshal: marshal's bytes depend on how objects are shared, not only values
    rules = hash_bytes(repr((shape, default.name if default else None)).encode(
        "utf-8", "surrogateescape"))
    return (FORMAT, sys.version, rules, tuple(targets))


def _save(path: Path, key: tuple, graph: Graph, probed: dict[str, bool],
          write: bool = True) -> str:
    """Write the graph with the answers it rests on; return the graph's digest."""
    index = {sid: i for i, sid in enumerate(graph.steps)}
    rows = [_row(step) for step in graph.steps.values()]
    upstream = [[index[u] for u in ups] for ups in graph.upstream.values()]
    shape = (rows, upstream, graph.producer, graph.sources, graph.targets)
    digest = hash_bytes(repr(shape).encode("utf-8", "surrogateescape"))  # by value
    if not write:
        return digest
    existing = [p for p, found in probed.items() if found]
    missing = [p for p, found in probed.items() if not found]
    temp = path.with_name(f"{NAME}.{os.getpid()}.tmp")
    try:
        temp.write_bytes(marshal.dumps((key, digest, *shape, existing, missing)))
        os.replace(temp, path)
    except OSError:  # a cache: the build goes on without it
        with contextlib.suppress(OSError):
            temp.unlink()
    return digest


def _row(step: Step) -> tuple:
    """A step as plain data; a step of an explicit rule shares the rule's files."""
    if step.inputs is step.rule.inputs and step.outputs is step.rule.outputs:
        return (step.id, step.rule.name, None, None, None)
    return (step.id, step.rule.name, tuple(step.wildcards.items()),
            step.inputs.paths, step.outputs.paths)


def _load(path: Path, key: tuple, pipeline: Pipeline,
          stats: StatCache) -> tuple[Graph, str] | None:
    try:
        data = marshal.loads(path.read_bytes())
        if data[0] != key:
            return None
        _, digest, rows, upstream, _, sources, targets, existing, missing = data
        if not _same_files(existing, missing, stats):
            return None
        return _graph(rows, upstream, sources, targets, pipeline), digest
    except (OSError, EOFError, ValueError, TypeError, KeyError, IndexError):
        return None


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


def _graph(rows: list[tuple], upstream: list[list[int]], sources: list[str],
           targets: list[str], pipeline: Pipeline) -> Graph:
    rules: dict[str, Rule] = {r.name: r for r in pipeline.rules}
    steps: dict[str, Step] = {}
    new = tuple.__new__  # skips the named tuples' Python-level __new__: 100,000 calls
    for sid, name, wildcards, inputs, outputs in rows:
        r = rules[name]
        if wildcards is None:
            steps[sid] = new(Step, (sid, r, {}, r.inputs, r.outputs))
        else:
            steps[sid] = new(Step, (sid, r, dict(wildcards), new(Files, (inputs, r.inputs.names)),
                                    new(Files, (outputs, r.outputs.names))))
    ids = list(steps)
    at = ids.__getitem__
    ups: dict[str, list[Any]] = {sid: list(map(at, up))
                                 for sid, up in zip(ids, upstream, strict=True)}
    # Made again rather than trusted: it checks the steps for clashing outputs, so no
    # graph saved before a check existed (or by a faulty build) can bypass it.
    return Graph(steps, ups, producers(steps), sources, targets)
