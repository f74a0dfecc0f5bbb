"""Diabetes regression pipeline: load, split, train, evaluate, and deploy behind a quality gate."""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path
from typing import Any

from makeflow import config, rule
from makeflow_rules import metrics_gate

# Shell steps: each script is an input, so editing it reruns the step.

rule(
    "load",
    inputs={"script": "scripts/load.py"},
    outputs="data/diabetes.csv",
    shell="python {inputs.script} {outputs[0]}",
)

rule(
    "split",
    inputs={"script": "scripts/split.py", "data": "data/diabetes.csv"},
    outputs={"train": "data/train.csv", "test": "data/test.csv"},
    params={"test_fraction": config["split"]["test_fraction"], "seed": config["split"]["seed"]},
    shell=(
        "python {inputs.script} {inputs.data} {outputs.train} {outputs.test}"
        " --test-fraction {params.test_fraction} --seed {params.seed}"
    ),
)


# Python steps. scikit-learn and numpy are imported inside the functions so that
# commands which only read this file (`makeflow status`) stay fast.


def read_xy(path: Path) -> tuple[Any, Any]:
    """Return (features, target) from a CSV whose last column is the target."""
    import numpy as np

    data = np.loadtxt(path, delimiter=",", skiprows=1, ndmin=2)
    return data[:, :-1], data[:, -1]


@rule(
    inputs="data/train.csv",
    outputs="model.pkl",
    params={"alpha": config["train"]["alpha"]},
)
def train(step: Any) -> None:
    """Fit a ridge regression on the training split."""
    from sklearn.linear_model import Ridge

    x, y = read_xy(step.inputs[0])
    model = Ridge(alpha=step.params.alpha).fit(x, y)
    with open(step.outputs[0], "wb") as f:
        pickle.dump(model, f)


@rule(
    inputs={"model": "model.pkl", "test": "data/test.csv"},
    outputs="metrics.json",
    metrics=["metrics.json"],  # shown by `makeflow metrics`, compared by `metrics diff`
)
def evaluate(step: Any) -> None:
    """Score the model on the held-out split."""
    from sklearn.metrics import mean_absolute_error, r2_score

    with open(step.inputs.model, "rb") as f:
        model = pickle.load(f)
    x, y = read_xy(step.inputs.test)
    predicted = model.predict(x)
    metrics = {
        "r2": round(float(r2_score(y, predicted)), 4),
        "mae": round(float(mean_absolute_error(y, predicted)), 4),
        "n_test": len(y),
    }
    Path(step.outputs[0]).write_text(json.dumps(metrics, indent=2) + "\n")


@rule(
    inputs={"model": "model.pkl", "metrics": "metrics.json"},
    outputs="deploy/model.pkl",
    params={"min_r2": config["deploy"]["min_r2"]},
)
def deploy(step: Any) -> None:
    """Publish the model, but only if its test r2 clears the threshold; below it the step
    is skipped, with the reason, and the model deployed before stays deployed."""
    metrics_gate(step.inputs.metrics, "r2", step.params.min_r2, skip=True)
    shutil.copyfile(step.inputs.model, step.outputs[0])


rule("all", inputs=["deploy/model.pkl"], default=True)
