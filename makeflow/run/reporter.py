"""The interface a build reports through: step started, finished, failed, retrying, warnings.

The run stage calls it; the shells above (the plain and live views, the watcher) implement
it. Keeping it here lets the scheduler talk to a screen without importing one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from makeflow.plan.graph import Step
    from makeflow.plan.staleness import Plan
    from makeflow.run.executors import Executor, JobResult
    from makeflow.run.outcome import BuildResult


class Reporter(Protocol):
    def warning(self, text: str) -> None: ...
    def planned(self, plan: Plan) -> None: ...
    def started(self, plan: Plan) -> None: ...
    def step_started(self, step: Step, why: list[str]) -> None: ...
    def step_cut_off(self, step: Step) -> None: ...
    def step_restored(self, step: Step) -> None: ...
    def step_finished(self, step: Step, result: JobResult) -> None: ...
    def step_failed(self, step: Step, error: str, log: str) -> None: ...
    def step_retrying(self, step: Step, error: str, attempt: int, retries: int,
                      delay: float) -> None: ...
    def finished(self, result: BuildResult) -> None: ...
    def transfer(self, name: str, sending: bool, done: int, total: int) -> None:
        """A big file moving to (`sending`) or from the remote cache: `done` of `total`
        bytes so far; called from transfer threads, at most twice a second per file, and
        once more when it is done. Optional: a reporter without it shows none."""
    def stopped(self) -> None:
        """The build ended with an error or a signal, before `finished`: put the screen
        back as it was (a live view shows the cursor again)."""


def say_where(executor: Executor, reporter: Reporter) -> None:
    """Tell a reporter that can show it where the steps run (a cluster's workers)."""
    describe, show = getattr(executor, "describe", None), getattr(reporter, "running_on", None)
    if describe is not None and show is not None:
        show(describe())
