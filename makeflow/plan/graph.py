"""Who makes and who needs each file: steps from rules, pattern matching, and cycles.

A step is one run of a rule: the rule itself, or a pattern rule with its wildcard values.
Resolution starts at the targets and follows inputs to the rules that make them, so only
steps that lead to a target exist in the graph.
"""

from __future__ import annotations

import itertools
import os
import posixpath
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import NamedTuple

from makeflow.define.loader import Pipeline
from makeflow.define.patterns import Pattern, compile_pattern, most_specific
from makeflow.define.rules import Files, Rule
from makeflow.errors import UserError
from makeflow.plan.claims import leaves, producers, refuse_outside
from makeflow.store.fs import StatCache, exists

NO_STEPS: list[str] = []  # the upstream of every step that reads no step: shared, never changed


class Step(NamedTuple):
    """One run of a rule, with concrete input and output paths (a tuple, cheap to make)."""

    id: str
    rule: Rule
    wildcards: dict[str, str]
    inputs: Files
    outputs: Files


@dataclass
class Graph:
    """The steps that lead to the targets, upstream first, and the edges between them."""

    steps: dict[str, Step]
    upstream: dict[str, list[str]]
    producer: dict[str, str]
    sources: list[str]
    targets: list[str] = field(default_factory=list)


def resolve(pipeline: Pipeline, targets: Iterable[str], stats: StatCache | None = None,
            made: Callable[[], set[str]] | None = None) -> Graph:
    """Build the graph for `targets` (file paths or rule names; empty means the default).

    `made` lists the files makeflow recorded writing; it is asked only to break a cycle.
    """
    return Resolver(pipeline, stats or StatCache(), made).resolve(targets)


