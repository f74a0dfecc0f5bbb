"""`makeflow graph`: the steps and files of a graph as text, Graphviz dot or Mermaid."""

from __future__ import annotations

import json

from makeflow.plan.graph import Graph
from makeflow.plan.staleness import Plan


def render(plan: Plan, fmt: str) -> str:
    return {"text": _text, "dot": _dot, "mermaid": _mermaid}[fmt](plan.graph, plan)


def _state(plan: Plan, sid: str) -> str:
    """A step's state as the graph shows it: stale, fresh, or skipped with the reason."""
    if sid in plan.skipped:
        return f"skipped: {plan.skipped[sid]}"
    return "stale" if plan.is_stale(sid) else "fresh"


def _notes(plan: Plan) -> dict[str, str]:
    """What is not known yet: a stale checkpoint decides the steps below it, which are
    shown as its last output calls for them (none, before it has ever run)."""
    notes = {}
    for checkpoint, below in plan.waiting.items():
        notes[checkpoint] = "a checkpoint: the steps below it are known once it has run"
        for sid in below:
            notes.setdefault(sid, f"not known until checkpoint {checkpoint} has run")
    return notes


def _read_from(graph: Graph, sid: str) -> list[str]:
    """The steps `sid` waits for though no input names their files: checkpoints whose
    output its functions read."""
    inputs = set(graph.steps[sid].inputs.paths)
    return [up for up in graph.upstream[sid]
            if inputs.isdisjoint(graph.steps[up].outputs.paths)]


def _text(graph: Graph, plan: Plan) -> str:
    lines = []
    notes = _notes(plan)
    for sid, step in graph.steps.items():
        note = f" ({notes[sid]})" if sid in notes else ""
        lines.append(f"{sid} [{_state(plan, sid)}]{note}")
        for path in step.inputs.paths:
            lines.append(f"  <- {path}")
        for up in _read_from(graph, sid):
            lines.append(f"  <- {up} (its functions read what {up} wrote)")
        for path in step.outputs.paths:
            lines.append(f"  -> {path}")
    return "\n".join(lines)


def _dot(graph: Graph, plan: Plan) -> str:
    lines = ["digraph makeflow {", "  rankdir=LR;"]
    notes = _notes(plan)
    for sid, step in graph.steps.items():
        skipped = sid in plan.skipped
        color = "lightgrey" if skipped else "orange" if plan.is_stale(sid) else "palegreen"
        style = "filled,dashed" if skipped or sid in notes else "filled"
        label = sid + ("\n(skipped)" if skipped else f"\n({notes[sid]})" if sid in notes
                       else "")
        lines.append(f"  {json.dumps('step:' + sid)} [label={json.dumps(label)}, shape=box, "
                     f'style="{style}", fillcolor={color}];')
        for path in step.inputs.paths:
            lines.append(f"  {json.dumps('file:' + path)} -> {json.dumps('step:' + sid)};")
        for path in step.outputs.paths:
            lines.append(f"  {json.dumps('step:' + sid)} -> {json.dumps('file:' + path)};")
        for up in _read_from(graph, sid):
            lines.append(f"  {json.dumps('step:' + up)} -> {json.dumps('step:' + sid)} "
                         "[style=dashed];")
    files = {p for s in graph.steps.values() for p in (*s.inputs.paths, *s.outputs.paths)}
    for path in sorted(files):
        lines.append(f"  {json.dumps('file:' + path)} [label={json.dumps(path)}, shape=note];")
    lines.append("}")
    return "\n".join(lines)


def _mermaid(graph: Graph, plan: Plan) -> str:
    ids: dict[str, str] = {}

    def node(key: str) -> str:
        return ids.setdefault(key, f"n{len(ids)}")

    lines = ["flowchart LR"]
    notes = _notes(plan)
    for sid, step in graph.steps.items():
        skipped = sid in plan.skipped
        label = sid + (" (skipped)" if skipped else f" ({notes[sid]})" if sid in notes
                       else "")
        lines.append(f"  {node('s:' + sid)}[{_label(label)}]")
        for path in step.inputs.paths:
            lines.append(f"  {node('f:' + path)}([{_label(path)}]) --> {node('s:' + sid)}")
        for path in step.outputs.paths:
            lines.append(f"  {node('s:' + sid)} --> {node('f:' + path)}([{_label(path)}])")
        for up in _read_from(graph, sid):
            lines.append(f"  {node('s:' + up)} -.-> {node('s:' + sid)}")
        if skipped:
            lines.append(f"  style {node('s:' + sid)} fill:#ddd,stroke-dasharray:5 5")
        elif plan.is_stale(sid):
            dashed = ",stroke-dasharray:5 5" if sid in notes else ""
            lines.append(f"  style {node('s:' + sid)} fill:#f96{dashed}")
    return "\n".join(lines)


def _label(text: str) -> str:
    return '"' + text.replace('"', "#quot;") + '"'
