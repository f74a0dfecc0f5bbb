"""build(): the one entry point of a build, from targets to recorded results.

It takes the project lock, resolves the graph, plans (what is stale and why), and hands
the stale steps to the scheduler; `status()` plans without running anything.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable

from . import fs, uptodate
from .executors import Executor
from .executors.local import LocalExecutor
from .graph_cache import cache_key, resolve_cached
from .loader import Pipeline
from .lock import ProjectLock
from .plan import Digests, Plan, make_plan
from .report import Reporter
from .scheduler import BuildOptions, BuildResult, ExecutorFactory, Run, log_path
from .state import StateStore

__all__ = ["BuildOptions", "BuildResult", "build", "log_path", "status"]


def local_executor(pipeline: Pipeline, options: BuildOptions) -> Executor:
    return LocalExecutor(options.jobs, pipeline.file, pipeline.overrides)


def build(pipeline: Pipeline, targets: Iterable[str], options: BuildOptions,
          reporter: Reporter, executor: ExecutorFactory = local_executor) -> BuildResult:
    """Bring `targets` up to date; see the module docstring for the loop."""
    started = time.monotonic()
    with contextlib.chdir(pipeline.root), ProjectLock(pipeline.root) as lock:
        lock.acquire(options.wait, reporter.warning)
        result = _build(pipeline, targets, options, reporter, executor)
    result.seconds = time.monotonic() - started
    reporter.finished(result)
    return result


def _build(pipeline: Pipeline, targets: Iterable[str], options: BuildOptions,
           reporter: Reporter, executor: ExecutorFactory) -> BuildResult:
    with StateStore(pipeline.root) as state:
        for warning in state.warnings:
            reporter.warning(warning)
        plan, digests = _plan(pipeline, targets, state, options.force, options.clock())
        graph = plan.graph
        result = BuildResult(plan=plan)
        if options.dry_run:
            reporter.planned(plan)
        elif not plan.runnable:
            result.fresh = [s for s in graph.steps if not graph.steps[s].rule.is_alias]
        else:
            Run(pipeline, graph, plan, state, digests, options, reporter, result).run(executor)
    return result


def status(pipeline: Pipeline, targets: Iterable[str], now: float | None = None) -> Plan:
    """The plan without running anything: which steps are stale, and why."""
    with contextlib.chdir(pipeline.root), StateStore(pipeline.root) as state:
        plan, _ = _plan(pipeline, targets, state, False, now)
    return plan


def _plan(pipeline: Pipeline, targets: Iterable[str], state: StateStore, force: bool,
          now: float | None) -> tuple[Plan, Digests]:
    """Resolve and plan; the files hashed on the way are remembered for next time.

    When nothing changed since a plan that found everything fresh, the quick check in
    `uptodate` says so from file stats alone.
    """
    stats = fs.StatCache()
    digests = Digests(state, stats)
    graph, shape = resolve_cached(pipeline, cache_key(pipeline, targets), stats, state.dir)
    recipes = uptodate.recipes_key(pipeline)
    if not force and uptodate.holds(state.dir, (shape, recipes, state.version)):
        return Plan(graph, warnings=state.warnings, quick=True), digests
    plan = make_plan(graph, state, digests, force, now)
    plan.warnings = state.warnings
    state.remember_files(digests.take_hashed())
    if not force:
        uptodate.save(state.dir, (shape, recipes, state.version), graph, bool(plan.stale),
                      state, stats)
    return plan, digests
