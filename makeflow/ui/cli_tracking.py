"""`--mlflow URI` on `build` and `watch`: the option, and logging each build after it ends.

The logging itself is in ui/tracking.py; this module only decides when, and turns a
tracking store's failure into a warning, so a build's exit status is always its own.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable, Iterable
from typing import Any

import click

from makeflow.define.loader import Pipeline
from makeflow.errors import UserError
from makeflow.run.outcome import BuildResult
from makeflow.run.reporter import Reporter

ENV = "MAKEFLOW_MLFLOW"


def mlflow_option(command: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--mlflow", metavar="URI", default=None,
        help="Log each build (parameters, metrics, tags) as a run in this MLflow tracking "
        "store, e.g. sqlite:///mlflow.db; needs pip install 'makeflow[mlflow]'. Default: "
        "$MAKEFLOW_MLFLOW, or mlflow in the [makeflow] table of makeflow.toml.",
    )(command)


def mlflow_uri(pipeline: Pipeline, given: str | None) -> str | None:
    """The tracking URI the build logs to, or None; refuses (before the build starts) when
    one is asked for and mlflow is not installed. Decided here, so that a build that logs
    nowhere does not import the tracking module."""
    uri = given or os.environ.get(ENV) or pipeline.settings.mlflow
    if not uri:
        return None
    if importlib.util.find_spec("mlflow") is None:
        raise UserError(f"logging builds to MLflow ({uri}) needs the mlflow package, which "
                        "is not installed",
                        hint="Install the extra: pip install 'makeflow[mlflow]' (or drop "
                        f"--mlflow, {ENV} and the mlflow setting of makeflow.toml).")
    return uri


def log_to_mlflow(uri: str, pipeline: Pipeline, result: BuildResult, targets: Iterable[str],
                  warn: Callable[[str], None], say: Callable[[str], None] | None) -> None:
    """Log one finished build; any failure of the tracking store is a warning."""
    from makeflow.ui.tracking import log_build

    try:
        run_id, warnings = log_build(uri, pipeline, result, list(targets))
    except Exception as exc:  # anything the store or its client raises: the build is done
        first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else repr(exc)
        warn(f"could not log the build to MLflow at {uri}: {type(exc).__name__}: {first}")
        return
    for text in warnings:
        warn(text)
    if say is not None:
        say(f"logged the build to MLflow at {uri}: run {run_id}")


def build_and_log(given: str | None, build_fn: Callable[..., BuildResult], pipeline: Pipeline,
                  targets: Iterable[str], options: Any, reporter: Reporter) -> BuildResult:
    """One build of `watch`, then its MLflow run (the URI read again: the rules and
    makeflow.toml may have changed since the last build)."""
    result = build_fn(pipeline, targets, options, reporter)
    uri = mlflow_uri(pipeline, given)
    if uri and not options.dry_run:
        log_to_mlflow(uri, pipeline, result, targets, reporter.warning, None)
    return result
