"""`makeflow graph`: the steps and files of a graph as text, Graphviz dot or Mermaid."""

from __future__ import annotations

import json

from makeflow.plan.graph import Graph
from makeflow.plan.staleness import Plan


def render(plan: Plan, fmt: str) -> str:
    return {"text": _text, "dot": _dot, "mermaid": _mermaid}[fmt](plan.graph, plan)


def _text(graph: Graph, plan: Plan) -> str:
    lines = []
    for sid, step in graph.steps.items():
        mark = "stale" if plan.is_stale(sid) else "fresh"
        lines.append(f"{sid} [{mark}]")
        for path in step.inputs.paths:
            lines.append(f"  <- {path}")
        for path in step.outputs.paths:
            lines.append(f"  -> {path}")
    return "\n".join(lines)


def _dot(graph: Graph, plan: Plan) -> str:
    lines = ["digraph makeflow {", "  rankdir=LR;"]
    for sid, step in graph.steps.items():
        color = "orange" if plan.is_stale(sid) else "palegreen"
        lines.append(f"  {json.dumps('step:' + sid)} [label={json.dumps(sid)}, shape=box, "
                     f"style=filled, fillcolor={color}];")
        for path in step.inputs.paths:
            lines.append(f"  {json.dumps('file:' + path)} -> {json.dumps('step:' + sid)};")
        for path in step.outputs.paths:
            lines.append(f"  {json.dumps('step:' + sid)} -> {json.dumps('file:' + path)};")
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
    for sid, step in graph.steps.items():
        lines.append(f"  {node('s:' + sid)}[{_label(sid)}]")
        for path in step.inputs.paths:
            lines.append(f"  {node('f:' + path)}([{_label(path)}]) --> {node('s:' + sid)}")
        for path in step.outputs.paths:
            lines.append(f"  {node('s:' + sid)} --> {node('f:' + path)}([{_label(path)}])")
        if plan.is_stale(sid):
            lines.append(f"  style {node('s:' + sid)} fill:#f96")
    return "\n".join(lines)


def _label(text: str) -> str:
    return '"' + text.replace('"', "#quot;") + '"'
