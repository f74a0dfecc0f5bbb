"""The run cache as a build uses it: restore a stale step's outputs instead of running it,
and save what a step made.

A lookup asks the local cache, then the remote (when one is set); a remote hit is fetched
into the local store first, so every restore is one checked, atomic placement from local
blobs. Saving copies a step's outputs into the local store and, with `push`, uploads them.
Both run on a small pool of threads, so copies overlap the steps that run meanwhile.

A failing remote is one warning for the build, after which it is left alone: the build
goes on locally with the result it would have had without a remote.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

from makeflow.define.settings import Settings
from makeflow.errors import UserError
from makeflow.plan.cachekey import record_key
from makeflow.plan.graph import Graph, Step
from makeflow.run.outcome import BuildOptions
from makeflow.run.transfers import Transfers
from makeflow.store import fs
from makeflow.store.cas import BlobError
from makeflow.store.lockfile import LockFile, record_of
from makeflow.store.runcache import RunCache, RunRecord
from makeflow.store.state import FileRecord

WORKERS = 4
GATHER_SECONDS = 0.005  # how long the saving thread lets saves gather before it starts


def remote_url(option: str | None, settings: Settings) -> str | None:
    """The remote to use: the command line's, else MAKEFLOW_REMOTE, else the setting; an
    empty string at any level means none."""
    for chosen in (option, os.environ.get("MAKEFLOW_REMOTE"), settings.remote):
        if chosen is not None:
            return chosen or None
    return None


def unshared_remote(options: BuildOptions, settings: Settings) -> str | None:
    """The remote through which steps and the build exchange files when the workers share
    no disk with the build; None when they do (the default). No remote is a mistake."""
    shared = settings.shared_fs if options.shared_fs is None else options.shared_fs
    if shared:
        return None
    url = remote_url(options.remote, settings)
    if url is None:
        raise UserError(
            "--no-shared-fs needs a remote store: the workers fetch the steps' inputs from "
            "it and push their outputs and logs to it",
            hint="Give one with --remote URL (s3://bucket/prefix, file:///shared/cache, ...), "
            "MAKEFLOW_REMOTE, or remote in the [makeflow] table of makeflow.toml.")
    return url


@dataclass
class Restored:
    """What a lookup found: on a hit the record and the outputs' stat entries, placed."""

    record: RunRecord | None = None
    outputs: dict[str, FileRecord] = field(default_factory=dict)


