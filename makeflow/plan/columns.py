"""Resolving a step's many inputs a column at a time, for the final step of a pipeline
that reads a million outputs.

`Resolver.find` answers one file through a chain of calls and memo tables: a few
microseconds a file, most of a first dry run at a million steps. Here the same answers are
reached column by column: every file's match against every pattern, then every new step's
id and files filled from its rule's templates, then every input's existence, asked of the
folder listing at once. Only the common cases are decided here, a file exactly one pattern
rule without functions matches and can make, and an existing source no pattern matches;
every other file, and every error, is left to `find`, so a build resolves and reports
exactly as it would file by file (tests/test_bulk_resolution.py compares the two).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable

from makeflow.define.patterns import Pattern
from makeflow.define.rules import Files, Rule
from makeflow.errors import UserError
from makeflow.plan.claims import refuse_outside
from makeflow.plan.steps import UNKNOWN, Step, may_change, new, normal, step_id, templates_of
from makeflow.store.listing import Existence

MANY = 256  # inputs of one step from which they are resolved a column at a time
COLUMN = 10_000  # files resolved together: enough to pay for a column, little to hold

Match = tuple[str, re.Match[str]]  # a file and its match against one pattern


class Columns:
    """The column-at-a-time half of the resolver (`graph.Resolver` inherits it)."""

    many = MANY
    column = COLUMN
    # the resolver's tables, shared with `find`
    producer: dict[str, Step | None]
    explicit: dict[str, Rule]
    patterns: list[tuple[Pattern, Rule]]
    steps: dict[str, Step]
    probed: dict[str, bool]
    existence: Existence
    _instances: dict[str, tuple[str, Files, Files]]
    _templates: dict[str, tuple[tuple[str, ...], tuple[str, ...]]]
    _makeable: dict[str, bool]
    _checkpoints: list[Rule]
    find: Callable[[str, Step | None], Step | None]
    _makeable_path: Callable[[str, tuple[str, ...]], bool]

    def find_many(self, paths: tuple[str, ...], needed_by: Step) -> list[Step | None]:
        """`find` for each of a step's many inputs, with the same answers: what a column
        can decide is entered in `producer` first, and `find` does the rest in order, so
        the first error it meets is the one a file-by-file resolution reports."""
        producer = self.producer
        if not self._checkpoints and all(r.dynamic is None for _, r in self.patterns):
            with contextlib.suppress(UserError):  # `find` raises it, in its place
                self._settle_below(list(paths))
        return [step if (step := producer.get(p, UNKNOWN)) is not UNKNOWN
                else self.find(p, needed_by) for p in paths]

    def _settle_below(self, paths: list[str]) -> None:
        """Settle `paths`, then the inputs of the steps found for them, and so on down
        while there are many: every step found will be followed anyway, and a column of
        a million sources costs less than a million single questions."""
        producer, explicit = self.producer, self.explicit
        while len(paths) >= self.many:
            todo = [p for p in dict.fromkeys(paths) if p not in producer and p not in explicit]
            if not todo:
                return
            made = [step for start in range(0, len(todo), self.column)
                    for step in self._settle(todo[start:start + self.column])]
            paths = [p for step in made for p in step.inputs.paths]

    def _settle(self, paths: list[str]) -> list[Step]:
        """Enter in `producer` the step of each file that exactly one pattern rule
        matches and can make, and None for each existing file that none matches; return
        the new steps."""
        matched = [[p.regex.fullmatch(path) for path in paths] for p, _ in self.patterns]
        if len(matched) == 1:  # the common case, without a tuple per file
            pairs = list(zip(paths, matched[0], strict=True))
            by_pattern = [[(path, m) for path, m in pairs if m is not None]]
            unmatched = [path for path, m in pairs if m is None]
        else:
            by_pattern, unmatched = _sort_matches(paths, matched)
        producer = self.producer
        for path, there in zip(unmatched, self._exist_many(unmatched), strict=True):
            if there:
                producer[path] = None
        return [step for (pattern, rule), found in zip(self.patterns, by_pattern, strict=True)
                if found for step in self._make(pattern, rule, found)]

    def _exist_many(self, paths: list[str]) -> list[bool]:
        """`_exists` for each of `paths`, kept in `probed` as it is."""
        probed = self.probed
        new_paths = [p for p in paths if p not in probed]
        if new_paths:
            probed.update(zip(new_paths, self.existence.many(new_paths), strict=True))
        return [probed[p] for p in paths]

    def _make(self, pattern: Pattern, rule: Rule, found: list[Match]) -> list[Step]:
        """`_from_pattern` for the files `rule` alone matches: the steps' wildcards and
        ids, their files filled from the rule's templates, then whether their inputs can
        be made. A step made before, for another of its outputs, is left to `find`."""
        made = [m.groupdict() for _, m in found]
        if len(pattern.names) == 1:
            name, = pattern.names
            sids = [f"{rule.name}[{name}={w[name]}]" for w in made]
        else:
            sids = [step_id(rule.name, w) for w in made]
        t_in, t_out = self._templates_of(rule)
        keep = self._unmade(sids, len(t_out))
        if len(t_out) == 1 and t_out[0] == pattern.template:  # the file is the one output
            outputs = [(found[i][0],) for i in keep]
        else:
            outputs = [tuple([t.format_map(made[i]) for t in t_out]) for i in keep]
        inputs = [tuple([t.format_map(made[i]) for t in t_in]) for i in keep]
        if may_change(outputs) or may_change(inputs):  # then as `_instance` does, per path
            outputs = [tuple(map(normal, files)) for files in outputs]
            inputs = [tuple(map(normal, files)) for files in inputs]
            for i, ins, outs in zip(keep, inputs, outputs, strict=True):
                if any(p[:1] in "./" for p in ins + outs):
                    refuse_outside(rule, made[i], ins + outs)
        usable = self._can_make_many(rule, inputs, outputs)
        producer, steps = self.producer, self.steps
        in_names, out_names = rule.inputs.names, rule.outputs.names
        steps_made = []
        for i, ins, outs, ok in zip(keep, inputs, outputs, usable, strict=True):
            if ok:
                sid = sids[i]
                producer[found[i][0]] = steps[sid] = step = new(Step, (
                    sid, rule, made[i], new(Files, (ins, in_names)),
                    new(Files, (outs, out_names))))
                steps_made.append(step)
        return steps_made

    def _unmade(self, sids: list[str], outputs: int) -> range | list[int]:
        """The positions of the step ids not made before (nor twice in `sids`)."""
        steps, instances = self.steps, self._instances
        if outputs == 1 and not instances and steps.keys().isdisjoint(sids):
            return range(len(sids))  # one output each: distinct files, distinct steps
        seen: set[str] = set()
        return [i for i, sid in enumerate(sids)
                if not (sid in steps or sid in instances or sid in seen or seen.add(sid))]

    def _templates_of(self, rule: Rule) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """A pattern rule's input and output templates, made once."""
        templates = self._templates.get(rule.name)
        if templates is None:
            templates = self._templates[rule.name] = (templates_of(rule.inputs),
                                                      templates_of(rule.outputs))
        return templates

    def _can_make_many(self, rule: Rule, inputs: list[tuple[str, ...]],
                       outputs: list[tuple[str, ...]]) -> list[bool]:
        """`_can_make` for many steps of one rule: none reads its own output, and each
        input exists or can be made. Existence is asked for all the inputs at once."""
        makeable, explicit = self._makeable, self.explicit
        flat = dict.fromkeys(p for ins in inputs for p in ins)
        ask = [p for p in flat if not makeable.get(p) and p not in explicit]
        there = dict(zip(ask, self._exist_many(ask), strict=True))
        chain = (rule.name,)

        makeable_path = self._makeable_path
        if all(len(ins) == 1 for ins in inputs) and all(len(outs) == 1 for outs in outputs):
            return [i != o and (there.get(i, True) or makeable_path(i, chain))
                    for (i,), (o,) in zip(inputs, outputs, strict=True)]

        def can(path: str) -> bool:
            return there.get(path, True) or makeable_path(path, chain)

        return [set(ins).isdisjoint(outs) and all(map(can, ins))
                for ins, outs in zip(inputs, outputs, strict=True)]


def _sort_matches(paths: list[str], matched: list[list[re.Match[str] | None]]
                  ) -> tuple[list[list[Match]], list[str]]:
    """Per pattern, the files it alone matches; and the files none matches. A file two
    patterns match is in neither: `find` chooses between them."""
    by_pattern: list[list[Match]] = [[] for _ in matched]
    unmatched: list[str] = []
    rows = zip(paths, zip(*matched, strict=True), strict=True) if matched else \
        ((path, ()) for path in paths)
    for path, hits in rows:
        found = [(i, m) for i, m in enumerate(hits) if m is not None]
        if not found:
            unmatched.append(path)
        elif len(found) == 1:
            by_pattern[found[0][0]].append((path, found[0][1]))
    return by_pattern, unmatched
