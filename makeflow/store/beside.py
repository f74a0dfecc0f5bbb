"""Work done beside this process, in a forked child, while this process does its own.

A no-op build at a million steps is mostly `stat` calls, most of their time in the
kernel: split between two processes on two cores they take half the wall time. Threads
cannot do it, since each `stat` would wait for the interpreter's lock between calls.

Only where forking is safe and cheap: on Linux, with one thread in the process (a forked
thread's locks could be held forever), and more than one core to run on. The child runs
one function, sends back its result with marshal and exits without any cleanup of the
parent's state (no buffers flushed, no database closed). Any failure, the child's or the
fork's, gives None, and the caller does the work itself.
"""

from __future__ import annotations

import contextlib
import marshal
import os
import sys
import threading
from collections.abc import Callable
from typing import Any


def worth_forking() -> bool:
    """Whether a forked child would run beside this process, and forking is safe here."""
    return (sys.platform.startswith("linux") and threading.active_count() == 1
            and len(os.sched_getaffinity(0)) > 1)


def beside(work: Callable[[], Any]) -> Callable[[], Any | None] | None:
    """Start `work` in a forked child; return what waits for its result (None when the
    child failed), or None when no child could be started."""
    try:
        read, write = os.pipe()
    except OSError:
        return None
    try:
        pid = os.fork()
    except OSError:
        os.close(read)
        os.close(write)
        return None
    if pid == 0:  # the child: nothing of the parent's is closed, flushed or freed
        code = 1
        try:
            os.close(read)
            with os.fdopen(write, "wb") as out:
                out.write(marshal.dumps(work()))
            code = 0
        finally:
            os._exit(code)
    os.close(write)
    return lambda: _result(read, pid)


def _result(read: int, pid: int) -> Any | None:
    """The child's result, once it has exited; None if it failed."""
    with os.fdopen(read, "rb") as pipe:
        data = pipe.read()
    try:
        _, status = os.waitpid(pid, 0)
    except ChildProcessError:  # reaped by someone else (SIGCHLD ignored): its fate unknown
        return None
    if not os.WIFEXITED(status) or os.WEXITSTATUS(status) != 0:
        return None
    with contextlib.suppress(EOFError, ValueError, TypeError):
        return marshal.loads(data)
    return None
