"""Running one job where it is: a shell command in its own process group, or a function.

Shared by every executor, so a step behaves the same locally and on a cluster.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import os
import re
import resource
import shlex
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable
from resource import RUSAGE_CHILDREN, RUSAGE_SELF
from typing import Any

from makeflow.define.config import Shell
from makeflow.define.recipe import context
from makeflow.errors import SKIP_STATUS, Skip, StepError
from makeflow.run.executors import Job, JobResult
from makeflow.run.executors.logslots import open_slot, settle
from makeflow.run.executors.process import StepProcess
from makeflow.store.fs import full_disk_note

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
    path = f"{job.at(job.log)}.sh"
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

    def kill_all(self) -> None:
        """SIGKILL every running step's group, and any that starts from now on."""
        with self._lock:
            self._stopping = True
        self.signal_all(signal.SIGKILL)

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


def run_shell(job: Job, processes: Processes | None = None,
              slot: str | None = None) -> JobResult:
    """Run `job.command`, its output going to the log; the step is its whole process group.

    Given a `slot` (logslots.py), a first attempt logs there, and the log, its command line
    first, is kept only when the step printed something or did not succeed."""
    started = time.time()
    assert job.command is not None
    slot = slot if job.attempt == 1 and job.workdir is None else None
    try:
        log = open_slot(slot) if slot is not None else job.open_log()
    except OSError as exc:
        return JobResult(False, started, time.time(), None, f"cannot write its log: {exc}")
    echo = f"$ {job.command}\n".encode("utf-8", "surrogateescape")
    script, status = None, None
    try:
        try:
            if slot is None:  # else written in front of the slot's text, if it is kept
                os.write(log, echo)
        except OSError as exc:
            return JobResult(False, started, time.time(), None, _log_error(exc, job))
        argv = argv_for(job.command, job.shell)
        try:
            if _too_long(argv):
                script = _script_file(job)
                argv = [job.shell.program, script]
            proc = StepProcess(argv, log, STEP_ENV, job.workdir)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.write(log, f"makeflow: {exc}\n".encode())
            return JobResult(False, started, time.time(), 127, f"cannot run: {exc.strerror}")
        status = _wait(proc, job.timeout, processes)
    finally:
        quiet = status == 0 and slot is not None and _size(log) == 0
        os.close(log)
        if script is not None:
            with contextlib.suppress(OSError):
                os.unlink(script)
        if slot is not None:
            settle(slot, job.log, keep=not quiet, head=echo)
    cpu, peak = usage_of(proc.usage)
    if status is None:
        return JobResult(False, started, time.time(), None, f"timed out after {job.timeout:g}s",
                         cpu=cpu, peak_rss=peak)
    if status == SKIP_STATUS:
        return JobResult(True, started, time.time(), status, cpu=cpu, peak_rss=peak,
                         skipped=_last_line(job) or f"exit status {SKIP_STATUS}")
    return _shell_result(status, started, cpu, peak)


def _size(fd: int) -> int:
    try:
        return os.fstat(fd).st_size
    except OSError:
        return -1


