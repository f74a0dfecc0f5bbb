"""scikit-learn steps: fit an estimator on a table and save it; score it and write metrics.

The estimator is named by its import path ("sklearn.linear_model.Ridge") and its settings
are plain values, so both are rule parameters: changing either reruns the training. The
model is a pickle of the fitted estimator; the metrics file is JSON with sorted keys.
"""

from __future__ import annotations

import csv
import importlib
import json
import math
import pickle
import re
from pathlib import Path
from typing import Any

from makeflow import StepError, UserError

from ._declare import declare, single_path, suffix

__makeflow_factory__ = True  # rule errors point at the line in Makeflow.py

DOTTED = re.compile(r"[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)+")
SCORES = ("r2", "mae", "mse", "rmse", "accuracy", "balanced_accuracy", "f1", "precision",
          "recall")
TABLES = (".csv", ".parquet", ".pq")


def train_model(name: str, *, data: str, model: str, target: str,
                estimator: str = "sklearn.linear_model.LinearRegression",
                hyperparameters: dict[str, Any] | None = None,
                features: list[str] | None = None, **options: Any) -> Any:
    """Declare rule `name`: fit `estimator` on the table `data` and pickle it to `model`.

    `target` is the column to predict; `features` the columns to learn from (default: all
    the others, which must be numbers). `data` is a `.csv` (with a header) or `.parquet`
    file. Paths may hold `{wildcards}`. Needs scikit-learn (extra `examples`).

    Example::

        from makeflow_rules import train_model

        train_model("train", data="data/train.csv", model="models/ridge.pkl", target="y",
                    estimator="sklearn.linear_model.Ridge", hyperparameters={"alpha": 0.5})
    """
    data = _table(name, "train_model", "data", data)
    if not isinstance(estimator, str) or not DOTTED.fullmatch(estimator):
        raise UserError(f"train_model({name!r}): estimator={estimator!r} must be an import "
                        "path such as \"sklearn.linear_model.Ridge\"")
    settings = dict(hyperparameters or {})
    try:
        json.dumps(settings, allow_nan=False)
    except (TypeError, ValueError):
        raise UserError(f"train_model({name!r}): hyperparameters= must hold plain values "
                        "(numbers, strings, booleans, lists, None)") from None
    params = {"estimator": estimator, "hyperparameters": settings,
              **_columns(name, "train_model", target, features)}
    return declare("train_model", name, fit, inputs=data,
                   outputs=single_path("train_model", name, "model", model),
                   params=params, options=options)


def evaluate_model(name: str, *, model: str, data: str, metrics: str, target: str,
                   scores: list[str] | tuple[str, ...] = ("r2", "mae"),
                   features: list[str] | None = None, **options: Any) -> Any:
    """Declare rule `name`: score the pickled `model` on `data`, write JSON `metrics`.

    `scores` are names from: r2, mae, mse, rmse (regression), accuracy,
    balanced_accuracy, f1, precision, recall (classification; f1, precision and recall are
    macro averages). The file also holds `n`, the number of rows scored. Values are
    rounded to 6 decimals so that noise in the last bits does not rerun what follows.

    Example::

        from makeflow_rules import evaluate_model, metrics_gate

        evaluate_model("evaluate", model="models/ridge.pkl", data="data/test.csv",
                       metrics="metrics.json", target="y", scores=["r2", "rmse"])
    """
    chosen = list(scores) if isinstance(scores, (list, tuple)) else [scores]
    unknown = [s for s in chosen if s not in SCORES]
    if unknown or not chosen:
        first = unknown[0] if unknown else ""
        raise UserError(f"evaluate_model({name!r}): unknown score {first!r}",
                        hint=f"Scores: {', '.join(SCORES)}.")
    inputs = {"model": single_path("evaluate_model", name, "model", model),
              "data": _table(name, "evaluate_model", "data", data)}
    params = {"scores": chosen, **_columns(name, "evaluate_model", target, features)}
    target_file = single_path("evaluate_model", name, "metrics", metrics)
    return declare("evaluate_model", name, score, inputs=inputs, outputs=target_file,
                   params=params, options={"metrics": [target_file], **options})


def _table(name: str, factory: str, what: str, path: Any) -> str:
    path = single_path(factory, name, what, path)
    if suffix(path) not in TABLES:
        raise UserError(f"{factory}({name!r}): {what}={path!r} must be a .csv or .parquet file")
    return path


