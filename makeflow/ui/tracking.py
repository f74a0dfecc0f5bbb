"""Logging builds to MLflow: each build becomes one MLflow run with its parameters, its
metrics and tags that name the makeflow run.

The only module that imports mlflow (from the optional extra `makeflow[mlflow]`), and only
after a build that asked for it: `--mlflow URI`, else `MAKEFLOW_MLFLOW`, else `mlflow =
"URI"` in the `[makeflow]` table of makeflow.toml. A tracking store that cannot be
reached is a warning: the build's own exit status does not change.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
from typing import Any

from makeflow.define.loader import Pipeline
from makeflow.plan.staleness import params_of
from makeflow.run.outcome import BuildResult
from makeflow.run.recording import command_line, current_metrics
from makeflow.store.metrics import flatten

VALUE_LIMIT = 6000  # MLflow's longest parameter value
_NOT_A_KEY = re.compile(r"[^\w\-. /:]")  # MLflow keys: letters, digits, _ - . space / :


def params_for(result: BuildResult) -> dict[str, str]:
    """The parameters of every rule with a step in the build's graph (fresh ones too, so
    two runs compare on every parameter), flattened as `rule.name` (`rule.a.b` if nested)."""
    params: dict[str, str] = {}
    if result.plan is None:
        return params
    seen: set[str] = set()
    for step in result.plan.graph.steps.values():
        rule = step.rule
        if rule.name in seen or rule.is_alias:
            continue
        seen.add(rule.name)
        for key, value in flatten(params_of(step)).items():
            params[_key(f"{rule.name}.{key}")] = _value(value)
    return params


def metrics_for(pipeline: Pipeline, result: BuildResult) -> tuple[dict[str, float], str]:
    """The numbers in the build's metrics files, as `file/key`, and a warning if one could
    not be read; text and true/false values are left out (MLflow metrics are numbers)."""
    found: dict[str, float] = {}
    if result.plan is None:
        return found, ""
    values, unread = current_metrics(pipeline, result.plan.graph)
    for file, flat in (values or {}).items():
        for key, value in flat.items():
            if isinstance(value, int | float) and not isinstance(value, bool):
                found[_key(f"{file}/{key}")] = float(value)
    return found, unread


def tags_for(result: BuildResult, targets: list[str]) -> dict[str, str]:
    """Tags that lead back from the MLflow run to makeflow's own record of the build."""
    return {
        "makeflow.run_id": str(result.run_id),
        "makeflow.targets": " ".join(targets) or "(default)",
        "makeflow.result": "ok" if result.ok else "failed",
        "makeflow.command": command_line()[:VALUE_LIMIT],
        **{f"makeflow.{k}": str(len(getattr(result, k))) for k in
           ("ran", "restored", "failed", "fresh")},
    }


def log_build(uri: str, pipeline: Pipeline, result: BuildResult,
              targets: list[str]) -> tuple[str, list[str]]:
    """Log the build as one run of the experiment named after the project folder (or
    MLFLOW_EXPERIMENT_NAME); the MLflow run id and warnings. A relative `sqlite:///` path
    is relative to the project. Raises whatever the tracking store raises."""
    _quiet_http(uri)
    import mlflow

    for name in ("mlflow", "alembic"):  # their INFO lines about creating tables
        logging.getLogger(name).setLevel(logging.WARNING)
    found, unread = metrics_for(pipeline, result)
    found["makeflow.seconds"] = result.seconds
    with contextlib.chdir(pipeline.root):
        client = mlflow.MlflowClient(tracking_uri=uri)
        name = os.environ.get("MLFLOW_EXPERIMENT_NAME") or pipeline.root.resolve().name
        experiment = client.get_experiment_by_name(name)
        eid = experiment.experiment_id if experiment else client.create_experiment(name)
        run = client.create_run(eid, tags=tags_for(result, targets),
                                run_name=f"makeflow run {result.run_id}")
        rid = run.info.run_id
        try:
            params = params_for(result)
            client.log_batch(rid, params=[mlflow.entities.Param(k, v)
                                          for k, v in params.items()],
                             metrics=[mlflow.entities.Metric(k, v, run.info.start_time, 0)
                                      for k, v in found.items()])
        except BaseException:
            client.set_terminated(rid, "FAILED")
            raise
        client.set_terminated(rid, "FINISHED" if result.ok else "FAILED")
    return rid, [unread] if unread else []


def _quiet_http(uri: str) -> None:
    """An HTTP tracking server that does not answer fails at once, not after minutes of
    retries (unless the user set MLflow's own variables)."""
    if uri.startswith(("http://", "https://")):
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")


def _key(text: str) -> str:
    return _NOT_A_KEY.sub("_", text)[:250]


def _value(value: Any) -> str:
    return str(value)[:VALUE_LIMIT]
