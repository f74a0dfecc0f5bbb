"""build(): resolve the targets, plan, run the stale steps in parallel, record each success.

The loop: submit every ready step (all its upstream steps done) up to the job limit; when
one finishes, move its staged outputs into place, hash them and record the step; then
check each step waiting on it again, so a rerun whose outputs came out identical makes
nothing after it run (early cutoff).
"""

from __future__ import annotations

import contextlib
import heapq
import os
import time
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass, field

from . import fs
from .executors import Executor, Job, JobResult
from .executors.local import LocalExecutor
from .graph import Graph, Step, resolve, substitute
from .loader import Pipeline
from .plan import Digests, Plan, make_plan, params_of, reasons, recipe_of
from .report import Reporter
from .rules import Files
from .state import STATE_DIR, StateStore, StepRecord


@dataclass(frozen=True)
class BuildOptions:
    jobs: int = os.cpu_count() or 1
    dry_run: bool = False
    force: bool = False
    keep_going: bool = False
    clock: Callable[[], float] = time.time  # injectable, for max_age and schedules in tests


@dataclass
class BuildResult:
    """What a build did, by step id; `failed` maps a step to its one-line reason."""

    ran: list[str] = field(default_factory=list)
    fresh: list[str] = field(default_factory=list)
    cut_off: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    not_run: list[str] = field(default_factory=list)
    plan: Plan | None = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failed


ExecutorFactory = Callable[[Pipeline, BuildOptions], Executor]


def local_executor(pipeline: Pipeline, options: BuildOptions) -> Executor:
    return LocalExecutor(options.jobs, pipeline.file, pipeline.overrides)


