"""Watching folders with watchdog (the only module that imports it): events become notes
in `Changes`, with a fall-back to polling when the system's file events run out.

Folders are watched rather than files, so a step or an editor that writes a new file and
renames it over the old one is seen like any other write.
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Callable

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

from makeflow.watch.changes import Changes
from makeflow.watch.watchset import WatchSet

# Event kinds that can change what a build reads. Reads (opened, closed without writing)
# are left out: the build's own hashing would otherwise wake the watcher.
EVENTS = [FileCreatedEvent, FileModifiedEvent, FileAttribEvent, FileClosedEvent,
          FileDeletedEvent, FileMovedEvent, DirCreatedEvent, DirDeletedEvent, DirMovedEvent]
FOLDER_EVENTS = {EVENT_TYPE_CREATED, EVENT_TYPE_DELETED, EVENT_TYPE_MOVED}
POLL_SECONDS = 0.5


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

