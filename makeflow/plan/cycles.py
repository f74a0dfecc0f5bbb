"""Cycles in the graph: the order steps run in (upstream first), and a loop, when the
rules make one, printed as `a -> file -> b -> file -> a`."""

from __future__ import annotations

import itertools
from typing import Any

from makeflow.errors import UserError


class Cycle(Exception):
    """A loop of steps, each reading from the next and the last from the first."""

    def __init__(self, loop: list[str]):
        self.loop = loop


def make_order(roots: list[str], upstream: dict[str, list[str]]) -> list[str]:
    """Upstream first, in the order inputs are listed (as make goes), found depth first.

    A step met again while its own inputs are still being followed closes a cycle, raised
    as `Cycle` for the resolver to break or report.
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
                raise Cycle(path[path.index(nxt):])
            if not upstream[nxt]:  # a step that reads no other step: placed at once
                placed.add(nxt)
                order.append(nxt)
                continue
            stack.append((nxt, iter(upstream[nxt])))
            on_path.add(nxt)
    return order


def cycle_error(loop: list[str], steps: dict[str, Any]) -> None:
    """Raise for `loop`, in which each step reads from the next (the last from the first)."""
    again = loop[0]
    cycle = [again, *reversed(loop[1:]), again]  # each step feeds the next
    raise UserError(
        "the rules form a cycle: " + _cycle_path(cycle, steps),
        where=steps[again].rule.where,
        hint="A step cannot depend, directly or not, on its own output.",
    )


def _cycle_path(cycle: list[str], steps: dict[str, Any]) -> str:
    """`a -> file -> b -> file -> a`: each step, then the file the next one reads from it."""
    parts = [cycle[0]]
    for before, after in itertools.pairwise(cycle):
        made = set(steps[before].outputs.paths)
        through = next((p for p in steps[after].inputs.paths if p in made), None)
        if through:
            parts.append(through)
        parts.append(after)
    return " -> ".join(parts)