def _last_line(job: Job) -> str:
    """The last line a skipped shell step printed: its reason (the `$ command` lines
    makeflow writes first do not count)."""
    assert job.command is not None
    try:
        with open(job.log, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            f.seek(max(0, size - 4096))
            text = f.read()
    except OSError:
        return ""
    echo = f"$ {job.command}\n".encode("utf-8", "surrogateescape")
    if size <= 4096 and text.startswith(echo):
        text = text[len(echo):]
    lines = text.decode("utf-8", "replace").splitlines()
    return next((line.strip() for line in reversed(lines) if line.strip()), "")[:300]


def usage_of(usage: Any) -> tuple[float | None, int | None]:
    """CPU seconds and peak memory in bytes from a struct rusage (ru_maxrss is in KiB on
    Linux: the largest resident set of the process and the children it waited for)."""
    if usage is None:
        return None, None
    return usage.ru_utime + usage.ru_stime, usage.ru_maxrss * 1024


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


def _shell_result(status: int, started: float, cpu: float | None,
                  peak: int | None) -> JobResult:
    if status == 0:
        return JobResult(True, started, time.time(), 0, "", cpu=cpu, peak_rss=peak)
    if status < 0:
        name = signal.Signals(-status).name
        return JobResult(False, started, time.time(), status, f"killed by {name}", cpu=cpu,
                         peak_rss=peak)
    return JobResult(False, started, time.time(), status, f"exit status {status}", cpu=cpu,
                     peak_rss=peak)


def run_function(job: Job, func: Callable[..., Any], slot: str | None = None) -> JobResult:
    """Call a Python step in this process, its stdout and stderr going to the log (first
    to `slot`, kept only when the step printed something or did not succeed, as for
    shell steps)."""
    started = time.time()
    step = context(job.step_id, job.inputs, job.outputs, job.params, job.wildcards)
    slot = slot if job.attempt == 1 and job.workdir is None else None
    try:
        log = open_slot(slot) if slot is not None else job.open_log()
    except OSError as exc:
        return JobResult(False, started, time.time(), None, _log_error(exc, job))
    meter = Meter()
    result = None
    try:
        with _redirected(log), _isolated():
            if job.workdir is not None:
                os.chdir(job.workdir)  # its scratch folder; _isolated comes back
            result = _call(func, step, started, job)
    except OSError as exc:  # its printing could not be written to the log
        return JobResult(False, started, time.time(), None, _log_error(exc, job))
    finally:
        quiet = result is not None and result.ok and not result.skipped and _size(log) == 0
        os.close(log)
        if slot is not None:
            settle(slot, job.log, keep=not quiet)
    return meter.stop(result)


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


def _call(func: Callable[..., Any], step: Any, started: float, job: Job) -> JobResult:
    try:
        func(step)
    except Skip as exc:
        print(f"makeflow: step skipped: {exc.reason}", file=sys.stderr)
        return JobResult(True, started, time.time(), 0, skipped=exc.reason)
    except StepError as exc:
        print(f"makeflow: step failed: {exc}", file=sys.stderr)
        return JobResult(False, started, time.time(), None, str(exc))
    except BaseException as exc:  # the step's own error, reported, never raised
        with contextlib.suppress(OSError):  # a full disk may refuse the log too
            traceback.print_exc()
        if isinstance(exc, SystemExit) and exc.code in (0, None):
            return JobResult(True, started, time.time(), 0)
        if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
            return JobResult(False, started, time.time(), None, _no_space(exc, job))
        return JobResult(False, started, time.time(), None, _one_line(exc))
    return JobResult(True, started, time.time(), 0)


class Meter:
    """The CPU time and peak memory of a Python step running in this process.

    CPU is the change in this process's and its waited-for children's rusage. The peak
    resident set is the process's high-water mark, reset before the step by writing 5 to
    /proc/self/clear_refs (Linux), so it is this step's peak, not the worker's lifetime
    peak; children the step waited for count when their peak was higher.

    Reading the mark (/proc/self/status) costs more than the rest together, so it is read
    only when the process took a page fault during the step: without one no page came in,
    and the peak is the resident size at the reset (/proc/self/statm, read at once). Most
    short steps take none. The /proc files stay open in the worker.
    """

    def __init__(self) -> None:
        me, kids = resource.getrusage(RUSAGE_SELF), resource.getrusage(RUSAGE_CHILDREN)
        self.start = _cpu(me, kids)
        self.faults = me.ru_minflt + me.ru_majflt  # before the reset: a fault since shows
        self.children_peak = kids.ru_maxrss
        self.resident = _reset_peak()

    def stop(self, result: JobResult) -> JobResult:
        """The result with its CPU time and peak memory."""
        me, kids = resource.getrusage(RUSAGE_SELF), resource.getrusage(RUSAGE_CHILDREN)
        faulted = me.ru_minflt + me.ru_majflt != self.faults
        peak = _peak_now() if faulted or self.resident is None else self.resident
        if kids.ru_maxrss > self.children_peak:
            peak = max(peak or 0, kids.ru_maxrss * 1024)
        return dataclasses.replace(result, cpu=_cpu(me, kids) - self.start, peak_rss=peak)


def _cpu(me: resource.struct_rusage, kids: resource.struct_rusage) -> float:
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


_PROC: dict[str, int | None] = {}
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def _proc_fd(name: str, flags: int) -> int | None:
    if name not in _PROC:
        try:
            _PROC[name] = os.open(f"/proc/self/{name}", flags | os.O_CLOEXEC)
        except OSError:
            _PROC[name] = None
    return _PROC[name]


def _reset_peak() -> int | None:
    """Reset the high-water mark to the resident size; that size in bytes (None where the
    mark cannot be reset or read)."""
    reset, statm = _proc_fd("clear_refs", os.O_WRONLY), _proc_fd("statm", os.O_RDONLY)
    if reset is None or statm is None:
        return None
    try:
        os.write(reset, b"5")
        return int(os.pread(statm, 200, 0).split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        return None


def _peak_now() -> int | None:
    """VmHWM of /proc/self/status in bytes, else the lifetime peak from getrusage."""
    fd = _proc_fd("status", os.O_RDONLY)
    if fd is not None:
        with contextlib.suppress(OSError, ValueError, IndexError):
            text = os.pread(fd, 8192, 0)
            at = text.index(b"VmHWM:")
            return int(text[at + 6:text.index(b"kB", at)]) * 1024
    return resource.getrusage(RUSAGE_SELF).ru_maxrss * 1024


def _no_space(exc: OSError, job: Job) -> str:
    """"no space left on device" with the file: the error's own, or else the first of the
    step's outputs (then its log) whose file system is full."""
    if exc.filename:
        return f"no space left on device: {exc.filename}"
    return full_disk_note([*job.outputs.paths, job.log]) or "no space left on device"


def _log_error(exc: OSError, job: Job) -> str:
    if exc.errno == errno.ENOSPC:
        return f"no space left on device: cannot write its log {job.log}"
    return f"cannot write its log {job.log}: {exc.strerror or exc}"


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
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:  # a full disk fails the flush: the worker's own fds come back all the same
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])
