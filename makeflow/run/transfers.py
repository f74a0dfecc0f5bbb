"""Progress of big transfers to and from the remote cache, told to the reporter.

The remote store reports every chunk of every blob from its transfer threads, by digest.
This turns that into what a person wants to watch: only files of at least `BIG` bytes
(many small files go by quickly, batched and concurrent), named by their output path,
at most one report per file every `EVERY` seconds, plus the last one, when it is done.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from makeflow.store.cas import BlobError, Cas, is_tree

BIG = 8 << 20  # bytes: smaller files are not shown
EVERY = 0.5  # seconds between two reports of one file

# What a reporter is told: (name, sending, bytes done, bytes in all).
Show = Callable[[str, bool, int, int], None]


class Transfers:
    """The remote store's progress callback; names come from `name()` before a transfer."""

    def __init__(self, show: Show | None, every: float = EVERY):
        self.show = show
        self.every = every
        self._lock = threading.Lock()
        self._names: dict[str, str] = {}  # blob digest → the output path it is
        self._folders: dict[str, tuple[str, Cas]] = {}  # tree digest → folder, local store
        self._last: dict[tuple[str, bool], float] = {}

    def name(self, outputs: dict[str, str], cas: Cas) -> None:
        """Name the blobs of these outputs (path → digest); a folder's files are named
        once its manifest is in `cas`."""
        with self._lock:
            for path, digest in outputs.items():
                self._names.setdefault(digest, path)
                if is_tree(digest):
                    self._folders[digest] = (path, cas)

    def __call__(self, digest: str, sending: bool, done: int, total: int) -> None:
        if self.show is None or total < BIG:
            return
        now = time.monotonic()
        key = (digest, sending)
        with self._lock:
            last = self._last.get(key)
            if done < total and last is not None and now - last < self.every:
                return
            if done >= total:
                self._last.pop(key, None)
            else:
                self._last[key] = now
            name = self._names.get(digest) or self._in_folder(digest)
        self.show(name, sending, done, total)

    def _in_folder(self, digest: str) -> str:
        """A file blob's path inside a named folder, or the digest when none holds it."""
        for tree, (folder, cas) in list(self._folders.items()):
            try:
                entries = cas.manifest(tree)
            except BlobError:
                continue  # not fetched yet
            del self._folders[tree]
            for rel, kind, payload in entries:
                if kind == "f":
                    self._names.setdefault(payload, f"{folder}/{rel}")
        return self._names.get(digest, f"blob {digest[:16]}")
