"""Steps of rules with functions, and the checkpoints they wait for.

The resolver asks here for a step's inputs when its rule has input or param functions
(define/dynamic.py): the functions are called with the step's wildcards, and a rule with
param functions gets a copy per step holding that step's params, so everything after the
graph (fingerprints, commands, jobs) reads a step's params as it reads any rule's.

A function that globs inside a checkpoint's output reads what that checkpoint wrote: the
step then waits for the checkpoint (an edge of the graph, though no input names it), and
`waiting_on` below tells the build which steps cannot be known before it runs.
"""

from __future__ import annotations

import dataclasses
import posixpath
import re
from collections.abc import Iterable
from typing import Any, NamedTuple

from makeflow.define.dynamic import NotWrittenYet, call, describe
from makeflow.define.patterns import compile_pattern
from makeflow.define.placeholders import substitute
from makeflow.define.rules import WILDCARD, Files, Rule, files_of
from makeflow.errors import UserError
from makeflow.store.state import dump


class Evaluated(NamedTuple):
    """A step of a rule with functions: its inputs, its rule (with this step's params),
    what its functions read (paths and glob patterns), and, when one failed opening a
    file that does not exist yet, that error: the step's inputs are known once whatever
    writes the file has run."""

    inputs: Files
    rule: Rule
    globbed: list[str]
    pending: NotWrittenYet | None = None


def evaluate(rule: Rule, wildcards: dict[str, str], outputs: Files) -> Evaluated:
    """Call the rule's functions for one step; a mistake in one is the user's (exit 2)."""
    assert rule.dynamic is not None
    globbed: list[str] = []
    try:
        return _evaluate(rule, wildcards, outputs, globbed)
    except NotWrittenYet as error:
        fixed = Files(_fill(rule.inputs.paths, wildcards), rule.inputs.names)
        return Evaluated(fixed, rule, [*globbed, error.path], error)


def _evaluate(rule: Rule, wildcards: dict[str, str], outputs: Files, globbed: list[str]
              ) -> Evaluated:
    assert rule.dynamic is not None
    inputs = rule.inputs
    if rule.dynamic.inputs is not None:
        inputs = _inputs(rule, wildcards, globbed)
    elif wildcards:
        inputs = Files(_fill(rule.inputs.paths, wildcards), rule.inputs.names)
    if rule.dynamic.params:
        params = dict(rule.params)
        for name, func in rule.dynamic.params:
            params[name], seen = call(func, f"param {name!r}", rule.name, rule.where, wildcards)
            globbed += seen
        try:
            text = dump(params)
        except (TypeError, ValueError) as exc:
            raise _bad(rule, wildcards, f"its params cannot be stored: {exc}") from None
        rule = dataclasses.replace(rule, params=params, params_text=text)
    if rule.shell is not None:  # a placeholder that cannot be filled is found now
        substitute(rule, rule.shell, inputs, outputs, wildcards)
    return Evaluated(inputs, rule, globbed)


def _inputs(rule: Rule, wildcards: dict[str, str], globbed: list[str]) -> Files:
    assert rule.dynamic is not None and rule.dynamic.inputs is not None
    label = f"rule {rule.name} {describe(wildcards)}"
    paths: list[str] = []
    names: list[tuple[str, int, int]] = []
    for name, item in rule.dynamic.inputs:
        start = len(paths)
        if isinstance(item, tuple):
            paths.extend(_fill(item, wildcards))
        else:
            value, seen = call(item, "inputs", rule.name, rule.where, wildcards)
            globbed += seen
            got = files_of(value, "inputs", label, rule.where)
            if name is None:
                names.extend((n, a + start, b + start) for n, a, b in got.names)
            paths.extend(got.paths)
        if name is not None:
            names.append((name, start, len(paths)))
    for path in paths:
        if WILDCARD.search(path):
            raise _bad(rule, wildcards, f"its inputs function gave {path!r}, with a "
                       "{wildcard} in it; return the path with its values filled in "
                       "(an f-string, or expand())")
    return Files(tuple(paths), tuple(names))


def _fill(paths: Iterable[str], wildcards: dict[str, str]) -> tuple[str, ...]:
    return tuple(posixpath.normpath(compile_pattern(p).template.format_map(wildcards))
                 for p in paths)


def _bad(rule: Rule, wildcards: dict[str, str], what: str, hint: str | None = None
         ) -> UserError:
    label = f"rule {rule.name} {describe(wildcards)}" if wildcards else f"rule {rule.name}"
    return UserError(f"{label}: {what}", where=rule.where, hint=hint)


_GLOB = re.compile(r"[{*?\[]")


def refuse_reading_outputs(rule: Rule, read: list[str], explicit: dict[str, Rule]) -> None:
    """A function may read what a checkpoint wrote, not another rule's output: that would
    be read before its rule reruns, so the graph would lag a build behind."""
    for path in read:
        maker = explicit.get(path)
        if maker is not None and not maker.checkpoint:
            raise _bad(rule, {}, f"a function of it reads {path}, which rule {maker.name} "
                       f"makes, so it would read the file before {maker.name} has run",
                       hint=f"Mark rule {maker.name} checkpoint=True ({maker.where}): "
                            "functions that read its outputs then wait until it has run.")


def glob_bases(read: Iterable[str]) -> list[str]:
    """The paths a checkpoint's output may be, for what a function read: a path it opened
    or listed, and each folder above; for a pattern it globbed, the folder it lists and
    each above (`clusters/{c}.txt` lists `clusters`)."""
    bases: dict[str, None] = {}
    for pattern in read:
        literal = _GLOB.split(pattern, 1)[0]
        base = posixpath.normpath((literal.rpartition("/")[0] or ".") if literal != pattern
                                  else pattern)
        while base not in (".", "", "/") and not base.startswith("../"):
            bases[base] = None
            base = posixpath.dirname(base)
    return list(bases)


def checkpoint_making(rules: list[Rule], path: str) -> tuple[Rule, dict[str, str]] | None:
    """The checkpoint rule (of `rules`) that writes `path`, with its wildcards."""
    for rule in rules:
        for out in rule.outputs.paths:
            wildcards = compile_pattern(out).match(path) if rule.is_pattern else (
                {} if out == path else None)
            if wildcards is not None:
                return rule, wildcards
    return None


def inside(path: str) -> Iterable[str]:
    """The folders `path` lies in, nearest first."""
    while "/" in path:
        path = path.rpartition("/")[0]
        yield path


def waiting_on(graph: Any, stale: Iterable[str]) -> dict[str, list[str]]:
    """The steps that cannot be known until a checkpoint that must run has run: for each
    such checkpoint (a step id in `stale`), every step below it, in the graph's order."""
    checkpoints = [sid for sid in stale if graph.steps[sid].rule.checkpoint]
    if not checkpoints:
        return {}
    below: dict[str, set[str]] = {}
    for sid in graph.steps:  # upstream first: a step's upstream is settled before it
        for up in graph.upstream[sid]:
            if up in checkpoints:
                below.setdefault(sid, set()).add(up)
            below.setdefault(sid, set()).update(below.get(up, ()))
    waits: dict[str, list[str]] = {c: [] for c in checkpoints}
    for sid, ups in below.items():
        for c in ups:
            waits[c].append(sid)
    return {c: sids for c, sids in waits.items() if sids}
