"""A build whose Dask workers share no disk with it: files travel through the remote store.

Each step runs in a scratch folder on its worker (`executors/scratch.py`). Before a step
is sent, the build pushes each of its inputs that is here and that the remote lacks
(sources included), and tells the worker every input's digest; the worker fetches them
by digest, runs the step, and pushes its outputs and log. The build records the digests
the worker returns, so early cutoff, the state store and `makeflow.lock` work as usual,
and downloads only what is asked for: the outputs of the requested targets (by default)
or every output (`--download all`). An output left on the remote is recorded with the
inode REMOTE_ONLY: a later build without a shared disk counts it as present, any other
build as missing. The log always comes back, for `makeflow logs`. With the run cache on,
each step's run record is pushed too, so another clone with the same remote restores it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import threading
import time

from makeflow.define.loader import Pipeline
from makeflow.errors import UserError
from makeflow.plan.graph import Graph, Step
from makeflow.plan.staleness import Digests
from makeflow.run.cached import unshared_remote
from makeflow.run.executors import Executor, Job, JobResult
from makeflow.run.landing import Landed, Running, land
from makeflow.run.outcome import BuildOptions
from makeflow.run.reporter import Reporter
from makeflow.run.scheduler import Run
from makeflow.store import aside, fs
from makeflow.store.cas import BlobError, Cas
from makeflow.store.records import REMOTE_ONLY
from makeflow.store.remote import Remote, RemoteError
from makeflow.store.runcache import RunCache, RunRecord
from makeflow.store.state import FileRecord, StateStore

PROBLEMS = (RemoteError, BlobError, OSError)


class UnsharedRun(Run):
    """The scheduler's loop, with each step's files sent and received through the remote."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        settings = self.pipeline.settings
        url = unshared_remote(self.options, settings)
        assert url is not None
        self.files = RemoteFiles(url, RunCache(settings.cache_root(self.pipeline.root)).cas)
        self.wanted = wanted_outputs(self.graph, self.options.download or settings.download)
        self.fetch: dict[str, dict[str, str]] = {}  # each step's inputs' digests

    def run(self, make_executor) -> None:
        try:
            super().run(make_executor)
        finally:
            download_left(self.files, self.wanted, self.graph, self.digests, self.state,
                          self.reporter)

    def _submit(self, step: Step, executor: Executor) -> None:
        try:
            self.fetch[step.id] = self.files.push_inputs(step.inputs.paths, self.digests)
        except PROBLEMS as exc:
            self.attempts[step.id] = self.attempts.get(step.id, 0) + 1
            self._failed(step, None, f"could not send its inputs to the remote "
                         f"{self.files.remote.url}: {exc}")
            return
        super()._submit(step, executor)

    def _job(self, step: Step, attempt: int) -> Job:
        job = super()._job(step, attempt)
        return dataclasses.replace(job, fetch=self.fetch.pop(step.id, {}))

    def landing(self, running: Running, result: JobResult) -> Landed:
        return self.files.land(running, result, self.wanted)

    def _save(self, running: Running, landed: Landed) -> None:
        """Nothing goes to the local run cache: the outputs may be on the remote only. With
        the run cache on, the step's run record goes to the remote instead (its worker
        pushed the blobs it names already), so another clone restores the step from there.
        Written on the cache's threads, which the build waits for, not in the thread that
        settles the steps that end."""
        key = self.keys.get(running.step.id)
        if self.cache is None or key is None or landed.error or landed.moved or landed.skipped:
            return
        result = landed.result
        record = RunRecord(running.step.id, {p: r.digest for p, r in landed.outputs.items()},
                           result.remote_log or None, result.finished - result.started)
        self.cache.submit(self.cache.put_record, key, record)  # the first record stays


def download_left(files: RemoteFiles, wanted: set[str] | None, graph: Graph,
                  digests: Digests, state: StateStore, reporter: Reporter) -> None:
    """Requested outputs that are on the remote only (left there by this build or an
    earlier one: a fresh step does not run) come here too."""
    paths = wanted if wanted is not None else [
        p for step in graph.steps.values() for p in step.outputs.paths]
    placed: dict[str, FileRecord] = {}
    for path in sorted(paths):
        digest = None if os.path.lexists(path) else digests.remote_only(path)
        if digest is None:
            continue
        try:
            placed[path] = files.place(path, digest)
        except PROBLEMS as exc:
            reporter.warning(f"could not download {path} from the remote: {exc}")
    if placed:
        state.remember_files(placed)
        state.flush()


