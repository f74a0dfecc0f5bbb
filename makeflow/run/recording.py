"""The run stage's side of the run history: turns steps and job results into history rows.

The scheduler tells it what happened to each step as it happens; `store.history` keeps
the rows and writes them when the scheduler writes its step records. Kept out of the
scheduler so the loop only says "this step ran", and out of the store, which knows
nothing of steps and jobs.
"""

from __future__ import annotations

import os
import shlex
import sqlite3
import sys
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from makeflow.define.placeholders import substitute
from makeflow.errors import UserError
from makeflow.plan.staleness import params_of, recipe_of
from makeflow.run.outcome import log_path
from makeflow.store.history import Recorder, Retention, StepEntry

if TYPE_CHECKING:

    from makeflow.define.loader import Pipeline
    from makeflow.plan.graph import Graph, Step
    from makeflow.run.executors import Job, JobResult
    from makeflow.run.outcome import BuildResult


def command_line() -> str:
    """How this makeflow was started, as a user would type it."""
    return shlex.join(["makeflow", *sys.argv[1:]]) if sys.argv else "makeflow"


def retention(pipeline: Pipeline) -> Retention:
    """`[makeflow] keep_runs` and `keep_days` in makeflow.toml (checked where the table is
    parsed, define/settings.py), or the defaults."""
    keep = Retention()
    settings = pipeline.settings
    if settings.keep_runs is not None:
        keep.runs = int(settings.keep_runs)
    if settings.keep_days is not None:
        keep.days = float(settings.keep_days)
    return keep


def metric_paths(pipeline: Pipeline, graph: Graph) -> list[str]:
    """The files of the graph's steps that their rules mark as metrics."""
    if not any(r.metrics for r in pipeline.rules):  # the usual case costs one pass over rules
        return []
    paths = []
    for step in graph.steps.values():
        marked = step.rule.metrics
        if marked:
            paths += [step.outputs.paths[i] for i, p in enumerate(step.rule.outputs.paths)
                      if p in marked]
    return paths


def current_metrics(pipeline: Pipeline, graph: Graph) -> tuple[dict[str, Any] | None, str]:
    """The values of the graph's metrics files now, and a warning if one cannot be read."""
    paths = metric_paths(pipeline, graph)
    if not paths:
        return None, ""
    from makeflow.store import metrics  # only for rules that mark metrics (JSON, YAML, CSV)

    try:
        return metrics.read_current(pipeline.root, paths), ""
    except UserError as exc:
        return None, f"metrics not recorded: {exc}"


def shown_command(step: Step) -> str:
    """What a step runs: its command after substitution, or its function's code digest."""
    rule = step.rule
    if rule.shell is not None:
        return substitute(rule, rule.shell, step.inputs, step.outputs, step.wildcards)
    return recipe_of(step)


