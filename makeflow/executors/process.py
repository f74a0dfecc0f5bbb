"""A step's process group: started with posix_spawn where the system has it, stopped whole.

`posix_spawn` (vfork + exec in the C library) starts a trivial step in about half the time
of `subprocess.Popen`, which matters when a build runs thousands of short steps. Where it
or `pidfd_open` is missing (not Linux), `subprocess` does the same job.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import select
import shutil
import signal
import subprocess
from collections.abc import Mapping

FAST = all(hasattr(os, name) for name in ("posix_spawn", "pidfd_open", "POSIX_SPAWN_DUP2"))


@functools.lru_cache(maxsize=256)
def find_program(name: str, path: str) -> str:
    """The program `name` on the steps' PATH (not makeflow's own, which posix_spawnp would
    search), so `python` in a command is the interpreter that runs makeflow."""
    if "/" in name:
        return name
    found = shutil.which(name, path=path)
    if found is None:
        raise FileNotFoundError(errno.ENOENT, "command not found", name)
    return found


# Python ignores these; a step gets the defaults back, as subprocess's restore_signals does,
# so `producer | head` ends quietly and a file-size limit stops the writer.
RESTORED = (signal.SIGPIPE, signal.SIGXFSZ)


class StepProcess:
    """One running command, leader of its own session, so its children go with it."""

    def __init__(self, argv: list[str], log_fd: int, env: Mapping[str, str]):
        self.popen: subprocess.Popen[bytes] | None = None
        if FAST:
            actions = [(os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                       (os.POSIX_SPAWN_DUP2, log_fd, 1), (os.POSIX_SPAWN_DUP2, log_fd, 2)]
            program = find_program(argv[0], env.get("PATH", os.defpath))
            self.pid = os.posix_spawn(program, argv, env, file_actions=actions, setsid=True,
                                      setsigdef=RESTORED)
        else:
            self.popen = subprocess.Popen(argv, stdout=log_fd, stderr=subprocess.STDOUT,
                                          stdin=subprocess.DEVNULL, start_new_session=True,
                                          env=dict(env))
            self.pid = self.popen.pid
        self.status: int | None = None

    def wait(self, timeout: float | None = None) -> int | None:
        """The exit status (negative: killed by that signal), or None after `timeout`."""
        if self.status is not None:
            return self.status
        if self.popen is not None:
            try:
                self.status = self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                return None
            return self.status
        if timeout is not None and not self._exits_within(timeout):
            return None
        _, raw = os.waitpid(self.pid, 0)
        self.status = os.waitstatus_to_exitcode(raw)
        return self.status

    def _exits_within(self, timeout: float) -> bool:
        fd = os.pidfd_open(self.pid)
        try:
            ready, _, _ = select.select([fd], [], [], timeout)
        finally:
            os.close(fd)
        return bool(ready)

    def signal_group(self, sig: int) -> None:
        if self.status is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pid, sig)

    def stop(self, grace: float = 3.0) -> None:
        """SIGTERM the group, then SIGKILL it if the leader is still there after `grace`."""
        self.signal_group(signal.SIGTERM)
        if self.wait(grace) is None:
            self.signal_group(signal.SIGKILL)
            self.wait()
