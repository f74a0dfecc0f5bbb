"""train_model and evaluate_model: real scikit-learn fits on real files."""

from __future__ import annotations

import json
import pickle
import random

import pytest

from makeflow import StepError
from makeflow_rules.learn import fit, score

from ruleshelp import fake_step


def table(path, rows, header="x1,x2,y"):
    path.write_text(header + "\n" + "".join(",".join(map(str, r)) + "\n" for r in rows))
    return path


def linear_rows(n, seed):
    rnd = random.Random(seed)
    rows = []
    for _ in range(n):
        a, b = rnd.uniform(0, 10), rnd.uniform(0, 10)
        rows.append((round(a, 3), round(b, 3), round(3 * a - 2 * b + 1 + rnd.gauss(0, 0.1), 3)))
    return rows


def train(tmp_path, estimator="sklearn.linear_model.LinearRegression", hyper=None, **kw):
    out = tmp_path / "model.pkl"
    fit(fake_step([tmp_path / "train.csv"], [out], estimator=estimator,
                  hyperparameters=hyper or {}, target=kw.get("target", "y"),
                  features=kw.get("features")))
    return out


def test_a_regression_is_fitted_pickled_and_scored(tmp_path):
    table(tmp_path / "train.csv", linear_rows(200, 1))
    table(tmp_path / "test.csv", linear_rows(50, 2))
    model = train(tmp_path)
    fitted = pickle.loads(model.read_bytes())
    assert fitted.coef_ == pytest.approx([3, -2], abs=0.05)
    out = tmp_path / "metrics.json"
    score(fake_step([model, tmp_path / "test.csv"], [out], scores=["r2", "rmse", "mae"],
                    target="y", features=None))
    metrics = json.loads(out.read_text())
    assert metrics["r2"] > 0.99 and metrics["rmse"] < 0.2 and metrics["n"] == 50
    assert list(metrics) == sorted(metrics)


def test_training_twice_gives_the_same_model_bytes(tmp_path):
    table(tmp_path / "train.csv", linear_rows(100, 3))
    hyper = {"n_estimators": 5, "random_state": 0}
    first = train(tmp_path, "sklearn.ensemble.RandomForestRegressor", hyper).read_bytes()
    second = train(tmp_path, "sklearn.ensemble.RandomForestRegressor", hyper).read_bytes()
    assert first == second


def test_a_classifier_with_word_labels(tmp_path):
    rows = [(i, i % 3, "big" if i > 20 else "small") for i in range(40)]
    table(tmp_path / "train.csv", rows, "size,other,label")
    model = train(tmp_path, "sklearn.tree.DecisionTreeClassifier", {"random_state": 0},
                  target="label", features=["size"])
    out = tmp_path / "m.json"
    score(fake_step([model, tmp_path / "train.csv"], [out], scores=["accuracy", "f1"],
                    target="label", features=["size"]))
    assert json.loads(out.read_text()) == {"accuracy": 1.0, "f1": 1.0, "n": 40}


@pytest.mark.parametrize(("kw", "message"), [
    ({"target": "nope"}, r"has no column 'nope' \(it has x1, x2, y\)"),
    ({"features": ["x1", "x9"]}, "has no column 'x9'"),
    ({"estimator": "sklearn.linear_model.Nope"}, "sklearn.linear_model has no Nope"),
    ({"estimator": "nosuchpkg.Model"}, "cannot import nosuchpkg.Model"),
    ({"hyper": {"bogus": 1}, "estimator": "sklearn.linear_model.Ridge"},
     "Ridge does not take these hyperparameters"),
    ({"hyper": {"alpha": "much"}, "estimator": "sklearn.linear_model.Ridge"},
     "Ridge could not be fitted"),
])
def test_training_mistakes_fail_the_step_clearly(tmp_path, kw, message):
    table(tmp_path / "train.csv", linear_rows(10, 4))
    with pytest.raises(StepError, match=message):
        train(tmp_path, **kw)


def test_text_features_are_named(tmp_path):
    table(tmp_path / "train.csv", [(1, "a", 2), (2, "b", 3)])
    with pytest.raises(StepError, match="column 'x2' holds values that are not numbers"):
        train(tmp_path)


def test_a_pipeline_reruns_training_when_a_hyperparameter_changes(project):
    table(project.root / "train.csv", linear_rows(60, 5))
    table(project.root / "test.csv", linear_rows(20, 6))
    project.rules("""
        from makeflow import rule
        from makeflow_rules import evaluate_model, train_model
        train_model("train", data="train.csv", model="model.pkl", target="y",
                    estimator="sklearn.linear_model.Ridge", hyperparameters={"alpha": 0.1})
        evaluate_model("evaluate", model="model.pkl", data="test.csv", metrics="metrics.json",
                       target="y", scores=["r2"], default=True)
    """)
    done = project.run("build")
    assert done.code == 0, done.text
    assert json.loads(project.read("metrics.json"))["r2"] > 0.99
    project.rules(project.read("Makeflow.py").replace('"alpha": 0.1', '"alpha": 0.2'))
    status = project.run("status")
    assert "parameter hyperparameters" in status.out, status.out
    assert project.run("build").code == 0


@pytest.mark.parametrize(("call", "message"), [
    ('train_model("t", data="a.txt", model="m", target="y")', "must be a .csv or .parquet"),
    ('train_model("t", data="a.csv", model="m", target="y", estimator="Ridge")',
     "must be an import path"),
    ('train_model("t", data="a.csv", model="m", target="y", hyperparameters={"f": print})',
     "must hold plain values"),
    ('evaluate_model("e", model="m", data="a.csv", metrics="x", target="y", scores=["auc"])',
     "unknown score 'auc'"),
    ('evaluate_model("e", model="m", data="a.csv", metrics="x", target="")',
     "target= must be the name"),
])
def test_mistakes_in_learn_rules_name_the_line(project, call, message):
    project.rules(f"""
        from makeflow_rules import evaluate_model, train_model
        {call}
    """)
    done = project.run("list")
    assert done.code == 2 and "Makeflow.py:3" in done.err and message in done.err, done.err