class Resolver:
    """Maps files to the steps that make them, creating steps on demand.

    Besides the rules, the result depends only on which files exist; every such answer the
    resolver got is kept in `probed`, so a saved graph can be checked against them.
    """

    def __init__(self, pipeline: Pipeline, stats: StatCache,
                 made: Callable[[], set[str]] | None = None):
        self.pipeline = pipeline
        self.stats = stats
        self._made = made
        self._made_paths: set[str] | None = None
        self.explicit: dict[str, Rule] = {}
        self.patterns: list[tuple[Pattern, Rule]] = []
        self.steps: dict[str, Step] = {}
        self.producer: dict[str, Step | None] = {}
        self._makeable: dict[str, bool] = {}
        self._instances: dict[str, tuple[str, Files, Files]] = {}
        self._templates: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {}
        self.probed: dict[str, bool] = {}
        self._broken: dict[str, list[str]] = {}  # files read as sources to break a cycle
        self._index(pipeline.rules)

    def resolve(self, targets: Iterable[str]) -> Graph:
        names = list(targets) or self.default_targets()
        return self.finish([self.target(name) for name in names])

    def _exists(self, path: str) -> bool:
        """Whether `path` exists, kept in `probed` only (a stat tuple per source in the
        stat cache was 200 MB at a million sources, for a plan that never reads it)."""
        found = self.probed.get(path)
        if found is None:
            found = self.probed[path] = exists(path)
        return found

    def _index(self, rules: Iterable[Rule]) -> None:
        for r in rules:
            for out in r.outputs.paths:
                if r.is_pattern:
                    self.patterns.append((compile_pattern(out), r))
                elif out in self.explicit and self.explicit[out] is not r:
                    other = self.explicit[out]
                    raise UserError(
                        f"rules {other.name} ({other.where}) and {r.name} ({r.where}) "
                        f"both claim the output {out}",
                        where=r.where, hint="Each file must be made by exactly one rule.",
                    )
                else:
                    self.explicit[out] = r

    def default_targets(self) -> list[str]:
        rule = self.pipeline.default_rule
        if rule is None:
            raise UserError(
                f"{self.pipeline.file.name} declares no rules", where=str(self.pipeline.file),
                hint='Add one: rule("hello", outputs="hi.txt", shell="echo hi > {outputs}")',
            )
        if rule.is_pattern:
            raise UserError(
                f"the default rule {rule.name} is a pattern rule, so it has no single target",
                where=rule.where, hint="Give a file to build, or mark another rule default=True.",
            )
        return [rule.name]

    def target(self, name: str) -> Step | str:
        """A requested target: a rule's name, a file some rule makes, or an existing file."""
        rule = self.pipeline.rule(name)
        if rule is not None and not rule.is_pattern:
            return self._step(rule, {})
        if rule is not None:
            example = rule.outputs.paths[0]
            raise UserError(
                f"{name} is a pattern rule; name a file it makes, like {example}",
                where=rule.where,
            )
        path = self._project_path(name)
        step = self.find(path, None)
        return step if step is not None else path

    def _project_path(self, name: str) -> str:
        """A target's path relative to the project; an absolute one inside it is accepted."""
        path = _normal(name)
        if posixpath.isabs(path):
            root = str(self.pipeline.root)
            for base, full in ((os.path.abspath(root), path),
                               (os.path.realpath(root), os.path.realpath(path))):
                rel = posixpath.relpath(full, base)
                if not leaves(rel):
                    return rel
        if leaves(path):
            raise UserError(
                f"{name} is outside the project folder ({self.pipeline.root}); makeflow "
                "reads and writes only inside it",
                hint="Name a target by a rule's name or by its path relative to the folder "
                     "of Makeflow.py.",
            )
        return path

    def finish(self, wanted: list[Step | str]) -> Graph:
        """The graph below `wanted`, in order; a cycle is broken at an existing file when
        a pattern rule closed it (see `_break`), else it is an error."""
        roots = [w.id for w in wanted if isinstance(w, Step)]
        while True:
            upstream, sources = self._discover(wanted)
            try:
                order = _make_order(roots, upstream)
            except _Cycle as cycle:
                if not self._break(cycle.loop):
                    _cycle(cycle.loop, self.steps)
                continue
            break
        steps = {sid: self.steps[sid] for sid in order}
        producer = producers(steps)
        for path, loop in self._broken.items():
            if path in producer:  # read as a source and written in one build: no way out
                _cycle(loop, self.steps)
        targets = [w.id if isinstance(w, Step) else w for w in wanted]
        return Graph(steps, {sid: upstream[sid] for sid in order}, producer, list(sources), targets)

    def _discover(self, wanted: list[Step | str]) -> tuple[dict[str, list[str]], dict[str, None]]:
        """Every step below `wanted` with the steps it reads from, and the sources."""
        queue = [w for w in wanted if isinstance(w, Step)]
        done: set[str] = set()
        upstream: dict[str, list[str]] = {}
        sources: dict[str, None] = {w: None for w in wanted if isinstance(w, str)}
        while queue:
            step = queue.pop()
            if step.id in done:
                continue
            done.add(step.id)
            ups: dict[str, None] = {}
            for path in step.inputs.paths:
                maker = self.find(path, step)
                if maker is None:
                    sources[path] = None
                else:
                    ups[maker.id] = None
                    if maker.id not in done:
                        queue.append(maker)
            upstream[step.id] = list(ups) if ups else NO_STEPS
        return upstream, sources

    def _break(self, loop: list[str]) -> bool:
        """Read existing files as sources where a pattern rule's step would close `loop`.

        `loop[i]` reads from `loop[i + 1]` (the last from the first); an edge can be cut
        when a pattern rule's step makes its files and they all exist, as make and
        Snakemake do for a rule beside its reverse (`{f}.csv -> {f}.csv.gz` and back).
        Once both files exist, the cut goes where makeflow did not write the files (the
        user's own), so it stays put from build to build; else the edge nearest the
        target. An explicit rules' cycle stays an error, and so does a cut file that
        another step of the graph still writes.
        """
        cuts = []
        for i, sid in enumerate(loop):
            maker = self.steps[loop[(i + 1) % len(loop)]]
            made = set(maker.outputs.paths)
            through = [p for p in self.steps[sid].inputs.paths if p in made]
            if maker.rule.is_pattern and through and all(self._exists(p) for p in through):
                cuts.append(through)
        if not cuts:
            return False
        if len(cuts) > 1:
            ours = self._recorded()
            cuts.sort(key=lambda files: any(p in ours for p in files))  # stable: keeps order
        for path in cuts[0]:
            self.producer[path] = None
            self._broken[path] = loop
        return True

    def _recorded(self) -> set[str]:
        if self._made_paths is None:
            self._made_paths = self._made() if self._made is not None else set()
        return self._made_paths

    @property
    def cut_files(self) -> list[str]:
        """The existing files read as sources to break a cycle."""
        return list(self._broken)

    @property
    def cut_steps(self) -> set[str]:
        """The steps of the cycles that were cut."""
        return {sid for loop in self._broken.values() for sid in loop}

    @property
    def broke_cycle(self) -> bool:
        """Whether a cut was made; it may rest on the records, which the cache does not see."""
        return bool(self._broken)

    def find(self, path: str, needed_by: Step | None) -> Step | None:
        """The step that makes `path`, or None when it is a source file that exists."""
        known = self.producer.get(path, _UNKNOWN)
        if known is not _UNKNOWN:
            return known
        rule = self.explicit.get(path)
        step = self._step(rule, {}) if rule is not None else self._from_pattern(path, needed_by)
        self.producer[path] = step
        return step

    def _from_pattern(self, path: str, needed_by: Step | None) -> Step | None:
        matches = [(p, r, m.groupdict()) for p, r in self.patterns
                   if (m := p.regex.fullmatch(path)) is not None]
        usable = [(p, r, w, made) for p, r, w in matches
                  if self._can_make(made := self._instance(r, w), (r.name,))]
        if not usable:
            if self._exists(path):
                return None
            raise self._missing(path, needed_by, matches)
        if len(usable) > 1:
            usable = most_specific(path, usable)
        _, rule, wildcards, made = usable[0]
        sid, inputs, outputs = made
        step = self.steps.get(sid)
        if step is None:
            step = self.steps[sid] = _new(Step, (sid, rule, wildcards, inputs, outputs))
        return step

    def _inputs_makeable(self, rule: Rule, wildcards: dict[str, str],
                         chain: tuple[str, ...]) -> bool:
        """Whether the rule's inputs for these wildcards exist or can be made."""
        return self._can_make(self._instance(rule, wildcards), chain)

    def _can_make(self, instance: tuple[str, Files, Files], chain: tuple[str, ...]) -> bool:
        """Whether a pattern rule's step can be made: its inputs exist or can be made.

        A pattern rule never applies to a file that would be its own input.
        """
        _, inputs, outputs = instance
        outs = outputs.paths
        if (len(outs) == 1 and outs[0] in inputs.paths) or (
                len(outs) > 1 and not set(inputs.paths).isdisjoint(outs)):
            return False
        makeable = self._makeable
        for path in inputs.paths:  # noqa: SIM110 - a loop costs less than a generator here
            if not (makeable.get(path) or self._makeable_path(path, chain)):
                return False
        return True

    def _instance(self, rule: Rule, wildcards: dict[str, str]) -> tuple[str, Files, Files]:
        """A pattern rule's step id, inputs and outputs for these wildcards, made once."""
        sid = step_id(rule.name, wildcards)
        known = self._instances.get(sid)
        if known is None:
            templates = self._templates.get(rule.name)
            if templates is None:
                templates = self._templates[rule.name] = (_templates(rule.inputs),
                                                          _templates(rule.outputs))
            inputs = _filled(templates[0], wildcards)
            outputs = _filled(templates[1], wildcards)
            known = self._instances[sid] = (sid, _new(Files, (inputs, rule.inputs.names)),
                                            _new(Files, (outputs, rule.outputs.names)))
            if any(p[:1] in "./" for p in inputs + outputs):  # only such a path can leave
                refuse_outside(rule, wildcards, inputs + outputs)
        return known

    def _makeable_path(self, path: str, chain: tuple[str, ...]) -> bool:
        """Whether `path` exists or some rule can make it; a pattern rule is used once a chain."""
        known = self._makeable.get(path)
        if known is not None:
            return known
        result = path in self.explicit or self._exists(path) or any(
            self._inputs_makeable(r, w, (*chain, r.name))
            for p, r in self.patterns
            if r.name not in chain and (w := p.match(path)) is not None
        )
        if not chain or result:
            self._makeable[path] = result
        return result

    def _step(self, rule: Rule, wildcards: dict[str, str]) -> Step:
        if not wildcards:
            sid, inputs, outputs = rule.name, rule.inputs, rule.outputs
        else:
            sid, inputs, outputs = self._instance(rule, wildcards)
        step = self.steps.get(sid)
        if step is None:
            step = self.steps[sid] = _new(Step, (sid, rule, wildcards, inputs, outputs))
        return step

    def _missing(self, path: str, needed_by: Step | None, matches: list) -> UserError:
        if needed_by is None:
            return UserError(
                f"no rule makes {path} and no such file exists",
                hint=self._suggest(path),
            )
        detail = ""
        if matches:
            _, rule, wildcards = matches[0]
            missing = [p for p in _fill(rule.inputs, wildcards).paths
                       if not self._makeable_path(p, (rule.name,))]
            if missing:
                detail = (f" (rule {rule.name} could, but its input {missing[0]} does not exist "
                          "and no rule makes it)")
        return UserError(
            f"no rule makes {path}, which {needed_by.id} needs{detail}",
            where=needed_by.rule.where,
            hint=f"Create {path}, add a rule whose outputs include it, or fix the name.",
        )

    def _suggest(self, name: str) -> str:
        known = [r.name for r in self.pipeline.rules if not r.is_pattern] + list(self.explicit)
        import difflib  # only when there is a mistake to suggest a fix for

        close = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
        if close:
            return "Did you mean " + " or ".join(close) + "?"
        return "Run `makeflow list` to see the rules and the files they make."


