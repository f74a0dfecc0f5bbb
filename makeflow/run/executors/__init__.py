"""Executors run jobs and nothing else: the build decides what runs and records results.

A job is plain, picklable data, so the same job can run in a local thread, a local worker
process, or on a cluster. Any executor offers `submit(job) -> Future[JobResult]` and
`shutdown(kill)`, and may say with `depth` how many Python steps per job slot it wants
submitted at once (to send them in batches); without it the scheduler submits one.
A future that has not started may be cancelled when the build stops. An executor may
offer `kill_now()`, which the build calls when the user presses Ctrl-C again while it
stops: every running step is killed at once. An executor that queues jobs of its own
may offer `hold()`: the jobs submitted so far that have not started never start (they
end with NotStarted), because a step failed and the build stops.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from makeflow.define.config import Shell
from makeflow.define.rules import Files
from makeflow.store.hashing import hash_bytes

if TYPE_CHECKING:
    from concurrent.futures import Future

    from makeflow.define.loader import Pipeline
    from makeflow.run.outcome import BuildOptions


class NotStarted(Exception):
    """A queued job that did not start: the build stopped before its turn came."""


@dataclass(frozen=True)
class Job:
    """One step to run: a shell command, or a rule's function by name, writing to `log`.

    `outputs` are the paths the step must write, as the rules declare them.
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
    shell: Shell = field(default_factory=Shell)  # how `command` runs
    resources: dict[str, float] = field(default_factory=dict)  # as declared on the rule
    # Workers that share no disk with the build: the folder the step runs in (its paths,
    # the log's too, are relative to it), and each input's digest, to fetch it there.
    workdir: str | None = None
    fetch: dict[str, str] = field(default_factory=dict)

    def at(self, path: str) -> str:
        """`path` where the step sees it: in its scratch folder when it has one."""
        return path if self.workdir is None else os.path.join(self.workdir, path)

    def open_log(self) -> int:
        """The step's log as a file descriptor, opened for this attempt; a later attempt
        appends, after a line saying which attempt it is.

        A bare descriptor, written with os.write: a Python file object costs more than a
        trivial step's own work, and the step's process only needs the descriptor.
        """
        again = self.attempt > 1
        flags = os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC | (os.O_APPEND if again else os.O_TRUNC)
        fd = os.open(self.at(self.log), flags, 0o666)
        if again:
            os.write(fd, f"\n--- attempt {self.attempt} ---\n".encode())
        return fd


@dataclass(frozen=True)
class JobResult:
    """How a job ended. `error` is a one-line reason when it failed.

    `cpu` (user + system seconds) and `peak_rss` (bytes) come from the kernel's accounting
    of the step's processes; None where it was not available. A skipped step (`ok`, with
    `skipped` its reason) ran to its end and chose to make nothing.
    """

    ok: bool
    started: float
    finished: float
    exit_status: int | None = None
    error: str = ""
    worker: str = ""  # the cluster worker that ran it; empty on this machine
    cpu: float | None = None
    peak_rss: int | None = None
    skipped: str = ""  # the step decided not to make its outputs (`Skip`): the reason
    # from a worker that shares no disk: each output made, as (digest, size), and the
    # digest of the log, all pushed to the remote store
    remote_outputs: dict[str, tuple[str, int]] | None = None
    remote_log: str = ""


class Executor(Protocol):
    def submit(self, job: Job) -> Future[JobResult]: ...

    def shutdown(self, kill: bool = False) -> None: ...


# What a build calls to get its executor: the local one by default, a cluster's later.
ExecutorFactory = Callable[["Pipeline", "BuildOptions"], Executor]


def rules_digest(rules_file: str | Path) -> str:
    """The digest of a rules file's bytes: equal on two machines only for the same rules,
    so a cluster worker with another copy of Makeflow.py can be told apart."""
    return hash_bytes(Path(rules_file).read_bytes())
