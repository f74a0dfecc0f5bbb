"""Ready-made step functions and checks that Makeflow.py files can import instead of rewriting."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from makeflow import StepError

__all__ = ["concat", "copy_file", "metrics_gate"]


def copy_file(step: Any) -> None:
    """Copy ``inputs[0]`` to ``outputs[0]`` byte for byte.

    A rule that publishes an artifact (to ``deploy/``, ``dist/``...) needs nothing more; going
    through ``shutil.copyfile`` keeps binary files such as pickles intact.
    """
    shutil.copyfile(step.inputs[0], step.outputs[0])


def concat(step: Any) -> None:
    """Concatenate all inputs, in order, into ``outputs[0]``.

    Bytes are copied unchanged, so no encoding is assumed and no newline is added between files.
    """
    with open(step.outputs[0], "wb") as out:
        for path in step.inputs:
            with open(path, "rb") as src:
                shutil.copyfileobj(src, out)


def metrics_gate(metrics_file: str | Path, key: str, minimum: float) -> float:
    """Return ``key`` from a JSON metrics file, failing the step when it is below ``minimum``.

    Raising ``StepError`` (not ``AssertionError``) makes the build report a one-line reason,
    such as ``r2 0.31 is below the threshold 0.4``, instead of a traceback.
    """
    metrics = json.loads(Path(metrics_file).read_text())
    if key not in metrics:
        raise StepError(f"{metrics_file} has no metric {key!r}")
    value = float(metrics[key])
    if value < minimum:
        raise StepError(f"{key} {value:.4g} is below the threshold {minimum:g}")
    return value
