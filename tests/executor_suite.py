"""What the executor suite needs: a LocalCluster of worker processes on 127.0.0.1 shared by
a test module, and `dask scheduler` / `dask worker` started as processes of their own.

Every wait is bounded, and whatever a fixture starts it stops, however the test ends.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from makeflow import BuildOptions, build, load
from makeflow.run.executors.choose import Choice, choose
from makeflow.ui.plain import PlainReporter

BIN = Path(sys.executable).parent


def start_cluster(workers: int = 2, local_directory: str | None = None, **resources: float):
    """A LocalCluster of single-threaded worker processes on 127.0.0.1, no dashboard; the
    workers' own folder is `local_directory` when given."""
    import logging

    import distributed

    return distributed.LocalCluster(
        n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
        dashboard_address=None, silence_logs=logging.CRITICAL, memory_limit=0,
        resources=resources or None, local_directory=local_directory,
    )


def run_build(project, executor: str, address: str | None, *targets: str, **options):
    """The library's build() on `executor` ("local", or "dask" on the cluster at `address`)."""
    pipeline = load(project.root / "Makeflow.py")
    choice = Choice("local") if executor == "local" else choose(pipeline, "dask", address)
    out = io.StringIO()
    result = build(pipeline, targets, BuildOptions(**options), PlainReporter(out), choice)
    result.output = out.getvalue()
    return result


def cli_args(executor: str, address: str | None) -> list[str]:
    return [] if executor == "local" else ["--scheduler", address]


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Processes:
    """`dask scheduler` and `dask worker` processes, each in its own process group."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen] = []

    def start(self, *args: str, cwd: Path | None = None) -> subprocess.Popen:
        proc = subprocess.Popen([str(BIN / "dask"), *args], cwd=cwd, start_new_session=True,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.procs.append(proc)
        return proc

    def scheduler(self) -> tuple[str, subprocess.Popen]:
        port = free_port()
        proc = self.start("scheduler", "--host", "127.0.0.1", "--port", str(port),
                          "--no-dashboard")
        return f"tcp://127.0.0.1:{port}", proc

    def worker(self, address: str, cwd: Path, *extra: str) -> subprocess.Popen:
        return self.start("worker", address, "--host", "127.0.0.1", "--nthreads", "1",
                          "--no-dashboard", "--no-nanny", *extra, cwd=cwd)

    def stop(self, proc: subprocess.Popen) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(10)

    def stop_all(self) -> None:
        for proc in self.procs:
            self.stop(proc)


@contextlib.contextmanager
def dask_processes() -> Iterator[Processes]:
    procs = Processes()
    try:
        yield procs
    finally:
        procs.stop_all()


def wait_for_workers(address: str, count: int, seconds: float = 60) -> None:
    import distributed

    with distributed.Client(address, timeout=seconds, set_as_default=False) as client:
        client.wait_for_workers(count, timeout=seconds)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with contextlib.suppress(OSError):  # a zombie has ended
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    return True


def wait_until(check, seconds: float = 30, step: float = 0.05) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(step)
    return check()


WORKER = re.compile(r"ran on worker (tcp://127\.0\.0\.1:\d+)")