_UNKNOWN = object()
_new = tuple.__new__  # a named tuple without its Python-level __new__: a million calls


def step_id(rule_name: str, wildcards: dict[str, str]) -> str:
    if not wildcards:
        return rule_name
    if len(wildcards) == 1:
        for k, v in wildcards.items():
            return f"{rule_name}[{k}={v}]"
    return rule_name + "[" + ",".join([f"{k}={v}" for k, v in wildcards.items()]) + "]"


def _templates(files: Files) -> tuple[str, ...]:
    return tuple(compile_pattern(p).template for p in files.paths)


def _filled(templates: tuple[str, ...], wildcards: dict[str, str]) -> tuple[str, ...]:
    return tuple([_normal(t.format_map(wildcards)) for t in templates])


def _fill(files: Files, wildcards: dict[str, str]) -> Files:
    return Files(_filled(_templates(files), wildcards), files.names)


def _normal(path: str) -> str:
    """`normpath`, skipped when it would change nothing: it changes only empty paths, `//`,
    a trailing `/`, and `.` or `..` parts, each of which one of these tests catches."""
    if not path or path[0] == "." or "/." in path or "//" in path or path[-1] == "/":
        return posixpath.normpath(path)
    return path


class _Cycle(Exception):
    """A loop of steps, each reading from the next and the last from the first."""

    def __init__(self, loop: list[str]):
        self.loop = loop


