"""Executors run jobs and nothing else: the build decides what runs and records results.

A job is plain, picklable data, so the same job can run in a local thread, a local worker
process, or on a cluster. Any executor offers `submit(job) -> Future[JobResult]` and
`shutdown(kill)`.
"""

from __future__ import annotations

from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Protocol

from ..rules import Files


@dataclass(frozen=True)
class Job:
    """One step to run: a shell command, or a rule's function by name, writing to `log`.

    `outputs` are the paths the step must write (staging paths when the rule stages).
    """

    step_id: str
    rule: str
    log: str
    command: str | None = None
    inputs: Files = field(default_factory=Files)
    outputs: Files = field(default_factory=Files)
    params: dict[str, Any] = field(default_factory=dict)
    wildcards: dict[str, str] = field(default_factory=dict)
    timeout: float | None = None
    attempt: int = 1  # later attempts append to the log of the earlier ones

    def open_log(self) -> BinaryIO:
        """The step's log, opened for this attempt, with a header line saying which it is."""
        log = open(self.log, "ab" if self.attempt > 1 else "wb")  # noqa: SIM115
        if self.attempt > 1:
            log.write(f"\n--- attempt {self.attempt} ---\n".encode())
        return log


@dataclass(frozen=True)
class JobResult:
    """How a job ended. `error` is a one-line reason when it failed."""

    ok: bool
    started: float
    finished: float
    exit_status: int | None = None
    error: str = ""


class Executor(Protocol):
    def submit(self, job: Job) -> Future[JobResult]: ...

    def shutdown(self, kill: bool = False) -> None: ...
