"""Quality gates: checks a step calls to fail, or skip, with a one-line reason."""

from __future__ import annotations

import json
from pathlib import Path

from makeflow import Skip, StepError


def metrics_gate(metrics_file: str | Path, key: str, minimum: float, *,
                 skip: bool = False) -> float:
    """Return ``key`` from a JSON metrics file, failing the step when it is below ``minimum``.

    Raising ``StepError`` (not ``AssertionError``) makes the build report a one-line reason,
    such as ``r2 0.31 is below the threshold 0.4``, instead of a traceback. With
    ``skip=True`` a low value skips the step instead (``Skip``): the build succeeds, says
    why, and the step's previous outputs stay as they were. A missing metric always fails.

    Example::

        @rule(inputs={"model": "model.pkl", "metrics": "metrics.json"},
              outputs="deploy/model.pkl")
        def deploy(step):
            metrics_gate(step.inputs.metrics, "r2", 0.4)
            shutil.copyfile(step.inputs.model, step.outputs[0])
    """
    metrics = json.loads(Path(metrics_file).read_text())
    if key not in metrics:
        raise StepError(f"{metrics_file} has no metric {key!r}")
    value = float(metrics[key])
    if value < minimum:
        reason = f"{key} {value:.4g} is below the threshold {minimum:g}"
        raise Skip(reason) if skip else StepError(reason)
    return value
