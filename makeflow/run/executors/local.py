"""The local executor: shell steps as child processes, Python steps in worker processes.

Threads only wait: each running shell step is a child process, each Python step runs in
one of up to N long-lived worker processes that have loaded `Makeflow.py` once. A worker
that crashes (segfault, os._exit, out of memory) fails only its own step and is replaced.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
import types
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

from makeflow.run.executors import Job, JobResult, NotStarted
from makeflow.run.executors.jobs import Processes, run_function, run_shell
from makeflow.run.executors.logslots import ThreadSlots, new_slot, settle
from makeflow.run.executors.logslots import remove as remove_slots

if TYPE_CHECKING:
    from multiprocessing.connection import Connection

    from makeflow.define.loader import Pipeline, RulesImage


class LocalExecutor:
    """Runs up to `jobs` steps at once on this machine.

    The scheduler may submit Python steps `depth` per job slot: they wait in the worker
    pool's queue and go to the workers in batches; and shell steps two per slot, so a
    thread whose step ended starts the next one at once instead of waiting for the build's
    loop to record the last one and submit another. `hold()` keeps those queued from
    starting once a step failed: the build stops as if they had never been submitted.
    """

    depth = 8
    shell_depth = 2

    def __init__(self, jobs: int, rules_file: Path, overrides: tuple[str, ...] = (),
                 image: RulesImage | None = None):
        self.jobs = max(1, jobs)
        self.threads = ThreadPoolExecutor(self.jobs, thread_name_prefix="makeflow-step")
        self.processes = Processes()
        self.slots = ThreadSlots(str(Path(rules_file).parent))
        self.workers = WorkerPool(self.jobs, rules_file, overrides, image)
        self.submitted = 0  # shell jobs submitted so far, counted by the build's loop
        self.held_below = 0  # the shell jobs numbered below it never start

    def submit(self, job: Job) -> Future[JobResult]:
        if job.command is not None:
            self.submitted += 1
            return self.threads.submit(self._run_shell, job, self.submitted)
        return self.workers.submit(job)

    def hold(self) -> None:
        """Start none of the shell steps queued now (a step failed: the build stops).
        Called from the thread that saw the failure, before it takes another job."""
        self.held_below = self.submitted + 1

    def _run_shell(self, job: Job, number: int) -> JobResult:
        """A shell step on one of the pool's threads, logging to that thread's slot."""
        if number < self.held_below:
            raise NotStarted(job.step_id)
        return run_shell(job, self.processes, self.slots.mine())

    def kill_now(self) -> None:
        """SIGKILL every running step now: the user asked twice. Safe in a signal handler
        that interrupts `shutdown`: it only sends signals and takes short locks that
        the main thread never holds while waiting."""
        self.processes.kill_all()
        self.workers.kill_all()

    def shutdown(self, kill: bool = False) -> None:
        if kill:
            self.workers.kill_all()
            self.processes.stop_all()
        self.threads.shutdown(wait=True, cancel_futures=kill)
        self.workers.close()
        self.slots.remove()


Item = tuple[Job, "Future[JobResult]"]


class WorkerPool:
    """Long-lived Python worker processes, started on first use, fed in batches.

    Python jobs wait in one queue. Each worker has a thread that takes a batch from it,
    sends the batch in one message, and settles each job's future as the worker answers
    it, job by job. A batch holds about BATCH_SECONDS of work, judged by how long the
    worker's recent steps took: trivial steps go dozens per round trip, slow ones one at
    a time, so no worker holds a queue of slow steps while another is idle.
    """

    def __init__(self, size: int, rules_file: Path, overrides: tuple[str, ...],
                 image: RulesImage | None = None):
        self.size = size
        self.rules_file = str(rules_file)
        self.overrides = overrides
        self.image = image
        self.waiting: deque[Item] = deque()
        self.cond = threading.Condition()
        self.feeders: list[threading.Thread] = []
        self.workers: set[Worker] = set()
        self.closing = False
        self.killed = False

    def submit(self, job: Job) -> Future[JobResult]:
        future: Future[JobResult] = Future()
        with self.cond:
            if self.closing:
                raise RuntimeError("the Python worker pool is shut down")
            self.waiting.append((job, future))
            self.cond.notify()
            if not self.feeders:
                self._start_feeders()
        return future

    def _start_feeders(self) -> None:
        for i in range(self.size):
            feeder = threading.Thread(target=self._feed, name=f"makeflow-worker-{i}",
                                      daemon=True)
            feeder.start()
            self.feeders.append(feeder)

    def _feed(self) -> None:
        """One worker's thread: batches out, results back, a new worker after a crash."""
        pace = Pace()
        worker: Worker | None = None
        try:
            while batch := self._take(pace.batch()):
                if worker is None or not worker.alive:
                    worker = self._replace(worker, batch)
                    if worker is None:
                        continue
                try:
                    self._put_back(worker.run(batch, pace))
                except Exception as exc:  # a fault here fails the batch, never hangs the build
                    _fail_unsettled(batch, f"the Python worker pool failed: {exc!r}")
                    raise
        finally:
            if worker is not None:
                self._retire(worker)

    def _take(self, most: int) -> list[Item]:
        """Up to `most` jobs (fewer when the others' share would be smaller); [] to stop."""
        with self.cond:
            while not self.waiting and not self.closing:
                self.cond.wait()
            share = -(-len(self.waiting) // self.size)
            batch: list[Item] = []
            while self.waiting and len(batch) < min(most, share):
                job, future = self.waiting.popleft()
                # a job put back after a crash is running already; others may be cancelled
                if future.running() or future.set_running_or_notify_cancel():
                    batch.append((job, future))
            if not batch and self.waiting:
                return self._take(most)
            return batch

    def _put_back(self, items: list[Item]) -> None:
        """Jobs a dead worker never ran go first in line again; when the pool is being
        killed, they fail instead."""
        if not items:
            return
        with self.cond:
            if not self.killed:
                self.waiting.extendleft(reversed(items))
                self.cond.notify_all()
                return
        _fail_unsettled(items, "stopped before it ran")

    def _replace(self, dead: Worker | None, batch: list[Item]) -> Worker | None:
        """A new worker for this thread; None (the batch failed) if one cannot start."""
        if dead is not None:
            self._retire(dead)
        try:
            worker = Worker(self.rules_file, self.overrides, self.image)
        except Exception as exc:  # no worker, no step: each fails with the reason
            now = time.time()
            for _, future in batch:
                future.set_result(JobResult(False, now, now, None,
                                            f"cannot start a Python worker: {exc}"))
            return None
        with self.cond:
            self.workers.add(worker)
            if self.killed:
                worker.kill()
        return worker

    def _retire(self, worker: Worker) -> None:
        with self.cond:
            self.workers.discard(worker)
        worker.close()

    def kill_all(self) -> None:
        """Stop now: kill every worker; jobs not yet sent are cancelled."""
        with self.cond:
            self.killed = self.closing = True
            while self.waiting:
                self.waiting.popleft()[1].cancel()
            self.cond.notify_all()
            workers = list(self.workers)
        for worker in workers:
            worker.kill()

    def close(self) -> None:
        """Let each worker finish its batch, then end the workers and their threads."""
        with self.cond:
            self.closing = True
            while self.waiting:
                self.waiting.popleft()[1].cancel()
            self.cond.notify_all()
        for feeder in self.feeders:
            feeder.join()
        self.feeders.clear()


def _fail_unsettled(items: list[Item], why: str) -> None:
    now = time.time()
    for _, future in items:
        if not future.done():
            future.set_result(JobResult(False, now, now, None, why))


BATCH_SECONDS = 0.01


class Pace:
    """How long one worker's steps take lately, which sets how many to send at once."""

    MOST = 64

    def __init__(self) -> None:
        self.seconds: float | None = None  # an average that favours recent steps

    def batch(self) -> int:
        if self.seconds is None:
            return 1
        return max(1, min(self.MOST, int(BATCH_SECONDS / max(self.seconds, 1e-6))))

    def add(self, result: JobResult) -> None:
        took = max(0.0, result.finished - result.started)
        self.seconds = took if self.seconds is None else 0.7 * self.seconds + 0.3 * took


_MAIN_SWAP = threading.Lock()


@contextlib.contextmanager
def _main_left_behind() -> Iterator[None]:
    """Start a worker without this program's `__main__`.

    A spawned process runs the parent's main script again (as `__mp_main__`) before its
    target; a worker needs only `Makeflow.py`, which it loads itself. A program that calls
    build() at its top level, without `if __name__ == "__main__"`, would otherwise build
    again in every worker, and wait there for the project lock its parent holds, for ever.
    Spawning reads `sys.modules["__main__"]` once, to name what to run; it finds an empty
    module for as long as the worker takes to start. The lock keeps two workers starting
    at once from putting each other's stand-in back.
    """
    with _MAIN_SWAP:
        main = sys.modules.get("__main__")
        sys.modules["__main__"] = types.ModuleType("__main__")
        try:
            yield
        finally:
            if main is None:
                del sys.modules["__main__"]
            else:
                sys.modules["__main__"] = main


class Worker:
    """One worker process and the pipe to it."""

    def __init__(self, rules_file: str, overrides: tuple[str, ...],
                 image: RulesImage | None = None):
        import multiprocessing  # only a build with Python steps pays for it

        ctx = multiprocessing.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.slot = new_slot(str(Path(rules_file).parent))  # the worker's steps log here
        self.process = ctx.Process(
            target=worker_main, args=(child, rules_file, overrides, image, self.slot),
            daemon=True)
        with _main_left_behind():
            self.process.start()
        child.close()
        self.alive = True
        self.loaded = False  # it says so once it has loaded the rules

    def run(self, batch: list[Item], pace: Pace) -> list[Item]:
        """Send a batch and settle each future as its answer comes.

        Returns the jobs the worker never ran because it died (crash, or killed for a
        timeout) while running an earlier one; that one alone fails.
        """
        with contextlib.suppress(OSError):  # dead already: the first job counts as the crash
            self.conn.send([job for job, _ in batch])
        if not self.loaded:  # a step's timeout does not count the worker's start-up
            with contextlib.suppress(EOFError, OSError):  # a crash: the first job says so
                if self.conn.poll(LOAD_SECONDS):
                    self.conn.recv()
                self.loaded = True
        for i, (job, future) in enumerate(batch):
            result = self._answer(job)
            pace.add(result)
            future.set_result(result)
            if not self.alive:
                return batch[i + 1:]
        return []

    def _answer(self, job: Job) -> JobResult:
        started = time.time()
        try:
            if job.timeout is not None and not self.conn.poll(job.timeout):
                self.kill()
                self.process.join(timeout=5)
                if self.slot is not None:  # what it printed before it was killed
                    settle(self.slot, job.log, keep=True)
                self.close()
                return JobResult(False, started, time.time(), None,
                                 f"timed out after {job.timeout:g}s")
            answer = self.conn.recv()
            return self.conn.recv() if answer == LOADED else answer  # after LOAD_SECONDS
        except (EOFError, OSError):
            self.alive = False
            self.process.join(timeout=5)
            if self.slot is not None:  # what it printed before it crashed
                settle(self.slot, job.log, keep=True)
            return JobResult(False, started, time.time(), self.process.exitcode,
                             _crash_message(self.process.exitcode))

    def kill(self) -> None:
        """SIGKILL the worker and every process its steps started (its process group:
        a step's pool or subprocess goes with it, as a shell step's children do)."""
        if self.process.is_alive():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.process.pid, signal.SIGKILL)
            with contextlib.suppress(ProcessLookupError):  # before it led its group
                os.kill(self.process.pid, signal.SIGKILL)

    def close(self) -> None:
        self.alive = False
        with contextlib.suppress(OSError):
            self.conn.close()
        self.process.join(timeout=5)
        if self.process.is_alive():
            self.kill()
            self.process.join(timeout=5)
        if self.slot is not None:
            remove_slots([self.slot])


