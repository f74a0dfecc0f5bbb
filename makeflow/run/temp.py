"""Deleting temporary outputs (`temp=`) as a build goes.

A temporary file is deleted once every step of this build that reads it has finished
(ran, was cut off, restored or skipped); a reader that fails, or a build that stops,
keeps it for next time. A file the build was asked for (a target, an output of a step
named as one, a file an alias lists) is kept, and so is one no step of this build reads.
What the planner does while it is missing is in plan/temp.py.
"""

from __future__ import annotations

import os

from makeflow.plan.graph import Graph
from makeflow.plan.staleness import Digests
from makeflow.plan.temp import temp_paths, wanted
from makeflow.store import fs


class TempFiles:
    """How many readers each temporary file still waits for, in one build.

    A build that grows (run/growing.py) runs in parts, and the steps a checkpoint calls for
    may read a temporary file of an earlier part: a part before a checkpoint holds the
    files that fall due in `held` instead of deleting them, and the next part deletes
    those that none of its own steps reads before it starts (`earlier_due`).
    """

    def __init__(self, graph: Graph, waiting: set[str], held: list[str] | None = None,
                 hold: bool = False):
        """`waiting`: the steps that will run or be checked again in this part; `held`:
        files an earlier part held, kept in this list while `hold` is set."""
        self.readers: dict[str, int] = {}
        self.by_step: dict[str, list[str]] = {}
        self.held = held if held is not None else []
        self.hold = hold
        asked = wanted(graph)
        temp = {p for step in graph.steps.values() for p in temp_paths(step) if p not in asked}
        for sid in waiting if temp else ():
            for path in dict.fromkeys(graph.steps[sid].inputs.paths):
                if path in temp:
                    self.readers[path] = self.readers.get(path, 0) + 1
                    self.by_step.setdefault(sid, []).append(path)

    def earlier_due(self) -> list[str]:
        """Files an earlier part held that no step of this part reads: due now, unless
        this part is before a checkpoint too."""
        if self.hold:
            return []
        due = [p for p in dict.fromkeys(self.held)
               if p not in self.readers and os.path.lexists(p)]
        self.held.clear()
        return due

    def finished(self, sid: str) -> list[str]:
        """The step is done: the temporary files it was the last reader of, to delete."""
        due = []
        for path in self.by_step.pop(sid, ()):
            self.readers[path] -= 1
            if self.readers[path] == 0 and os.path.lexists(path):
                due.append(path)
        if self.hold:
            self.held.extend(due)
            return []
        return due


def release(held: list[str], digests: Digests) -> list[str]:
    """Delete the files an earlier part held when the last part runs nothing (its steps
    all came out fresh); the warnings of those that could not be deleted."""
    due = [p for p in dict.fromkeys(held) if os.path.lexists(p)]
    held.clear()
    return delete(due, digests)


def delete(paths: list[str], digests: Digests) -> list[str]:
    """Delete temporary files, their last digests standing in for them from now on; the
    warnings of those that could not be deleted."""
    warnings = []
    for path in paths:
        digests.removed_temp(path)
        warnings.append(remove(path))
    return [w for w in warnings if w]


def remove(path: str) -> str:
    """Delete a temporary file; '' or a warning saying why it could not be."""
    try:
        fs.remove(path)
    except OSError as exc:
        return f"could not delete the temporary file {path}: {exc.strerror or exc}"
    return ""
