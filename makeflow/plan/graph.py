"""Who makes and who needs each file: steps from rules, pattern matching, and cycles.

A step is one run of a rule: the rule itself, or a pattern rule with its wildcard values.
Resolution starts at the targets and follows inputs to the rules that make them, so only
steps that lead to a target exist in the graph.
"""

from __future__ import annotations

import functools
import os
import posixpath
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from makeflow.define.loader import Pipeline
from makeflow.define.patterns import Pattern, compile_pattern, most_specific
from makeflow.define.rules import Files, Rule
from makeflow.errors import UserError
from makeflow.plan.claims import leaves, producers, refuse_outside
from makeflow.plan.columns import Columns
from makeflow.plan.cycles import Cycle, cycle_error, make_order
from makeflow.plan.dynamic import (
    checkpoint_making,
    evaluate,
    glob_bases,
    inside,
    refuse_reading_outputs,
)
from makeflow.plan.steps import (
    NO_STEPS,
    UNKNOWN,
    Step,
    filled,
    new,
    normal,
    step_id,
    templates_of,
)
from makeflow.store.fs import StatCache
from makeflow.store.listing import Existence


@dataclass
class Graph:
    """The steps that lead to the targets, upstream first, and the edges between them."""

    steps: dict[str, Step]
    upstream: dict[str, list[str]]
    producer: dict[str, str]
    sources: list[str]
    targets: list[str] = field(default_factory=list)
    # steps whose functions could not yet read what a checkpoint writes: the error to
    # raise unless the checkpoint runs first (plan/dynamic.py)
    unknown: dict[str, UserError] = field(default_factory=dict)

    @functools.cached_property
    def aliases(self) -> frozenset[str]:
        """The steps of alias rules (usually a few): the rest is what a plan can run."""
        return frozenset(sid for sid, step in self.steps.items() if step.rule.is_alias)


def resolve(pipeline: Pipeline, targets: Iterable[str], stats: StatCache | None = None,
            made: Callable[[], set[str]] | None = None) -> Graph:
    """Build the graph for `targets` (file paths or rule names; empty means the default).

    `made` lists the files makeflow recorded writing; it is asked only to break a cycle.
    """
    return Resolver(pipeline, stats or StatCache(), made).resolve(targets)


