"""What the build writes to the state store for a step that landed: a success, a run
during which an input changed, or a step that chose to make nothing (`Skip`).

Called from the scheduler's loop only: the state store and the digests belong to it.
"""

from __future__ import annotations

import time

from makeflow.plan.graph import Step
from makeflow.plan.staleness import Digests, params_of, recipe_of
from makeflow.run.landing import Landed, os_error
from makeflow.store.state import StateStore, StepRecord


def record_ran(state: StateStore, digests: Digests, step: Step, landed: Landed) -> str:
    """Record the step with its outputs' digests; a reason when that failed, else ''."""
    try:
        inputs = {p: digests.get(p) or "" for p in step.inputs.paths}
    except OSError as exc:
        return f"could not hash its inputs: {os_error(exc)}"
    outputs = {p: landed.outputs[p].digest for p in step.outputs.paths}
    result = landed.result
    record = StepRecord(recipe_of(step), params_of(step), inputs, outputs,
                        time.time_ns(), result.finished - result.started)
    state.record_step(step.id, record, {**digests.take_hashed(), **landed.outputs})
    return ""


def record_moved(state: StateStore, step: Step, landed: Landed) -> None:
    """Record what a step made while one of its inputs changed: stale, saying why,
    with its outputs known so that `clean` may remove them."""
    assert landed.moved is not None
    outputs = {p: landed.outputs[p].digest for p in step.outputs.paths}
    result = landed.result
    record = StepRecord(recipe_of(step), params_of(step), {}, outputs, time.time_ns(),
                        result.finished - result.started, moved=landed.moved)
    state.record_step(step.id, record, landed.outputs)
    state.forgotten.add(step.id)


def record_skipped(state: StateStore, digests: Digests, step: Step, landed: Landed) -> None:
    """Record a step that chose to make nothing, with its fingerprint (its previous
    outputs, put back, or "" for none), so it stays skipped, without running, until its
    inputs, code or params change."""
    result = landed.result
    inputs = {p: digests.get(p) or "" for p in step.inputs.paths}
    outputs = {p: landed.outputs[p].digest if p in landed.outputs else ""
               for p in step.outputs.paths}
    record = StepRecord(recipe_of(step), params_of(step), inputs, outputs, time.time_ns(),
                        result.finished - result.started, skipped=landed.skipped)
    state.record_step(step.id, record, {**digests.take_hashed(), **landed.outputs})