class RunRecorder:
    """Collects what happened to each step of one build into history rows.

    The history must never break a build: when it cannot be written (a full disk, a
    read-only store), the build goes on, the history stops, and `warnings` says so.
    """

    def __init__(self, db: sqlite3.Connection | None, pipeline: Pipeline,
                 targets: Iterable[str]):
        """`db` None: no history (a store makeflow may not write, in a read-only checkout)."""
        keep = retention(pipeline)
        self.warnings: list[str] = []
        self.recorder: Recorder | None = None
        if db is not None:
            self._guard(lambda: setattr(self, "recorder", Recorder(db, command_line(),
                                                                    targets, keep)))
        self.reasons: dict[str, list[str]] = {}
        self.since: dict[str, float] = {}  # when a restore from the run cache began
        self.tries: dict[str, list[JobResult]] = {}
        self.seen: set[str] = set()  # skipped steps already in the history

    @property
    def run_id(self) -> int:
        return self.recorder.run_id if self.recorder is not None else 0

    def _guard(self, write: Callable[[], object]) -> None:
        try:
            write()
        except sqlite3.Error as exc:
            self.recorder = None
            self.warnings.append(f"the run history could not be written ({exc}); this build "
                                 "is not recorded in it")

    def started(self, step: Step, why: list[str]) -> None:
        self.reasons[step.id] = list(why)
        self.since[step.id] = time.time()

    def restored(self, step: Step) -> None:
        """A stale step whose outputs came from the run cache instead of a run."""
        self._step(StepEntry(step.id, step.rule.name, "restored", self.reasons.pop(step.id, []),
                             started=self.since.pop(step.id, None), finished=time.time(),
                             recipe=shown_command(step), params=params_of(step)))

    def retrying(self, step: Step, result: JobResult | None) -> None:
        if result is not None:
            self.tries.setdefault(step.id, []).append(result)

    def ran(self, step: Step, result: JobResult, job: Job | None = None,
            status: str = "ran", skipped: str = "") -> None:
        """A step that ran to its end; with `skipped`, one that chose to make nothing."""
        if skipped:
            self.reasons[step.id] = [*self.reasons.get(step.id, []), f"skipped: {skipped}"]
            self.seen.add(step.id)
        self._add(step, status, result, job)

    def failed(self, step: Step, error: str, result: JobResult | None,
               job: Job | None = None) -> None:
        self._add(step, "failed", result, job, error, _tail(log_path(step.id)))

    def cut_off(self, step: Step) -> None:
        self._step(StepEntry(step.id, step.rule.name, "cut_off", ["upstream outputs unchanged"]))

    def _step(self, entry: StepEntry) -> None:
        if self.recorder is not None:
            self.recorder.step(entry)

    def finish(self, result: BuildResult, graph: Graph | None, outcome: str,
               values: dict[str, Any] | None = None) -> None:
        """Skipped steps (stale, never started) and the run's end."""
        if graph is not None:
            stale = result.plan.stale if result.plan is not None else {}
            for sid in result.not_run:
                step = graph.steps[sid]
                self._step(StepEntry(sid, step.rule.name, "skipped", list(stale.get(sid, [])),
                                     recipe=shown_command(step)))
            still = result.plan.skipped if result.plan is not None else {}
            for sid, why in result.skipped.items():  # below a step skipped in this build
                if sid not in self.seen and sid not in still:
                    step = graph.steps[sid]
                    self._step(StepEntry(sid, step.rule.name, "skipped", [f"skipped: {why}"],
                                         recipe=shown_command(step)))
            if self.recorder is not None:  # still skipped, as decided before: counted only,
                counts = self.recorder.counts  # as fresh steps are, so a no-op stays cheap
                counts["skipped"] += sum(1 for sid in result.skipped if sid in still)
        if self.recorder is not None:
            recorder = self.recorder
            self._guard(lambda: recorder.finish(outcome, result.fresh, values))

    def rider(self) -> Callable[[], None] | None:
        """What writes the pending rows inside the state store's next transaction (see
        StateStore.flush); it never raises."""
        recorder = self.recorder
        if recorder is None or not recorder.pending:
            return None
        return lambda: self._guard(recorder.write_inside)

    def flush(self) -> None:
        """Write what the state store's transaction did not take (a failed step's row)."""
        if self.recorder is not None and self.recorder.pending:
            self._guard(self.recorder.flush)

    def _add(self, step: Step, status: str, result: JobResult | None, job: Job | None,
             error: str = "", tail: str = "") -> None:
        self.since.pop(step.id, None)
        earlier = self.tries.pop(step.id, None)
        if earlier is None:  # the usual case: one attempt, one result
            first = last = result
            cpu = None if result is None else result.cpu
            peak = None if result is None else result.peak_rss
            attempts = 1
        else:
            tries = [*earlier, *([result] if result is not None else [])]
            first, last, attempts = tries[0], tries[-1], len(tries)
            cpus = [t.cpu for t in tries if t.cpu is not None]
            peaks = [t.peak_rss for t in tries if t.peak_rss is not None]
            cpu, peak = (sum(cpus) if cpus else None), (max(peaks) if peaks else None)
        self._step(StepEntry(
            step.id, step.rule.name, status, self.reasons.pop(step.id, []),
            first.started if first else None, last.finished if last else None, cpu, peak,
            last.exit_status if last else None, attempts, (last.worker or None) if last else None,
            error, log_path(step.id) if error else "",  # else the usual place: see log_path
            tail, _ran_command(step, job), params_of(step)))


def _ran_command(step: Step, job: Job | None) -> str:
    """The command the job ran, with its staging paths put back to the real outputs:
    cheaper than substituting the command again for every step."""
    if job is None or job.command is None:
        return shown_command(step)
    command = job.command
    for staged, final in zip(job.outputs.paths, step.outputs.paths, strict=False):
        if staged != final:
            command = command.replace(shlex.quote(staged), shlex.quote(final))
    return command


def _tail(path: str, size: int = 4096) -> str:
    """The end of a log, for the history (the log file itself is replaced next run)."""
    try:
        with open(path, "rb") as f:
            f.seek(max(0, os.fstat(f.fileno()).st_size - size))
            return f.read().decode("utf-8", "replace")
    except OSError:
        return ""


class NoRecorder:
    """Records nothing: for builds run without a history (tests of the loop alone)."""

    run_id = 0

    def started(self, step: Step, why: list[str]) -> None: ...
    def restored(self, step: Step) -> None: ...
    def retrying(self, step: Step, result: JobResult | None) -> None: ...
    def ran(self, step: Step, result: JobResult, job: Job | None = None,
            status: str = "ran", skipped: str = "") -> None: ...
    def failed(self, step: Step, error: str, result: JobResult | None,
               job: Job | None = None) -> None: ...
    def cut_off(self, step: Step) -> None: ...
    def rider(self) -> None: ...
    def flush(self) -> None: ...