class Resolver(Columns):
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
        self.existence = Existence()  # a folder asked about often is listed once
        self._broken: dict[str, list[str]] = {}  # files read as sources to break a cycle
        self._derived: dict[str, Rule] = {}  # a rule with param functions, per step
        self.after: dict[str, list[Step]] = {}  # checkpoints a step's functions read
        self.unknown: dict[str, UserError] = {}  # see Graph.unknown
        self._checkpoints = [r for r in pipeline.rules if r.checkpoint]
        self._index(pipeline.rules)

    def resolve(self, targets: Iterable[str]) -> Graph:
        names = list(targets) or self.default_targets()
        return self.finish([self.target(name) for name in names])

    def _exists(self, path: str) -> bool:
        """Whether `path` exists, kept in `probed` only (a stat tuple per source in the
        stat cache was 200 MB at a million sources, for a plan that never reads it)."""
        found = self.probed.get(path)
        if found is None:
            found = self.probed[path] = self.existence(path)
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
        path = normal(name)
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
                order = make_order(roots, upstream)
            except Cycle as cycle:
                if not self._break(cycle.loop):
                    cycle_error(cycle.loop, self.steps)
                continue
            break
        steps = {sid: self.steps[sid] for sid in order}
        producer = producers(steps)
        for path, loop in self._broken.items():
            if path in producer:  # read as a source and written in one build: no way out
                cycle_error(loop, self.steps)
        targets = [w.id if isinstance(w, Step) else w for w in wanted]
        unknown = {sid: self.unknown[sid] for sid in order if sid in self.unknown}
        return Graph(steps, {sid: upstream[sid] for sid in order}, producer, list(sources),
                     targets, unknown)

    def _discover(self, wanted: list[Step | str]) -> tuple[dict[str, list[str]], dict[str, None]]:
        """Every step below `wanted` with the steps it reads from, and the sources."""
        queue = [w for w in wanted if isinstance(w, Step)]
        done: set[str] = set()
        upstream: dict[str, list[str]] = {}
        sources: dict[str, None] = {w: None for w in wanted if isinstance(w, str)}
        producer = self.producer  # asked first: most files are known by the time they are read
        while queue:
            step = queue.pop()
            if step.id in done:
                continue
            done.add(step.id)
            ups: dict[str, None] = {}
            paths = step.inputs.paths
            makers = self.find_many(paths, step) if len(paths) >= self.many else [
                m if (m := producer.get(path, UNKNOWN)) is not UNKNOWN
                else self.find(path, step) for path in paths]
            for path, maker in zip(paths, makers, strict=True):
                if maker is None:
                    sources[path] = None
                else:
                    ups[maker.id] = None
                    if maker.id not in done:
                        queue.append(maker)
            for checkpoint in self.after.get(step.id, ()):
                ups[checkpoint.id] = None
                if checkpoint.id not in done:
                    queue.append(checkpoint)
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
        known = self.producer.get(path, UNKNOWN)
        if known is not UNKNOWN:
            return known
        rule = self.explicit.get(path)
        if rule is not None:
            step = self._step(rule, {})
        else:  # a million sources ask: no call when there is no checkpoint
            step = self._in_checkpoint(path) if self._checkpoints else None
        if step is None and rule is None:
            step = self._from_pattern(path, needed_by)
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
            rule = self._derived.get(sid, rule)
            step = self.steps[sid] = new(Step, (sid, rule, wildcards, inputs, outputs))
        return step

    def _inputs_makeable(self, rule: Rule, wildcards: dict[str, str],
                         chain: tuple[str, ...]) -> bool:
        """Whether the rule's inputs for these wildcards exist or can be made."""
        return self._can_make(self._instance(rule, wildcards), chain)

    def _can_make(self, instance: tuple[str, Files, Files], chain: tuple[str, ...]) -> bool:
        """Whether a pattern rule's step can be made: its inputs exist or can be made.

        A pattern rule never applies to a file that would be its own input.
        """
        sid, inputs, outputs = instance
        if self.after and sid in self.after:
            return True  # its inputs are known once the checkpoint it reads has run
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
            templates = self._templates_of(rule)
            outputs = filled(templates[1], wildcards)
            files = new(Files, (outputs, rule.outputs.names))
            if rule.dynamic is None:
                inputs = filled(templates[0], wildcards)
                known = (sid, new(Files, (inputs, rule.inputs.names)), files)
            else:
                known = (sid, self._evaluate(rule, wildcards, sid, files), files)
                inputs = known[1].paths
            self._instances[sid] = known
            if any(p[:1] in "./" for p in inputs + outputs):  # only such a path can leave
                refuse_outside(rule, wildcards, inputs + outputs)
        return known

    def _evaluate(self, rule: Rule, wildcards: dict[str, str], sid: str, outputs: Files
                  ) -> Files:
        """Call a rule's functions for one step (plan/dynamic.py); note the checkpoints
        whose outputs they read, which the step then waits for."""
        found = evaluate(rule, wildcards, outputs)
        if found.rule is not rule:
            self._derived[sid] = found.rule
        after = [c for base in glob_bases(found.globbed) if (c := self._checkpoint(base))]
        refuse_reading_outputs(rule, found.globbed, self.explicit)
        if after:
            self.after[sid] = after
        if found.pending is not None:
            if not after:  # no checkpoint writes what it could not open: a plain mistake
                raise UserError(found.pending.message, where=found.pending.where,
                                hint=found.pending.hint)
            self.unknown[sid] = found.pending
        return found.inputs

    def _checkpoint(self, path: str) -> Step | None:
        """The step of a checkpoint rule that writes `path` (explicitly or by a pattern)."""
        found = checkpoint_making(self._checkpoints, path)
        return self._step(*found) if found else None

    def _in_checkpoint(self, path: str) -> Step | None:
        """The checkpoint whose folder output holds `path`: it makes the file."""
        folders = inside(path) if self._checkpoints else ()
        return next((step for f in folders if (step := self._checkpoint(f))), None)

    def _makeable_path(self, path: str, chain: tuple[str, ...]) -> bool:
        """Whether `path` exists or some rule can make it; a pattern rule is used once a chain."""
        known = self._makeable.get(path)
        if known is not None:
            return known
        result = path in self.explicit or self._exists(path) or bool(
            self._checkpoints and self._in_checkpoint(path)) or any(
            self._inputs_makeable(r, w, (*chain, r.name))
            for p, r in self.patterns
            if r.name not in chain and (w := p.match(path)) is not None
        )
        if not chain or result:
            self._makeable[path] = result
        return result

    def _step(self, rule: Rule, wildcards: dict[str, str]) -> Step:
        if not wildcards and rule.dynamic is None:
            sid, inputs, outputs = rule.name, rule.inputs, rule.outputs
        else:
            sid, inputs, outputs = self._instance(rule, wildcards)
        step = self.steps.get(sid)
        if step is None:
            rule = self._derived.get(sid, rule)
            step = self.steps[sid] = new(Step, (sid, rule, wildcards, inputs, outputs))
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


def _fill(files: Files, wildcards: dict[str, str]) -> Files:
    return Files(filled(templates_of(files), wildcards), files.names)