def download_fresh(pipeline: Pipeline, graph: Graph, digests: Digests, state: StateStore,
                   options: BuildOptions, reporter: Reporter) -> None:
    """A build with nothing to run still brings the requested outputs here."""
    settings = pipeline.settings
    url = unshared_remote(options, settings)
    assert url is not None
    wanted = wanted_outputs(graph, options.download or settings.download)
    paths = wanted if wanted is not None else [p for s in graph.steps.values()
                                               for p in s.outputs.paths]
    if all(os.path.lexists(p) or digests.remote_only(p) is None for p in paths):
        return  # the usual case: they are here, and the remote is not even opened
    files = RemoteFiles(url, RunCache(settings.cache_root(pipeline.root)).cas)
    download_left(files, wanted, graph, digests, state, reporter)


def wanted_outputs(graph: Graph, download: str) -> set[str] | None:
    """The outputs to download: those of the requested targets (an alias stands for what
    it groups), or None for every output (`download == "all"`)."""
    if download == "all":
        return None
    wanted: set[str] = set()
    todo, seen = list(graph.targets), set()
    while todo:
        sid = todo.pop()
        step = graph.steps.get(sid)
        if step is None or sid in seen:
            continue
        seen.add(sid)
        if step.rule.is_alias:
            todo.extend(graph.upstream.get(sid, []))
        else:
            wanted.update(step.outputs.paths)
    return wanted


class RemoteFiles:
    """The remote store and this project's local blob store, as the build moves files."""

    def __init__(self, url: str, cas: Cas):
        self.remote = Remote(url)
        try:
            self.remote.check(create=True)
        except RemoteError as exc:
            raise UserError(f"--no-shared-fs cannot use its remote: {exc}") from None
        self.cas = cas
        self.known: set[str] = set()  # digests the remote has, as far as this build knows
        self.lock = threading.Lock()

    def push_inputs(self, paths: list[str], digests: Digests) -> dict[str, str]:
        """Each input's digest; those here that the remote lacks are pushed first. An input
        not here is on the remote (a worker made it) or missing (the step will say so)."""
        fetch = {}
        for path in paths:
            digest = digests.get(path)
            if digest is None:
                continue
            fetch[path] = digest
            with self.lock:
                known = digest in self.known
            if known or not os.path.lexists(path):
                continue
            if not self.remote.has(digest):
                self.cas.put(path, digest)
                self.remote.upload(self.cas, [digest])
            with self.lock:
                self.known.add(digest)
        return fetch

    def land(self, running: Running, result: JobResult, wanted: set[str] | None) -> Landed:
        """Settle a step that ran in scratch: its log back here, its outputs recorded by
        digest, and downloaded when wanted (`None`: all). Runs in the thread that saw it
        end, touching files only."""
        step, job = running.step, running.job
        if result.remote_log:
            self._place_log(result.remote_log, job)
        if not result.ok:
            return Landed(result, result.error or "failed")
        if result.skipped:  # it chose to make nothing: as on a shared disk
            return land(running, result)
        made = result.remote_outputs
        if made is None:
            return Landed(result, "its worker returned no digests of its outputs")
        missing = next((p for p in step.outputs.paths if p not in made), None)
        if missing is not None:
            return Landed(result, f"succeeded but did not create its output {missing}")
        with self.lock:
            self.known.update(digest for digest, _ in made.values())
        if running.previous:
            aside.drop(running.previous)
        try:
            outputs = {p: self.place(p, made[p][0]) if wanted is None or p in wanted
                       else FileRecord(made[p][1], -1, REMOTE_ONLY, made[p][0], time.time_ns())
                       for p in step.outputs.paths}
        except PROBLEMS as exc:
            return Landed(result, f"could not download its outputs: {exc}")
        moved = next((p for p, st in running.before.items() if fs.deep_stat(p) != st), None)
        return Landed(result, "", outputs, moved)

    def place(self, path: str, digest: str) -> FileRecord:
        """Download `digest` and put it at `path`, checked; its stat entry."""
        self.remote.download(self.cas, [digest])
        self.cas.restore(digest, path)
        st = fs.deep_stat(path)
        if st is None:
            raise FileNotFoundError(2, "No such file or directory", path)
        return FileRecord(st.size, st.mtime_ns, st.inode, digest, time.time_ns())

    def _place_log(self, digest: str, job: Job) -> None:
        """The worker's log of this attempt, here: replacing the log, or after the earlier
        attempts' part of it."""
        try:
            self.remote.download(self.cas, [digest])
            data = self.cas.path(digest).read_bytes()
        except PROBLEMS as exc:
            data = f"makeflow: could not fetch this step's log from the remote: {exc}\n".encode()
        with contextlib.suppress(OSError), open(job.log, "ab" if job.attempt > 1 else "wb") as f:
            f.write(data)
