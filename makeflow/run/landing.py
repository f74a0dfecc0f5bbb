"""A finished step's files settled where it ended: outputs checked and hashed, the previous
ones it replaced dropped, and inputs checked for a change while it ran.

This runs in the thread that saw the step end, so it touches files only, never the state
store or the build's digests.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import Future
from dataclasses import dataclass, field

from makeflow.plan.graph import Step
from makeflow.run.executors import Job, JobResult
from makeflow.store import aside, fs
from makeflow.store.hashing import hash_path
from makeflow.store.state import FileRecord


@dataclass
class Running:
    """A submitted step: its job, the stat of each input when it started, and its previous
    outputs, set aside while it runs."""

    step: Step
    job: Job
    before: dict[str, fs.Stat | None]
    previous: list[aside.Pair] = field(default_factory=list)


@dataclass
class Landed:
    """What the thread that saw a step end found: the job's result, and for a success
    its outputs, hashed, and any input that changed while it ran."""

    result: JobResult
    error: str = ""
    outputs: dict[str, FileRecord] = field(default_factory=dict)
    moved: str | None = None
    skipped: str = ""  # the step chose not to make its outputs: the reason


def land(running: Running, result: JobResult) -> Landed:
    """Settle a step's files where it ended: check its outputs, drop the previous ones,
    hash the new ones, and see whether an input changed while it ran.

    Touches files only, never the state store or the digests of the build's thread.
    """
    if not result.ok:
        return Landed(result, _with_full_disk(result.error or "failed", running))
    step = running.step
    if result.skipped:
        return _skipped(running, result)
    error = check_outputs(step)
    if error:
        return Landed(result, error)
    if running.previous:
        aside.drop(running.previous)
    try:
        outputs = {p: file_record(p) for p in step.outputs.paths}
        if step.rule.protected:  # after hashing: a change of mode moves no stat we compare
            for path in step.outputs.paths:
                fs.make_read_only(path)
    except OSError as exc:
        return Landed(result, f"could not hash its outputs: {os_error(exc)}")
    moved = next((p for p, st in running.before.items() if fs.deep_stat(p) != st), None)
    return Landed(result, "", outputs, moved)


def _skipped(running: Running, result: JobResult) -> Landed:
    """A step that decided not to make its outputs leaves its previous ones as they were,
    as a failed step does (the model deployed last time stays deployed): what it wrote
    before it decided is removed, and the outputs set aside are put back and hashed."""
    step = running.step
    try:
        for path in step.outputs.paths:
            fs.remove(path)
        aside.put_back(running.previous)
        outputs = {p: file_record(p) for p in step.outputs.paths if os.path.lexists(p)}
    except OSError as exc:
        return Landed(result, f"was skipped, but its previous outputs could not be put "
                              f"back: {os_error(exc)}")
    return Landed(result, outputs=outputs, skipped=result.skipped)


def check_outputs(step: Step) -> str:
    """'' when every declared output exists, else what is missing."""
    for path in step.outputs.paths:
        if not os.path.lexists(path):
            return f"succeeded but did not create its output {path}"
    return ""


def _with_full_disk(error: str, running: Running) -> str:
    """A failure on a full disk says so, naming the file, when the error does not (a
    tool's exit status): what a user most needs to know is that no step can succeed."""
    if "no space left" in error.lower():
        return error
    note = fs.full_disk_note([*running.job.outputs.paths, *running.step.outputs.paths,
                              running.job.log])
    return f"{error}; {note}" if note else error


def file_record(path: str) -> FileRecord:
    """A fresh output's stat and digest, as the digests of the build would hash it: the
    stat first, so a write during the hash shows as a changed stat next time."""
    st = fs.deep_stat(path)
    if st is None:
        raise FileNotFoundError(2, "No such file or directory", path)
    checked = time.time_ns()
    return FileRecord(st.size, st.mtime_ns, st.inode, hash_path(path), checked)


def os_error(exc: OSError) -> str:
    """An OSError as a user reads it: what went wrong, and the file."""
    where = f": {exc.filename}" if exc.filename else ""
    return f"{exc.strerror or exc}{where}"


def result_of(future: Future[JobResult]) -> JobResult:
    """The job's result; an executor's own failure counts as the step's failure."""
    try:
        return future.result()
    except Exception as exc:  # an executor fault must fail one step, not the build
        now = time.time()
        return JobResult(False, now, now, None, f"the executor failed: {exc!r}")
