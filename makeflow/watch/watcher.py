"""Watch mode: build what is stale, then again whenever a source, the rules or the config change.

The only module that imports watchdog. Observer threads only note that something relevant
changed (`Changes`); the loop in the calling thread waits for the burst to settle, for the
next scheduled build or for stop, then calls the one `build()` entry point. Folders are
watched rather than files, so a step or an editor that writes a new file and renames it
over the old one is seen like any other write.
"""

from __future__ import annotations

import contextlib
import errno
import os
import posixpath
import re
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Protocol

from watchdog.events import (
    EVENT_TYPE_CREATED,
    EVENT_TYPE_DELETED,
    EVENT_TYPE_MOVED,
    DirCreatedEvent,
    DirDeletedEvent,
    DirMovedEvent,
    FileAttribEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver, ObservedWatch
from watchdog.observers.polling import PollingObserver

from .build import BuildOptions, BuildResult, build
from .config import CONFIG_FILE
from .errors import Interrupted, MakeflowError
from .graph import Graph
from .loader import Pipeline, load
from .patterns import Pattern, compile_pattern
from .report import Reporter, make_reporter
from .rules import WILDCARD
from .schedule import Schedule
from .state import STATE_DIR

RULES = "rules"  # reload the rules, then build
SOURCE = "source"  # build

# Event kinds that can change what a build reads. Reads (opened, closed without writing)
# are left out: the build's own hashing would otherwise wake the watcher.
EVENTS = [FileCreatedEvent, FileModifiedEvent, FileAttribEvent, FileClosedEvent,
          FileDeletedEvent, FileMovedEvent, DirCreatedEvent, DirDeletedEvent, DirMovedEvent]
FOLDER_EVENTS = {EVENT_TYPE_CREATED, EVENT_TYPE_DELETED, EVENT_TYPE_MOVED}

MAX_FOLDERS = 64  # above this, watch whole top-level folders instead (one thread per folder)
POLL_SECONDS = 0.5

EDITOR_NAMES = re.compile(r"(\.sw[a-p]|~)$|^\.#|^#.*#$|^4913$")


def is_noise(rel: str) -> bool:
    """Paths no build reads: version control, makeflow's own state and staging, editors'
    swap and temporary files, and the names `fs.replace` gives to files it moves aside."""
    parts = rel.split("/")
    name = parts[-1]
    return (parts[0] == STATE_DIR or ".git" in parts or EDITOR_NAMES.search(name) is not None
            or ".makeflow-" in name)


def _shape(text: str) -> str:
    """A pattern with its wildcards blanked, so `out/{a}.txt` and `out/{b}.txt` compare equal."""
    return WILDCARD.sub("{}", text)


@dataclass(frozen=True, eq=False)
class WatchSet:
    """What the watcher listens to, and what it ignores.

    `sources` are the files the targets depend on that no rule makes (absolute paths);
    `rules` the rules file and its config. `listed` are the input patterns of pattern
    rules: a new file matching one may be listed by a `glob_wildcards` in the rules file,
    so it reloads the rules. Outputs are relative to `root`, as rules name them.
    """

    root: str
    rules: frozenset[str]
    sources: frozenset[str] = frozenset()
    trees: tuple[str, ...] = ()  # sources that are folders: a change inside counts
    parents: frozenset[str] = frozenset()  # folders above sources, for folder events
    outputs: frozenset[str] = frozenset()
    output_patterns: tuple[Pattern, ...] = ()
    listed: tuple[Pattern, ...] = ()
    folders: dict[str, bool] = field(default_factory=dict)  # folder -> recursive

    @property
    def files(self) -> int:
        """How many files are watched: the sources, and the rules files that exist."""
        return len(self.sources - self.rules) + sum(os.path.exists(p) for p in self.rules)

    def relative(self, path: str) -> str | None:
        rel = os.path.relpath(path, self.root).replace(os.sep, "/")
        return None if rel == "." or rel.startswith("../") or rel == ".." else rel

    def kind(self, path: str, gone: bool = False) -> str | None:
        """RULES, SOURCE or None for an event at `path`; `gone` when it was removed or
        renamed away, which for a listed file changes what the rules file lists."""
        rel = self.relative(path)
        if rel is None or is_noise(rel):
            return None
        if path in self.rules:
            return RULES
        if path in self.sources or path in self.parents or self._in_tree(path):
            return RULES if gone and self._is_listed(rel) else SOURCE
        if rel in self.outputs or any(p.match(rel) for p in self.output_patterns):
            return None
        return RULES if self._is_listed(rel) else None

    def _in_tree(self, path: str) -> bool:
        return any(path.startswith(tree + os.sep) for tree in self.trees)

    def _is_listed(self, rel: str) -> bool:
        return any(p.match(rel) for p in self.listed)


def watch_set(file: Path, pipeline: Pipeline | None = None, graph: Graph | None = None) -> WatchSet:
    """The watch set for a pipeline, from its graph when one could be resolved, else from
    its rules alone (every input no rule makes); with no pipeline, the rules files only."""
    root = str(file.parent)
    rules = frozenset({str(file), os.path.join(root, CONFIG_FILE)})
    if pipeline is None:
        return WatchSet(root, rules, folders=folders_for(root, rules, (), ()))
    explicit = [r for r in pipeline.rules if not r.is_pattern]
    outputs = {p for r in explicit for p in r.outputs.paths}
    output_patterns = tuple(compile_pattern(p) for r in pipeline.rules if r.is_pattern
                            for p in r.outputs.paths)
    if graph is not None:
        relative = list(graph.sources)
        outputs |= {p for step in graph.steps.values() for p in step.outputs.paths}
    else:
        relative = _rule_sources(pipeline, outputs, output_patterns)
    sources = frozenset(os.path.join(root, p) for p in relative)
    trees = tuple(sorted(p for p in sources if os.path.isdir(p)))
    listed = _listed(pipeline, output_patterns)
    return WatchSet(root, rules, sources, trees, _parents(sources, root), frozenset(outputs),
                    output_patterns, listed, folders_for(root, rules | sources, trees, listed))


def _rule_sources(pipeline: Pipeline, outputs: set[str],
                  output_patterns: tuple[Pattern, ...]) -> list[str]:
    """Inputs without wildcards that no rule makes: the sources when no graph is at hand."""
    paths = dict.fromkeys(p for r in pipeline.rules for p in r.inputs.paths
                          if not WILDCARD.search(p))
    return [p for p in paths
            if p not in outputs and not any(o.match(p) for o in output_patterns)]


def _listed(pipeline: Pipeline, output_patterns: tuple[Pattern, ...]) -> tuple[Pattern, ...]:
    """Input patterns of pattern rules that no rule's outputs share: files users add."""
    made = {_shape(p.text) for p in output_patterns}
    texts = dict.fromkeys(p for r in pipeline.rules if r.is_pattern for p in r.inputs.paths
                          if WILDCARD.search(p) and _shape(p) not in made)
    return tuple(compile_pattern(t) for t in texts)


def _parents(sources: Iterable[str], root: str) -> frozenset[str]:
    found: set[str] = set()
    for path in sources:
        parent = os.path.dirname(path)
        while parent != root and parent.startswith(root + os.sep) and parent not in found:
            found.add(parent)
            parent = os.path.dirname(parent)
    return frozenset(found)


def pattern_folder(text: str) -> tuple[str, bool]:
    """The folder holding a pattern's files, and whether they may lie in subfolders too."""
    segments = text.split("/")
    for i, segment in enumerate(segments):
        if WILDCARD.search(segment):
            deep = i < len(segments) - 1 or any(m.group(2) for m in WILDCARD.finditer(text))
            return "/".join(segments[:i]), deep
    return posixpath.dirname(text), False


def folders_for(root: str, files: Iterable[str], trees: Iterable[str],
                listed: Iterable[Pattern]) -> dict[str, bool]:
    """Folders to watch (folder -> recursive): each file's folder, each source tree, each
    listed pattern's folder. A folder that does not exist yet is stood in for by its
    nearest existing parent, whose event on creating it wakes the watcher."""
    wanted: dict[str, bool] = {}
    for path in files:
        _want(wanted, _existing(os.path.dirname(path), root), False)
    for tree in trees:
        _want(wanted, tree, True)
    for pattern in listed:
        folder, deep = pattern_folder(pattern.text)
        full = os.path.join(root, folder) if folder else root
        existing = _existing(full, root)
        _want(wanted, existing, deep and existing == full)
    return _collapse(_without_nested(wanted), root)


def _want(wanted: dict[str, bool], folder: str, recursive: bool) -> None:
    wanted[folder] = wanted.get(folder, False) or recursive


def _existing(folder: str, root: str) -> str:
    while folder != root and not os.path.isdir(folder) and folder.startswith(root + os.sep):
        folder = os.path.dirname(folder)
    return folder


def _without_nested(wanted: dict[str, bool]) -> dict[str, bool]:
    deep = [f for f, recursive in wanted.items() if recursive]
    return {f: r for f, r in wanted.items()
            if not any(f != d and f.startswith(d + os.sep) for d in deep)}


def _collapse(wanted: dict[str, bool], root: str) -> dict[str, bool]:
    """Too many folders: watch each top-level folder whole instead, or else the root."""
    if len(wanted) <= MAX_FOLDERS:
        return wanted
    tops = {root: False}
    for folder in wanted:
        rel = os.path.relpath(folder, root)
        if rel != ".":
            tops[os.path.join(root, rel.split(os.sep)[0])] = True
    return tops if len(tops) <= MAX_FOLDERS else {root: True}


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


class Handler(FileSystemEventHandler):
    """Runs in an observer thread: maps each event to watched paths and notes it, no more."""

    def __init__(self, changes: Changes, watching: WatchSet):
        self.changes = changes
        self.watching = watching  # replaced whole by the loop; reading it is atomic

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.is_directory and event.event_type not in FOLDER_EVENTS:
            return  # a folder "modified" only says an entry inside changed; that one comes too
        watching = self.watching
        for path, gone in event_paths(event):
            kind = watching.kind(path, gone)
            if kind is not None:
                self.changes.note(kind, watching.relative(path) or path)


def event_paths(event: FileSystemEvent) -> list[tuple[str, bool]]:
    """The paths an event touches, each with whether it is gone: a rename has two."""
    src = os.fsdecode(event.src_path)
    if event.event_type == EVENT_TYPE_MOVED:
        dest = os.fsdecode(event.dest_path)
        return [(p, gone) for p, gone in ((src, True), (dest, False)) if p]
    return [(src, event.event_type == EVENT_TYPE_DELETED)] if src else []


class Folders:
    """The folders under watch, kept in step with the watch set.

    Native events (inotify and the like) unless `poll`; when they cannot be had, for
    instance once the system's inotify limits are reached, it falls back to polling.
    """

    def __init__(self, handler: Handler, poll: bool, say: Callable[[str], None]):
        self.handler = handler
        self.poll = poll
        self.say = say
        self.observer: BaseObserver = self._observer()
        self.watched: dict[str, tuple[bool, int, ObservedWatch]] = {}

    def _observer(self) -> BaseObserver:
        return PollingObserver(timeout=POLL_SECONDS) if self.poll else Observer()

    def start(self) -> None:
        try:
            self.observer.start()
        except OSError as exc:
            self._fall_back(exc)

    def stop(self) -> None:
        self.observer.stop()
        with contextlib.suppress(RuntimeError):
            self.observer.join(timeout=5)

    def sync(self, wanted: dict[str, bool]) -> None:
        """Unwatch folders no longer wanted or replaced since, then watch the new ones."""
        for folder, (recursive, inode, watch) in list(self.watched.items()):
            if wanted.get(folder) != recursive or _inode(folder) != inode:
                with contextlib.suppress(KeyError, OSError):
                    self.observer.unschedule(watch)
                del self.watched[folder]
        for folder, recursive in wanted.items():
            if folder not in self.watched:
                self._watch(folder, recursive)

    def _watch(self, folder: str, recursive: bool) -> None:
        inode = _inode(folder)
        if inode is None:
            return  # gone already; its parent's event brings a rebuild and a new sync
        try:
            watch = self.observer.schedule(self.handler, folder, recursive=recursive,
                                           event_filter=EVENTS)
        except (FileNotFoundError, NotADirectoryError):
            return
        except OSError as exc:
            if self.poll or exc.errno not in (errno.ENOSPC, errno.EMFILE, errno.ENOMEM):
                raise
            self._fall_back(exc)
            return
        self.watched[folder] = (recursive, inode, watch)

    def _fall_back(self, exc: OSError) -> None:
        """Native events are unavailable: poll instead, watching the same folders."""
        self.say(f"native file events are unavailable ({exc.strerror or exc}); "
                 f"polling every {POLL_SECONDS:g}s instead")
        wanted = {folder: recursive for folder, (recursive, _, _) in self.watched.items()}
        self.stop()
        self.poll = True
        self.observer = self._observer()
        self.observer.start()
        self.watched = {}
        self.sync(wanted)


def _inode(folder: str) -> int | None:
    try:
        return os.stat(folder).st_ino
    except OSError:
        return None


class Screen(Protocol):
    """Where the watcher shows itself: a fresh reporter for each build, and its own lines."""

    def reporter(self) -> Reporter: ...
    def line(self, text: str) -> None: ...
    def error(self, text: str) -> None: ...


class PlainScreen:
    """Plain lines on a stream; each build reports there through `make_reporter`."""

    def __init__(self, out: IO[str]):
        self.out = out

    def reporter(self) -> Reporter:
        return make_reporter(self.out)

    def line(self, text: str) -> None:
        self.out.write(text + "\n")
        self.out.flush()

    def error(self, text: str) -> None:
        first, _, rest = text.partition("\n")
        self.line(f"error: {first}" + (f"\n{rest}" if rest else ""))


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
