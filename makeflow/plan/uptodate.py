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
import itertools
import marshal
import os
import stat as stat_module
from array import array
from collections.abc import Iterable
from pathlib import Path

from makeflow.define.loader import Pipeline
from makeflow.plan.graph import Graph
from makeflow.store.beside import beside, worth_forking
from makeflow.store.fs import tree_stat
from makeflow.store.hashing import hash_value
from makeflow.store.state import FileRecord, StateStore, dump

NAME = "uptodate.cache"
FORMAT = 5  # raise whenever what a fingerprint covers, or the file's layout, changes


def recipes_key(pipeline: Pipeline) -> str:
    """A digest of what every rule runs and its parameters: all of a fingerprint but files."""
    facts = [(r.name, r.shell, r.code, r.params_text or (dump(r.params) if r.params else ""))
             for r in pipeline.rules]
    return hash_value((FORMAT, facts))


class Snapshot:
    """The saved records for one project, read once per build.

    Kept as flat arrays (size and mtime, inode, trusted) beside the list of paths: at
    200,000 files, tuples of Python ints took 76 MB to save and most of the load time.
    """

    def __init__(self, folder: Path):
        self.path = folder / NAME
        self.base: Saved | None = None  # what was read, when it matched the key
        self.gone: list[str] = []  # files of `base` that did not exist when statted

    def suspects(self, key: tuple) -> list[str] | None:
        """The files whose stat moved from their record (or whose record is too recent to
        trust), or None when there is no snapshot for `key`. From `SPLIT_AT` files, a
        forked child stats the second half while this process stats the first."""
        self.base, self.gone = None, []
        try:
            saved_key, *fields = marshal.loads(self.path.read_bytes())
            if saved_key != key:
                return None
            saved = Saved.decode(*fields)
        except (OSError, EOFError, ValueError, TypeError):
            return None
        size = len(saved.paths)
        half = size // 2 if size >= SPLIT_AT and worth_forking() else size
        theirs = beside(lambda: _stats_moved(saved, half, size)) if half < size else None
        moved, self.gone = _stats_moved(saved, 0, half if theirs else size)
        if theirs is not None:
            more = theirs() or _stats_moved(saved, half, size)
            moved += more[0]
            self.gone += more[1]
        self.base = saved
        return moved

    def present(self) -> set[str] | None:
        """The files the last `suspects` found to exist, or None when it read no snapshot.

        The graph cache asks whether every file it was resolved from still exists; for
        these the answer is already in, so at a million steps a million `stat` calls
        are not made twice.
        """
        if self.base is None:
            return None
        found = set(self.base.paths)
        found.difference_update(self.gone)
        return found

    def save(self, key: tuple, graph: Graph, state: StateStore,
             absent: Iterable[str] = ()) -> None:
        """Save the records behind a graph whose every step is fresh now.

        `absent` are files that may rightly be missing (the outputs of skipped steps): one
        that is missing now is saved as absent, and showing up makes it a suspect.
        """
        absent = {p for p in absent if not os.path.lexists(p)}
        saved = (self._updated(state, absent) if self.base is not None
                 else self._collect(graph, state, absent))
        if saved is None:
            self.drop()
            return
        temp = self.path.with_name(f"{NAME}.{os.getpid()}.tmp")
        try:
            temp.write_bytes(marshal.dumps((key, *saved.encode())))
            os.replace(temp, self.path)
        except OSError:  # only a cache
            with contextlib.suppress(OSError):
                temp.unlink()

    def drop(self) -> None:
        with contextlib.suppress(OSError):
            self.path.unlink()

    def _updated(self, state: StateStore, absent: set[str]) -> Saved | None:
        """The snapshot read at the start, with the records this build wrote.

        It matched the key, so the graph and its files are the same, and every record this
        build did not write is as it was saved.
        """
        assert self.base is not None
        saved, written = self.base, state.updated_files
        for i, path in enumerate(saved.paths):
            if path in absent:
                saved.put_absent(i)
            elif (path in written or saved.numbers[2 * i] == ABSENT) and not saved.put(
                    i, state.file(path)):
                return None
        return saved

    def _collect(self, graph: Graph, state: StateStore, absent: set[str]) -> Saved | None:
        """Each file's record, from the store; None when the quick check would be unsafe.

        Steps that go stale with time rule it out.
        """
        paths: dict[str, None] = {}
        for step in graph.steps.values():
            if step.rule.always or step.rule.max_age is not None:
                return None
            paths.update(dict.fromkeys(step.inputs.paths))
            paths.update(dict.fromkeys(step.outputs.paths))
        saved = Saved.empty(list(paths))
        for i, path in enumerate(saved.paths):
            if path in absent:
                saved.put_absent(i)
            elif not saved.put(i, state.file(path)):
                return None
        return saved


