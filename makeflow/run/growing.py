"""A graph that grows during one build: the part before a checkpoint runs first, then the
build plans again with what the checkpoint wrote.

`build()` runs the plan in parts. A stale checkpoint's output decides the steps below it
(plan/dynamic.py), so the first part leaves them out; once every such checkpoint has run,
the graph is resolved and planned again from the rules, the records and the files, as any
build plans, and the next part runs. Steps already done in this build are not run again;
steps the checkpoint no longer calls for are reported, their outputs left to `clean`.
Every part runs on one executor (`OneExecutor`): a Dask build connects, and starts its
LocalCluster, once.
"""

from __future__ import annotations

from typing import Any

from makeflow.define.loader import Pipeline
from makeflow.plan.graph import Graph
from makeflow.plan.staleness import Plan
from makeflow.run.executors import Executor, ExecutorFactory
from makeflow.run.outcome import BuildOptions, BuildResult

MOST_PARTS = 1000  # a checkpoint below a checkpoint below ...: far more than any pipeline


def first_part(plan: Plan) -> Plan:
    """The plan without the steps that wait for a checkpoint that must run first."""
    later: set[str] = set().union(*plan.waiting.values())
    whole = plan.graph
    steps = {sid: step for sid, step in whole.steps.items() if sid not in later}
    graph = Graph(steps, {sid: whole.upstream[sid] for sid in steps}, whole.producer,
                  whole.sources, [t for t in whole.targets if t not in later])
    part = Plan(graph, {sid: why for sid, why in plan.stale.items() if sid not in later},
                plan.warnings)
    part.restorable = plan.restorable
    part.forced = {sid: why for sid, why in plan.forced.items() if sid not in later}
    part.skipped = {sid: why for sid, why in plan.skipped.items() if sid not in later}
    part.before_checkpoint = True
    return part


def done(result: BuildResult) -> set[str]:
    """The steps this build has settled: they do not run again when the graph grows."""
    return {*result.ran, *result.restored, *result.cut_off}


def ran_checkpoints(plan: Plan, part: Plan, result: BuildResult) -> bool:
    """Whether every checkpoint of this part is settled, so planning again learns more
    (`pull` may leave one not run: it restores, it never runs). A checkpoint that skipped
    itself is settled too: planning again finds the steps below it skipped, as the next
    build would."""
    settled = done(result) | set(result.skipped)
    return all(c in settled for c in plan.waiting if c in part.graph.steps)


def without_done(plan: Plan, settled: set[str]) -> Plan:
    """A plan made after a checkpoint ran, less the steps this build already settled (an
    `always=True` checkpoint, or `-B`, would otherwise run them again)."""
    for sid in settled:
        plan.stale.pop(sid, None)
        plan.forced.pop(sid, None)
    for sids in plan.waiting.values():
        sids[:] = [s for s in sids if s not in settled]
    plan.waiting = {c: s for c, s in plan.waiting.items() if c not in settled and s}
    return plan


def dropped(before: Graph, after: Graph) -> list[str]:
    """Steps the graph had before a checkpoint ran and no longer has."""
    return [sid for sid, step in before.steps.items()
            if sid not in after.steps and not step.rule.is_alias]


def dropped_warning(gone: list[str], checkpoints: list[str]) -> str:
    shown = ", ".join(gone[:5]) + (" ..." if len(gone) > 5 else "")
    return (f"after checkpoint {', '.join(checkpoints)} ran, {len(gone)} step(s) are no "
            f"longer part of the build: {shown}; their outputs are left in place "
            "(`makeflow clean` removes them)")


def settle(result: BuildResult, deferred: list[str]) -> None:
    """The result of a build run in parts, counted once: a step that ran in one part is
    fresh in the next, and steps left waiting for a checkpoint that failed did not run."""
    settled = done(result) | set(result.failed)
    result.fresh = [s for s in dict.fromkeys(result.fresh) if s not in settled]
    result.not_run = list(dict.fromkeys(
        [s for s in [*result.not_run, *deferred] if s not in settled]))


class OneExecutor:
    """The executor factory of a build run in parts: the first part makes the executor,
    the others get the same one. Between parts its `shutdown()` keeps it; a kill, the last
    part's end (`last`) or `close()` stops it."""

    def __init__(self, factory: ExecutorFactory):
        self.factory = factory
        self.kept: _Kept | None = None
        self.last = False  # the part about to run is the build's last

    def __call__(self, pipeline: Pipeline, options: BuildOptions) -> Executor:
        if self.kept is None or self.kept.stopped:
            made = self.factory(pipeline, options)
            if self.last:  # a build in one part: the executor as it is, stopped by its run
                return made
            self.kept = _Kept(made, self)
        return self.kept  # type: ignore[return-value]

    def close(self) -> None:
        """Stop the executor unless a part stopped it already."""
        if self.kept is not None and not self.kept.stopped:
            self.kept.stop(False)


class _Kept:
    """An executor as the parts of a build see it: everything but `shutdown` goes to it."""

    def __init__(self, executor: Executor, owner: OneExecutor):
        self.executor, self.owner, self.stopped = executor, owner, False

    def __getattr__(self, name: str) -> Any:
        return getattr(self.executor, name)

    def shutdown(self, kill: bool = False) -> None:
        if kill or self.owner.last:
            self.stop(kill)

    def stop(self, kill: bool) -> None:
        self.stopped = True
        self.executor.shutdown(kill=kill)
