"""Logging builds to MLflow (`build --mlflow URI`, `watch --mlflow URI`, MAKEFLOW_MLFLOW, the
`mlflow` setting): each build is an MLflow run, read back with MLflow's own client from a
local sqlite:/// tracking store in tmp_path. Needs the optional extra makeflow[mlflow]:
without it these tests skip on a developer's machine and fail when CI is set."""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys

import pytest
from waiting import wait_for

PIPELINE = """\
    import json
    from makeflow import config, rule

    rule("prepare", outputs="data.txt", shell="echo data > {outputs}")

    @rule(inputs="data.txt", outputs=["model.txt", "metrics.json"], metrics=["metrics.json"],
          params={"alpha": config["train"]["alpha"], "grid": {"depth": 3}})
    def train(step):
        step.outputs[0].write_text("model")
        step.outputs[1].write_text(json.dumps({"r2": 1 - step.params.alpha, "name": "ridge",
                                               "ok": True, "cv": {"mean": 0.5}}))

    rule("all", inputs="model.txt", default=True)
"""


@pytest.fixture
def mlflow():
    try:
        import mlflow
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail("CI is set but mlflow is not installed (pip install -e '.[mlflow]')")
        pytest.skip("mlflow is not installed (pip install 'makeflow[mlflow]')")
    return mlflow


@pytest.fixture
def pipeline(project):
    project.rules(PIPELINE)
    project.write("makeflow.toml", "[train]\nalpha = 0.1\n")
    return project


def runs_in(mlflow, uri: str, experiment: str):
    """The MLflow runs of `experiment`, oldest first, read with MLflow's own client."""
    client = mlflow.MlflowClient(tracking_uri=uri)
    found = client.get_experiment_by_name(experiment)
    assert found is not None, f"no experiment {experiment!r} at {uri}"
    return client.search_runs([found.experiment_id], order_by=["attributes.start_time ASC"])


def test_each_build_is_an_mlflow_run_with_params_metrics_and_tags(pipeline, mlflow):
    uri = f"sqlite:///{pipeline.root / 'mlflow.db'}"
    first = pipeline.run("build", "--mlflow", uri, timeout=300)
    assert first.code == 0, first.text
    assert f"logged the build to MLflow at {uri}: run " in first.err
    second = pipeline.run("build", "--mlflow", uri, "--set", "train.alpha=0.3", timeout=300)
    assert second.code == 0, second.text
    old, new = runs_in(mlflow, uri, pipeline.root.name)
    assert old.data.params == {"train.alpha": "0.1", "train.grid.depth": "3"}
    assert new.data.params["train.alpha"] == "0.3"
    assert old.data.metrics["metrics.json/r2"] == pytest.approx(0.9)
    assert new.data.metrics["metrics.json/r2"] == pytest.approx(0.7)
    assert new.data.metrics["metrics.json/cv.mean"] == 0.5
    assert "metrics.json/name" not in new.data.metrics  # only numbers are MLflow metrics
    assert "metrics.json/ok" not in new.data.metrics
    assert new.data.metrics["makeflow.seconds"] > 0
    tags = new.data.tags
    assert tags["makeflow.run_id"] == "2" and tags["makeflow.result"] == "ok"
    assert tags["makeflow.ran"] == "1" and tags["makeflow.fresh"] == "1"
    assert tags["makeflow.targets"] == "(default)"
    assert "--set train.alpha=0.3" in tags["makeflow.command"]
    assert new.info.run_name == "makeflow run 2" and new.info.status == "FINISHED"


def test_a_failed_build_is_logged_as_failed_and_still_exits_1(pipeline, mlflow):
    pipeline.write("Makeflow.py", pipeline.read("Makeflow.py").replace(
        'step.outputs[0].write_text("model")', 'raise ValueError("no model today")'))
    uri = f"sqlite:///{pipeline.root / 'mlflow.db'}"
    done = pipeline.run("build", "--mlflow", uri, "all", timeout=300)
    assert done.code == 1, done.text
    (run,) = runs_in(mlflow, uri, pipeline.root.name)
    assert run.info.status == "FAILED" and run.data.tags["makeflow.result"] == "failed"
    assert run.data.tags["makeflow.failed"] == "1" and run.data.tags["makeflow.targets"] == "all"
    assert run.data.params["train.alpha"] == "0.1"


