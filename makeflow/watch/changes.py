"""What changed since the last rebuild, noted from any thread: the burst the loop waits on
to settle (the debounce) before it builds once.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from makeflow.watch.watchset import RULES, SOURCE


@dataclass(frozen=True)
class Batch:
    """The changes one rebuild answers: reload the rules first? build? what changed?"""

    reload: bool = False
    build: bool = False
    paths: tuple[str, ...] = ()
    more: int = 0  # changed paths beyond those listed
    scheduled: bool = False


class Changes:
    """What the observer threads noted since the last rebuild; safe from any thread.

    `generation` moves on every note and wake, so the loop can wait without missing one
    that lands between its check and its wait.
    """

    SHOWN = 5

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self.generation = 0
        self._clear()

    def _clear(self) -> None:
        self.pending = self.reload = self.build = False
        self.last = 0.0
        self.paths: dict[str, None] = {}

    def note(self, kind: str, path: str) -> None:
        with self._cond:
            self.pending = True
            self.reload = self.reload or kind == RULES
            self.build = self.build or kind == SOURCE
            self.last = time.monotonic()
            if len(self.paths) <= 1000:
                self.paths[path] = None
            self._wake()

    def wake(self) -> None:
        with self._cond:
            self._wake()

    def _wake(self) -> None:
        self.generation += 1
        self._cond.notify_all()

    def settles_in(self, debounce: float) -> float | None:
        """Seconds until the burst has been quiet for `debounce`; None with nothing pending."""
        with self._cond:
            return self.last + debounce - time.monotonic() if self.pending else None

    def take(self, scheduled: bool = False) -> Batch:
        with self._cond:
            paths = tuple(self.paths)
            batch = Batch(self.reload or scheduled, self.build or scheduled,
                          paths[: self.SHOWN], max(0, len(paths) - self.SHOWN), scheduled)
            self._clear()
            return batch

    def wait(self, generation: int, timeout: float) -> None:
        with self._cond:
            if self.generation == generation:
                self._cond.wait(timeout)