def _crash_message(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        return f"the Python step crashed (killed by {signal.Signals(-exitcode).name})"
    return f"the Python step crashed (its worker process exited with status {exitcode})"


LOADED = "loaded"  # a worker's first message: it has loaded the rules
LOAD_SECONDS = 60.0  # after that, a step's timeout counts the rest of the start-up too


def worker_main(conn: Connection, rules_file: str, overrides: tuple[str, ...],
                image: RulesImage | None = None, slot: str | None = None) -> None:
    """A worker's loop: load the rules once, then run each batch sent to it, answering
    each job as it ends (so a crash is the step that was running, not the batch).

    Given the image of the rules the build loaded, the worker runs exactly those (the
    files on disk may have changed or broken since); the project folder is importable.
    Steps log to `slot` first (logslots.py)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the build decides when to stop
    with contextlib.suppress(OSError):  # a session of its own, which kill() ends whole
        os.setsid()
    may_have_children()
    from makeflow.define.loader import load, load_image
    from makeflow.errors import MakeflowError

    root = str(Path(rules_file).parent)
    try:
        pipeline = load_image(image) if image is not None else load(Path(rules_file), overrides)
        load_error = None
    except MakeflowError as exc:
        pipeline, load_error = None, str(exc)
    with contextlib.suppress(OSError):  # a worker that shares no disk has no project
        os.chdir(root)
    sys.path.insert(0, root)
    conn.send(LOADED)
    while True:
        try:
            jobs: list[Job] = conn.recv()
            for job in jobs:
                conn.send(_run_safely(job, pipeline, load_error, rules_file, slot))
        except (EOFError, OSError, KeyboardInterrupt):
            return


def may_have_children() -> None:
    """Let this process start processes of its own: a step's `multiprocessing.Pool` or
    `ProcessPoolExecutor`, and on a Dask worker makeflow's own Python step workers.

    A worker is a daemonic multiprocessing process (so it ends with the build), as is a
    Dask worker under a nanny, and multiprocessing refuses to start children from one.
    The children a step starts end with the worker: a pool's processes are daemonic and
    are stopped when the worker exits, and a worker that is killed is killed with its
    whole session (`Worker.kill`).
    """
    import multiprocessing

    multiprocessing.current_process().daemon = False


def _run_safely(job: Job, pipeline: Pipeline | None, load_error: str | None,
                rules_file: str, slot: str | None = None) -> JobResult:
    """The job's result; makeflow's own fault while running it fails the step with the
    reason, rather than ending the worker with nothing said."""
    try:
        return _run(job, pipeline, load_error, rules_file, slot)
    except Exception as exc:
        now = time.time()
        return JobResult(False, now, now, None, f"makeflow failed to run it: {exc!r}")


def _run(job: Job, pipeline: Pipeline | None, load_error: str | None,
         rules_file: str, slot: str | None) -> JobResult:
    rule = pipeline.rule(job.rule) if pipeline else None
    if rule is None or rule.func is None:
        why = load_error or f"rule {job.rule} has no function in {rules_file}"
        return JobResult(False, time.time(), time.time(), None, why)
    return run_function(job, rule.func, slot)