def test_the_setting_in_makeflow_toml_and_the_environment_turn_it_on(pipeline, mlflow,
                                                                     monkeypatch):
    pipeline.write("makeflow.toml", '[makeflow]\nmlflow = "sqlite:///tracking.db"\n'
                                    "[train]\nalpha = 0.1\n")
    done = pipeline.run("build", timeout=300)
    assert done.code == 0, done.text
    assert (pipeline.root / "tracking.db").exists()  # a relative path: in the project
    (run,) = runs_in(mlflow, f"sqlite:///{pipeline.root / 'tracking.db'}", pipeline.root.name)
    assert run.data.params["train.alpha"] == "0.1"
    # the environment comes before the setting, and the option before both
    other = pipeline.root / "other.db"
    monkeypatch.setenv("MAKEFLOW_MLFLOW", f"sqlite:///{other}")
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "chosen")
    done = pipeline.run("build", "-B", timeout=300)
    assert done.code == 0, done.text
    (run,) = runs_in(mlflow, f"sqlite:///{other}", "chosen")
    assert run.data.tags["makeflow.run_id"] == "2"
    assert len(runs_in(mlflow, f"sqlite:///{pipeline.root / 'tracking.db'}",
                       pipeline.root.name)) == 1


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_an_unreachable_tracking_server_is_a_warning_and_the_status_is_the_builds(pipeline,
                                                                                mlflow):
    uri = f"http://127.0.0.1:{closed_port()}"
    done = pipeline.run("build", "--mlflow", uri, timeout=300)
    assert done.code == 0, done.text
    assert f"warning: could not log the build to MLflow at {uri}" in done.err
    assert "Traceback" not in done.err
    assert pipeline.exists("model.txt")
    pipeline.write("Makeflow.py", pipeline.read("Makeflow.py").replace(
        'step.outputs[0].write_text("model")', 'raise ValueError("no model today")'))
    done = pipeline.run("build", "--mlflow", uri, timeout=300)
    assert done.code == 1, done.text
    assert "could not log the build to MLflow" in done.err


def test_a_tracking_store_that_cannot_be_written_is_a_warning(pipeline, mlflow):
    (pipeline.root / "blocked").write_text("a file where a folder should be")
    done = pipeline.run("build", "--mlflow", "sqlite:///blocked/x/mlflow.db", timeout=300)
    assert done.code == 0, done.text
    assert "could not log the build to MLflow at sqlite:///blocked/x/mlflow.db" in done.err
    assert "Traceback" not in done.err


def test_without_mlflow_installed_the_build_refuses_before_it_starts(pipeline):
    """The real command with mlflow made unimportable: exit 2 naming the extra, and nothing
    was built."""
    script = ("import sys; sys.modules['mlflow'] = None; sys.argv[0] = 'makeflow'; "
              "from makeflow.ui.cli import main; main()")
    for how in (["--mlflow", "sqlite:///m.db"], []):
        env = {**os.environ, "MAKEFLOW_MLFLOW": "sqlite:///m.db"} if not how else os.environ
        done = subprocess.run([sys.executable, "-c", script, "build", *how], cwd=pipeline.root,
                              env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 2, done.stdout + done.stderr
        assert "needs the mlflow package" in done.stderr
        assert "pip install 'makeflow[mlflow]'" in done.stderr
        assert "Traceback" not in done.stderr
        assert not pipeline.exists("model.txt") and not pipeline.exists("m.db")


def test_a_wrong_mlflow_setting_is_a_user_error(pipeline):
    pipeline.write("makeflow.toml", "[makeflow]\nmlflow = 3\n[train]\nalpha = 0.1\n")
    done = pipeline.run("build")
    assert done.code == 2, done.text
    assert "mlflow = 3 is not a valid value" in done.err and "makeflow.toml" in done.err


def test_each_build_of_watch_is_logged(pipeline, mlflow):
    db = pipeline.root / "watch.db"
    proc = subprocess.Popen(
        [sys.executable, "-m", "makeflow", "watch", "--poll", "--debounce", "0.1",
         "--mlflow", f"sqlite:///{db}"], cwd=pipeline.root, stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})

    def logged() -> int:
        if not db.exists():
            return 0
        try:
            with sqlite3.connect(db) as conn:
                return conn.execute("SELECT count(*) FROM runs WHERE status='FINISHED'"
                                    ).fetchone()[0]
        except sqlite3.Error:  # the tables are still being created
            return 0

    try:
        wait_for(lambda: logged() == 1, 120)
        pipeline.write("makeflow.toml", "[train]\nalpha = 0.25\n")
        wait_for(lambda: logged() == 2, 120)
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    assert "Traceback" not in err
    first, second = runs_in(mlflow, f"sqlite:///{db}", pipeline.root.name)
    assert first.data.params["train.alpha"] == "0.1"
    assert second.data.params["train.alpha"] == "0.25"
    assert second.data.metrics["metrics.json/r2"] == pytest.approx(0.75)
