"""Whether files exist, for a question asked of very many files in a few folders.

Resolving a pattern rule over a million inputs asks, for each, whether its output exists
and whether its source does: two million `stat` calls, most of a first dry run's time,
and the half that fail each raise an exception in Python. After `LISTED` questions in one
folder, that folder is read once (`os.scandir`) and the rest are answered from its names:
a name that is not there does not exist, and a name that is there exists unless it is a
symbolic link, which is still followed with a `stat` (a broken link does not exist).

A listing can only say "missing" where names compare byte for byte. macOS and Windows
compare them without case (and macOS without Unicode normalization), and so does a Linux
folder with casefolding turned on: there, and off Linux, every question is a `stat`.
"""

from __future__ import annotations

import os
import sys
from collections import Counter

from makeflow.store.fs import exists

LISTED = 256  # questions in one folder after which the folder is read whole
_UNLISTED = object()


class Existence:
    """`exists(path)`, answered from folder listings once a folder is asked often."""

    def __init__(self, listed: int = LISTED):
        self.listed = listed if sys.platform.startswith("linux") else 0
        self._asked: dict[str, int] = {}
        self._folders: dict[str, tuple[set[str], set[str]] | None] = {}

    def __call__(self, path: str) -> bool:
        folder, _, name = path.rpartition("/")
        listing = self._folders.get(folder, _UNLISTED)
        if listing is _UNLISTED:
            listing = self._list_if_asked_often(folder)
        if listing is None:  # not (yet) listed, or a listing cannot answer here
            return exists(path)
        names, links = listing
        if name not in names:
            return False
        return name not in links or exists(path)

    def many(self, paths: list[str]) -> list[bool]:
        """`self(path)` for each of `paths`; a folder's questions are counted first, so a
        folder asked often is listed before any of them is answered by a `stat`."""
        split = [p.rpartition("/") for p in paths]
        for folder, count in Counter([s[0] for s in split]).items():
            if folder not in self._folders:
                self._list_if_asked_often(folder, count)
        folders = self._folders
        answers = []
        for (folder, _, name), path in zip(split, paths, strict=True):
            listing = folders.get(folder)
            if listing is None:
                answers.append(exists(path))
            else:
                answers.append(name in listing[0] and (name not in listing[1] or exists(path)))
        return answers

    def _list_if_asked_often(self, folder: str, questions: int = 1
                             ) -> tuple[set[str], set[str]] | None:
        if not self.listed or not folder:
            return None
        asked = self._asked[folder] = self._asked.get(folder, 0) + questions
        if asked < self.listed:
            return None
        listing = self._folders[folder] = _listing(folder)
        return listing


def _listing(folder: str) -> tuple[set[str], set[str]] | None:
    """The names in `folder` and which of them are symbolic links; an empty listing for a
    folder that does not exist (nothing inside it does either); None when the folder
    cannot be read, or its names may match without case."""
    names: set[str] = set()
    links: set[str] = set()
    try:
        with os.scandir(folder) as entries:
            for entry in entries:
                names.add(entry.name)
                if entry.is_symlink():
                    links.add(entry.name)
    except (FileNotFoundError, NotADirectoryError):
        return set(), set()
    except OSError:  # unreadable (no read permission): its files may still be statted
        return None
    return (names, links) if _exact(folder, names) else None


def _exact(folder: str, names: set[str]) -> bool:
    """Whether names in `folder` match byte for byte: a name with its case swapped must
    not be found. A folder whose names have no letters matches exactly for any question."""
    for name in names:
        other = name.swapcase()
        if other != name:
            return other in names or not os.path.lexists(os.path.join(folder, other))
    return True