def _columns(name: str, factory: str, target: Any, features: Any) -> dict[str, Any]:
    if not isinstance(target, str) or not target:
        raise UserError(f"{factory}({name!r}): target= must be the name of a column")
    if features is not None and (not isinstance(features, (list, tuple)) or not features
                                 or not all(isinstance(f, str) for f in features)):
        raise UserError(f"{factory}({name!r}): features= must be a list of column names")
    return {"target": target, "features": list(features) if features else None}


def fit(step: Any) -> None:
    """The step: read the table, fit the estimator, pickle it."""
    p = step.params
    x, y = read_xy(Path(step.inputs[0]), p["target"], p["features"])
    try:
        estimator = _estimator_class(p["estimator"])(**p["hyperparameters"])
    except TypeError as exc:
        raise StepError(f"{p['estimator']} does not take these hyperparameters: {exc}") from None
    try:
        estimator.fit(x, y)
    except (ValueError, TypeError) as exc:
        raise StepError(f"{p['estimator']} could not be fitted: {exc}") from None
    with open(step.outputs[0], "wb") as f:
        pickle.dump(estimator, f, protocol=5)


def score(step: Any) -> None:
    """The step: unpickle the model, predict the table, write the chosen scores as JSON."""
    from sklearn import metrics as m

    p = step.params
    with open(step.inputs[0], "rb") as f:
        model = pickle.load(f)
    x, y = read_xy(Path(step.inputs[1]), p["target"], p["features"])
    predicted = model.predict(x)
    macro = {"average": "macro", "zero_division": 0}
    scorers = {
        "r2": m.r2_score, "mae": m.mean_absolute_error, "mse": m.mean_squared_error,
        "rmse": lambda a, b: math.sqrt(m.mean_squared_error(a, b)),
        "accuracy": m.accuracy_score, "balanced_accuracy": m.balanced_accuracy_score,
        "f1": lambda a, b: m.f1_score(a, b, **macro),
        "precision": lambda a, b: m.precision_score(a, b, **macro),
        "recall": lambda a, b: m.recall_score(a, b, **macro),
    }
    values: dict[str, Any] = {s: round(float(scorers[s](y, predicted)), 6) for s in p["scores"]}
    values["n"] = len(y)
    Path(step.outputs[0]).write_text(json.dumps(values, indent=2, sort_keys=True) + "\n")


def _estimator_class(path: str) -> Any:
    module, _, name = path.rpartition(".")
    try:
        return getattr(importlib.import_module(module), name)
    except ImportError as exc:
        raise StepError(f"cannot import {path}: {exc} (scikit-learn comes with "
                        "pip install 'makeflow[examples]')") from None
    except AttributeError:
        raise StepError(f"{module} has no {name}") from None


def read_xy(path: Path, target: str, features: list[str] | None) -> tuple[Any, Any]:
    """Feature matrix and target vector from a table; features must be numbers."""
    import numpy as np

    columns = read_columns(path)
    if target not in columns:
        raise StepError(f"{path} has no column {target!r} (it has {', '.join(columns)})")
    names = features or [c for c in columns if c != target]
    missing = [c for c in names if c not in columns]
    if missing:
        raise StepError(f"{path} has no column {missing[0]!r} (it has {', '.join(columns)})")
    x = np.column_stack([_numbers(columns[c], c, path) for c in names])
    try:
        y = np.asarray(_numbers(columns[target], target, path))
    except StepError:
        y = np.asarray(columns[target])  # class labels may be words
    return x, y


def read_columns(path: Path) -> dict[str, list[Any]]:
    """Every column of a CSV (values as text) or Parquet file (values as stored)."""
    if suffix(str(path)) == ".csv":
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.reader(f))
        if not rows:
            raise StepError(f"{path} is empty; it needs a header row")
        return {name: [row[i] for row in rows[1:]] for i, name in enumerate(rows[0])}
    from pyarrow import parquet
    return parquet.read_table(path).to_pydict()


def _numbers(values: list[Any], column: str, path: Path) -> list[float]:
    try:
        return [float(v) for v in values]
    except (TypeError, ValueError):
        raise StepError(f"{path}: column {column!r} holds values that are not numbers; "
                        "pick numeric columns with features=[...]") from None