def build(pipeline: Pipeline, targets: Iterable[str], options: BuildOptions,
          reporter: Reporter, executor: ExecutorFactory = local_executor) -> BuildResult:
    """Bring `targets` up to date; see the module docstring for the loop."""
    started = time.monotonic()
    with contextlib.chdir(pipeline.root), StateStore(pipeline.root) as state:
        for warning in state.warnings:
            reporter.warning(warning)
        stats = fs.StatCache()
        graph = resolve(pipeline, targets, stats)
        digests = Digests(state, stats)
        plan = make_plan(graph, state, digests, options.force, options.clock())
        state.remember_files(digests.take_hashed())
        result = BuildResult(plan=plan)
        if options.dry_run:
            reporter.planned(plan)
        elif not plan.runnable:
            result.fresh = [s for s in graph.steps if not graph.steps[s].rule.is_alias]
        else:
            Run(pipeline, graph, plan, state, digests, options, reporter, result).run(executor)
    result.seconds = time.monotonic() - started
    reporter.finished(result)
    return result


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
        self.running: dict[Future[JobResult], tuple[Step, Job, dict[str, fs.Stat | None]]] = {}
        self.stopping = False

    def run(self, make_executor: ExecutorFactory) -> None:
        self.reporter.started(self.plan)
        self.ready = [(self.position[s], s) for s, n in self.waiting.items() if n == 0]
        executor = make_executor(self.pipeline, self.options)
        killed = True
        try:
            self._loop(executor)
            killed = False
        finally:
            executor.shutdown(kill=killed)
            self._clean_stage()
        self.result.not_run = [
            sid for sid in self.graph.steps
            if sid in self.plan.stale and not self._settled(sid)
            and not self.graph.steps[sid].rule.is_alias
        ]

    def _settled(self, sid: str) -> bool:
        r = self.result
        return sid in r.failed or sid in r.ran or sid in r.cut_off or sid in r.fresh

    def _loop(self, executor: Executor) -> None:
        while self.ready or self.running:
            while self.ready and len(self.running) < self.options.jobs and not self.stopping:
                self._start(heapq.heappop(self.ready)[1], executor)
            if not self.running:
                if self.stopping:
                    return
                continue
            done, _ = wait(list(self.running), return_when=FIRST_COMPLETED)
            for future in done:
                step, job, before = self.running.pop(future)
                self._finish(step, job, before, future.result())

    def _start(self, sid: str, executor: Executor) -> None:
        """Run the step if it is stale now; otherwise it is done at once."""
        step = self.graph.steps[sid]
        why = self._why(step)
        if not why or step.rule.is_alias:
            self._done(sid, "fresh" if sid not in self.plan.stale else "cut_off", why)
            return
        self.plan.stale[sid] = why
        job = self._job(step)
        before = {p: self.digests.stat(p) for p in step.inputs.paths}
        self.reporter.step_started(step, why)
        self.running[executor.submit(job)] = (step, job, before)

    def _why(self, step: Step) -> list[str]:
        if self.options.force and not step.rule.is_alias:
            return ["forced"]
        if step.id not in self.plan.stale:
            return []
        return reasons(step, self.state, self.digests, now=self.options.clock())

    def _job(self, step: Step) -> Job:
        outputs = self._staged(step) if step.rule.stage else step.outputs
        for path in outputs.paths:
            fs.make_parent(path)
        command = None
        if step.rule.shell is not None:
            command = substitute(step.rule, step.rule.shell, step.inputs, outputs, step.wildcards)
        log = log_path(step.id)
        fs.make_parent(log)
        return Job(step.id, step.rule.name, log, command, step.inputs, outputs,
                   params_of(step), dict(step.wildcards))

    def _staged(self, step: Step) -> Files:
        base = os.path.join(STATE_DIR, "stage", _safe_name(step.id))
        for path in step.outputs.paths:
            fs.remove(os.path.join(base, path))
        return Files(tuple(os.path.join(base, p) for p in step.outputs.paths),
                     step.outputs.names)

    def _finish(self, step: Step, job: Job, before: dict[str, fs.Stat | None],
                result: JobResult) -> None:
        error = result.error if not result.ok else self._place_outputs(step, job)
        if error:
            self._failed(step, job, error)
            return
        moved = [p for p, st in before.items() if fs.deep_stat(p) != st]
        if moved:
            self.state.forget_step(step.id)
            self.reporter.warning(
                f"{moved[0]} changed while {step.id} ran; its result is not recorded as "
                "fresh and it will run again next time"
            )
        else:
            self._record(step, result)
        self.reporter.step_finished(step, result)
        self._done(step.id, "ran", [])

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
                    fs.replace(staged, final)
                except OSError as exc:
                    return f"could not move its output into place at {final}: {exc.strerror}"
        for final in step.outputs.paths:
            self.digests.forget(final)
        return ""

    def _record(self, step: Step, result: JobResult) -> None:
        inputs = {p: self.digests.get(p) or "" for p in step.inputs.paths}
        outputs = {p: self.digests.get(p) or "" for p in step.outputs.paths}
        record = StepRecord(recipe_of(step), params_of(step), inputs, outputs,
                            time.time_ns(), result.finished - result.started)
        self.state.record_step(step.id, record, self.digests.take_hashed())

    def _failed(self, step: Step, job: Job, error: str) -> None:
        if not step.rule.stage:
            for path in step.outputs.paths:
                fs.remove(path)
                self.digests.forget(path)
        self.result.failed[step.id] = error
        self.reporter.step_failed(step, error, job.log)
        if not self.options.keep_going:
            self.stopping = True
            self.ready.clear()

    def _done(self, sid: str, how: str, why: list[str]) -> None:
        if not self.graph.steps[sid].rule.is_alias:
            getattr(self.result, how).append(sid)
        if how != "ran":
            self.plan.stale.pop(sid, None)
        for down in self.downstream[sid]:
            self.waiting[down] -= 1
            if self.waiting[down] == 0 and not self.stopping:
                heapq.heappush(self.ready, (self.position[down], down))

    def _clean_stage(self) -> None:
        fs.remove(os.path.join(STATE_DIR, "stage"))


def _safe_name(step_id: str) -> str:
    return "".join(c if c.isalnum() or c in "-_.=," else "_" for c in step_id)


def log_path(step_id: str) -> str:
    return os.path.join(STATE_DIR, "logs", _safe_name(step_id) + ".log")


def status(pipeline: Pipeline, targets: Iterable[str], now: float | None = None) -> Plan:
    """The plan without running anything: which steps are stale, and why."""
    with contextlib.chdir(pipeline.root), StateStore(pipeline.root) as state:
        stats = fs.StatCache()
        graph = resolve(pipeline, targets, stats)
        digests = Digests(state, stats)
        plan = make_plan(graph, state, digests, now=now)
        plan.warnings = state.warnings
        state.remember_files(digests.take_hashed())
    return plan
