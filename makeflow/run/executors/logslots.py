"""Where a step on this machine writes its log first: one file per job slot, reused.

Most steps print nothing; a shell step's log then holds only the `$ command` line makeflow
writes first. Creating a log file for each of them costs about what a trivial step's own work
does (on ext4 a new inode is most of the system time of a 10,000-step build), and a build
of silent steps would leave a folder of files that say nothing.

So a step's first attempt writes to its slot's file, truncated for it. When the step has
ended, the file becomes the step's log in `.makeflow/logs/` if the step printed something
or did not succeed (a shell step's command line goes first then, so the slot stays empty,
and cheap to truncate, for the silent steps that are most of a big build); otherwise the
step's earlier log, if any, is removed, and `makeflow logs` shows its command.
Later attempts of a step append to the log the first one kept (it failed, so it was kept).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import threading

FOLDER = os.path.join(".makeflow", "slots")

_numbers = itertools.count()


def new_slot(root: str) -> str | None:
    """A slot file's path for one job slot of this process (made on first use); None
    when the folder cannot be made (its steps then write their own logs, as before)."""
    folder = os.path.join(root, FOLDER)
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError:
        return None
    return os.path.join(folder, f"{os.getpid()}-{next(_numbers)}.log")


def clear(root: str) -> None:
    """Remove slot files a build killed outright left behind. Called as a local executor
    starts, under the project's lock, so no other build of the project uses them."""
    folder = os.path.join(root, FOLDER)
    with contextlib.suppress(OSError):
        remove([os.path.join(folder, name) for name in os.listdir(folder)])


def open_slot(path: str) -> int:
    """The slot file, empty, as a bare descriptor for this step's output."""
    return os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o666)


def settle(slot: str, log: str, keep: bool, head: bytes = b"") -> None:
    """Make the slot's file the step's log (`keep`), after `head`, or leave the step with
    no log file.

    A step that keeps no log has its earlier run's log removed, so `makeflow logs` never
    shows what an older run printed. Never raises: the step's result stands either way.
    """
    try:
        if not keep:
            os.unlink(log)
            return
        try:
            _keep(slot, log, head)
        except FileNotFoundError:  # the logs folder went (a user's clean-up): make it again
            os.makedirs(os.path.dirname(log) or ".", exist_ok=True)
            _keep(slot, log, head)
    except OSError:
        pass


def _keep(slot: str, log: str, head: bytes) -> None:
    """The slot's file becomes `log`: renamed, or copied after `head` into a new file that
    is renamed into place (a reader never sees half a log)."""
    if not head:
        os.replace(slot, log)
        return
    near = f"{log}.{os.getpid()}.tmp"
    src = os.open(slot, os.O_RDONLY | os.O_CLOEXEC)
    try:
        out = os.open(near, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o666)
        try:
            os.write(out, head)
            size, offset = os.fstat(src).st_size, 0
            while offset < size and (sent := os.sendfile(out, src, offset, size - offset)):
                offset += sent
        finally:
            os.close(out)
        os.replace(near, log)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(near)
        raise
    finally:
        os.close(src)


def remove(paths: list[str]) -> None:
    """Remove slot files (a build's end), and their folder once no build uses it."""
    for path in paths:
        with contextlib.suppress(OSError):
            os.unlink(path)
    if paths:
        with contextlib.suppress(OSError):
            os.rmdir(os.path.dirname(paths[0]))


class ThreadSlots:
    """One slot per thread of the executor's pool, made when the thread first needs one."""

    def __init__(self, root: str):
        clear(root)
        self.root = root
        self.local = threading.local()
        self.lock = threading.Lock()
        self.made: list[str] = []

    def mine(self) -> str | None:
        if not hasattr(self.local, "path"):
            path = self.local.path = new_slot(self.root)
            if path is not None:
                with self.lock:
                    self.made.append(path)
        return self.local.path

    def remove(self) -> None:
        with self.lock:
            made, self.made = self.made, []
        remove(made)
