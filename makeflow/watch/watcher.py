"""Watch mode: build what is stale, then again whenever a source, the rules or the config change.

Observer threads only note that something relevant changed (`Changes`); the loop here, in
the calling thread, waits for the burst to settle, for the next scheduled build or for
stop, then calls the one `build()` entry point. It shows itself through a `Screen`, which
the shell above provides.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Protocol

from makeflow.define.loader import Pipeline, load
from makeflow.errors import Interrupted, MakeflowError
from makeflow.run.build import BuildOptions, BuildResult, build
from makeflow.run.reporter import Reporter
from makeflow.watch.changes import Batch, Changes
from makeflow.watch.observe import Folders, Handler
from makeflow.watch.schedule import Schedule
from makeflow.watch.watchset import WatchSet, watch_set


class Screen(Protocol):
    """Where the watcher shows itself: a fresh reporter for each build, and its own lines."""

    def reporter(self) -> Reporter: ...
    def line(self, text: str) -> None: ...
    def error(self, text: str) -> None: ...


BuildFunction = Callable[[Pipeline, Iterable[str], BuildOptions, Reporter], BuildResult]


class Watcher:
    """Builds what is stale, then rebuilds after each settled burst of relevant changes and
    at each scheduled time, until stopped.

    `run()` is the loop, in the calling thread: wait (`wait`), then `rebuild`: reload the
    rules if they changed, build, watch what the new graph needs, show the result. The
    build function, the clock and the stop event are injectable, so tests drive the real
    loop in a thread without waiting for real time. `stop()` ends the loop at once; a
    stop event set by someone else is seen within `tick` seconds. `options.clock` is the
    one `max_age` uses; `clock` is the watcher's own, for the times it shows.
    """

    def __init__(self, pipeline: Pipeline, targets: Iterable[str] = (), *, screen: Screen,
                 options: BuildOptions | None = None, debounce: float = 0.2, poll: bool = False,
                 schedule: Schedule | None = None, build_fn: BuildFunction = build,
                 clock: Callable[[], float] = time.time, stop: threading.Event | None = None,
                 tick: float = 30.0):
        self.pipeline = pipeline  # the last rules that loaded without error
        self.file = pipeline.file
        self.targets = tuple(targets)
        self.screen = screen
        self.options = options or BuildOptions(clock=clock)
        self.debounce = debounce
        self.schedule = schedule
        self.build_fn = build_fn
        self.clock = clock
        self.stopped = stop or threading.Event()
        self.tick = tick  # longest sleep, so a wall-clock jump delays a schedule by no more
        self.changes = Changes()
        self.handler = Handler(self.changes, watch_set(self.file, pipeline))
        self.folders = Folders(self.handler, poll, screen.line)
        self.building = False
        self.last = ""

    def run(self) -> None:
        """Build, then wait and rebuild until `stop()`; the observer stops however it ends."""
        self.folders.start()
        self._follow(self.handler.watching)
        try:
            self.rebuild(Batch(build=True))
            while (batch := self.wait()) is not None:
                self.rebuild(batch)
        finally:
            self.folders.stop()

    def stop(self) -> None:
        self.stopped.set()
        self.changes.wake()

    def poke(self) -> None:
        """Look at the clock again now (tests call it after moving an injected clock)."""
        self.changes.wake()

    def wait(self) -> Batch | None:
        """The next batch to rebuild for: a burst quiet for `debounce`, or a scheduled time.

        Changes noted during a build wait here for the next one, so a build is followed
        by at most one more, however many changes came in while it ran.
        """
        self._show_idle()
        while not self.stopped.is_set():
            generation = self.changes.generation
            left = self.changes.settles_in(self.debounce)
            if left is not None and left <= 0:
                return self.changes.take()
            if self.schedule is not None and self.schedule.fire():
                return self.changes.take(scheduled=True)
            self.changes.wait(generation, self._timeout(left))
        return None

    def _timeout(self, settles_in: float | None) -> float:
        waits = [self.tick]
        if settles_in is not None:
            waits.append(settles_in)
        if self.schedule is not None:
            waits.append(self.schedule.seconds_left())
        return max(0.0, min(waits))

    def rebuild(self, batch: Batch) -> None:
        """Reload the rules if they changed (keeping the last good ones on error), then build."""
        self._announce(batch)
        reloaded = self._reload() if batch.reload else False
        if reloaded or batch.build:
            self._build()

    def _reload(self) -> bool:
        try:
            pipeline = load(self.file, self.pipeline.overrides)
        except MakeflowError as exc:
            self.screen.error(str(exc))
            self.screen.line("still using the last good rules until the file is fixed")
            self.last = f"{self.file.name} has an error ({self._now()})"
            return False
        self.screen.line(f"rules reloaded: {len(pipeline.rules)} rules")
        self.pipeline = pipeline
        self._follow(watch_set(self.file, pipeline))
        return True

    def _build(self) -> None:
        """One build; a user error (a source gone, an unknown target) is shown, not raised.

        `building` stays set when a stop escapes, so the caller knows a build was cut short.
        """
        self.building = True
        try:
            result = self.build_fn(self.pipeline, self.targets, self.options,
                                   self.screen.reporter())
        except Interrupted:
            raise
        except MakeflowError as exc:
            self.screen.error(str(exc))
            result = None
        self.building = False
        self._built(result)

    def _built(self, result: BuildResult | None) -> None:
        """Remember how the build went, and watch what its graph needs now."""
        if result is None:
            self.last = f"last build stopped by an error ({self._now()})"
        else:
            how = "ok" if result.ok else f"FAILED ({len(result.failed)} failed)"
            self.last = f"last build {how} ({self._now()}, {result.seconds:.2f}s)"
        plan = result.plan if result is not None else None
        self._follow(watch_set(self.file, self.pipeline, plan.graph if plan else None))

    def _follow(self, watching: WatchSet) -> None:
        self.handler.watching = watching
        self.folders.sync(watching.folders)

    def _announce(self, batch: Batch) -> None:
        if batch.scheduled:
            self.screen.line(f"scheduled build ({self.schedule.expression})"
                             if self.schedule else "scheduled build")
        elif batch.paths:
            more = f" and {batch.more} more" if batch.more else ""
            self.screen.line("changed: " + ", ".join(batch.paths) + more)

    def _show_idle(self) -> None:
        watching = self.handler.watching
        folders = len(watching.folders)
        parts = [f"watching {watching.files} files in {folders} folder{'s' * (folders != 1)}"]
        if self.last:
            parts.append(self.last)
        if self.schedule is not None:
            parts.append(f"next scheduled build {self.schedule.describe_next()}")
        self.screen.line("; ".join(parts) + "; waiting for changes")

    def _now(self) -> str:
        return datetime.fromtimestamp(self.clock()).strftime("%H:%M:%S")
