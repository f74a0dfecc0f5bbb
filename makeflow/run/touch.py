"""`build --touch`: record the outputs that exist now as the stale steps' fresh results,
without running anything.

For adopting a project whose outputs were made by hand or by another tool: each stale
step is recorded as if it had just made the files that are there, so the next build runs
only what changes after. Nothing is recorded when any of those outputs is missing: a step
whose result does not exist cannot be called fresh, and the build says which files.
"""

from __future__ import annotations

import time

from makeflow.errors import UserError
from makeflow.plan.staleness import Digests, Plan, params_of, recipe_of
from makeflow.run.outcome import BuildResult
from makeflow.store.state import StateStore, StepRecord

SHOWN = 10  # missing outputs named in the message


def touch(plan: Plan, state: StateStore, digests: Digests, result: BuildResult) -> None:
    """Record every stale step of the plan with its inputs and outputs as they are now,
    upstream first; refuse (recording none) when an output of one of them is missing."""
    graph = plan.graph
    missing = [(sid, path) for sid in plan.runnable for path in graph.steps[sid].outputs.paths
               if digests.stats.get(path) is None]
    if missing:
        shown = ", ".join(f"{path} ({sid})" for sid, path in missing[:SHOWN])
        more = f" and {len(missing) - SHOWN} more" if len(missing) > SHOWN else ""
        raise UserError(
            f"--touch records existing outputs as fresh, but {len(missing)} output(s) of the "
            f"stale steps do not exist: {shown}{more}; nothing was recorded",
            hint="Build those steps (makeflow build TARGET), or touch only targets whose "
            "outputs all exist (makeflow build --touch TARGET).")
    for sid in plan.runnable:
        step = graph.steps[sid]
        inputs = {p: digests.get(p) or "" for p in step.inputs.paths}
        outputs = {p: digests.get(p) or "" for p in step.outputs.paths}
        record = StepRecord(recipe_of(step), params_of(step), inputs, outputs, time.time_ns())
        state.record_step(sid, record, digests.take_hashed())
        result.touched.append(sid)
    state.flush()
    result.fresh = [sid for sid, step in graph.steps.items()
                    if not step.rule.is_alias and sid not in plan.skipped
                    and sid not in plan.stale]
