"""`makeflow report`: one self-contained HTML page about one build from the run history."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from makeflow.errors import UserError
from makeflow.plan.graph import Graph
from makeflow.store import history
from makeflow.store.history import RunEntry
from makeflow.ui.report.data import ReportData, collect
from makeflow.ui.report.layout import Layout, Node, layout, svg
from makeflow.ui.report.page import metrics_section, page

COLLAPSE_ABOVE = 300  # steps; above this the graph shows one node per rule
STATUS_ORDER = ("failed", "skipped", "ran", "restored", "cut_off", "fresh")


@dataclass
class Written:
    path: Path
    run: int
    steps: int
    size: int
    engine: str
    collapsed: bool


def load_run(root: Path, run_id: int | None) -> tuple[RunEntry, RunEntry | None]:
    """The run asked for (default: the last) and the run before it that had metrics."""
    with history.reading(root) as db:
        run = history.run(db, run_id) if db is not None else None
        if run is None:
            what = f"run {run_id} is not" if run_id is not None else "no build is"
            raise UserError(f"{what} in the run history of {root}",
                            hint="`makeflow runs` lists the builds recorded; build first.")
        previous = None
        if run.metrics:
            for older in history.runs(db, 1000):
                if older.id < run.id and older.metrics:
                    previous = older
                    break
    return run, previous


def write_report(run: RunEntry, graph: Graph | None, out: Path,
                 previous: RunEntry | None = None, use_dot: bool = True) -> Written:
    """Write the report of `run` to `out`; edges come from `graph` (the rules as they are)."""
    rule_of = {} if graph is None else {
        sid: step.rule.name for sid, step in graph.steps.items() if not step.rule.is_alias}
    data = collect(run, _real_upstream(graph), rule_of, previous)
    collapsed = len(data.steps) > COLLAPSE_ABOVE
    placed = _graph(data, collapsed, use_dot)
    note = (f"{len(placed.nodes)} rules, each coloured by the worst outcome of its steps "
            f"(the build had {len(data.steps)} steps; choose a rule to list its steps)"
            if collapsed else f"{len(placed.nodes)} steps")
    note += "; laid out by Graphviz dot" if placed.engine == "dot" else \
        "; laid out by makeflow's bundled layout (install Graphviz for dot's)"
    metrics = metrics_section(run.metrics, previous.metrics if previous else None)
    text = page(data, svg(placed), note, collapsed, metrics)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(out)
    return Written(out, run.id, len(data.steps), len(text.encode()), placed.engine, collapsed)


def _real_upstream(graph: Graph | None) -> dict[str, list[str]]:
    """Upstream steps, looking through aliases (which have no outcome of their own)."""
    if graph is None:
        return {}
    alias = {sid for sid, step in graph.steps.items() if step.rule.is_alias}
    result: dict[str, list[str]] = {}
    for sid, ups in graph.upstream.items():
        if sid in alias:
            continue
        seen, todo, real = set(), list(ups), []
        while todo:
            u = todo.pop()
            if u in seen:
                continue
            seen.add(u)
            if u in alias:
                todo.extend(graph.upstream.get(u, []))
            else:
                real.append(u)
        result[sid] = real
    return result


def _graph(data: ReportData, collapsed: bool, use_dot: bool) -> Layout:
    if not collapsed:
        index = {row["id"]: i for i, row in enumerate(data.steps)}
        nodes = [Node(row["id"], row["id"], row["status"],
                      f"{row['id']}: {row['status']}") for row in data.steps]
        edges = [(index[a], index[b]) for a, b in data.edges]
        return layout(nodes, edges, use_dot)
    by_rule: dict[str, Counter[str]] = {}
    for row in data.steps:
        by_rule.setdefault(row["rule"], Counter())[row["status"]] += 1
    rule_of = {row["id"]: row["rule"] for row in data.steps}
    index = {rule: i for i, rule in enumerate(by_rule)}
    nodes = []
    for rule, counts in by_rule.items():
        worst = next(s for s in STATUS_ORDER if counts[s])
        summary = ", ".join(f"{n} {s}" for s, n in counts.most_common())
        nodes.append(Node(rule, f"{rule} ({sum(counts.values())})", worst,
                          f"{rule}: {summary}"))
    edges = sorted({(index[rule_of[a]], index[rule_of[b]]) for a, b in data.edges
                    if rule_of[a] != rule_of[b]})
    return layout(nodes, edges, use_dot)
