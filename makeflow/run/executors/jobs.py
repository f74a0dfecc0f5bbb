"""Running one job where it is: a shell command in its own process group, or a function.

Shared by every executor, so a step behaves the same locally and on a cluster.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

from makeflow.define.config import Shell
from makeflow.define.recipe import context
from makeflow.errors import StepError
from makeflow.run.executors import Job, JobResult
from makeflow.run.executors.process import StepProcess

# Steps find the interpreter that runs makeflow first, so `python script.py` in a command
# sees the same packages as the build.
STEP_ENV = {**os.environ,
            "PATH": os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")])}

SHELL_SYNTAX = set("|&;<>()$`\\*?[]#~{}!\n\t")
SHELL_WORDS = {"cd", "export", "exit", "source", ".", "set", "unset", "eval", "exec", "if",
               "for", "while", "case", "alias", "ulimit", "umask", "wait", "read", "true",
               "false", "test", "echo", "printf", "trap", "shift", "return", "break"}


# One argument may not exceed 128 KiB on Linux (MAX_ARG_STRLEN), and all of them together
# are limited too: a longer command runs from a script file.
LONGEST_ARGUMENT = 64 * 1024
ONLY_SET = re.compile(r"(\s*set(\s+[-+][A-Za-z]+(\s+[a-z]+)?)+\s*;?)*\s*")


BASH = Shell()


def argv_for(command: str, shell: Shell = BASH) -> list[str]:
    """Run a plain command directly, as make does, and anything with shell syntax through
    the shell, its prefix first (`bash -c "set -euo pipefail;<newline>COMMAND"`).

    Skipping the shell halves the cost of starting a trivial step. It is skipped only when
    the prefix does nothing but `set` options, which cannot change how one plain command
    runs; a prefix that sets a variable or sources a file runs before every command.
    """
    if not (set(command) & SHELL_SYNTAX) and ONLY_SET.fullmatch(shell.prefix):
        try:
            words = shlex.split(command)
        except ValueError:
            words = []
        if words and words[0] not in SHELL_WORDS and "=" not in words[0]:
            return words
    return [shell.program, "-c", script_of(command, shell)]


def script_of(command: str, shell: Shell) -> str:
    return f"{shell.prefix}\n{command}" if shell.prefix.strip() else command


def _too_long(argv: list[str]) -> bool:
    return sum(len(a) + 1 for a in argv) > LONGEST_ARGUMENT


def _script_file(job: Job) -> str:
    """Write the step's command, with the prefix, to a file beside its log; the path."""
    path = f"{job.log}.sh"
    assert job.command is not None
    with open(path, "w", encoding="utf-8", errors="surrogateescape") as f:
        f.write(script_of(job.command, job.shell) + "\n")
    return path


class Processes:
    """The process groups of the shell steps running now, so they can be stopped together."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running: set[StepProcess] = set()
        self._stopping = False

    def add(self, proc: StepProcess) -> None:
        """Track a started step; one that started while the build is stopping goes at once."""
        with self._lock:
            self._running.add(proc)
            stopping = self._stopping
        if stopping:
            proc.signal_group(signal.SIGKILL)

    def discard(self, proc: StepProcess) -> None:
        with self._lock:
            self._running.discard(proc)

    def signal_all(self, sig: int) -> None:
        with self._lock:
            procs = list(self._running)
        for proc in procs:
            proc.signal_group(sig)

    def stop_all(self, grace: float = 3.0) -> None:
        """SIGTERM every running step's group; SIGKILL what is left after `grace` seconds."""
        with self._lock:
            self._stopping = True
        self.signal_all(signal.SIGTERM)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            with self._lock:
                if not self._running:
                    return
            time.sleep(0.02)
        self.signal_all(signal.SIGKILL)


def run_shell(job: Job, processes: Processes | None = None) -> JobResult:
    """Run `job.command`, its output going to the log; the step is its whole process group."""
    started = time.time()
    assert job.command is not None
    try:
        log = job.open_log()
    except OSError as exc:
        return JobResult(False, started, time.time(), None, f"cannot write its log: {exc}")
    script = None
    try:
        os.write(log, f"$ {job.command}\n".encode("utf-8", "surrogateescape"))
        argv = argv_for(job.command, job.shell)
        try:
            if _too_long(argv):
                script = _script_file(job)
                argv = [job.shell.program, script]
            proc = StepProcess(argv, log, STEP_ENV)
        except OSError as exc:
            os.write(log, f"makeflow: {exc}\n".encode())
            return JobResult(False, started, time.time(), 127, f"cannot run: {exc.strerror}")
        status = _wait(proc, job.timeout, processes)
    finally:
        os.close(log)
        if script is not None:
            with contextlib.suppress(OSError):
                os.unlink(script)
    if status is None:
        return JobResult(False, started, time.time(), None, f"timed out after {job.timeout:g}s")
    return _shell_result(status, started)


def _wait(proc: StepProcess, timeout: float | None, processes: Processes | None) -> int | None:
    """The step's exit status, or None when it ran out of time (it is stopped then)."""
    if processes is not None:
        processes.add(proc)
    try:
        status = proc.wait(timeout)
        if status is None:
            proc.stop()
    finally:
        if processes is not None:
            processes.discard(proc)
    return status


def _shell_result(status: int, started: float) -> JobResult:
    if status == 0:
        return JobResult(True, started, time.time(), 0)
    if status < 0:
        name = signal.Signals(-status).name
        return JobResult(False, started, time.time(), status, f"killed by {name}")
    return JobResult(False, started, time.time(), status, f"exit status {status}")


def run_function(job: Job, func: Callable[..., Any]) -> JobResult:
    """Call a Python step in this process, its stdout and stderr going to the log."""
    started = time.time()
    step = context(job.step_id, job.inputs, job.outputs, job.params, job.wildcards)
    try:
        log = job.open_log()
    except OSError as exc:
        return JobResult(False, started, time.time(), None, f"cannot write its log: {exc}")
    try:
        with _redirected(log), _isolated():
            return _call(func, step, started)
    finally:
        os.close(log)


@contextlib.contextmanager
def _isolated():
    """Undo what a step did to its process: the working folder, the environment and
    `sys.path` are as they were before it, for the next step the worker runs."""
    cwd, environ, path = os.getcwd(), dict(os.environ), list(sys.path)
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            os.chdir(cwd)
        if os.environ != environ:
            os.environ.clear()
            os.environ.update(environ)
        sys.path[:] = path


def _call(func: Callable[..., Any], step: Any, started: float) -> JobResult:
    try:
        func(step)
    except StepError as exc:
        print(f"makeflow: step failed: {exc}", file=sys.stderr)
        return JobResult(False, started, time.time(), None, str(exc))
    except BaseException as exc:  # the step's own error, reported, never raised
        traceback.print_exc()
        if isinstance(exc, SystemExit) and exc.code in (0, None):
            return JobResult(True, started, time.time(), 0)
        return JobResult(False, started, time.time(), None, _one_line(exc))
    return JobResult(True, started, time.time(), 0)


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


@contextlib.contextmanager
def _redirected(fd: int):
    """Point fds 1 and 2 (and sys.stdout/err) at `fd`, so child processes log there too."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    try:
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        os.close(saved[0])
        os.close(saved[1])
