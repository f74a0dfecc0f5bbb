"""How many steps may run at once (job slots), and the staging folders they write into."""

from __future__ import annotations

import os

from makeflow.run.landing import STAGE


class JobSlots:
    """The `jobs` slots: at most `jobs` steps run at once.

    A shell step holds a slot while it runs. Python steps may be submitted up to `depth`
    per slot, for the executor to send in batches, but at most `jobs` of them run at
    once: together they hold as many slots as are in flight, `jobs` at most.
    """

    def __init__(self, jobs: int, depth: int):
        self.jobs, self.depth = jobs, max(1, depth)
        self.shell = self.python = 0

    def free(self, python: bool) -> bool:
        if python:
            return (self.python < self.jobs * self.depth
                    and self.shell + min(self.python + 1, self.jobs) <= self.jobs)
        return self.shell + min(self.python, self.jobs) < self.jobs

    def take(self, python: bool) -> None:
        if python:
            self.python += 1
        else:
            self.shell += 1

    def give_back(self, python: bool) -> None:
        if python:
            self.python -= 1
        else:
            self.shell -= 1


class StageSlots:
    """Staging folders, one per running step, reused once its outputs moved into place.

    Making and removing a folder for every step costs two system calls per step; a build
    needs only as many slots as steps run at once.
    """

    def __init__(self) -> None:
        self.free: list[str] = []
        self.used: dict[str, str] = {}
        self.count = 0

    def take(self, step_id: str) -> str:
        if self.free:
            slot = self.free.pop()
        else:
            self.count += 1
            slot = os.path.join(STAGE, str(self.count))
            os.makedirs(slot, exist_ok=True)
        self.used[step_id] = slot
        return slot

    def give_back(self, step_id: str) -> None:
        slot = self.used.pop(step_id, None)
        if slot is not None:
            self.free.append(slot)
