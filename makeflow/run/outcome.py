"""What a build is asked to do, what it did, and where each step's log goes.

Kept apart from the scheduler, which runs steps, so that commands that run none (a no-op
build, `status`, `logs`) do not import the machinery of threads and processes.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from makeflow.store.state import STATE_DIR

if TYPE_CHECKING:
    from makeflow.plan.staleness import Plan


@dataclass(frozen=True)
class BuildOptions:
    jobs: int = os.cpu_count() or 1
    dry_run: bool = False
    force: bool = False
    keep_going: bool = False
    wait: bool = True  # for another build in the same folder to finish
    clock: Callable[[], float] = time.time  # injectable, for max_age and schedules in tests


@dataclass
class BuildResult:
    """What a build did, by step id; `failed` maps a step to its one-line reason."""

    ran: list[str] = field(default_factory=list)
    fresh: list[str] = field(default_factory=list)
    cut_off: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    not_run: list[str] = field(default_factory=list)
    retried: dict[str, int] = field(default_factory=dict)
    plan: Plan | None = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failed


def _safe_name(step_id: str) -> str:
    return "".join(c if c.isalnum() or c in "-_.=," else "_" for c in step_id)


def log_path(step_id: str) -> str:
    return os.path.join(STATE_DIR, "logs", _safe_name(step_id) + ".log")
