"""The loop that runs stale steps in parallel and records each success as it happens.

Submit every ready step (all its upstream steps done) up to the job limit; when one
finishes, move its staged outputs into place, hash them and record the step; then check
each step waiting on it again, so a rerun whose outputs came out identical makes nothing
after it run (early cutoff). A failed step with `retries` left runs again after a backoff.
"""

from __future__ import annotations

import heapq
import os
import signal
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass, field

from . import fs
from .errors import BuildFailed, Interrupted, Terminated
from .executors import Executor, Job, JobResult
from .graph import Graph, Step
from .loader import Pipeline
from .plan import Digests, Plan, params_of, reasons, recipe_of
from .recipe import substitute
from .report import Reporter
from .rules import Files
from .state import STATE_DIR, StateStore, StepRecord

STAGE = os.path.join(STATE_DIR, "stage")
BACKOFF = 0.5  # seconds before the first retry; doubles each time
BACKOFF_CAP = 30.0


@dataclass(frozen=True)
class BuildOptions:
    jobs: int = os.cpu_count() or 1
    dry_run: bool = False
    force: bool = False
    keep_going: bool = False
    wait: bool = True  # for another build in the same folder to finish
    clock: Callable[[], float] = time.time  # injectable, for max_age and schedules in tests


@dataclass
class BuildResult:
    """What a build did, by step id; `failed` maps a step to its one-line reason."""

    ran: list[str] = field(default_factory=list)
    fresh: list[str] = field(default_factory=list)
    cut_off: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    not_run: list[str] = field(default_factory=list)
    retried: dict[str, int] = field(default_factory=dict)
    plan: Plan | None = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failed


ExecutorFactory = Callable[[Pipeline, BuildOptions], Executor]


@dataclass
class Running:
    """A submitted step: its job, and the stat of each input when it started."""

    step: Step
    job: Job
    before: dict[str, fs.Stat | None]


