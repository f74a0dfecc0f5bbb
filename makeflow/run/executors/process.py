"""A step's process group: started with posix_spawn where the system has it, stopped whole.

`posix_spawn` (vfork + exec in the C library) starts a trivial step in about half the time
of `subprocess.Popen`, which matters when a build runs thousands of short steps. With glibc
it is called through ctypes, which lets other threads run while the child starts:
`os.posix_spawn` holds the GIL until the child has called exec, so the scheduler stalls
for a few hundred microseconds on every step another thread starts. Where posix_spawn or
`pidfd_open` is missing (not Linux), `subprocess` does the same job.
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
import sys
from collections.abc import Mapping
from typing import Any

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


def _glibc_at_least(major: int, minor: int) -> bool:
    try:
        name, version = os.confstr("CS_GNU_LIBC_VERSION").split()  # type: ignore[union-attr]
        found = tuple(int(part) for part in version.split(".")[:2])
    except (AttributeError, ValueError, OSError):
        return False
    return name == "glibc" and found >= (major, minor)


class LibcSpawn:
    """glibc's posix_spawn through ctypes, which releases the GIL for the call.

    glibc 2.26 and later report a failed exec as the return value and know
    POSIX_SPAWN_SETSID. The attributes (new session, default signal actions) are the same
    for every step, so they are set up once; so is the environment, kept per mapping.
    ctypes is imported here, so a build without shell steps does not pay for it.
    """

    SETSIGDEF, SETSID = 0x04, 0x80  # glibc's values of POSIX_SPAWN_*
    OPAQUE = 1024  # bytes; more than glibc's posix_spawnattr_t, file actions or sigset_t

    def __init__(self) -> None:
        import ctypes

        self.c = ctypes
        libc = self.libc = ctypes.CDLL(None, use_errno=True)
        strings = ctypes.POINTER(ctypes.c_char_p)
        libc.posix_spawn.argtypes = [ctypes.POINTER(ctypes.c_int), ctypes.c_char_p,
                                     ctypes.c_void_p, ctypes.c_void_p, strings, strings]
        libc.posix_spawn_file_actions_addopen.argtypes = [
            ctypes.c_void_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_uint]
        libc.posix_spawn_file_actions_adddup2.argtypes = [
            ctypes.c_void_p, ctypes.c_int, ctypes.c_int]
        libc.posix_spawnattr_setflags.argtypes = [ctypes.c_void_p, ctypes.c_short]
        self.attr = ctypes.create_string_buffer(self.OPAQUE)
        signals = ctypes.create_string_buffer(self.OPAQUE)
        libc.posix_spawnattr_init(self.attr)
        libc.sigemptyset(signals)
        for sig in RESTORED:
            libc.sigaddset(signals, int(sig))
        libc.posix_spawnattr_setsigdefault(self.attr, signals)
        libc.posix_spawnattr_setflags(self.attr, self.SETSIGDEF | self.SETSID)
        self.envs: dict[int, tuple[Mapping[str, str], Any]] = {}

    def spawn(self, program: str, argv: list[str], env: Mapping[str, str], log_fd: int) -> int:
        """Start `argv` with stdin from /dev/null and stdout and stderr to `log_fd`."""
        c, libc = self.c, self.libc
        actions = c.create_string_buffer(self.OPAQUE)
        libc.posix_spawn_file_actions_init(actions)
        try:
            libc.posix_spawn_file_actions_addopen(actions, 0, b"/dev/null", os.O_RDONLY, 0)
            libc.posix_spawn_file_actions_adddup2(actions, log_fd, 1)
            libc.posix_spawn_file_actions_adddup2(actions, log_fd, 2)
            pid = c.c_int()
            err = libc.posix_spawn(c.byref(pid), os.fsencode(program), actions, self.attr,
                                   self._strings(argv), self._environment(env))
        finally:
            libc.posix_spawn_file_actions_destroy(actions)
        if err:
            raise OSError(err, os.strerror(err), program)
        return pid.value

    def _environment(self, env: Mapping[str, str]) -> Any:
        known = self.envs.get(id(env))
        if known is None or known[0] is not env:
            known = self.envs[id(env)] = (env, self._strings([f"{k}={v}" for k, v in env.items()]))
        return known[1]

    def _strings(self, items: list[str]) -> Any:
        """A NULL-terminated array of C strings."""
        array = (self.c.c_char_p * (len(items) + 1))()
        array[:-1] = [os.fsencode(item) for item in items]
        return array


@functools.lru_cache(maxsize=1)
def libc_spawn() -> LibcSpawn | None:
    """The ctypes spawner where it is safe (Linux with glibc 2.26+), else None."""
    if not FAST or not sys.platform.startswith("linux") or not _glibc_at_least(2, 26):
        return None
    try:
        return LibcSpawn()
    except (OSError, AttributeError):
        return None


class StepProcess:
    """One running command, leader of its own session, so its children go with it."""

    def __init__(self, argv: list[str], log_fd: int, env: Mapping[str, str],
                 cwd: str | None = None):
        """`cwd`: another working folder than this process's (a scratch folder), which
        posix_spawn cannot give, so such a step starts through subprocess."""
        self.popen: subprocess.Popen[bytes] | None = None
        if FAST and cwd is None:
            program = find_program(argv[0], env.get("PATH", os.defpath))
            spawner = libc_spawn()
            if spawner is not None:
                self.pid = spawner.spawn(program, argv, env, log_fd)
            else:
                actions = [(os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                           (os.POSIX_SPAWN_DUP2, log_fd, 1), (os.POSIX_SPAWN_DUP2, log_fd, 2)]
                self.pid = os.posix_spawn(program, argv, env, file_actions=actions,
                                          setsid=True, setsigdef=RESTORED)
        else:
            self.popen = subprocess.Popen(argv, stdout=log_fd, stderr=subprocess.STDOUT,
                                          stdin=subprocess.DEVNULL, start_new_session=True,
                                          env=dict(env), cwd=cwd)
            self.pid = self.popen.pid
        self.status: int | None = None
        self.usage: Any = None  # the kernel's resource usage of the step, once it ended

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
        _, raw, self.usage = os.wait4(self.pid, 0)
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
