"""The previous outputs of the steps running now, set aside in `.makeflow/aside/`.

A step writes its outputs at the paths the rules declare, so tools that record their own
output path write the same bytes however the step was scheduled. To keep the promise that
a failed or killed step never leaves a half-written file where a good one was, a step's
existing outputs are renamed into this folder before it starts: it starts with nothing
where its outputs go (a folder output starts empty), and they are put back if it fails.
Each entry's name says which path it came from, so a build killed with SIGKILL is
repaired by the next one (`recover`, called under the project lock before planning).
"""

from __future__ import annotations

import contextlib
import os
import re

from makeflow.store import fs
from makeflow.store.hashing import hash_text
from makeflow.store.state import STATE_DIR

ASIDE = os.path.join(STATE_DIR, "aside")
LONGEST = 200  # bytes of an entry's name; a longer path is named by its digest
MANIFEST = ".path"  # beside a digest-named entry: the path it came from
_ESCAPED = re.compile(r"%(25|2F|23)")
_UNESCAPE = {"25": "%", "2F": "/", "23": "#"}
_COPYING = re.compile(r".*\.makeflow-(old-)?[0-9a-f]{8}")  # fs.replace's temporary names

Pair = tuple[str, str]  # (the output's path, where it waits)


def entry_name(path: str) -> str:
    """The entry for `path`: the path itself with `%`, `/` and `#` escaped, so names are
    distinct and readable; a digest (starting with `#`) when that is too long."""
    name = path.replace("%", "%25").replace("/", "%2F").replace("#", "%23")
    if len(name.encode("utf-8", "surrogateescape")) <= LONGEST:
        return name
    return "#" + hash_text(path)


def _path_of(name: str) -> str | None:
    """The path an entry came from; None for a digest name whose manifest is missing."""
    if not name.startswith("#"):
        return _ESCAPED.sub(lambda m: _UNESCAPE[m[1]], name)
    try:
        with open(os.path.join(ASIDE, name + MANIFEST), encoding="utf-8",
                  errors="surrogateescape") as f:
            return f.read()
    except OSError:
        return None


class Aside:
    """Sets aside the outputs of the steps of one build; the folder is made when needed."""

    def __init__(self) -> None:
        self.made = False

    def set_aside(self, paths: list[str]) -> list[Pair]:
        """Move each existing path of `paths` into the folder; the pairs to put back.

        Only paths known to exist are given, so a build of new files costs nothing here.
        """
        pairs: list[Pair] = []
        for path in paths:
            if not self.made:
                os.makedirs(ASIDE, exist_ok=True)
                self.made = True
            name = entry_name(path)
            where = os.path.join(ASIDE, name)
            if name.startswith("#"):
                with open(where + MANIFEST, "w", encoding="utf-8", errors="surrogateescape") as f:
                    f.write(path)
            try:
                _move(path, where)
            except FileNotFoundError:
                _drop_manifest(where)
                continue
            except OSError:
                put_back(pairs)
                raise
            pairs.append((path, where))
        return pairs


def _move(path: str, where: str) -> None:
    """A rename, the one system call it takes when nothing is in the way; `fs.replace`
    (which copies across file systems) otherwise."""
    try:
        os.rename(path, where)
    except FileNotFoundError:
        raise
    except OSError:
        fs.replace(path, where)


def put_back(pairs: list[Pair]) -> None:
    """Remove whatever a failed step left at each path and put the previous output back."""
    for path, where in pairs:
        if not os.path.lexists(where):  # dropped already: the step had succeeded
            continue
        fs.remove(path)
        fs.replace(where, path)
        _drop_manifest(where)


def drop(pairs: list[Pair]) -> None:
    """The step succeeded: its previous outputs go."""
    for _, where in pairs:
        try:
            os.unlink(where)  # one system call for a file
        except OSError:
            fs.remove(where)  # a folder output
        _drop_manifest(where)


def _drop_manifest(where: str) -> None:
    if os.path.basename(where).startswith("#"):
        fs.remove(where + MANIFEST)


def recover() -> list[str]:
    """Put back what a killed build left aside (its steps never finished); the paths.

    One failed `listdir` when there is nothing to do, which is every build but the one
    after a crash.
    """
    try:
        names = os.listdir(ASIDE)
    except (FileNotFoundError, NotADirectoryError):
        return []
    restored = []
    for name in sorted(names):
        if name.endswith(MANIFEST) and name.startswith("#"):
            continue
        where = os.path.join(ASIDE, name)
        path = None if _COPYING.fullmatch(name) else _path_of(name)
        if path is None:  # a copy cut short, or an entry that cannot be placed
            fs.remove(where)
            _drop_manifest(where)
            continue
        with contextlib.suppress(OSError):
            parent = os.path.dirname(path)
            if parent:
                os.makedirs(parent, exist_ok=True)
            put_back([(path, where)])
            restored.append(path)
    for name in os.listdir(ASIDE):  # manifests whose entry is gone
        if name.endswith(MANIFEST) and not os.path.lexists(
                os.path.join(ASIDE, name[: -len(MANIFEST)])):
            fs.remove(os.path.join(ASIDE, name))
    return restored
