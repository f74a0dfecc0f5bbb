"""How many steps may run at once: the job slots."""

from __future__ import annotations


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
