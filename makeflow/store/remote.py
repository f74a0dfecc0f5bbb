"""A shared remote store: the same blobs and run records as the local cache, over fsspec.

The only module that imports fsspec. A remote is any fsspec URL (`s3://bucket/prefix`,
`gs://...`, `file:///shared/cache`, `sftp://...`, `memory://` in tests) and holds the
layout of the local store (`cas.py`, `runcache.py`): `blobs/<2 hex>/<digest>` and
`runs/<2 hex>/<key>.json`.

Writes are put-if-absent (the first writer wins; identical content makes a second writer a
no-op): S3 and the like through a conditional create (`open(path, "xb")`), a local or
mounted folder through a hard link from a temporary name, which is atomic. Blobs are
written before the record naming them, so a reader never finds a record whose blobs are
missing. Nothing read from a remote is trusted: every blob is checked against its digest
by the local store before use.

Every failure of the remote (unreachable, refused credentials, missing bucket) is raised
as `RemoteError`, whose message names the URL; callers choose to warn or to fail.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import fsspec

from makeflow.store import fs as local_fs
from makeflow.store.cas import BlobError, Cas, blob_key, is_tree
from makeflow.store.runcache import RunRecord, record_key

CHUNK = 4 << 20
WORKERS = 8
# Short timeouts and few retries: an unreachable remote must cost a build seconds, not
# minutes, before it warns and goes on locally.
S3_CONFIG = {"connect_timeout": 5, "read_timeout": 60, "retries": {"max_attempts": 2}}

# Told of every chunk a blob transfer moves: (digest, sending, bytes done, bytes in all),
# from the transfer threads; the run stage turns it into progress of big files.
Progress = Callable[[str, bool, int, int], None]


class RemoteError(Exception):
    """The remote failed; the message names its URL and what went wrong."""


class Remote:
    """Blobs and run records on a remote store at `url`; safe to use from many threads."""

    def __init__(self, url: str, workers: int = WORKERS, progress: Progress | None = None):
        self.url = url
        self.workers = workers
        self.progress = progress  # told of every chunk moved, for a progress display
        try:
            options = {"skip_instance_cache": True}
            if url.startswith(("s3://", "s3a://")):
                options["config_kwargs"] = S3_CONFIG
            self.fs, root = fsspec.core.url_to_fs(url, **options)
        except Exception as exc:
            raise self._error(exc) from None
        self.root = root.rstrip("/")
        self.local = "file" in _protocols(self.fs)

    def _error(self, exc: BaseException) -> RemoteError:
        text = str(exc) or type(exc).__name__
        if isinstance(exc, ImportError):
            text += " (install the package for this protocol, e.g. pip install 'makeflow[s3]')"
        return RemoteError(f"the remote {self.url} failed: {text}")

    def _path(self, key: str) -> str:
        return f"{self.root}/{key}"

    # -- checks ----------------------------------------------------------------------
    def check(self, create: bool = False) -> None:
        """Raise RemoteError unless the remote can be used: its folder or bucket exists
        (or, with `create`, was made) and answers with these credentials."""
        try:
            if self.local and create:
                self.fs.makedirs(self.root, exist_ok=True)
            top = self.root.split("/")[0] if not self.local else self.root
            if not top and not self.local:
                return  # memory:// and the like: always there
            self.fs.info(top or "/")  # unlike exists(), tells a refusal from an absence
        except FileNotFoundError:
            raise RemoteError(f"the remote {self.url} failed: {top or '/'} does not exist "
                              "(create the bucket or folder first)") from None
        except PermissionError as exc:
            raise RemoteError(f"the remote {self.url} failed: access to {top} was refused "
                              f"({exc}); check the credentials") from None
        except RemoteError:
            raise
        except Exception as exc:
            raise self._error(exc) from None

    # -- records ---------------------------------------------------------------------
    def get_record(self, key: str) -> RunRecord | None:
        data = self._read(record_key(key))
        return None if data is None else RunRecord.from_bytes(data)

    def put_record(self, key: str, record: RunRecord) -> bool:
        """Write a record unless one is there; whether this call wrote it."""
        return self._put_bytes(record.to_bytes(), record_key(key))

    def _read(self, key: str) -> bytes | None:
        try:
            return self.fs.cat_file(self._path(key))
        except FileNotFoundError:
            return None
        except Exception as exc:
            raise self._error(exc) from None

    # -- blobs -----------------------------------------------------------------------
    def has(self, digest: str) -> bool:
        try:
            return bool(self.fs.exists(self._path(blob_key(digest))))
        except Exception as exc:
            raise self._error(exc) from None

    def upload(self, cas: Cas, digests: Iterable[str], progress: Progress | None = None) -> int:
        """Copy the objects `digests` (a folder: its manifest and files) from `cas` to the
        remote, many at once; the number of blobs written (others were there already)."""
        blobs = list(dict.fromkeys(b for d in digests for b in cas.blobs(d)))
        # a folder's file blobs before its manifest: whoever finds the manifest finds all
        blobs.sort(key=is_tree)
        files = [b for b in blobs if not is_tree(b)]
        trees = [b for b in blobs if is_tree(b)]
        written = sum(self._map(lambda b: self._put_blob(cas, b, progress), files))
        return written + sum(self._map(lambda b: self._put_blob(cas, b, progress), trees))

    def download(self, cas: Cas, digests: Iterable[str],
                 progress: Progress | None = None) -> int:
        """Fetch the objects `digests` into `cas` unless already there, checking each blob
        (BlobError for one that does not match: it is not kept). The number fetched."""
        wanted = [d for d in dict.fromkeys(digests) if not cas.has(d)]
        trees = [d for d in wanted if is_tree(d)]
        fetched = sum(self._map(lambda d: self._get_blob(cas, d, progress), trees))
        files = [d for d in wanted if not is_tree(d)]
        for tree in trees:
            files += cas.blobs(tree)[1:]
        files = [d for d in dict.fromkeys(files) if not cas.path(d).is_file()]
        return fetched + sum(self._map(lambda d: self._get_blob(cas, d, progress), files))

    def _map(self, work: Callable[[str], int], items: list[str]) -> list[int]:
        if len(items) <= 1:
            return [work(i) for i in items]
        with ThreadPoolExecutor(min(self.workers, len(items))) as pool:
            return list(pool.map(work, items))

    def _put_blob(self, cas: Cas, digest: str, progress: Progress | None) -> int:
        src = cas.path(digest)
        if not src.is_file():
            raise BlobError(f"no blob {digest} in {cas.root} to upload")
        with open(src, "rb") as f:
            meter = _meter(progress or self.progress, digest, True, os.fstat(f.fileno()).st_size)
            return int(self._put_stream(f, blob_key(digest), meter))

    def _get_blob(self, cas: Cas, digest: str, progress: Progress | None) -> int:
        tmp = cas._tmp_name()
        try:
            try:
                with self.fs.open(self._path(blob_key(digest)), "rb") as src, \
                        open(tmp, "wb") as dst:
                    _copy(src, dst, _meter(progress or self.progress, digest, False,
                                           _size(src)))
            except FileNotFoundError:
                raise BlobError(f"the remote {self.url} has no blob {digest}") from None
            except Exception as exc:
                raise self._error(exc) from None
            if is_tree(digest):
                cas.put_manifest(digest, Path(tmp).read_bytes())
            else:
                cas.add_file_blob(tmp, digest)
        finally:
            local_fs.remove(tmp)
        return 1

    # -- put-if-absent ---------------------------------------------------------------
    def _put_bytes(self, data: bytes, key: str) -> bool:
        import io

        return self._put_stream(io.BytesIO(data), key, None)

    def _put_stream(self, src, key: str, progress: Chunks | None) -> bool:
        path = self._path(key)
        try:
            if self.local:
                return self._put_local(src, path, progress)
            self.fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
            try:
                with self.fs.open(path, "xb") as dst:
                    _copy(src, dst, progress)
            except FileExistsError:
                return False
            return True
        except Exception as exc:
            raise self._error(exc) from None

    def _put_local(self, src, path: str, progress: Chunks | None) -> bool:
        """A folder: write a temporary file, then hard-link it to its name, which fails
        if the name exists, so readers never see a partial file and the first one wins."""
        if os.path.exists(path):
            return False
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = f"{path}.tmp-{os.getpid()}-{os.urandom(4).hex()}"
        try:
            with open(tmp, "wb") as dst:
                _copy(src, dst, progress)
            try:
                os.link(tmp, path)
            except FileExistsError:
                return False
            return True
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)

    # -- runs ------------------------------------------------------------------------
    def push_run(self, cas: Cas, key: str, record: RunRecord) -> bool:
        """Upload a step's objects, then its record; whether the record was new."""
        self.upload(cas, record.digests)
        return self.put_record(key, record)

    def push_runs(self, cas: Cas, runs: list[tuple[str, RunRecord]],
                  progress: Progress | None = None) -> int:
        """Upload many steps' objects in one concurrent batch, then their records; the
        number of records that were new."""
        self.upload(cas, [d for _, record in runs for d in record.digests], progress)
        return sum(self._map(lambda i: int(self.put_record(*runs[int(i)])),
                             [str(i) for i in range(len(runs))]))

    def pull_run(self, cas: Cas, key: str) -> RunRecord | None:
        """The record of `key` with its objects fetched into `cas`; None when the remote
        does not know the key. BlobError when a blob it names is missing or corrupt."""
        record = self.get_record(key)
        if record is None:
            return None
        self.download(cas, record.outputs.values())
        if record.log:
            with contextlib.suppress(BlobError):
                self.download(cas, [record.log])
        return record


Chunks = Callable[[int], None]  # one transfer's meter: told each chunk's size


def _meter(progress: Progress | None, digest: str, sending: bool,
           total: int) -> Chunks | None:
    """The per-chunk callback of one blob's transfer, counting towards `total`."""
    if progress is None:
        return None
    done = 0

    def chunk(n: int) -> None:
        nonlocal done
        done += n
        progress(digest, sending, done, total)

    return chunk


def _size(f) -> int:
    """The size of an open remote file (0 when it cannot say), without another request."""
    with contextlib.suppress(Exception):
        size = getattr(f, "size", None)
        if isinstance(size, int):
            return size
        where = f.tell()
        end = f.seek(0, os.SEEK_END)
        f.seek(where)
        return int(end)
    return 0


def _copy(src, dst, progress: Chunks | None) -> None:
    while chunk := src.read(CHUNK):
        dst.write(chunk)
        if progress is not None:
            progress(len(chunk))


def _protocols(fs: object) -> tuple[str, ...]:
    proto = getattr(fs, "protocol", ())
    return (proto,) if isinstance(proto, str) else tuple(proto)
