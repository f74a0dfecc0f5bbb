"""Content digests: streamed xxh3-128 of files, directory trees and text.

The only module that imports xxhash. `bytes_hashed` counts what was read, so benchmarks and
tests can show that a no-op build reads no file content.
"""

from __future__ import annotations

import marshal
import os
import threading
from collections.abc import Iterable

import xxhash

from makeflow.store.fs import clone, walk_tree

# Reads of 256 KiB stay in the CPU's L2 cache between read() and the hash: measured faster
# than 128 KiB or 1 MiB. mmap would skip the copy, but a file truncated while mapped kills
# the process with SIGBUS, which a build tool must never risk on files it does not own.
CHUNK = 1 << 18
bytes_hashed = 0
_buffers = threading.local()


def _buffer() -> tuple[bytearray, memoryview]:
    """This thread's read buffer, made once: a fresh 256 KiB one per file is an mmap and a
    munmap per file, and a build hashes and copies a few small files per step."""
    try:
        return _buffers.pair
    except AttributeError:
        buf = bytearray(CHUNK)
        _buffers.pair = (buf, memoryview(buf))
        return _buffers.pair


def hash_text(*parts: str) -> str:
    """Digest of a sequence of strings; the separator keeps ("ab", "c") apart from ("a", "bc")."""
    h = xxhash.xxh3_128()
    for part in parts:
        h.update(part.encode("utf-8", "surrogateescape"))
        h.update(b"\0")
    return h.hexdigest()


def hash_bytes(data: bytes) -> str:
    """Digest of bytes already in memory, such as a serialised description of the rules."""
    return xxhash.xxh3_128_hexdigest(data)


class Streamed:
    """A digest fed piece by piece, for data too big to hold at once (a million steps'
    description): equal to `hash_bytes` of the pieces joined."""

    def __init__(self) -> None:
        self._h = xxhash.xxh3_128()

    def update(self, data: bytes) -> None:
        self._h.update(data)

    def hexdigest(self) -> str:
        return self._h.hexdigest()


def hash_value(value: object) -> str:
    """Digest of plain data (strings, numbers, tuples, lists, dicts, None) by its value.

    marshal's format 2 writes values only (later formats also note which objects repeat
    and which strings are interned, which equal values need not share), and is ten times
    quicker than repr over the rules of a big pipeline. A value it cannot write (a date
    from makeflow.toml, a subclass of str) is taken by its repr instead."""
    try:
        data = marshal.dumps(value, 2)
    except ValueError:
        data = b"repr:" + repr(value).encode("utf-8", "surrogateescape")
    return hash_bytes(data)


def hash_file(path: str) -> str:
    """Digest of a file's bytes, read in chunks into one reused buffer."""
    global bytes_hashed
    h = xxhash.xxh3_128()
    buf, view = _buffer()
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        while n := os.readv(fd, [buf]):
            h.update(view[:n])
            bytes_hashed += n
    finally:
        os.close(fd)
    return h.hexdigest()


def hash_tree(path: str) -> str:
    """Digest of a directory: every file's relative path and content, in sorted order.

    Links are followed (see `fs.walk_tree`): a linked file counts by its content and a
    linked folder by its tree, as a step that reads the folder sees them. A broken link,
    or one that loops back up, counts by its target's name. Empty directories count by
    name, so moving or renaming a file inside the tree changes the digest.
    """
    return tree_digest(_walk(path))


def tree_digest(entries: Iterable[tuple[str, str, str]]) -> str:
    """The digest of a tree from its entries (relative path, kind, payload) in walk order.

    Kinds: "f" a file (payload: its digest), "l" a symlink (its target), "d" an empty
    folder. `hash_tree` and the content-addressed store's tree manifests both use it, so a
    manifest can be checked against the digest it is stored under without the files.
    """
    h = xxhash.xxh3_128()
    for rel, kind, payload in entries:
        h.update(f"{kind}\0{rel}\0{payload}\0".encode("utf-8", "surrogateescape"))
    return "tree:" + h.hexdigest()


def tree_entries(path: str) -> list[tuple[str, str, str]]:
    """A folder's entries as `tree_digest` takes them, in the same order."""
    return list(_walk(path))


def copy_hashed(src: str, dst: str, mode: int = 0o666) -> str:
    """Copy `src` to a new file `dst` (created with `mode`) and return the digest of what
    `dst` holds.

    A reflink where the file system can (`fs.clone`), then one read of `dst` to hash it;
    elsewhere one pass that copies and hashes. The content-addressed store checks each blob
    it writes or restores this way, so a file that changed meanwhile or a blob rotted on
    disk is caught by the digest, not trusted. Bare descriptors, not file objects: the
    store saves a blob per step, and a file object adds a stat, a seek and a tty check.
    """
    global bytes_hashed
    h = xxhash.xxh3_128()
    buf, view = _buffer()
    fin = os.open(src, os.O_RDONLY | os.O_CLOEXEC)
    try:
        fout = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
        try:
            cloned = clone(fin, fout)
            while not cloned and (n := os.readv(fin, [buf])):
                h.update(view[:n])
                _write_all(fout, view[:n])
                bytes_hashed += n
        finally:
            os.close(fout)
    finally:
        os.close(fin)
    return hash_file(dst) if cloned else h.hexdigest()


def _write_all(fd: int, view: memoryview) -> None:
    while view:
        view = view[os.write(fd, view):]


def hash_path(path: str) -> str:
    """Digest of a file, or of a directory as a tree."""
    if os.path.isdir(path):
        return hash_tree(path)
    return hash_file(path)


def _walk(root: str):
    for kind, rel, full, _ in walk_tree(root):
        if kind == "empty":
            yield rel, "d", ""
        elif kind == "file":
            yield rel, "f", hash_file(full)
        elif kind == "link":
            yield rel, "l", os.readlink(full)