def _make_order(roots: list[str], upstream: dict[str, list[str]]) -> list[str]:
    """Upstream first, in the order inputs are listed (as make goes), found depth first.

    A step met again while its own inputs are still being followed closes a cycle, raised
    as `_Cycle` for the resolver to break or report.
    """
    order: list[str] = []
    placed: set[str] = set()
    for root in roots:
        if root in placed:
            continue
        stack = [(root, iter(upstream[root]))]
        on_path = {root}
        while stack:
            sid, ups = stack[-1]
            for nxt in ups:
                if nxt not in placed:
                    break
            else:
                stack.pop()
                on_path.discard(sid)
                placed.add(sid)
                order.append(sid)
                continue
            if nxt in on_path:
                path = [s for s, _ in stack]
                raise _Cycle(path[path.index(nxt):])
            if not upstream[nxt]:  # a step that reads no other step: placed at once
                placed.add(nxt)
                order.append(nxt)
                continue
            stack.append((nxt, iter(upstream[nxt])))
            on_path.add(nxt)
    return order


def _cycle(loop: list[str], steps: dict[str, Step]) -> None:
    """Raise for `loop`, in which each step reads from the next (the last from the first)."""
    again = loop[0]
    cycle = [again, *reversed(loop[1:]), again]  # each step feeds the next
    raise UserError(
        "the rules form a cycle: " + _cycle_path(cycle, steps),
        where=steps[again].rule.where,
        hint="A step cannot depend, directly or not, on its own output.",
    )


def _cycle_path(cycle: list[str], steps: dict[str, Step]) -> str:
    """`a -> file -> b -> file -> a`: each step, then the file the next one reads from it."""
    parts = [cycle[0]]
    for before, after in itertools.pairwise(cycle):
        made = set(steps[before].outputs.paths)
        through = next((p for p in steps[after].inputs.paths if p in made), None)
        if through:
            parts.append(through)
        parts.append(after)
    return " -> ".join(parts)
