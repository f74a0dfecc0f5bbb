"""The content-addressed store (CAS): blobs on the local disk, each named by its digest.

Layout under the store's root (the same one a remote store uses, see `remote.py`):

    blobs/<2 hex>/<digest>        a file's bytes; its digest is `hashing.hash_file`'s
    blobs/<2 hex>/tree-<hex>      a folder's manifest (JSON entries, see below); its digest
                                  is `hashing.hash_tree`'s, "tree:<hex>"
    tmp/                          blobs being written; renamed into place when checked

A blob is written under a temporary name and renamed into place only once the bytes
written hash to its name, so a killed writer, or two writers at once, never leave a wrong
blob: the rename is atomic and identical content makes either winner right. Every read
checks the digest again: a blob rotted on disk is dropped and reported, never restored.

A blob's mtime is bumped when it is used, so `gc` evicts the least recently used first.
This module knows nothing about steps; `runcache.py` maps step keys to digests.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TypeVar

from makeflow.store import fs
from makeflow.store.hashing import copy_hashed, hash_path, tree_digest, tree_entries

TREE = "tree:"
T = TypeVar("T")
STALE_TMP = 3600.0  # seconds after which a temporary file is a killed writer's leftover


class BlobError(Exception):
    """A blob is missing, or its content does not match its digest (it was dropped)."""


def blob_name(digest: str) -> str:
    """The file name of a digest's blob: "tree:<hex>" becomes "tree-<hex>"."""
    if digest.startswith(TREE):
        return "tree-" + digest[len(TREE):]
    return digest


def blob_key(digest: str) -> str:
    """Where a digest's blob lives below a store's root, with "/" separators."""
    name = blob_name(digest)
    hexpart = name.removeprefix("tree-")
    if len(hexpart) < 3 or not all(c in "0123456789abcdef" for c in hexpart):
        raise ValueError(f"not a digest: {digest!r}")
    return f"blobs/{hexpart[:2]}/{name}"


def is_tree(digest: str) -> bool:
    return digest.startswith(TREE)


def manifest_bytes(entries: list[tuple[str, str, str]]) -> bytes:
    """A folder's manifest: its entries in walk order, one JSON document."""
    return json.dumps({"entries": [list(e) for e in entries]}, ensure_ascii=True).encode()


def parse_manifest(data: bytes, digest: str) -> list[tuple[str, str, str]]:
    """The entries of a manifest, checked against the tree digest it is stored under."""
    try:
        entries = [tuple(e) for e in json.loads(data)["entries"]]
    except (ValueError, KeyError, TypeError) as exc:
        raise BlobError(f"the manifest of {digest} does not parse: {exc}") from None
    if tree_digest(entries) != digest:
        raise BlobError(f"the manifest stored as {digest} does not match its digest")
    for rel, _, _ in entries:
        if rel.startswith("/") or ".." in rel.split("/"):
            raise BlobError(f"the manifest of {digest} names a path outside it: {rel}")
    return entries


