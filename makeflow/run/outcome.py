"""What a build is asked to do, what it did, and where each step's log goes.

Kept apart from the scheduler, which runs steps, so that commands that run none (a no-op
build, `status`, `logs`) do not import the machinery of threads and processes.
"""

from __future__ import annotations

import os
import re
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
    cache: bool = True  # restore stale steps from the run cache, save what runs
    remote: str | None = None  # the shared cache's URL; None: MAKEFLOW_REMOTE or the setting
    push: bool | None = None  # upload what this build made; None: the `push` setting
    restore_only: bool = False  # `pull`: restore what the caches have, run nothing
    # told of big files' transfers (name, sending, done, total); default: the reporter's
    progress: Callable[[str, bool, int, int], None] | None = None
    forcerun: tuple[str, ...] = ()  # rules or files whose steps run, fresh or not
    until: tuple[str, ...] = ()  # rules or files: build only the steps leading to them
    touch: bool = False  # record the existing outputs of stale steps as fresh, run nothing
    shared_fs: bool | None = None  # False: Dask workers share no disk; None: the setting
    download: str | None = None  # "targets" or "all" (without a shared disk); None: setting


@dataclass
class BuildResult:
    """What a build did, by step id; `failed` maps a step to its one-line reason."""

    ran: list[str] = field(default_factory=list)
    restored: list[str] = field(default_factory=list)  # from the run cache instead of run
    fresh: list[str] = field(default_factory=list)
    cut_off: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    not_run: list[str] = field(default_factory=list)
    touched: list[str] = field(default_factory=list)  # `--touch`: recorded, not run
    skipped: dict[str, str] = field(default_factory=dict)  # by `Skip`, or below one: why
    # temporary files whose readers so far have run, kept while a checkpoint may still call
    # for more of them (run/temp.py)
    temp_held: list[str] = field(default_factory=list)
    retried: dict[str, int] = field(default_factory=dict)
    remote_error: str | None = None  # the remote cache failed (the build went on without)
    plan: Plan | None = None
    seconds: float = 0.0
    run_id: int = 0  # in the run history; 0 for a dry run

    @property
    def ok(self) -> bool:
        return not self.failed


UNSAFE = re.compile(r"[^a-zA-Z0-9\-.=,]")  # each character a log's name may not hold
LONGEST = 160  # characters of a log's name before its digest


def _safe_name(step_id: str) -> str:
    """A file name for the step's log, one per step: the id with every other character as
    `_`, plus a digest of the id when that lost anything (`up[n=a b]` and `up[n=a_b]`
    both read `up_n=a_b_`), so no two steps share a log."""
    safe = UNSAFE.sub("_", step_id)
    if safe == step_id and len(safe) <= LONGEST:
        return safe
    from makeflow.store.hashing import hash_text

    return f"{safe[:LONGEST]}-{hash_text(step_id)[:16]}"


def log_path(step_id: str) -> str:
    return os.path.join(STATE_DIR, "logs", _safe_name(step_id) + ".log")
