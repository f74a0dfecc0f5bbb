"""`makeflow metrics` and `makeflow metrics diff`: metrics now, in a build, or in a commit.

A side of a diff is a run id from `makeflow runs` (`7`, or `run:7`), `workspace` (the
files as they are now), or anything else git takes as a revision (`HEAD`, `main~2`, a
tag), read with `git show REV:./path`.
"""

from __future__ import annotations

from typing import Any

from makeflow.define.loader import Pipeline
from makeflow.errors import UserError
from makeflow.run.build import status
from makeflow.run.recording import metric_paths
from makeflow.store import history, metrics

WORKSPACE = "workspace"


def current(pipeline: Pipeline) -> dict[str, metrics.Flat]:
    """Every metrics file of the default targets' graph, as it is now."""
    paths = metric_paths(pipeline, status(pipeline, []).graph)
    if not paths:
        raise UserError(f"no rule in {pipeline.file.name} marks an output as metrics",
                        where=str(pipeline.file),
                        hint='Add metrics=["metrics.json"] to the rule that writes it (the '
                        "file must be one of its outputs).")
    return metrics.read_current(pipeline.root, paths)


def side(pipeline: Pipeline, spec: str) -> tuple[str, dict[str, metrics.Flat]]:
    """A label and the metrics of one side of a diff."""
    if spec == WORKSPACE:
        return WORKSPACE, current(pipeline)
    number = spec.removeprefix("run:")
    if number.isdigit():
        with history.reading(pipeline.root) as db:
            run = history.run(db, int(number)) if db is not None else None
        if run is None:
            raise UserError(f"run {number} is not in the run history",
                            hint="`makeflow runs` lists the builds recorded.")
        return f"run {run.id}", run.metrics or {}
    paths = metric_paths(pipeline, status(pipeline, []).graph)
    return spec, metrics.read_committed(pipeline.root, spec, paths)


def default_sides(pipeline: Pipeline) -> tuple[str, str]:
    """With no sides given: the two most recent builds that recorded metrics."""
    with history.reading(pipeline.root) as db:
        found = [r for r in history.runs(db, 1000) if r.metrics] if db is not None else []
    if len(found) < 2:
        raise UserError("fewer than two builds in the run history recorded metrics",
                        hint="Give the sides: makeflow metrics diff HEAD workspace, or two "
                        "run ids from `makeflow runs`.")
    return str(found[1].id), str(found[0].id)


def diff(pipeline: Pipeline, old: str | None, new: str | None) -> dict[str, Any]:
    if old is None:
        old, new = default_sides(pipeline)
    old_label, before = side(pipeline, old)
    new_label, after = side(pipeline, new or WORKSPACE)
    return {"old": old_label, "new": new_label, "diff": metrics.diff(before, after)}


def show_lines(values: dict[str, metrics.Flat]) -> list[str]:
    lines = []
    for file, flat in sorted(values.items()):
        lines.append(file)
        lines += [f"  {key}: {value}" for key, value in sorted(flat.items())]
    return lines or ["no metrics file exists yet: build first"]


def diff_lines(result: dict[str, Any]) -> list[str]:
    rows = result["diff"]
    if not rows:
        return [f"no metric differs between {result['old']} and {result['new']}"]
    table = [("file", "key", result["old"], result["new"], "change")]
    for r in rows:
        change = "" if r["change"] is None else f"{r['change']:+.6g}"
        table.append((r["file"], r["key"], _cell(r["old"]), _cell(r["new"]), change))
    widths = [max(len(row[i]) for row in table) for i in range(5)]
    return ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
            for row in table]


def _cell(value: Any) -> str:
    return "-" if value is None else f"{value:.6g}" if isinstance(value, float) else str(value)