class Cas:
    """A local content-addressed store of files and folders.

    `put(path)` stores a file or folder and returns its digest; `has(digest)` says whether
    it could be restored; `restore(digest, dest)` writes it at `dest` atomically, checked.
    Safe to share between threads, builds and projects: every write is a checked rename.
    `link=True` stores and restores files as hard links (no copy; an output edited in
    place would then corrupt the store, which the digest check catches on the next use).
    """

    def __init__(self, root: str | os.PathLike[str], link: bool = False):
        self.root = Path(root)
        self.link = link
        self._tmp = self.root / "tmp"
        self._made: set[str] = set()  # folders this process made or found: no mkdir again
        self._names = itertools.count()
        self._prefix = f"{os.getpid()}-{os.urandom(4).hex()}"

    # -- reading ---------------------------------------------------------------------
    def path(self, digest: str) -> Path:
        """The blob file of a digest (which may not exist)."""
        return self.root / blob_key(digest)

    def has(self, digest: str) -> bool:
        """Whether the object is here: a file's blob, or a manifest and all its files."""
        if not is_tree(digest):
            return self.path(digest).is_file()
        try:
            return all(self.path(d).is_file() for d in self.blobs(digest))
        except BlobError:
            return False

    def blobs(self, digest: str) -> list[str]:
        """Every blob an object needs: itself, and for a folder each file's blob."""
        if not is_tree(digest):
            return [digest]
        return [digest, *dict.fromkeys(p for _, k, p in self.manifest(digest) if k == "f")]

    def manifest(self, digest: str) -> list[tuple[str, str, str]]:
        """A folder's entries, checked against its digest; BlobError when missing or bad."""
        try:
            data = self.path(digest).read_bytes()
        except FileNotFoundError:
            raise BlobError(f"no blob {digest} in {self.root}") from None
        try:
            return parse_manifest(data, digest)
        except BlobError:
            self.drop(digest)
            raise

    # -- writing ---------------------------------------------------------------------
    def put(self, path: str, digest: str | None = None) -> str:
        """Store a file or folder; its digest, which `digest` (if given) must match.

        BlobError when the content does not hash to `digest` (it changed meanwhile).
        """
        if digest is not None:  # its kind is known: no stat to ask whether it is a folder
            tree = is_tree(digest)
        else:
            tree = os.path.isdir(path) and not os.path.islink(path)
        return self._put_tree(path, digest) if tree else self._put_file(path, digest)

    def _put_file(self, path: str, digest: str | None) -> str:
        final = str(self.path(digest)) if digest is not None else None
        if final is not None and os.path.isfile(final):
            self.touch(digest)
            return digest
        if self.link:
            return self._link_file(path, digest)
        tmp = self._tmp_name()
        try:
            got = self.in_folder(str(self._tmp), lambda: copy_hashed(path, tmp, mode=0o444))
            if digest is not None and got != digest:
                raise BlobError(f"{path} changed while it was stored: it no longer "
                                f"hashes to {digest}")
            final = final if got == digest else str(self.path(got))
            # over a twin written meanwhile: the same bytes, and a newer mtime, as touch()
            self.in_folder(os.path.dirname(final), lambda: os.replace(tmp, final))
        except BaseException:
            fs.remove(tmp)
            raise
        return got

    def in_folder(self, folder: str, work: Callable[[], T]) -> T:
        """`work()`, which writes in `folder`; once more after making the folder again
        when it had gone (removed by hand while this process believed it made)."""
        self.ensure_folder(folder)
        try:
            return work()
        except FileNotFoundError:
            if os.path.isdir(folder):
                raise
            self._made.discard(folder)
            self.ensure_folder(folder)
            return work()

    def _link_file(self, path: str, digest: str | None) -> str:
        tmp = self._tmp_name()
        try:
            os.link(path, tmp)
            got = hash_path(tmp)
            if digest is not None and got != digest:
                raise BlobError(f"{path} changed while it was stored: it no longer "
                                f"hashes to {digest}")
            self._place(tmp, got)
        finally:
            fs.remove(tmp)
        return got

    def _put_tree(self, path: str, digest: str | None) -> str:
        entries = tree_entries(path)
        for rel, kind, payload in entries:
            if kind == "f":
                self._put_file(os.path.join(path, rel), payload)
        got = tree_digest(entries)
        if digest is not None and got != digest:
            raise BlobError(f"{path} changed while it was stored: it no longer hashes to "
                            f"{digest}")
        self.put_manifest(got, manifest_bytes(entries))
        return got

    def put_manifest(self, digest: str, data: bytes) -> None:
        """Store a folder's manifest under its tree digest, after checking it."""
        parse_manifest(data, digest)
        tmp = self._tmp_name()
        try:
            Path(tmp).write_bytes(data)
            self._place(tmp, digest)
        finally:
            fs.remove(tmp)

    def add_file_blob(self, src: str, digest: str) -> None:
        """Take a downloaded file as the blob of `digest`, moving it in only if it matches."""
        if hash_path(src) != digest:
            raise BlobError(f"the blob downloaded as {digest} does not match its digest")
        self._place(src, digest)

    def _place(self, tmp: str, digest: str) -> None:
        final = self.path(digest)
        self.ensure_folder(str(final.parent))
        if final.exists():
            self.touch(digest)  # the first writer won; the content is the same
            return
        os.chmod(tmp, 0o444)  # a blob is never edited in place
        os.replace(tmp, final)

    def ensure_folder(self, folder: str) -> None:
        """Make a folder of the store once per process, not once per blob."""
        if folder not in self._made:
            os.makedirs(folder, exist_ok=True)
            self._made.add(folder)

    def unique(self) -> str:
        """A name no other writer uses: the process id, a random part drawn once, a count."""
        return f"{self._prefix}-{next(self._names)}"

    def _tmp_name(self) -> str:
        self.ensure_folder(str(self._tmp))
        return str(self._tmp / self.unique())

    # -- restoring -------------------------------------------------------------------
    def restore(self, digest: str, dest: str) -> None:
        """Write the object at `dest`, replacing what is there, never half-written.

        It is written under a temporary name beside `dest`, checked against its digest and
        renamed into place. A blob that does not match is dropped: BlobError, `dest`
        untouched.
        """
        near = self.prepare(digest, dest)
        try:
            fs.replace(near, dest)
        except BaseException:
            fs.remove(near)
            raise

    def prepare(self, digest: str, dest: str) -> str:
        """The object written and checked beside `dest`; returns the temporary path.

        The caller renames it into place (`fs.replace`), so several outputs of one step
        can all be checked before any of them moves.
        """
        parent = os.path.dirname(dest) or "."
        os.makedirs(parent, exist_ok=True)
        near = os.path.join(parent, f".{os.path.basename(dest)}.makeflow-{os.urandom(4).hex()}")
        try:
            if is_tree(digest):
                self._write_tree(digest, near)
            else:
                self._write_file(digest, near)
        except BaseException:
            fs.remove(near)
            raise
        return near

    def _write_file(self, digest: str, dest: str) -> None:
        blob = str(self.path(digest))
        try:
            if self.link:
                os.link(blob, dest)
                got = hash_path(dest)
            else:
                got = copy_hashed(blob, dest)
        except FileNotFoundError:
            raise BlobError(f"no blob {digest} in {self.root}") from None
        if got != digest:
            self.drop(digest)
            raise BlobError(f"the blob {digest} in {self.root} is corrupt (it hashes to "
                            f"{got}); it was removed")
        self.touch(digest)

    def _write_tree(self, digest: str, dest: str) -> None:
        entries = self.manifest(digest)
        os.mkdir(dest)
        for rel, kind, payload in entries:
            full = os.path.join(dest, rel)
            if kind == "d":
                os.makedirs(full, exist_ok=True)
                continue
            os.makedirs(os.path.dirname(full), exist_ok=True)
            if kind == "l":
                os.symlink(payload, full)
            else:
                self._write_file(payload, full)
        self.touch(digest)

    # -- housekeeping ----------------------------------------------------------------
    def touch(self, digest: str) -> None:
        """Mark a blob as just used, for least-recently-used eviction."""
        with contextlib.suppress(OSError):
            os.utime(self.path(digest))

    def drop(self, digest: str) -> None:
        fs.remove(str(self.path(digest)))

    def entries(self) -> Iterator[tuple[str, int, float]]:
        """Every blob file as (path, size, mtime)."""
        top = self.root / "blobs"
        if not top.is_dir():
            return
        for sub in os.scandir(top):
            if not sub.is_dir():
                continue
            for entry in os.scandir(sub.path):
                with contextlib.suppress(FileNotFoundError):
                    st = entry.stat()
                    yield entry.path, st.st_size, st.st_mtime

    def usage(self) -> tuple[int, int]:
        """How many blobs the store holds, and their total size in bytes."""
        count = size = 0
        for _, n, _ in self.entries():
            count += 1
            size += n
        return count, size

    def gc(self, max_bytes: int) -> tuple[int, int]:
        """Remove the least recently used blobs until the store fits in `max_bytes`.

        Returns how many blobs and bytes were removed. Leftovers of killed writers go too.
        A record whose blobs went is a miss next time, never a wrong restore.
        """
        self._clean_tmp()
        blobs = sorted(self.entries(), key=lambda e: e[2])
        total = sum(n for _, n, _ in blobs)
        removed = freed = 0
        for path, size, _ in blobs:
            if total <= max_bytes:
                break
            fs.remove(path)
            total -= size
            removed += 1
            freed += size
        return removed, freed

    def drop_unused(self, since: float) -> tuple[int, int]:
        """Remove every blob not used since `since` (a `time.time()`; each use bumps a
        blob's mtime): a scratch store keeps only what the current build used. Returns how
        many blobs and bytes were removed. Leftovers of killed writers go too."""
        self._clean_tmp()
        removed = freed = 0
        for path, size, mtime in list(self.entries()):
            if mtime < since:
                fs.remove(path)
                removed += 1
                freed += size
        return removed, freed

    def _clean_tmp(self) -> None:
        if not self._tmp.is_dir():
            return
        old = time.time() - STALE_TMP
        for entry in os.scandir(self._tmp):
            with contextlib.suppress(FileNotFoundError):
                if entry.stat().st_mtime < old:
                    fs.remove(entry.path)


def missing(cas: Cas, digests: Iterable[str]) -> list[str]:
    """The digests among `digests` whose objects are not all in `cas`."""
    return [d for d in digests if not cas.has(d)]
