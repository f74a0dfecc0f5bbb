"""The one place that stats, moves and removes files, so every such rule lives here."""

from __future__ import annotations

import contextlib
import errno
import os
import stat as modes
import sys
from collections import Counter
from collections.abc import Iterable, Iterator
from typing import NamedTuple

# Linux's FICLONE ioctl (_IOW(0x94, 9, int)): the destination file shares the source's
# blocks, copy-on-write, on file systems that can (btrfs, XFS with reflink, bcachefs,
# OCFS2). Elsewhere it fails at once, with EOPNOTSUPP (ext4, tmpfs), EXDEV (another file
# system) or EINVAL. macOS's clonefile(2) is not reachable from the standard library.
FICLONE = 0x40049409
CAN_CLONE = sys.platform.startswith("linux")


class Stat(NamedTuple):
    """What a cheap check sees of a file: if all three are unchanged, so is its content."""

    size: int
    mtime_ns: int
    inode: int
    is_dir: bool


def stat(path: str) -> Stat | None:
    """Stat `path` following symlinks; None when it does not exist (or is a broken link)."""
    try:
        st = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    # tuple.__new__: the named tuple's own __new__ is Python code, and this runs per file
    return _new(Stat, (st.st_size, st.st_mtime_ns, st.st_ino,
                       (st.st_mode & 0o170000) == 0o040000))


_new = tuple.__new__


def exists(path: str) -> bool:
    """Whether `path` exists (following symlinks), as `stat` would find it, keeping
    nothing of the stat."""
    try:
        os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return False
    return True


def remove(path: str) -> None:
    """Remove a file, link or directory tree; a missing path is fine, even in a folder
    that cannot be written (where unlink says "read-only" before "no such file")."""
    if os.path.isdir(path) and not os.path.islink(path):
        import shutil  # here: with bz2 and lzma it is 1.5 ms of every command's start

        shutil.rmtree(path, ignore_errors=True)
    else:
        try:
            os.unlink(path)
        except (FileNotFoundError, NotADirectoryError):
            pass
        except OSError:
            if os.path.lexists(path):
                raise


def make_read_only(path: str) -> None:
    """Take away every write permission from a file, or from each file in a folder's tree
    (the folders stay writable, so the output can still be set aside and replaced by a
    rerun, and removed by `clean`). Symlinks are left alone."""
    if os.path.islink(path):
        return
    files = [path] if not os.path.isdir(path) else [
        os.path.join(top, name) for top, _, names in os.walk(path) for name in names]
    for file in files:
        st = os.lstat(file)
        if modes.S_ISREG(st.st_mode) and st.st_mode & 0o222:
            os.chmod(file, modes.S_IMODE(st.st_mode) & ~0o222)


def read_only(path: str) -> bool:
    """Whether a file has no owner write permission, or a folder holds such a file: an
    output made read-only (`protected=True`), or by hand."""
    if os.path.islink(path) or not os.path.lexists(path):
        return False
    if not os.path.isdir(path):
        return not os.lstat(path).st_mode & modes.S_IWUSR
    return any(not os.lstat(os.path.join(top, name)).st_mode & modes.S_IWUSR
               for top, _, names in os.walk(path) for name in names
               if not os.path.islink(os.path.join(top, name)))


def clone(src_fd: int, dst_fd: int) -> bool:
    """Make the empty file `dst_fd` a copy-on-write clone of `src_fd` (a reflink); whether
    it worked. When it did not, `dst_fd` is still empty and the caller copies."""
    if not CAN_CLONE:
        return False
    import fcntl

    try:
        fcntl.ioctl(dst_fd, FICLONE, src_fd)
    except OSError:
        return False
    return True


