"""The project lock: one build at a time in a folder, so two never write the same files.

An advisory `flock` on `.makeflow/lock`, released by the kernel when the process dies, so
a killed build never leaves a stale lock behind. The holder writes its pid into the file,
so a waiting build can say who it waits for.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Callable
from pathlib import Path

from makeflow.errors import UserError
from makeflow.store.opening import READ_ONLY_ERRORS, check_state_dir
from makeflow.store.state import STATE_DIR


class ReadOnlyFolder(UserError):
    """The project's folder cannot be written, so nothing can be built there."""


class ProjectLock:
    """Held for the whole of a build (or clean); `status` and `why` never take it."""

    def __init__(self, root: Path):
        self.path = Path(root) / STATE_DIR / "lock"
        self.fd: int | None = None

    def acquire(self, wait: bool = True, on_wait: Callable[[str], None] | None = None) -> None:
        """Take the lock, waiting for another build unless `wait` is False.

        Raises ReadOnlyFolder in a folder makeflow cannot write (a read-only checkout).
        """
        fd = self._open()
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = self._holder(fd)
            if not wait:
                os.close(fd)
                raise UserError(
                    f"another makeflow ({holder}) is building in {self.path.parent.parent}",
                    hint="Wait for it to finish, or run without --no-wait to wait for it.",
                ) from None
            if on_wait is not None:
                on_wait(f"waiting for another makeflow ({holder}) to finish its build here")
            fcntl.flock(fd, fcntl.LOCK_EX)
        with contextlib.suppress(OSError):  # who holds it is only told, never needed
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"pid {os.getpid()} since {time.strftime('%H:%M:%S')}".encode(), 0)
        self.fd = fd

    def _open(self) -> int:
        check_state_dir(self.path.parent)
        try:
            self.path.parent.mkdir(exist_ok=True)
            return os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            root = self.path.parent.parent
            if exc.errno in READ_ONLY_ERRORS:
                raise ReadOnlyFolder(
                    f"the folder {root} is read-only ({exc.strerror}): a build writes its "
                    f"outputs there and its records in {STATE_DIR}",
                    hint="Build in a copy you can write to; `makeflow status`, `why` and "
                    "`build -n` work here as they are.") from None
            raise UserError(f"cannot write {self.path}: {exc.strerror}",
                            hint="Free some space or fix the folder, then build again.") from None

    @staticmethod
    def _holder(fd: int) -> str:
        text = os.pread(fd, 200, 0).decode(errors="replace").strip()
        return text or "a process"

    def release(self) -> None:
        if self.fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(self.fd, 0)
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None

    def __enter__(self) -> ProjectLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
