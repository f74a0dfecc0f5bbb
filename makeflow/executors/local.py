"""The local executor: shell steps as child processes, Python steps in worker processes.

Threads only wait: each running shell step is a child process, each Python step runs in
one of up to N long-lived worker processes that have loaded `Makeflow.py` once. A worker
that crashes (segfault, os._exit, out of memory) fails only its own step and is replaced.
"""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

from . import Job, JobResult
from .jobs import Processes, run_function, run_shell

if TYPE_CHECKING:
    from multiprocessing.connection import Connection


class LocalExecutor:
    """Runs up to `jobs` steps at once on this machine."""

    def __init__(self, jobs: int, rules_file: Path, overrides: tuple[str, ...] = ()):
        self.jobs = max(1, jobs)
        self.threads = ThreadPoolExecutor(self.jobs, thread_name_prefix="makeflow-step")
        self.processes = Processes()
        self.workers = WorkerPool(self.jobs, rules_file, overrides)

    def submit(self, job: Job) -> Future[JobResult]:
        if job.command is not None:
            return self.threads.submit(run_shell, job, self.processes)
        return self.threads.submit(self.workers.run, job)

    def shutdown(self, kill: bool = False) -> None:
        if kill:
            self.workers.kill_all()
            self.processes.stop_all()
        self.threads.shutdown(wait=True, cancel_futures=kill)
        self.workers.close()


class WorkerPool:
    """Long-lived Python worker processes, started on first use, one job at a time each."""

    def __init__(self, size: int, rules_file: Path, overrides: tuple[str, ...]):
        self.size = size
        self.rules_file = str(rules_file)
        self.overrides = overrides
        self.idle: queue.Queue[Worker] = queue.Queue()
        self.all: list[Worker] = []
        self.lock = threading.Lock()

    def run(self, job: Job) -> JobResult:
        worker = self._take()
        try:
            result = worker.run(job)
        finally:
            if worker.alive:
                self.idle.put(worker)
            else:
                with self.lock:
                    self.all.remove(worker)
        return result

    def _take(self) -> Worker:
        with self.lock:
            if self.idle.empty() and len(self.all) < self.size:
                worker = Worker(self.rules_file, self.overrides)
                self.all.append(worker)
                return worker
        return self.idle.get()

    def kill_all(self) -> None:
        with self.lock:
            for worker in self.all:
                worker.kill()

    def close(self) -> None:
        with self.lock:
            for worker in self.all:
                worker.close()
            self.all.clear()


class Worker:
    """One worker process and the pipe to it."""

    def __init__(self, rules_file: str, overrides: tuple[str, ...]):
        import multiprocessing  # only a build with Python steps pays for it

        ctx = multiprocessing.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(
            target=worker_main, args=(child, rules_file, overrides), daemon=True
        )
        self.process.start()
        child.close()
        self.alive = True

    def run(self, job: Job) -> JobResult:
        started = time.time()
        try:
            self.conn.send(job)
            if job.timeout is not None and not self.conn.poll(job.timeout):
                self.kill()
                self.close()
                self.alive = False
                return JobResult(False, started, time.time(), None,
                                 f"timed out after {job.timeout:g}s")
            return self.conn.recv()
        except (EOFError, OSError, BrokenPipeError):
            self.alive = False
            self.process.join(timeout=5)
            return JobResult(False, started, time.time(), self.process.exitcode,
                             _crash_message(self.process.exitcode))

    def kill(self) -> None:
        if self.process.is_alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.process.pid, signal.SIGKILL)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.conn.close()
        self.process.join(timeout=5)
        if self.process.is_alive():
            self.kill()
            self.process.join(timeout=5)


def _crash_message(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        return f"the Python step crashed (killed by {signal.Signals(-exitcode).name})"
    return f"the Python step crashed (its worker process exited with status {exitcode})"


def worker_main(conn: Connection, rules_file: str, overrides: tuple[str, ...]) -> None:
    """A worker's loop: load the rules file once, then run each job sent to it."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the build decides when to stop
    from ..errors import MakeflowError
    from ..loader import load

    try:
        pipeline = load(Path(rules_file), overrides)
        load_error = None
    except MakeflowError as exc:
        pipeline, load_error = None, str(exc)
    os.chdir(Path(rules_file).parent)
    while True:
        try:
            job: Job = conn.recv()
        except (EOFError, OSError, KeyboardInterrupt):
            return
        rule = pipeline.rule(job.rule) if pipeline else None
        if rule is None or rule.func is None:
            why = load_error or f"rule {job.rule} has no function in {rules_file}"
            conn.send(JobResult(False, time.time(), time.time(), None, why))
            continue
        conn.send(run_function(job, rule.func))
