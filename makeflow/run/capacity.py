"""Where steps can run and what each place offers, checked before a build starts.

A place is this machine (the local executor, or a cluster of workers on this machine) or
one worker of a cluster. A step whose `resources=` no place can ever hold is a mistake in
the rules, reported before any step runs: otherwise it would wait forever.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterable
from dataclasses import dataclass

from makeflow.define.resources import KINDS, Resources
from makeflow.errors import UserError
from makeflow.plan.graph import Step


@dataclass(frozen=True)
class Capacity:
    """What one place offers; None for a kind it does not declare (a cluster worker
    without `--resources`), which a step that asks for that kind cannot use."""

    name: str
    cpus: float | None
    mem_mb: float | None
    gpus: float | None

    def holds(self, res: Resources) -> bool:
        return all(self._has(kind, getattr(res, kind)) for kind in res.declared)

    def _has(self, kind: str, amount: float) -> bool:
        have = getattr(self, kind)
        return (have is not None and have >= amount) or (have is None and amount == 0)

    def describe(self) -> str:
        offered = [f"{k}={_number(getattr(self, k))}" for k in KINDS
                   if getattr(self, k) is not None]
        return f"{self.name} offers {', '.join(offered) or 'no resources'}"


def _number(value: float | None) -> str:
    assert value is not None
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def machine(jobs: int) -> Capacity:
    """This machine: `-j` CPU slots, its physical memory, and the GPUs it shows."""
    return Capacity(f"this machine (-j {jobs})", jobs, memory_mb(), gpu_count())


def memory_mb() -> float:
    try:
        return float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20)
    except (ValueError, OSError, AttributeError):
        return float("inf")


def gpu_count() -> int:
    """MAKEFLOW_GPUS if set, else the devices CUDA_VISIBLE_DEVICES names, else /dev/nvidiaN."""
    given = os.environ.get("MAKEFLOW_GPUS")
    if given is not None and given.strip().isdigit():
        return int(given)
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return len([d for d in visible.split(",") if d.strip() and d.strip() != "-1"])
    return len([d for d in glob.glob("/dev/nvidia*") if d[len("/dev/nvidia"):].isdigit()])


def check_fits(steps: Iterable[Step], places: list[Capacity]) -> None:
    """Raise a UserError naming the first step (and how many more) that fits no place."""
    homeless = [s for s in steps if not s.rule.resources.plain or s.rule.resources.declared]
    homeless = [s for s in homeless if not any(p.holds(s.rule.resources) for p in places)]
    if not homeless:
        return
    step = homeless[0]
    more = f" (and {len(homeless) - 1} more steps)" if len(homeless) > 1 else ""
    shown = sorted(places, key=lambda p: (p.cpus or 0, p.mem_mb or 0), reverse=True)[:3]
    offers = "; ".join(p.describe() for p in shown) or "no workers"
    raise UserError(
        f"step {step.id} asks for {step.rule.resources.describe()}, which no worker can ever "
        f"hold{more}: {offers}",
        where=step.rule.where,
        hint="Lower the rule's resources=, raise -j, or run on workers that offer more.",
    )
