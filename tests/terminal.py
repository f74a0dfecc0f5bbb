"""Running makeflow on a real pseudo-terminal, as a user at a shell would, with bounded
waits: what it prints (escape codes included), and Ctrl-C typed on the terminal."""

from __future__ import annotations

import os
import pty
import select
import signal
import sys
import time
from pathlib import Path


class Terminal:
    """`makeflow ARGS` started on a new pty in `cwd`; the test reads its screen bytes."""

    def __init__(self, cwd: Path, *args: str, env: dict[str, str] | None = None):
        environ = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "CI")}
        environ.update({"TERM": "xterm-256color", "COLUMNS": "120", "LINES": "40",
                        "PYTHONUNBUFFERED": "1", **(env or {})})
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # the child: exec at once, nothing else
            try:
                os.chdir(cwd)
                signal.signal(signal.SIGINT, signal.SIG_DFL)  # as a terminal's shell gives it
                os.execve(sys.executable, [sys.executable, "-m", "makeflow", *args], environ)
            finally:
                os._exit(127)
        self.output = b""
        self.status: int | None = None

    def read_until(self, text: bytes, seconds: float = 30.0) -> bool:
        """Read the screen until `text` shows or the time is up."""
        deadline = time.monotonic() + seconds
        while text not in self.output and time.monotonic() < deadline:
            if not self._read(min(0.2, max(0.0, deadline - time.monotonic()))) \
                    and self.status is not None:
                break
        return text in self.output

    def _read(self, timeout: float) -> bool:
        ready, _, _ = select.select([self.fd], [], [], timeout)
        if ready:
            try:
                chunk = os.read(self.fd, 65536)
            except OSError:  # EIO: the other side closed
                chunk = b""
            self.output += chunk
            if chunk:
                return True
        self._reap()
        return False

    def _reap(self) -> None:
        if self.status is None:
            pid, raw = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.status = os.waitstatus_to_exitcode(raw)

    def type(self, keys: bytes) -> None:
        os.write(self.fd, keys)

    def wait(self, seconds: float = 30.0) -> int:
        """The exit status, reading the screen meanwhile; fails the test after `seconds`."""
        deadline = time.monotonic() + seconds
        while self.status is None and time.monotonic() < deadline:
            self._read(0.1)
        while self._read(0.05):
            pass
        if self.status is None:
            self.kill()
            raise AssertionError(f"makeflow did not end within {seconds}s:\n{self.text}")
        os.close(self.fd)
        return self.status

    def hang_up(self, seconds: float = 30.0) -> int:
        """Close the terminal, as a closed window or a dropped ssh session does (the
        kernel sends SIGHUP); the exit status, failing the test after `seconds`."""
        os.close(self.fd)
        deadline = time.monotonic() + seconds
        while self.status is None and time.monotonic() < deadline:
            self._reap()
            time.sleep(0.05)
        if self.status is None:
            self.kill()
            raise AssertionError(f"makeflow did not end within {seconds}s of the hangup")
        return self.status

    def kill(self) -> None:
        try:
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass

    @property
    def text(self) -> str:
        return self.output.decode("utf-8", "replace")
