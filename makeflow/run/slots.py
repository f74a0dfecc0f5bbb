"""How many steps may run at once: the job slots."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from makeflow.define.resources import DEFAULT, Resources
from makeflow.plan.graph import Step
from makeflow.run.capacity import check_fits, machine


class JobSlots:
    """The `jobs` slots: at most `jobs` CPUs' worth of steps run at once.

    A plain step (one CPU, no memory or GPUs asked) of a kind the executor queues itself
    (Python steps locally, every step on a cluster) may be submitted up to `depth` per
    slot, for the executor to send in batches; at most `jobs` of them run at once, so
    together they hold as many slots as are in flight, `jobs` at most. Any other plain
    step holds one slot while it runs. A step with `resources=` holds `cpus` slots, and
    its memory and GPUs count against `memory_mb` and `gpus` (None: not counted here).
    That is admission, not a limit: makeflow never measures what a step really uses.
    """

    def __init__(self, jobs: int, depth: int, shell_depth: int = 1,
                 memory_mb: float | None = None, gpus: float | None = None):
        self.jobs = jobs
        self.depth = {True: max(1, depth), False: max(1, shell_depth)}  # keyed by "python"
        self.plain = {True: 0, False: 0}
        self.cpus = self.mem_mb = self.gpus_used = 0.0
        self.memory_mb, self.gpus = memory_mb, gpus

    @property
    def shell(self) -> int:
        return self.plain[False]

    @property
    def python(self) -> int:
        return self.plain[True]

    def _busy(self, extra_queued: int = 0) -> float:
        """Slots held now: steps with resources, plain steps that run, queued ones up to jobs."""
        queued = sum(n for kind, n in self.plain.items() if self.depth[kind] > 1)
        direct = sum(n for kind, n in self.plain.items() if self.depth[kind] == 1)
        return self.cpus + direct + min(queued + extra_queued, self.jobs)

    def free(self, python: bool, res: Resources = DEFAULT) -> bool:
        if res.plain:
            if self.depth[python] > 1:
                return (self.plain[python] < self.jobs * self.depth[python]
                        and self._busy(1) <= self.jobs)
            return self._busy() + 1 <= self.jobs
        if self._busy() == 0:
            return True  # alone it always fits: the build checked it against the machine
        return (self._busy() + res.cpus <= self.jobs
                and (self.memory_mb is None or self.mem_mb + res.mem_mb <= self.memory_mb)
                and (self.gpus is None or self.gpus_used + res.gpus <= self.gpus))

    def take(self, python: bool, res: Resources = DEFAULT) -> None:
        self._count(python, res, 1)

    def give_back(self, python: bool, res: Resources = DEFAULT) -> None:
        self._count(python, res, -1)

    def _count(self, python: bool, res: Resources, sign: int) -> None:
        if res.plain:
            self.plain[python] += sign
        else:
            self.cpus += sign * res.cpus
            self.mem_mb += sign * res.mem_mb
            self.gpus_used += sign * res.gpus


def slots_for(executor: Any, jobs: int, steps: Iterable[Step]) -> JobSlots:
    """The job slots for a build on `executor`, once every step is known to fit somewhere.

    An executor may say where it runs steps (`places()`), how many steps it runs at once
    (`jobs`), which limits makeflow must count itself (`limits`: None when the cluster
    admits by itself) and how deep each kind of step may queue (`depth`, `shell_depth`).
    """
    jobs = getattr(executor, "jobs", jobs)
    places = executor.places() if hasattr(executor, "places") else [machine(jobs)]
    check_fits(steps, places)
    limits = getattr(executor, "limits", places[0] if len(places) == 1 else None)
    return JobSlots(jobs, getattr(executor, "depth", 1), getattr(executor, "shell_depth", 1),
                    limits.mem_mb if limits else None, limits.gpus if limits else None)
