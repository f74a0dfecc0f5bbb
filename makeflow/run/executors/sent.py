"""What the Dask executor keeps about the steps it sends, apart from Dask itself: each
step's future, how long steps take lately (which sets how many go in one task), and the
small file and thread helpers its clean-up uses."""

from __future__ import annotations

import contextlib
import os
import threading
import uuid
from concurrent.futures import Future
from typing import Any

from makeflow.run.executors import Job, JobResult


class StepFuture(Future):
    """A step's future: cancelling it withdraws the step, unless it runs already.

    Steps go to the cluster in tasks of one or more steps (`batch`: the futures of the
    steps in the same task); each step's result comes back on its own.
    """

    def __init__(self, executor: Any, job: Job):
        super().__init__()
        self.executor, self.job = executor, job
        self.task: Any = None  # the Dask future of the task it was sent in
        self.batch: list[StepFuture] = [self]
        self.queued = self.sent = 0.0  # when it was submitted (monotonic), sent (epoch)
        self.resends = 0
        self.key = ""  # names the step's result when its worker sends it
        self.withdrawing = self.withdrawn = False
        self.held: JobResult | None = None  # a result that came while being withdrawn

    def cancel(self) -> bool:
        if self.done() or not self.executor.withdraw(self):
            return False
        return super().cancel()

    def running(self) -> bool:  # sent, not ended: it may run on a worker now
        return not self.done()

    def alone(self) -> bool:
        """Whether every other step of its task has ended or was withdrawn."""
        return all(f is self or f.withdrawn or f.done() for f in self.batch)


class Pace:
    """How long steps take lately, which sets how many go to a worker in one task.

    Dask spends a few milliseconds of its scheduler's time on each task, more than a
    trivial step takes, so short steps go several per task (about BATCH_SECONDS of work,
    at most MOST); a step of a second or more goes alone, so no worker holds a queue of
    slow steps. Until a step has ended, each goes alone.
    """

    BATCH_SECONDS = 0.05
    MOST = 32

    def __init__(self) -> None:
        self.seconds: float | None = None
        self.lock = threading.Lock()

    def batch(self) -> int:
        if self.seconds is None:
            return 1
        return max(1, min(self.MOST, int(self.BATCH_SECONDS / max(self.seconds, 1e-4))))

    def add(self, result: JobResult) -> None:
        took = max(0.0, result.finished - result.started)
        with self.lock:
            self.seconds = took if self.seconds is None else 0.7 * self.seconds + 0.3 * took


def split(futures: list[StepFuture], size: int, places: int) -> list[list[StepFuture]]:
    """Steps in tasks of at most `size`, spread over at least `places` tasks when there
    are that many steps, in the order they came (the graph's)."""
    if not futures:
        return []
    size = max(1, min(size, -(-len(futures) // max(1, places))))
    return [futures[i:i + size] for i in range(0, len(futures), size)]


def stamp(batches: list[list[StepFuture]], now: float) -> list[StepFuture]:
    """Mark steps as sent now, each with its task's steps and a key of its own."""
    stamped = []
    for batch in batches:
        for future in batch:
            future.sent, future.batch = now, batch
            future.key = f"{future.job.step_id}-{uuid.uuid4().hex[:12]}"
            stamped.append(future)
    return stamped


def bounded(action: Any, seconds: float) -> None:
    """Run a clean-up step in a thread, waiting for it at most `seconds`: a cluster that
    went away must not hold the build open."""
    def quietly() -> None:
        with contextlib.suppress(BaseException):
            action()

    thread = threading.Thread(target=quietly, daemon=True, name="makeflow-dask-close")
    thread.start()
    thread.join(seconds)


def cannot_check(address: str, error: Any) -> str:
    return f"worker {address} could not check the rules: {error!r}"


def started_since(log: str, sent: float) -> bool:
    try:
        return os.stat(log).st_mtime >= sent - 1.0
    except OSError:
        return False


def note(log: str, line: str) -> None:
    with contextlib.suppress(OSError), open(log, "a", encoding="utf-8") as f:
        f.write(f"\n{line}\n")
