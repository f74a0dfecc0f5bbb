"""Choosing steps by name on the command line: `--forcerun` and `--until`.

A name is a rule (every step of it in the graph of the targets) or a file (the step that
makes it). What cannot be chosen — a name the graph does not know, a source file no step
makes, an alias for `--forcerun` — is refused with a message saying what to give instead.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from makeflow.errors import UserError
from makeflow.plan.graph import Graph


@dataclass(frozen=True)
class Chosen:
    """The names given to `--forcerun` (rerun these, and what their outputs change) and
    `--until` (build only up to these)."""

    forcerun: tuple[str, ...] = ()
    until: tuple[str, ...] = ()


def choose(graph: Graph, chosen: Chosen) -> tuple[Graph, dict[str, list[str]], tuple[str, ...]]:
    """The graph cut down to `--until`, the steps `--forcerun` forces, and the `--until`
    steps (part of what the no-op snapshot is saved for)."""
    until: tuple[str, ...] = ()
    if chosen.until:
        ids = chosen_steps(graph, chosen.until, "--until", aliases=True)
        graph = up_to(graph, ids)
        until = tuple(sorted(ids))
    forced = chosen_steps(graph, chosen.forcerun, "--forcerun") if chosen.forcerun else set()
    return graph, {sid: ["forced"] for sid in forced}, until


def chosen_steps(graph: Graph, names: Iterable[str], option: str,
                 aliases: bool = False) -> set[str]:
    """The ids of the graph's steps that `names` stand for (see the module docstring)."""
    by_rule: dict[str, list[str]] = {}
    for sid, step in graph.steps.items():
        by_rule.setdefault(step.rule.name, []).append(sid)
    chosen: set[str] = set()
    for name in names:
        found = by_rule.get(name)
        if found is None:
            producer = graph.producer.get(name.removeprefix("./"))
            found = [producer] if producer is not None else None
        if found is None:
            raise _unknown(graph, name, option, by_rule)
        for sid in found:
            if graph.steps[sid].rule.is_alias and not aliases:
                raise UserError(
                    f"{option} {name}: {name} is an alias (a rule with no outputs), so it has "
                    "no step of its own to rerun",
                    hint=f"Name the rules or files it builds instead, or use -B to rerun "
                    f"everything {name} needs.")
        chosen.update(found)
    return chosen


def _unknown(graph: Graph, name: str, option: str, by_rule: dict[str, list[str]]) -> UserError:
    if name in graph.sources:
        return UserError(f"{option} {name}: {name} is a source file that no step makes, so "
                         "there is no step to choose",
                         hint="Name a rule, or a file that a rule makes.")
    known = [*by_rule, *graph.producer]
    import difflib  # only when there is a mistake to suggest a fix for

    close = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
    hint = ("Did you mean " + " or ".join(close) + "?") if close else (
        "Give a rule name or an output file of the steps the targets need "
        "(`makeflow list` shows the rules).")
    return UserError(f"{option} {name}: no rule or output file of this build is called {name}",
                     hint=hint)


def up_to(graph: Graph, chosen: set[str]) -> Graph:
    """The part of the graph that leads to the chosen steps, them included: `--until`."""
    keep = set(chosen)
    for sid in reversed(list(graph.steps)):  # upstream first, so downstream first reversed
        if sid in keep:
            keep.update(graph.upstream[sid])
    steps = {sid: step for sid, step in graph.steps.items() if sid in keep}
    return Graph(steps, {sid: graph.upstream[sid] for sid in steps},
                 {p: s for p, s in graph.producer.items() if s in keep},
                 graph.sources, [s for s in steps if s in chosen])
