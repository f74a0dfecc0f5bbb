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
from makeflow.plan.temp import temp_paths, wanted
from makeflow.store import fs


class TempFiles:
    """How many readers each temporary file still waits for, in one build."""

    def __init__(self, graph: Graph, waiting: set[str]):
        """`waiting`: the steps that will run or be checked again in this build."""
        self.readers: dict[str, int] = {}
        self.by_step: dict[str, list[str]] = {}
        asked = wanted(graph)
        temp = {p for step in graph.steps.values() for p in temp_paths(step) if p not in asked}
        if not temp:
            return
        for sid in waiting:
            for path in dict.fromkeys(graph.steps[sid].inputs.paths):
                if path in temp:
                    self.readers[path] = self.readers.get(path, 0) + 1
                    self.by_step.setdefault(sid, []).append(path)

    def finished(self, sid: str) -> list[str]:
        """The step is done: the temporary files it was the last reader of, to delete."""
        due = []
        for path in self.by_step.pop(sid, ()):
            self.readers[path] -= 1
            if self.readers[path] == 0 and os.path.lexists(path):
                due.append(path)
        return due


def remove(path: str) -> str:
    """Delete a temporary file; '' or a warning saying why it could not be."""
    try:
        fs.remove(path)
    except OSError as exc:
        return f"could not delete the temporary file {path}: {exc.strerror or exc}"
    return ""
