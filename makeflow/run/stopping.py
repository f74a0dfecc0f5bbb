"""Stopping a build cleanly: a second Ctrl-C kills every step at once, and what a failed or
stopped step wrote is removed."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

from makeflow.errors import STOP_SIGNALS, Interrupted, Terminated
from makeflow.run.executors import Executor
from makeflow.run.landing import os_error
from makeflow.store import fs


@contextlib.contextmanager
def escalating(executor: Executor) -> Iterator[None]:
    """While the build stops, another Ctrl-C (or SIGTERM, SIGHUP) kills every step at once
    instead of interrupting the stopping, which would leave steps running, partial
    outputs behind, or makeflow waiting at exit for a step that ignores SIGTERM.

    Signal handlers can only be set in the main thread; elsewhere this does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def kill_now(signum: int, frame: object) -> None:
        kill = getattr(executor, "kill_now", None)
        if kill is not None:
            kill()

    before = {sig: signal.signal(sig, kill_now) for sig in (signal.SIGINT, *STOP_SIGNALS)}
    try:
        yield
    finally:
        for sig, handler in before.items():
            signal.signal(sig, handler)


def interrupted(exc: KeyboardInterrupt, stopped: list[str], finished: int) -> Interrupted:
    """The error a build stopped by a signal ends with: which steps it stopped, and that
    the `finished` ones are recorded."""
    signum = exc.signum if isinstance(exc, Terminated) else signal.SIGINT
    return Interrupted(
        f"stopped by {signal.Signals(signum).name} while running "
        f"{', '.join(stopped) or 'no step'}; "
        f"{finished} steps that finished are recorded, the others run next time",
        signum=signum,
    )


def remove_all(paths: tuple[str, ...]) -> str:
    """Remove what a failed or stopped step wrote; '' or what could not be removed."""
    for path in paths:
        try:
            fs.remove(path)
        except OSError as exc:
            return f" (and its partial output could not be removed: {os_error(exc)})"
    return ""
