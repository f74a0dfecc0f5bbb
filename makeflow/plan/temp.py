"""Temporary outputs (`temp=`) as the planner sees them.

A temporary file is deleted once the steps of a build that read it have run (run/temp.py
does that). Its absence must not make anything stale: while it is missing, the digest its
producer's record holds stands in for it, so the producer and the steps that read it
are judged as if it were there. It is made again only when a step that reads it has to
run: its producer is then forced, with the reason, and the plan is made again, since what
the producer feeds may now run too.
"""

from __future__ import annotations

from collections.abc import Callable

from makeflow.plan.graph import Graph, Step
from makeflow.plan.staleness import Digests, Plan
from makeflow.store.state import StateStore


def temp_paths(step: Step) -> list[str]:
    """The step's temporary outputs: its rule's `temp=` files, with its wildcards filled."""
    marked = step.rule.temp
    if not marked:
        return []
    return [step.outputs.paths[i] for i, p in enumerate(step.rule.outputs.paths) if p in marked]


def wanted(graph: Graph) -> set[str]:
    """The files a build was asked for, temporary or not: its targets, the outputs of the
    steps named as targets, and what aliases (`rule("all", inputs=[...])`) list."""
    asked = set(graph.targets)
    for sid, step in graph.steps.items():
        if step.rule.is_alias:
            asked.update(step.inputs.paths)
        elif sid in asked:
            asked.update(step.outputs.paths)
    return asked


def stand_ins(graph: Graph, state: StateStore, digests: Digests) -> dict[str, str]:
    """Each missing temporary file with the digest its producer last made (from the store,
    or from makeflow.lock in a fresh clone); files never made have none, and neither
    has a file the build was asked for (it is made, and kept)."""
    found: dict[str, str] = {}
    asked = wanted(graph)
    for sid, step in graph.steps.items():
        for path in temp_paths(step):
            if digests.stats.get(path) is not None or path in asked:
                continue
            digest = _recorded(sid, path, state, digests)
            if digest:
                found[path] = digest
    return found


def _recorded(sid: str, path: str, state: StateStore, digests: Digests) -> str | None:
    record = state.record(sid)
    if record is not None:
        return None if record.moved or record.skipped else record.outputs.get(path)
    entry = digests.lock.entry(sid) if digests.lock is not None else None
    try:
        return str(entry["outputs"][path]["digest"]) if entry else None
    except (KeyError, TypeError):
        return None


def with_temp_needed(plan: Plan, missing: dict[str, str],
                     replan: Callable[[dict[str, list[str]]], Plan]) -> Plan:
    """The plan, with the producers of missing temporary files that a stale step reads
    forced to run first; planned again until no new producer is needed."""
    forced = dict(plan.forced)
    while True:
        graph = plan.graph
        needed: dict[str, list[str]] = {}
        for sid in plan.stale:
            for path in graph.steps[sid].inputs.paths:
                producer = graph.producer.get(path)
                if path in missing and producer is not None and producer not in forced:
                    needed.setdefault(producer, [f"temp output {path} is needed by {sid}"])
        if not needed:
            return plan
        forced.update(needed)
        plan = replan(forced)