class Run:
    """The state of one build while it runs: what waits, what runs, what is done."""

    def __init__(self, pipeline: Pipeline, graph: Graph, plan: Plan, state: StateStore,
                 digests: Digests, options: BuildOptions, reporter: Reporter,
                 result: BuildResult):
        self.pipeline, self.graph, self.plan = pipeline, graph, plan
        self.state, self.digests, self.options = state, digests, options
        self.reporter, self.result = reporter, result
        self.downstream = graph.downstream()
        self.waiting = {sid: len(graph.upstream[sid]) for sid in graph.steps}
        self.position = {sid: i for i, sid in enumerate(graph.steps)}
        self.ready: list[tuple[int, str]] = []  # a heap: the graph's order decides ties
        self.retry_at: list[tuple[float, int, str]] = []  # a heap of (when, position, step)
        self.attempts: dict[str, int] = {}
        self.running: dict[Future[JobResult], Running] = {}
        self.stopping = False
        self.folders = fs.Folders()
        self.slots = StageSlots()

    def run(self, make_executor: ExecutorFactory) -> None:
        self.reporter.started(self.plan)
        self.ready = [(self.position[s], s) for s, n in self.waiting.items() if n == 0]
        fs.remove(STAGE)  # whatever a killed build left there
        executor = make_executor(self.pipeline, self.options)
        try:
            self._loop(executor)
        except KeyboardInterrupt as exc:
            stopped = [r.step for r in self.running.values()]
            executor.shutdown(kill=True)
            self._discard(stopped)
            raise self._interrupted(exc, stopped) from None
        finally:
            executor.shutdown(kill=bool(self.running))
            fs.remove(STAGE)
            self._flush()
        self.result.not_run = [
            sid for sid in self.graph.steps
            if sid in self.plan.stale and not self._settled(sid)
            and not self.graph.steps[sid].rule.is_alias
        ]

    def _interrupted(self, exc: KeyboardInterrupt, stopped: list[Step]) -> Interrupted:
        signum = signal.SIGTERM if isinstance(exc, Terminated) else signal.SIGINT
        what = ", ".join(s.id for s in stopped) or "no step"
        return Interrupted(
            f"stopped by {signal.Signals(signum).name} while running {what}; "
            f"{len(self.result.ran)} steps that finished are recorded, the others run next time",
            signum=signum,
        )

    def _discard(self, stopped: list[Step]) -> None:
        """Remove what interrupted unstaged steps wrote (staged files go with the stage)."""
        for step in stopped:
            if not step.rule.stage:
                for path in step.outputs.paths:
                    fs.remove(path)

    def _settled(self, sid: str) -> bool:
        r = self.result
        return sid in r.failed or sid in r.ran or sid in r.cut_off or sid in r.fresh

    def _loop(self, executor: Executor) -> None:
        while self.ready or self.running or self.retry_at:
            self._due_retries(executor)
            self._fill(executor)
            if not self.running:
                if self.stopping and not self.retry_at:
                    return
                if self.retry_at:
                    time.sleep(max(0.0, self.retry_at[0][0] - time.monotonic()))
                continue
            timeout = self.retry_at[0][0] - time.monotonic() if self.retry_at else None
            self._flush()  # before waiting: what finished is on disk
            done, _ = wait(list(self.running), timeout=timeout, return_when=FIRST_COMPLETED)
            finished = [(self.running.pop(future), _result_of(future)) for future in done]
            if all(result.ok for _, result in finished):
                self._fill(executor)  # keep every slot busy while the results are recorded
            for running, result in finished:
                self._finish(running, result)

    def _fill(self, executor: Executor) -> None:
        """Start ready steps until every job slot is taken."""
        while self.ready and len(self.running) < self.options.jobs and not self.stopping:
            self._start(heapq.heappop(self.ready)[1], executor)

    def _flush(self) -> None:
        try:
            self.state.flush()
        except sqlite3.Error as exc:
            raise BuildFailed(
                f"could not write the state store {self.state.path}: {exc}",
                hint="The steps that finished since the last write run again next time; "
                "free some space or fix the folder, then build again.",
            ) from None

    def _due_retries(self, executor: Executor) -> None:
        while self.retry_at and self.retry_at[0][0] <= time.monotonic():
            _, _, sid = heapq.heappop(self.retry_at)
            self._submit(self.graph.steps[sid], executor)

    def _start(self, sid: str, executor: Executor) -> None:
        """Run the step if it is stale now; otherwise it is done at once."""
        step = self.graph.steps[sid]
        why = self._why(step)
        if not why or step.rule.is_alias:
            cut_off = sid in self.plan.stale
            if cut_off and not step.rule.is_alias:
                self.reporter.step_cut_off(step)
            self._done(sid, "cut_off" if cut_off else "fresh")
            return
        self.plan.stale[sid] = why
        self.reporter.step_started(step, why)
        self._submit(step, executor)

    def _submit(self, step: Step, executor: Executor) -> None:
        attempt = self.attempts[step.id] = self.attempts.get(step.id, 0) + 1
        try:
            job = self._job(step, attempt)
        except OSError as exc:
            self._failed(step, None, f"cannot prepare its output folder: {_os_error(exc)}")
            return
        before = {p: self.digests.stat(p) for p in step.inputs.paths}
        self.running[executor.submit(job)] = Running(step, job, before)

    def _why(self, step: Step) -> list[str]:
        if self.options.force and not step.rule.is_alias:
            return ["forced"]
        if step.id not in self.plan.stale:
            return []
        return reasons(step, self.state, self.digests, now=self.options.clock())

    def _job(self, step: Step, attempt: int) -> Job:
        outputs = self._staged(step) if step.rule.stage else step.outputs
        for path in outputs.paths:
            self.folders.make_parent(path)
        command = None
        if step.rule.shell is not None:
            command = substitute(step.rule, step.rule.shell, step.inputs, outputs, step.wildcards)
        log = log_path(step.id)
        self.folders.make_parent(log)
        return Job(step.id, step.rule.name, log, command, step.inputs, outputs,
                   params_of(step), dict(step.wildcards), step.rule.timeout, attempt)

    def _staged(self, step: Step) -> Files:
        """Staging paths for the outputs, keeping their file names (tools read extensions)."""
        slot = self.slots.take(step.id)
        names = [os.path.basename(p) for p in step.outputs.paths]
        if len(set(names)) < len(names):  # a/x.txt and b/x.txt: one sub-folder each
            names = [os.path.join(str(i), n) for i, n in enumerate(names)]
        return Files(tuple(os.path.join(slot, n) for n in names), step.outputs.names)

    def _finish(self, running: Running, result: JobResult) -> None:
        step, job = running.step, running.job
        error = result.error if not result.ok else self._place_outputs(step, job)
        if error:
            self._failed(step, job, error)
            return
        moved = [p for p, st in running.before.items() if fs.deep_stat(p) != st]
        if moved:
            self.state.forget_step(step.id)
            self.reporter.warning(
                f"{moved[0]} changed while {step.id} ran; its result is not recorded as "
                "fresh and it will run again next time"
            )
        else:
            error = self._record(step, result)
            if error:
                self._failed(step, job, error)
                return
        self.reporter.step_finished(step, result)
        self._done(step.id, "ran")

    def _place_outputs(self, step: Step, job: Job) -> str:
        """Check every declared output exists, then move staged ones into place."""
        for staged, final in zip(job.outputs.paths, step.outputs.paths, strict=True):
            if not os.path.lexists(staged):
                hint = "" if not step.rule.stage else (
                    " (a step must write to the path it is given: {outputs} or "
                    "step.outputs; or mark the rule stage=False)"
                )
                return f"succeeded but did not create its output {final}{hint}"
        if step.rule.stage:
            for staged, final in zip(job.outputs.paths, step.outputs.paths, strict=True):
                try:
                    self.folders.make_parent(final)
                    fs.replace(staged, final)
                except OSError as exc:
                    return f"could not move its output into place at {final}: {_os_error(exc)}"
            self.slots.give_back(step.id)
        for final in step.outputs.paths:
            self.digests.forget(final)
        return ""

    def _record(self, step: Step, result: JobResult) -> str:
        """Hash the outputs and record the step; a reason when that failed, else ''."""
        try:
            inputs = {p: self.digests.get(p) or "" for p in step.inputs.paths}
            outputs = {p: self.digests.get(p) or "" for p in step.outputs.paths}
            record = StepRecord(recipe_of(step), params_of(step), inputs, outputs,
                                time.time_ns(), result.finished - result.started)
            self.state.record_step(step.id, record, self.digests.take_hashed())
        except OSError as exc:
            return f"could not hash its outputs: {_os_error(exc)}"
        return ""

    def _failed(self, step: Step, job: Job | None, error: str) -> None:
        if step.rule.stage and job is not None:
            for path in job.outputs.paths:
                fs.remove(path)
            self.slots.give_back(step.id)
        if not step.rule.stage:
            for path in step.outputs.paths:
                fs.remove(path)
                self.digests.forget(path)
        attempt = self.attempts.get(step.id, 1)
        if attempt <= step.rule.retries and not self.stopping:
            delay = min(BACKOFF * 2 ** (attempt - 1), BACKOFF_CAP)
            self.result.retried[step.id] = attempt
            self.reporter.step_retrying(step, error, attempt, step.rule.retries, delay)
            heapq.heappush(self.retry_at,
                           (time.monotonic() + delay, self.position[step.id], step.id))
            return
        self.result.failed[step.id] = error
        self.reporter.step_failed(step, error, job.log if job else log_path(step.id))
        if not self.options.keep_going:
            self.stopping = True
            self.ready.clear()

    def _done(self, sid: str, how: str) -> None:
        if not self.graph.steps[sid].rule.is_alias:
            getattr(self.result, how).append(sid)
        if how != "ran":
            self.plan.stale.pop(sid, None)
        for down in self.downstream[sid]:
            self.waiting[down] -= 1
            if self.waiting[down] == 0 and not self.stopping:
                heapq.heappush(self.ready, (self.position[down], down))