ABSENT = -1  # the size saved for a file that is rightly missing
SPLIT_AT = 100_000  # files from which a forked child stats half of them (store/beside.py)


def _stats_moved(saved: Saved, start: int, stop: int) -> tuple[list[str], list[str]]:
    """Of the files `start` to `stop`: those whose stat moved from their record (or
    whose record is too recent to trust), and those that do not exist.

    The `os.stat` loop is most of a no-op build on a big pipeline, so it is kept bare.
    A folder output (a checkpoint's, say) is compared by its tree's stat, as the
    planner trusts its recorded digest (`fs.tree_stat`).
    """
    stat = os.stat
    numbers, inodes, trusted, trees = saved.numbers, saved.inodes, saved.trusted, saved.trees
    moved: list[str] = []
    gone: list[str] = []
    for i, path in enumerate(itertools.islice(saved.paths, start, stop), start):
        try:
            st = stat(path)
            if trees[i]:
                if not stat_module.S_ISDIR(st.st_mode):
                    raise NotADirectoryError(path)
                st = _tree(path)
        except OSError:
            gone.append(path)
            if numbers[2 * i] != ABSENT:
                moved.append(path)
            continue
        if (not trusted[i] or st.st_mtime_ns != numbers[2 * i + 1]
                or st.st_size != numbers[2 * i] or st.st_ino != inodes[i]):
            moved.append(path)
    return moved, gone


class Saved:
    """Paths, and for each its recorded size and mtime, inode, whether it is trusted, and
    whether it is a folder (its numbers are then its tree's: see `fs.tree_stat`)."""

    def __init__(self, paths: list[str], numbers: array, inodes: array, trusted: bytearray,
                 trees: bytearray | None = None):
        trees = bytearray(len(paths)) if trees is None else trees
        if not len(paths) == len(inodes) == len(trusted) == len(trees) == len(numbers) // 2:
            raise ValueError("inconsistent snapshot")
        self.paths, self.numbers, self.inodes, self.trusted = paths, numbers, inodes, trusted
        self.trees = trees

    @classmethod
    def empty(cls, paths: list[str]) -> Saved:
        n = len(paths)
        return cls(paths, array("q", bytes(16 * n)), array("Q", bytes(8 * n)), bytearray(n))

    @classmethod
    def decode(cls, paths: list[str], numbers: bytes, inodes: bytes, trusted: bytes,
               trees: bytes) -> Saved:
        sizes_mtimes, inode_numbers = array("q"), array("Q")
        sizes_mtimes.frombytes(numbers)
        inode_numbers.frombytes(inodes)
        return cls(paths, sizes_mtimes, inode_numbers, bytearray(trusted), bytearray(trees))

    def encode(self) -> tuple:
        return (self.paths, self.numbers.tobytes(), self.inodes.tobytes(), bytes(self.trusted),
                bytes(self.trees))

    def put_absent(self, i: int) -> None:
        self.numbers[2 * i] = ABSENT
        self.numbers[2 * i + 1] = 0
        self.inodes[i] = 0
        self.trusted[i] = 1

    def put(self, i: int, record: FileRecord | None) -> bool:
        """Set entry `i` from a record; False when there is none."""
        if record is None:
            return False
        self.trees[i] = record.digest.startswith("tree:")
        self.numbers[2 * i] = record.size
        self.numbers[2 * i + 1] = record.mtime_ns
        self.inodes[i] = record.inode
        # see FileRecord.matches: a record made within a second of the change is not trusted
        self.trusted[i] = record.settled
        return True


def _tree(path: str) -> _TreeStat:
    """A folder's tree stat in the fields the loop compares (`st_size`, `st_mtime_ns`,
    `st_ino`)."""
    st = tree_stat(path)
    return _TreeStat(st.size, st.mtime_ns, st.inode)


class _TreeStat:
    __slots__ = ("st_ino", "st_mtime_ns", "st_size")

    def __init__(self, size: int, mtime_ns: int, inode: int):
        self.st_size, self.st_mtime_ns, self.st_ino = size, mtime_ns, inode
