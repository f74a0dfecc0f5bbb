"""The quick answer to "is everything up to date?": the stat of every file, last time it was.

When a plan finds every step of a graph fresh, and the store trusts the stat behind every
digest it used, the stat of each file the graph reads or writes is saved beside the store.
A later build with the same graph, the same commands, code and parameters, and the same
generation of the store stats those files: if every stat is unchanged, so is every digest
and so every fingerprint, and nothing else needs to be read — not the stat cache, not one
fingerprint. Any difference, and the build plans as usual.

This is what keeps a no-op build to a `stat` per file, as with make and ninja, while
staleness is still decided by content.
"""

from __future__ import annotations

import contextlib
import marshal
import os
from pathlib import Path

from .fs import StatCache
from .graph import Graph
from .hashing import hash_bytes
from .loader import Pipeline
from .recipe import code_digest
from .state import StateStore, dump

NAME = "uptodate.cache"
FORMAT = 1  # raise whenever what a fingerprint covers changes


def recipes_key(pipeline: Pipeline) -> str:
    """A digest of what every rule runs and its parameters: all of a fingerprint but files."""
    facts = [(r.name, r.shell, code_digest(r.func) if r.func is not None else None,
              dump(r.params) if r.params else "") for r in pipeline.rules]
    return hash_bytes(repr((FORMAT, facts)).encode("utf-8", "surrogateescape"))


def holds(folder: Path, key: tuple) -> bool:
    """Whether the saved stats are for `key` and every file still stats the same.

    This loop is most of a no-op build on a big pipeline, hence plain `os.stat` calls. A
    directory is never among the files (see `_trusted_stats`), so a stat says it all.
    """
    try:
        saved_key, paths, seen = marshal.loads((folder / NAME).read_bytes())
    except (OSError, EOFError, ValueError, TypeError):
        return False
    if saved_key != key or len(paths) != len(seen):
        return False
    stat = os.stat
    try:
        for path, (size, mtime_ns, inode, _) in zip(paths, seen, strict=True):
            st = stat(path)
            if st.st_mtime_ns != mtime_ns or st.st_size != size or st.st_ino != inode:
                return False
    except OSError:
        return False
    return True


def save(folder: Path, key: tuple, graph: Graph, stale: bool, state: StateStore,
         stats: StatCache) -> None:
    """Save the stats behind a plan that found everything fresh; otherwise drop the file."""
    seen = None if stale else _trusted_stats(graph, state, stats)
    target = folder / NAME
    if seen is None:
        with contextlib.suppress(OSError):
            target.unlink()
        return
    temp = target.with_name(f"{NAME}.{os.getpid()}.tmp")
    try:
        temp.write_bytes(marshal.dumps((key, list(seen), list(seen.values()))))
        os.replace(temp, target)
    except OSError:  # only a cache
        with contextlib.suppress(OSError):
            temp.unlink()


def _trusted_stats(graph: Graph, state: StateStore, stats: StatCache) -> dict | None:
    """Each file's stat, if the store trusts every one of them; None when any is not.

    Steps that go stale with time, directories (whose stat says little of their trees) and
    files hashed too soon after they changed all make the quick check unsafe.
    """
    paths: dict[str, None] = {}
    for step in graph.steps.values():
        if step.rule.always or step.rule.max_age is not None:
            return None
        paths.update(dict.fromkeys(step.inputs.paths))
        paths.update(dict.fromkeys(step.outputs.paths))
    records = state.files
    seen = {}
    for path in paths:
        st = stats.get(path)
        record = records.get(path)
        if st is None or st.is_dir or record is None or not record.matches(st):
            return None
        seen[path] = tuple(st)
    return seen
