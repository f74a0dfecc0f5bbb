"""A step on a worker that shares no disk with the build: run in a scratch folder of its own.

The step's inputs are fetched into the folder by digest from the remote store, at the
same relative paths as in the project; the step runs there; its outputs and its log are
pushed to the remote (put-if-absent), and the result carries their digests, which the
build records. The folder is removed afterwards. Blobs pass through a content-addressed
store in the worker's own folder, so an input that several steps read is fetched once;
when the build ends, the blobs it did not use are removed from that store (`trim`), so it
holds one build's files at most, however many builds (or `watch` rebuilds) came before.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable

from makeflow.run.executors import Job, JobResult
from makeflow.store import fs
from makeflow.store.cas import BlobError, Cas
from makeflow.store.remote import Remote, RemoteError

_remotes: dict[str, Remote] = {}
_lock = threading.Lock()


def remote_at(url: str) -> Remote:
    """One Remote per URL in this worker process (its connections are kept)."""
    with _lock:
        remote = _remotes.get(url)
        if remote is None:
            remote = _remotes[url] = Remote(url)
        return remote


def run_in_scratch(job: Job, run: Callable[[Job], JobResult], url: str,
                   base: str) -> JobResult:
    """Fetch the inputs into a new folder under `base`, run the step there with `run`,
    push its outputs and log; the result with their digests."""
    remote, cas = remote_at(url), scratch_store(base)
    os.makedirs(base, exist_ok=True)
    folder = tempfile.mkdtemp(prefix="makeflow-step-", dir=base)
    here = dataclasses.replace(job, workdir=folder)
    try:
        for path in [*job.outputs.paths, job.log]:
            os.makedirs(os.path.dirname(here.at(path)) or folder, exist_ok=True)
        problem = _fetch(here, remote, cas)
        result = run(here) if not problem else _failed(here, problem)
        return _pushed(here, result, remote, cas)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def scratch_store(base: str) -> Cas:
    """The blob store of the worker whose own folder is `base`."""
    return Cas(os.path.join(base, "makeflow-cas"))


def trim(base: str, since: float) -> tuple[int, int]:
    """Remove the blobs of the worker's store that no step used since `since` (when the
    build began on this worker); how many blobs and bytes went."""
    return scratch_store(base).drop_unused(since)


def _fetch(job: Job, remote: Remote, cas: Cas) -> str:
    """Place every input in the step's folder; why not ('' when all are there). A blob
    gone between its download and its use (another build ending on this worker trimmed
    it) is fetched once more."""
    try:
        for tries_left in (1, 0):
            remote.download(cas, job.fetch.values())
            try:
                for path, digest in job.fetch.items():
                    cas.restore(digest, job.at(path))
                break
            except BlobError:
                if not tries_left:
                    raise
    except (BlobError, RemoteError, OSError) as exc:
        return f"could not fetch its inputs from the remote: {exc}"
    return ""


def _failed(job: Job, why: str) -> JobResult:
    now = time.time()
    with contextlib.suppress(OSError):
        fd = job.open_log()
        try:
            os.write(fd, f"makeflow: {why}\n".encode())
        finally:
            os.close(fd)
    return JobResult(False, now, now, None, why)


def _pushed(job: Job, result: JobResult, remote: Remote, cas: Cas) -> JobResult:
    """Push the log, and the outputs of a success; the result with their digests. An
    output the step did not make is left out (the build says it is missing)."""
    outputs: dict[str, tuple[str, int]] = {}
    try:
        log = cas.put(job.at(job.log)) if os.path.exists(job.at(job.log)) else ""
        if result.ok:
            for path in job.outputs.paths:
                where = job.at(path)
                if os.path.lexists(where):
                    st = fs.deep_stat(where)
                    outputs[path] = (cas.put(where), st.size if st is not None else 0)
        remote.upload(cas, [d for d, _ in outputs.values()] + ([log] if log else []))
    except (BlobError, RemoteError, OSError) as exc:
        why = f"could not push its outputs to the remote: {exc}"
        return dataclasses.replace(result, ok=False, error=why, remote_outputs={})
    return dataclasses.replace(result, remote_outputs=outputs, remote_log=log)
