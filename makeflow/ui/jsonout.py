"""Machine-readable output: the JSON documents of `status`, `list` and `runs`, and the
JSON-lines reporter of `build --json`.

Every document and event carries `"version": 1`; docs/json.md is the schema. A field is
only ever added within a version, never renamed or removed.
"""

from __future__ import annotations

import json
import time
from typing import IO, TYPE_CHECKING, Any

from makeflow.ui.plain import log_tail, step_command

if TYPE_CHECKING:
    from makeflow.define.loader import Pipeline
    from makeflow.plan.graph import Step
    from makeflow.plan.staleness import Plan
    from makeflow.run.build import BuildResult
    from makeflow.run.executors import JobResult
    from makeflow.store.history import RunEntry

VERSION = 1


def dumps(document: dict[str, Any], indent: int | None = 2) -> str:
    return json.dumps({"version": VERSION, **document}, indent=indent, default=str,
                      ensure_ascii=False)


def status_document(plan: Plan, commands: bool = False) -> dict[str, Any]:
    """The stale steps with their reasons (and commands), and the counts."""
    steps = plan.graph.steps
    stale = []
    later = {s: c for c, sids in plan.waiting.items() for s in sids}
    for sid, why in plan.stale.items():
        step = steps[sid]
        if step.rule.is_alias:
            continue
        entry: dict[str, Any] = {"step": sid, "rule": step.rule.name, "reasons": list(why),
                                 "outputs": list(step.outputs.paths)}
        if sid in later:  # listed as the checkpoint's last output calls for it
            entry["after_checkpoint"] = later[sid]
        if commands:
            entry["command"] = step_command(step)
        stale.append(entry)
    total = sum(1 for s in steps.values() if not s.rule.is_alias)
    skipped = [{"step": sid, "rule": steps[sid].rule.name, "reason": why}
               for sid, why in plan.skipped.items() if not steps[sid].rule.is_alias]
    return {"total": total, "stale": stale, "skipped": skipped,
            "warnings": list(plan.warnings)}


def list_document(pipeline: Pipeline) -> dict[str, Any]:
    """The rules with their kind, where they are declared, and their files."""
    default = pipeline.default_rule
    rules = []
    for r in pipeline.rules:
        kind = "shell" if r.shell is not None else "python" if r.func else "alias"
        rules.append({"name": r.name, "kind": kind, "where": r.where, "default": r is default,
                      "pattern": r.is_pattern, "inputs": list(r.inputs.paths),
                      "outputs": list(r.outputs.paths), "metrics": list(r.metrics),
                      "checkpoint": r.checkpoint})
    return {"file": str(pipeline.file), "rules": rules}


def runs_document(entries: list[RunEntry]) -> dict[str, Any]:
    return {"runs": [e.as_json() for e in entries]}


class JsonReporter:
    """One JSON object per line as the build goes, for editors and CI."""

    def __init__(self, out: IO[str], print_commands: bool = False):
        self.out = out
        self.print_commands = print_commands
        self.shown_skips: set[str] = set()

    def _event(self, event: str, **fields: Any) -> None:
        self.out.write(json.dumps({"version": VERSION, "event": event, "time": time.time(),
                                   **fields}, default=str, ensure_ascii=False) + "\n")
        self.out.flush()

    def warning(self, text: str) -> None:
        self._event("warning", message=text)

    def planned(self, plan: Plan) -> None:
        for entry in status_document(plan, self.print_commands)["stale"]:
            self._event("would_run", **entry)

    def started(self, plan: Plan) -> None:
        self._event("build_started", steps=len(plan.runnable))

    def step_started(self, step: Step, why: list[str]) -> None:
        extra = {"command": step_command(step)} if self.print_commands else {}
        self._event("step_started", step=step.id, rule=step.rule.name, reasons=list(why),
                    **extra)

    def step_cut_off(self, step: Step) -> None:
        self._event("step_cut_off", step=step.id, rule=step.rule.name)

    def step_finished(self, step: Step, result: JobResult) -> None:
        self._event("step_finished", step=step.id, rule=step.rule.name,
                    seconds=round(result.finished - result.started, 6), cpu=result.cpu,
                    peak_rss=result.peak_rss, exit_status=result.exit_status,
                    worker=getattr(result, "worker", "") or None)

    def step_restored(self, step: Step, *args: Any) -> None:
        self._event("step_restored", step=step.id, rule=step.rule.name)

    def step_failed(self, step: Step, error: str, log: str) -> None:
        self._event("step_failed", step=step.id, rule=step.rule.name, error=error, log=log,
                    log_tail=log_tail(log))

    def step_retrying(self, step: Step, error: str, attempt: int, retries: int,
                      delay: float) -> None:
        self._event("step_retrying", step=step.id, rule=step.rule.name, error=error,
                    attempt=attempt, retries=retries, delay=delay)

    def step_skipped(self, step: Step, reason: str, decided: bool) -> None:
        """A step that chose to make nothing (`decided`), or one below it."""
        self.shown_skips.add(step.id)
        self._event("step_skipped", step=step.id, rule=step.rule.name, reason=reason,
                    decided=decided)

    def transfer(self, name: str, sending: bool, done: int, total: int) -> None:
        """No event: JSON lines say what steps did, not how bytes moved."""

    def finished(self, result: BuildResult) -> None:
        for sid in result.not_run:
            self._event("step_skipped", step=sid)
        steps = result.plan.graph.steps if result.plan is not None else {}
        for sid, why in result.skipped.items():  # still skipped: decided by an earlier build
            if sid not in self.shown_skips:
                self._event("step_skipped", step=sid, rule=steps[sid].rule.name if steps
                            else None, reason=why, decided=False)
        self._event("build_finished", ok=result.ok, run=result.run_id or None,
                    seconds=round(result.seconds, 6), ran=list(result.ran),
                    restored=list(result.restored), cut_off=list(result.cut_off),
                    failed=dict(result.failed), not_run=list(result.not_run),
                    fresh=len(result.fresh), retried=dict(result.retried),
                    skipped=dict(result.skipped), touched=list(result.touched))
