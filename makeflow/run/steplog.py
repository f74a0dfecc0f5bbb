"""The log of a step's last run, as `makeflow logs` shows it.

A step that printed nothing and succeeded keeps no log file (see
run/executors/logslots.py): its log is its command line, for a shell step whose recorded
run is still the current one, and empty otherwise, as a silent Python step's always was.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from makeflow.define.loader import Pipeline
from makeflow.define.placeholders import substitute
from makeflow.errors import UserError
from makeflow.run.build import status
from makeflow.run.outcome import log_path
from makeflow.store.records import StepRecord
from makeflow.store.state import StateStore


def step_log(pipeline: Pipeline, name: str) -> str:
    """The log of the last run of `name` (a step, or a file it makes); UserError when the
    step has not run."""
    log = pipeline.root / log_path(name)
    if log.exists():
        return _read(log)
    plan = status(pipeline, [_target(pipeline, name)])
    sid = plan.graph.producer.get(os.path.normpath(name), name)
    log = pipeline.root / log_path(sid)
    if log.exists():
        return _read(log)
    if not _ran(pipeline, sid):
        raise UserError(f"no log for {name}: it has not run yet",
                        hint="Logs are kept for each step's last run in .makeflow/logs/.")
    step = plan.graph.steps.get(sid)
    if step is None or step.rule.shell is None or sid in plan.stale:
        return ""
    rule = step.rule
    return f"$ {substitute(rule, rule.shell, step.inputs, step.outputs, step.wildcards)}\n"


def _ran(pipeline: Pipeline, sid: str) -> bool:
    """Whether the store has a record of a run of step `sid` that succeeded."""
    return _record(pipeline, sid) is not None


def _target(pipeline: Pipeline, name: str) -> str:
    """What to plan to find step `name`: a file its last run made, when `name` is the id
    of a step that ran (an id is no target), else `name` itself."""
    record = _record(pipeline, name)
    return next(iter(record.outputs), name) if record is not None else name


def _record(pipeline: Pipeline, sid: str) -> StepRecord | None:
    with contextlib.chdir(pipeline.root), StateStore(pipeline.root) as state:
        return state.record(sid)


def _read(log: Path) -> str:
    return log.read_text(encoding="utf-8", errors="replace")
