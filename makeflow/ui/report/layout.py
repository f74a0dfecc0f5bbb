"""Placing the graph of a report: Graphviz `dot` when it is installed, a simple layered
layout otherwise; either way the same SVG is drawn from the positions.

`dot -Tplain` gives node centres and edge splines; the fallback puts each node one layer
below its deepest upstream node and orders each layer by the mean position of its
upstream nodes (two sweeps), which reads well for the few hundred nodes a report shows
before it collapses steps into rules.
"""

from __future__ import annotations

import html
import shutil
import subprocess
from dataclasses import dataclass, field

NODE_H = 0.5  # inches, as dot measures
CHAR_W = 0.09
PX = 72  # points per inch: dot's coordinates


@dataclass
class Node:
    key: str
    label: str
    status: str
    title: str = ""
    x: float = 0.0
    y: float = 0.0
    w: float = 1.0
    h: float = NODE_H


@dataclass
class Layout:
    nodes: list[Node]
    edges: list[tuple[int, int, list[tuple[float, float]]]] = field(default_factory=list)
    width: float = 0.0
    height: float = 0.0
    engine: str = "bundled"


def layout(nodes: list[Node], edges: list[tuple[int, int]], use_dot: bool = True) -> Layout:
    """Positions for `nodes` (edges as index pairs, upstream first), in points."""
    for node in nodes:
        node.w = max(0.8, 0.3 + CHAR_W * len(node.label))
    if use_dot and shutil.which("dot") and nodes:
        try:
            return _dot(nodes, edges)
        except (OSError, subprocess.SubprocessError, ValueError, IndexError):
            pass  # a broken Graphviz: the bundled layout still draws the graph
    return _layered(nodes, edges)


def _dot(nodes: list[Node], edges: list[tuple[int, int]]) -> Layout:
    lines = ["digraph G { node [shape=box fixedsize=true]; ranksep=0.4; nodesep=0.25;"]
    lines += [f'n{i} [width={n.w:.2f} height={n.h:.2f} label=""];' for i, n in enumerate(nodes)]
    lines += [f"n{a} -> n{b};" for a, b in edges]
    lines.append("}")
    out = subprocess.run(["dot", "-Tplain"], input="\n".join(lines), capture_output=True,
                         text=True, timeout=120, check=True).stdout
    result = Layout(nodes, engine="dot")
    height = 0.0
    for line in out.splitlines():
        parts = line.split()
        if parts[0] == "graph":
            result.width, height = float(parts[2]) * PX, float(parts[3]) * PX
        elif parts[0] == "node":
            node = nodes[int(parts[1][1:])]
            node.x, node.y = float(parts[2]) * PX, height - float(parts[3]) * PX
        elif parts[0] == "edge":
            count = int(parts[3])
            points = [(float(parts[4 + 2 * k]) * PX, height - float(parts[5 + 2 * k]) * PX)
                      for k in range(count)]
            result.edges.append((int(parts[1][1:]), int(parts[2][1:]), points))
    result.height = height
    for node in nodes:
        node.w, node.h = node.w * PX, node.h * PX
    return result


def _layered(nodes: list[Node], edges: list[tuple[int, int]]) -> Layout:
    ups: list[list[int]] = [[] for _ in nodes]
    for a, b in edges:
        ups[b].append(a)
    depth = [0] * len(nodes)
    for i in _topological(len(nodes), edges):
        depth[i] = max((depth[u] + 1 for u in ups[i]), default=0)
    layers: list[list[int]] = [[] for _ in range(max(depth, default=-1) + 1)]
    for i in range(len(nodes)):
        layers[depth[i]].append(i)
    order = [0.0] * len(nodes)
    for _ in range(2):
        for layer in layers:
            layer.sort(key=lambda i: (sum(order[u] for u in ups[i]) / len(ups[i])
                                      if ups[i] else order[i]))
            for k, i in enumerate(layer):
                order[i] = float(k)
    gap, rank = 0.25 * PX, (NODE_H + 0.45) * PX
    width = 0.0
    for d, layer in enumerate(layers):
        x = gap
        for i in layer:
            node = nodes[i]
            node.w, node.h = node.w * PX, node.h * PX
            node.x, node.y = x + node.w / 2, gap + d * rank + node.h / 2
            x += node.w + gap
        width = max(width, x)
    result = Layout(nodes, width=width, height=gap * 2 + len(layers) * rank)
    for a, b in edges:
        na, nb = nodes[a], nodes[b]
        start, end = (na.x, na.y + na.h / 2), (nb.x, nb.y - nb.h / 2)
        mid = (start[1] + end[1]) / 2
        result.edges.append((a, b, [start, (start[0], mid), (end[0], mid), end]))
    return result


def _topological(count: int, edges: list[tuple[int, int]]) -> list[int]:
    downs: list[list[int]] = [[] for _ in range(count)]
    waiting = [0] * count
    for a, b in edges:
        downs[a].append(b)
        waiting[b] += 1
    ready = [i for i in range(count) if waiting[i] == 0]
    done = []
    while ready:
        i = ready.pop()
        done.append(i)
        for d in downs[i]:
            waiting[d] -= 1
            if waiting[d] == 0:
                ready.append(d)
    return done


def svg(result: Layout) -> str:
    """The graph as inline SVG: each node a `<g class="node STATUS" data-key=...>`."""
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" id="graph-svg" '
             f'viewBox="0 0 {result.width + 8:.0f} {result.height + 8:.0f}" '
             f'width="{result.width + 8:.0f}" height="{result.height + 8:.0f}">',
             '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" '
             'markerWidth="6" markerHeight="6" orient="auto"><path d="M0,0L10,5L0,10z" '
             'fill="#888"/></marker></defs><g transform="translate(4,4)">']
    for _, _, points in result.edges:
        parts.append(f'<path class="edge" d="{_path(points)}" marker-end="url(#arrow)"/>')
    for node in result.nodes:
        x, y = node.x - node.w / 2, node.y - node.h / 2
        title = html.escape(node.title or node.label)
        parts.append(
            f'<g class="node {node.status}" data-key="{html.escape(node.key)}">'
            f'<title>{title}</title><rect x="{x:.1f}" y="{y:.1f}" width="{node.w:.1f}" '
            f'height="{node.h:.1f}" rx="4"/><text x="{node.x:.1f}" y="{node.y + 4:.1f}">'
            f'{html.escape(node.label)}</text></g>')
    parts.append("</g></svg>")
    return "".join(parts)


def _path(points: list[tuple[float, float]]) -> str:
    """dot's edge points are a cubic B-spline: a start and then three per segment."""
    d = f"M{points[0][0]:.1f},{points[0][1]:.1f}"
    rest = points[1:]
    if len(rest) % 3 == 0 and rest:
        for k in range(0, len(rest), 3):
            d += "C" + " ".join(f"{x:.1f},{y:.1f}" for x, y in rest[k:k + 3])
    else:
        d += "".join(f"L{x:.1f},{y:.1f}" for x, y in rest)
    return d