class BuildCache:
    """The local run cache, and the remote behind it, for one build."""

    def __init__(self, local: RunCache, remote_url: str | None = None, push: bool = False,
                 progress: Transfers | None = None):
        self.local = local
        self.progress = progress or Transfers(None)
        self.remote_url = remote_url
        self.push = push and remote_url is not None
        self._remote = None
        self._remote_failed = remote_url is None
        self._lock = threading.RLock()
        self._saved_all = threading.Condition(self._lock)  # no save waiting or running
        self._warnings: list[str] = []
        self._pool: ThreadPoolExecutor | None = None
        self._pending: list[tuple[Step, str, dict[str, str], str, float]] = []
        self._draining = False
        self._empty_at_start: bool | None = None  # whether the store had no record
        self._saved: set[str] = set()  # the keys this build saved
        self.pushed = 0
        self.remote_error: str | None = None
        # outputs known by key without a run record (from makeflow.lock): their blobs
        # may be on the remote
        self.hints: dict[str, RunRecord] = {}

    # -- the remote, failing once --------------------------------------------------
    def remote(self):
        """The remote store, or None when there is none or it failed already."""
        if self._remote_failed:
            return None
        with self._lock:
            if self._remote is None and not self._remote_failed:
                from makeflow.store.remote import Remote, RemoteError  # fsspec: only if set

                try:
                    self._remote = Remote(self.remote_url, progress=self.progress)
                    self._remote.check(create=self.push)
                except RemoteError as exc:
                    self._fail(exc)
            return self._remote

    def _fail(self, exc: Exception) -> None:
        if not self._remote_failed:
            self.remote_error = str(exc)
            self._remote_failed = True
            self._remote = None
            self.warn(f"{exc}; the build goes on without the remote cache")

    def warn(self, text: str) -> None:
        with self._lock:
            self._warnings.append(text)

    def take_warnings(self) -> list[str]:
        with self._lock:
            taken, self._warnings = self._warnings, []
        return taken

    # -- lookups -------------------------------------------------------------------
    def submit(self, work, *args) -> Future:
        """Run `work` on the cache's threads; callable from any thread (the build's loop
        and the threads that settle ended steps), so the pool is made under the lock."""
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(WORKERS, thread_name_prefix="makeflow-cache")
            return self._pool.submit(work, *args)

    def find(self, key: str) -> RunRecord | None:
        """The record of `key` with its blobs in the local store: local, else remote."""
        record = self.local.get(key)
        if record is not None:
            return record
        hint = self.hints.get(key)
        if hint is not None and all(self.local.cas.has(d) for d in hint.outputs.values()):
            return hint
        remote = self.remote()
        if remote is None:
            return None
        from makeflow.store.remote import RemoteError

        try:
            if hint is not None:
                self.progress.name(hint.outputs, self.local.cas)
                remote.download(self.local.cas, hint.outputs.values())
                return hint
            record = self._pull(remote, key)
        except RemoteError as exc:
            self._fail(exc)
            return None
        except BlobError as exc:
            self.warn(f"the remote cache {self.remote_url} holds a bad blob: {exc}")
            return None
        if record is None:
            return None
        if record.log and not self.local.cas.has(record.log):
            record = replace(record, log=None)
        self.local.put(key, record)
        return record

    def _pull(self, remote, key: str) -> RunRecord | None:
        """The remote's record of `key` with its blobs fetched into the local store."""
        record = remote.get_record(key)
        if record is not None:
            self.progress.name(record.outputs, self.local.cas)
            remote.download(self.local.cas, record.outputs.values())
            if record.log:
                with contextlib.suppress(BlobError):
                    remote.download(self.local.cas, [record.log])
        return record

    def surely_missing(self, key: str) -> bool:
        """Whether a lookup of `key` is sure to miss, known here: no remote, no
        makeflow.lock entry and no local record. The build then runs the step at once,
        without handing the lookup to the cache's threads and back (counted as a miss).

        A store that held no record when the build began can only hold what this build
        saved since, which is known without asking it (a record another build saves
        meanwhile in a shared store is then a miss, never a wrong hit)."""
        if not self._remote_failed or key in self.hints:
            return False
        if self._empty_at_start is None:
            self._empty_at_start = self.local.empty()
        if key in self._saved if self._empty_at_start else self.local.has_record(key):
            return False
        self._count(miss=True)
        return True

    def restore(self, step: Step, key: str, log: str) -> Restored:
        """Find `key` and place its outputs (and log); a miss when not found or bad."""
        record = self.find(key)
        if record is None or set(record.outputs) != set(step.outputs.paths):
            self._count(miss=True)
            return Restored()
        try:
            self.local.restore(record, log)
            outputs = {p: _placed(p, d) for p, d in record.outputs.items()}
            if step.rule.protected:
                for path in outputs:
                    fs.make_read_only(path)
        except (BlobError, OSError) as exc:
            self.warn(f"{step.id} could not be restored from the cache ({exc}); it runs "
                      "instead")
            self._count(miss=True)
            return Restored()
        self._count(miss=False)
        return Restored(record, outputs)

    def _count(self, miss: bool) -> None:
        with self._lock:
            if miss:
                self.local.misses += 1
            else:
                self.local.hits += 1

    def known(self, key: str) -> bool:
        """Whether `key` could be restored (for `status`): local first, then the remote; a
        key makeflow.lock names (`hints`) also when the store holds the outputs it lists."""
        hint = self.hints.get(key)
        if self.local.get(key) is not None or (
                hint is not None and all(self.local.cas.has(d) for d in hint.outputs.values())):
            return True
        remote = self.remote()
        if remote is None:
            return False
        from makeflow.store.remote import RemoteError

        try:
            if remote.get_record(key) is not None:
                return True
            return hint is not None and all(remote.has(d) for d in hint.outputs.values())
        except RemoteError as exc:
            self._fail(exc)
            return False

    # -- saving ----------------------------------------------------------------------
    def save_later(self, step: Step, key: str, outputs: dict[str, str], log: str,
                   seconds: float) -> None:
        """Store a step's outputs and record (and push them) on one of the cache's threads.

        Saves queue for one thread, which first lets the saves of the steps ending in the
        next few milliseconds join the queue, then stores their blobs and writes their
        records in one transaction: a thread woken per save, and a commit per record,
        cost more than the save itself when steps are trivial."""
        self._saved.add(key)
        with self._lock:
            self._pending.append((step, key, outputs, log, seconds))
            if self._draining:
                return
            self._draining = True
        self.submit(self._drain)

    def _drain(self) -> None:
        time.sleep(GATHER_SECONDS)
        while True:
            with self._lock:
                if not self._pending:
                    self._draining = False
                    self._saved_all.notify_all()
                    return
                batch, self._pending = self._pending, []
            self._save_all(batch)

    def finish_saves(self) -> None:
        """Wait until every save handed over so far is done: a temp file about to be
        deleted may be the output one of them copies."""
        with self._lock:
            while self._draining:
                self._saved_all.wait()

    def _save_all(self, batch: list[tuple[Step, str, dict[str, str], str, float]]) -> None:
        """Store each step's blobs, then all their records at once, then push them."""
        kept: list[tuple[Step, str, RunRecord]] = []
        for step, key, outputs, log, seconds in batch:
            try:
                kept.append((step, key, self.local.keep(step.id, outputs, log, seconds)))
            except BlobError:
                pass  # an output changed after the step: not cached, it was not its result
            except OSError as exc:
                self.warn(f"could not save {step.id} in the cache {self.local.root}: {exc}")
            except Exception as exc:  # one save's fault must not stop the others
                self.warn(f"could not save {step.id} in the cache: {exc!r}")
        try:
            self.local.put_many([(key, record) for _, key, record in kept])
        except OSError as exc:
            for step, _, _ in kept:
                self.warn(f"could not save {step.id} in the cache {self.local.root}: {exc}")
            return
        if self.push:
            for _, key, record in kept:
                self.push_record(key, record)

    def push_record(self, key: str, record: RunRecord) -> bool:
        remote = self.remote()
        if remote is None:
            return False
        from makeflow.store.remote import RemoteError

        try:
            self.progress.name(record.outputs, self.local.cas)
            remote.push_run(self.local.cas, key, record)
        except RemoteError as exc:
            self._fail(exc)
            return False
        with self._lock:
            self.pushed += 1
        return True

    def put_record(self, key: str, record: RunRecord) -> bool:
        """Write a record whose blobs the remote holds already (a worker without a shared
        disk pushed them), put-if-absent; whether it was written. A failing remote is the
        build's one warning about it, and is then left alone."""
        remote = self.remote()
        if remote is None:
            return False
        from makeflow.store.remote import RemoteError

        try:
            written = remote.put_record(key, record)
        except RemoteError as exc:
            self._fail(exc)
            return False
        with self._lock:
            self.pushed += 1
        return written

    def close(self, max_size: int | None = None) -> None:
        """Wait for the saves, add up the hits, trim the store to `max_size`."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        self.local.count(self.local.hits, self.local.misses)
        self.local.hits = self.local.misses = 0
        self.local.close()
        if max_size is not None:
            with contextlib.suppress(OSError):
                self.local.cas.gc(max_size)


def lock_hints(graph: Graph, lock: LockFile | None) -> dict[str, RunRecord]:
    """What makeflow.lock says each step made, by the cache key of its entry's inputs: a
    step whose inputs match its entry can have those outputs back (`makeflow pull`)."""
    hints: dict[str, RunRecord] = {}
    if lock is None:
        return hints
    for sid, step in graph.steps.items():
        entry = lock.entry(sid)
        record = record_of(entry, step.inputs.paths, step.outputs.paths) if entry else None
        key = record_key(step, record) if record is not None else None
        if key is not None:
            hints[key] = RunRecord(sid, record.outputs)
    return hints


def _placed(path: str, digest: str) -> FileRecord:
    """The stat entry of an output just restored and checked against `digest`."""
    st = fs.deep_stat(path)
    if st is None:
        raise FileNotFoundError(2, "No such file or directory", path)
    return FileRecord(st.size, st.mtime_ns, st.inode, digest, time.time_ns())


def open_cache(root: Path, settings: Settings, remote_option: str | None = None,
               push: bool | None = None,
               progress: Transfers | None = None) -> BuildCache:
    """The cache a build in `root` uses, from its settings and the command line's."""
    local = RunCache(settings.cache_root(root), link=settings.cache_link)
    url = remote_url(remote_option, settings)
    return BuildCache(local, url, settings.push if push is None else push, progress)
