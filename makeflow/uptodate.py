"""The quick answer to "what may have changed?": the stat behind every digest, saved.

Whenever a build ends with every step of its graph fresh, the stat (size, mtime, inode)
that the store recorded for each file the graph reads or writes is saved beside the store,
with the store's generation, the graph, and what every rule runs. The next build with the
same graph, commands, code, parameters and store generation stats those files: a file
whose stat equals its record has the recorded digest, so only the files that differ are
suspects. None means nothing is stale and nothing else is read; a few mean only the steps
that touch them, and those below, are planned. Anything else, and the build plans in full.

This is what keeps a no-op build to a `stat` per file, as with make and ninja, and a
one-file change proportional to what it reaches, while staleness is still decided by
content.
"""

from __future__ import annotations

import contextlib
import marshal
import os
from pathlib import Path

from .graph import Graph
from .hashing import hash_bytes
from .loader import Pipeline
from .recipe import code_digest
from .state import FileRecord, StateStore, dump

NAME = "uptodate.cache"
FORMAT = 2  # raise whenever what a fingerprint covers changes

Entry = tuple[int, int, int, bool]  # size, mtime_ns, inode, and whether the record is trusted


def recipes_key(pipeline: Pipeline) -> str:
    """A digest of what every rule runs and its parameters: all of a fingerprint but files."""
    facts = [(r.name, r.shell, code_digest(r.func) if r.func is not None else None,
              dump(r.params) if r.params else "") for r in pipeline.rules]
    return hash_bytes(repr((FORMAT, facts)).encode("utf-8", "surrogateescape"))


class Snapshot:
    """The saved stats for one project, read once per build."""

    def __init__(self, folder: Path):
        self.path = folder / NAME
        self.base: dict[str, Entry] | None = None  # the saved entries, if they still hold

    def suspects(self, key: tuple) -> list[str] | None:
        """The files whose stat moved from their record (or whose record is too recent to
        trust), or None when there is no snapshot for `key`.

        The `os.stat` loop is most of a no-op build on a big pipeline, so it is kept bare.
        A directory is never among the files (see `_entries`), so a stat says it all.
        """
        try:
            saved_key, paths, entries = marshal.loads(self.path.read_bytes())
        except (OSError, EOFError, ValueError, TypeError):
            return None
        if saved_key != key or len(paths) != len(entries):
            return None
        stat = os.stat
        moved = []
        for path, (size, mtime_ns, inode, trusted) in zip(paths, entries, strict=True):
            try:
                st = stat(path)
            except OSError:
                moved.append(path)
                continue
            if (not trusted or st.st_mtime_ns != mtime_ns or st.st_size != size
                    or st.st_ino != inode):
                moved.append(path)
        self.base = dict(zip(paths, entries, strict=True))
        return moved

    def save(self, key: tuple, graph: Graph, state: StateStore) -> None:
        """Save the records behind a graph whose every step is fresh now."""
        entries = self._entries(graph, state)
        if entries is None:
            self.drop()
            return
        temp = self.path.with_name(f"{NAME}.{os.getpid()}.tmp")
        try:
            temp.write_bytes(marshal.dumps((key, list(entries), list(entries.values()))))
            os.replace(temp, self.path)
        except OSError:  # only a cache
            with contextlib.suppress(OSError):
                temp.unlink()

    def drop(self) -> None:
        with contextlib.suppress(OSError):
            self.path.unlink()

    def _entries(self, graph: Graph, state: StateStore) -> dict[str, Entry] | None:
        """Each file's recorded stat; None when the quick check would be unsafe.

        Steps that go stale with time, and directories (whose own stat says little of
        their trees), rule it out. The saved entries still stand for files whose record
        this build did not write, which spares reading the whole store.
        """
        paths: dict[str, None] = {}
        for step in graph.steps.values():
            if step.rule.always or step.rule.max_age is not None:
                return None
            paths.update(dict.fromkeys(step.inputs.paths))
            paths.update(dict.fromkeys(step.outputs.paths))
        base = self.base or {}
        written = state.updated_files
        entries: dict[str, Entry] = {}
        for path in paths:
            entry = base.get(path) if path not in written else None
            if entry is None:
                record = state.file(path)
                if record is None or record.digest.startswith("tree:"):
                    return None
                entry = _entry(record)
            entries[path] = entry
        return entries


def _entry(record: FileRecord) -> Entry:
    trusted = record.checked_ns - record.mtime_ns > 1_000_000_000  # see FileRecord.matches
    return (record.size, record.mtime_ns, record.inode, trusted)