class StageSlots:
    """Staging folders, one per running step, reused once its outputs moved into place.

    Making and removing a folder for every step costs two system calls per step; a build
    needs only as many slots as steps run at once.
    """

    def __init__(self) -> None:
        self.free: list[str] = []
        self.used: dict[str, str] = {}
        self.count = 0

    def take(self, step_id: str) -> str:
        if self.free:
            slot = self.free.pop()
        else:
            self.count += 1
            slot = os.path.join(STAGE, str(self.count))
            os.makedirs(slot, exist_ok=True)
        self.used[step_id] = slot
        return slot

    def give_back(self, step_id: str) -> None:
        slot = self.used.pop(step_id, None)
        if slot is not None:
            self.free.append(slot)


def _result_of(future: Future[JobResult]) -> JobResult:
    """The job's result; an executor's own failure counts as the step's failure."""
    try:
        return future.result()
    except Exception as exc:  # an executor fault must fail one step, not the build
        now = time.time()
        return JobResult(False, now, now, None, f"the executor failed: {exc!r}")


def _os_error(exc: OSError) -> str:
    where = f": {exc.filename}" if exc.filename else ""
    return f"{exc.strerror or exc}{where}"


def _safe_name(step_id: str) -> str:
    return "".join(c if c.isalnum() or c in "-_.=," else "_" for c in step_id)


def log_path(step_id: str) -> str:
    return os.path.join(STATE_DIR, "logs", _safe_name(step_id) + ".log")