def no_space(path: str | os.PathLike[str]) -> bool:
    """Whether the file system that holds `path` (or would) is full, for saying "no space
    left on device" when an error itself does not (a tool's exit status, SQLite's I/O
    error): less than 1% of it, and under 1 MiB, is free."""
    folder = os.path.abspath(path)
    while not os.path.exists(folder) and os.path.dirname(folder) != folder:
        folder = os.path.dirname(folder)
    try:
        st = os.statvfs(folder)
    except OSError:
        return False
    free, total = st.f_bavail * st.f_frsize, st.f_blocks * st.f_frsize
    return free < min(1 << 20, total // 100)


def full_disk_note(paths: list[str]) -> str:
    """"no space left on device: PATH" for the first of `paths` on a full file system."""
    full = next((p for p in paths if no_space(p)), None)
    return f"no space left on device: {full}" if full else ""


class Folders:
    """Creates folders once per build: most outputs share a few folders, and asking the
    file system again for each one costs a system call and an exception."""

    def __init__(self) -> None:
        self.made: set[str] = set()

    def make_parent(self, path: str) -> None:
        parent = os.path.dirname(path)
        if parent and parent not in self.made:
            os.makedirs(parent, exist_ok=True)
            self.made.add(parent)


def replace(src: str, dst: str) -> None:
    """Move `src` to `dst` so that `dst` is never seen half-written.

    A file is renamed over its old copy atomically. A directory cannot be renamed over a
    non-empty one, so the old tree is first renamed aside, then removed. Across file systems
    the new content is copied next to `dst` first and then renamed into place; a copy that
    fails is removed, so no `NAME.makeflow-XXXXXXXX` is left behind.
    """
    try:
        _rename_over(src, dst)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
        near = f"{dst}.makeflow-{os.urandom(4).hex()}"
        import shutil  # see remove()

        try:
            if os.path.isdir(src):
                shutil.copytree(src, near, symlinks=True)
            else:
                shutil.copy2(src, near)
            _rename_over(near, dst)
        except BaseException:  # a full disk, or a signal: no partial copy stays behind
            remove(near)
            raise
        remove(src)


def _rename_over(src: str, dst: str) -> None:
    if os.path.isdir(dst) and not os.path.islink(dst):
        aside = f"{dst}.makeflow-old-{os.urandom(4).hex()}"
        os.rename(dst, aside)
        os.rename(src, dst)
        remove(aside)
    else:
        if os.path.isdir(src) and os.path.lexists(dst):
            os.unlink(dst)
        os.replace(src, dst)


SCAN_AT = 256  # paths in one folder from which listing it beats an lstat per path


class Boundary:
    """The project folder as a limit: whether a path, followed through every symlinked
    folder on the way, stays inside it. Folders are resolved once each (most outputs
    share a few). Paths are taken relative to the current folder, the project's."""

    def __init__(self, root: str):
        self.root = os.path.realpath(root)
        self._folders: dict[str, bool] = {}
        self._links: dict[str, set[str]] = {}  # folder -> its entries that are symlinks

    def expect(self, paths: Iterable[str]) -> None:
        """Paths about to be checked with `holds_writing`: a folder that holds many of them
        is listed once (the listing says which entries are links), instead of an `lstat`
        per path; a million outputs in one folder cost one `scandir`."""
        counts = Counter(p.rpartition("/")[0] for p in paths)
        for folder, n in counts.items():
            if n >= SCAN_AT:
                self._scan(folder)

    def _scan(self, folder: str) -> None:
        with contextlib.suppress(OSError), os.scandir(folder or ".") as entries:
            self._links[folder] = {e.name for e in entries if e.is_symlink()}

    def leaving(self, paths: Iterable[str]) -> set[str]:
        """Those of `paths` that `holds_writing` refuses, checked folder by folder: a
        folder inside the project whose listing shows no link among them clears all its
        paths at once (a million outputs in one folder: one `scandir`, no call per path)."""
        names: dict[str, list[str]] = {}  # "folder/" -> the names in it
        for path in paths:
            folder, slash, name = path.rpartition("/")
            within = names.get(folder + slash)
            if within is None:
                names[folder + slash] = [name]
            else:
                within.append(name)
        bad: set[str] = set()
        for prefix, within in names.items():
            folder = prefix[:-1] or prefix  # "/" stays "/", as `os.path.dirname` gives it
            if not self.holds_folder(folder):
                bad.update(prefix + name for name in within)
                continue
            if len(within) >= SCAN_AT and folder not in self._links:
                self._scan(folder)
            links = self._links.get(folder)
            suspects = within if links is None else links.intersection(within)
            bad.update(prefix + name for name in suspects
                       if not self._writes_inside(prefix + name, links))
        return bad

    def _writes_inside(self, path: str, links: set[str] | None) -> bool:
        """In a folder inside the project: `path` is no link, or one that stays inside."""
        link = os.path.islink(path) if links is None else path.rpartition("/")[2] in links
        return not link or self._inside(os.path.realpath(path))

    def holds(self, path: str) -> bool:
        """Whether writing or removing `path` touches only the inside of the project."""
        return self.holds_folder(os.path.dirname(path))

    def holds_folder(self, folder: str) -> bool:
        """Whether the folder `folder` ("" for the project's own) leads inside the project."""
        inside = self._folders.get(folder)
        if inside is None:
            real = os.path.realpath(folder or ".")
            inside = self._folders[folder] = self._inside(real)
        return inside

    def holds_writing(self, path: str) -> bool:
        """`holds`, and `path` is not itself a symlink that leads outside (a step writing
        in place would write through it)."""
        return self.holds(path) and self._writes_inside(
            path, self._links.get(path.rpartition("/")[0]))

    def _inside(self, real: str) -> bool:
        return real == self.root or real.startswith(self.root.rstrip(os.sep) + os.sep)


_UNSEEN = object()


class StatCache:
    """Stat results for one build, so each file is statted once however often it is asked.

    The build calls `forget` for a file it has just written.
    """

    def __init__(self) -> None:
        self._seen: dict[str, Stat | None] = {}

    def get(self, path: str) -> Stat | None:
        seen = self._seen.get(path, _UNSEEN)
        if seen is _UNSEEN:
            seen = self._seen[path] = stat(path)
        return seen

    def forget(self, path: str) -> None:
        self._seen.pop(path, None)


def tree_stat(path: str) -> Stat:
    """A directory's cheap fingerprint: entry count, newest mtime, and a hash of all stats.

    Any file added, removed, resized or touched anywhere inside changes it, so a tree's
    cached digest can be trusted without reading a byte, as for a single file. Links are
    followed as `walk_tree` does, so a change behind one counts too.
    """
    import zlib

    count = newest = 0
    signature = 0
    for kind, _, full, st in walk_tree(path):
        if kind == "empty":
            continue
        count += 1
        newest = max(newest, st.st_mtime_ns)
        line = f"{full}\0{st.st_size}\0{st.st_mtime_ns}\0{st.st_ino}\n".encode(
            "utf-8", "surrogateescape")
        signature = zlib.crc32(line, signature)
    return Stat(count, newest, signature, True)


def walk_tree(root: str) -> Iterator[tuple[str, str, str, os.stat_result]]:
    """A folder's entries as a reader of it sees them: `(kind, rel, full, stat)`.

    Symlinks are followed: a linked file is a "file", a linked folder is walked as a
    "dir". A link that is broken, or that leads back to a folder being walked (a loop), is
    a "link" (its stat is the link's own). An empty folder also yields "empty". Per
    folder: its files in name order, then its folders, then each folder's own entries,
    the order `os.walk` gives, so a tree without links is walked as it always was.
    """
    top = os.stat(root)
    yield from _walk(root, ".", {(top.st_dev, top.st_ino)})


def _walk(folder: str, rel: str, above: set[tuple[int, int]]):
    files, folders = [], []
    with os.scandir(folder) as entries:
        for entry in sorted(entries, key=lambda e: e.name):
            sub = os.path.normpath(os.path.join(rel, entry.name))
            try:
                st = entry.stat()  # follows a link
            except OSError:  # a broken link
                files.append(("link", sub, entry.path, entry.stat(follow_symlinks=False)))
                continue
            if not stat_is_dir(st):
                files.append(("file", sub, entry.path, st))
            elif (st.st_dev, st.st_ino) in above:
                folders.append(("link", sub, entry.path, entry.stat(follow_symlinks=False)))
            else:
                folders.append(("dir", sub, entry.path, st))
    if not files and not folders:
        yield "empty", rel, folder, None
    yield from files
    yield from folders
    for kind, sub, full, st in folders:
        if kind == "dir":
            yield from _walk(full, sub, above | {(st.st_dev, st.st_ino)})


def stat_is_dir(st: os.stat_result) -> bool:
    return (st.st_mode & 0o170000) == 0o040000


def deep_stat(path: str) -> Stat | None:
    """`stat`, or `tree_stat` for a directory: what tells whether the content may have moved."""
    st = stat(path)
    if st is not None and st.is_dir:
        return tree_stat(path)
    return st
