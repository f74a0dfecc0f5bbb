"""Metrics: outputs a rule marks as metrics, read as JSON, YAML, CSV or TSV and flattened;
`makeflow metrics` shows them, `makeflow metrics diff` compares builds and git revisions."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from makeflow.store.metrics import diff, flatten, parse

PIPELINE = """\
    import json
    from makeflow import config, rule

    @rule(outputs=["model.txt", "scores.json", "table.csv"],
          metrics=["scores.json", "table.csv"], params={"alpha": config["alpha"]})
    def train(step):
        a = step.params.alpha
        step.outputs[0].write_text("model")
        step.outputs[1].write_text(json.dumps({"r2": round(1 - a, 3), "cv": {"mean": 0.5},
                                               "name": "ridge"}))
        step.outputs[2].write_text(f"split,loss\\ntrain,{a}\\ntest,{a * 2}\\n")
"""


@pytest.fixture
def pipeline(project):
    project.rules(PIPELINE)
    project.write("makeflow.toml", "alpha = 0.1\n")
    return project


def test_formats_flatten_to_dotted_keys():
    assert flatten({"a": {"b": 1, "c": [2, 3]}, "d": "x"}) == {
        "a.b": 1, "a.c.0": 2, "a.c.1": 3, "d": "x"}
    assert parse("m.json", b'{"r2": 0.5, "cv": {"mean": 0.4}}') == {"r2": 0.5, "cv.mean": 0.4}
    assert parse("m.csv", b"r2,mae\n0.5,3\n") == {"r2": 0.5, "mae": 3}
    assert parse("m.tsv", b"split\tloss\ntrain\t0.1\ntest\t0.2\n") == {
        "train.loss": 0.1, "test.loss": 0.2}
    assert parse("m.csv", b"epoch,loss\n1,0.5\n2,0.4\n") == {
        "0.epoch": 1, "0.loss": 0.5, "1.epoch": 2, "1.loss": 0.4}


def test_yaml_metrics():
    pytest.importorskip("yaml")
    assert parse("m.yaml", b"r2: 0.5\ncv:\n  mean: 0.4\n") == {"r2": 0.5, "cv.mean": 0.4}


def test_diff_lists_only_changed_keys_with_the_change():
    rows = diff({"m.json": {"a": 1, "b": 2, "s": "x"}}, {"m.json": {"a": 1, "b": 3.5, "c": 1}})
    assert rows == [
        {"file": "m.json", "key": "b", "old": 2, "new": 3.5, "change": 1.5},
        {"file": "m.json", "key": "c", "old": None, "new": 1, "change": None},
        {"file": "m.json", "key": "s", "old": "x", "new": None, "change": None},
    ]


def test_metrics_shows_current_values(pipeline):
    assert pipeline.run("build").code == 0
    done = pipeline.run("metrics")
    assert done.code == 0, done.text
    assert "scores.json" in done.out and "  r2: 0.9" in done.out and "  cv.mean: 0.5" in done.out
    assert "  train.loss: 0.1" in done.out and "  test.loss: 0.2" in done.out
    doc = json.loads(pipeline.run("metrics", "--json").out)
    assert doc["metrics"]["scores.json"]["r2"] == 0.9


def test_metrics_diff_between_two_builds(pipeline):
    assert pipeline.run("build").code == 0
    assert pipeline.run("build", "--set", "alpha=0.3").code == 0
    done = pipeline.run("metrics", "diff")
    assert done.code == 0, done.text
    lines = [line.split() for line in done.out.splitlines()]
    assert lines[0] == ["file", "key", "run", "1", "run", "2", "change"]
    assert ["scores.json", "r2", "0.9", "0.7", "-0.2"] in lines
    assert ["table.csv", "train.loss", "0.1", "0.3", "+0.2"] in lines
    assert not any("cv.mean" in line for line in lines)  # unchanged keys are left out
    doc = json.loads(pipeline.run("metrics", "diff", "1", "2", "--json").out)
    assert doc["old"] == "run 1" and doc["new"] == "run 2"
    r2 = next(r for r in doc["diff"] if r["key"] == "r2")
    assert r2["old"] == 0.9 and r2["new"] == 0.7 and r2["change"] == pytest.approx(-0.2)


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_metrics_diff_against_a_git_revision(pipeline):
    assert pipeline.run("build").code == 0
    git = ["git", "-c", "user.email=t@example.com", "-c", "user.name=t"]
    root = pipeline.root
    subprocess.run([*git, "init", "-q", "."], cwd=root, check=True)
    subprocess.run([*git, "add", "scores.json", "table.csv"], cwd=root, check=True)
    subprocess.run([*git, "commit", "-qm", "metrics"], cwd=root, check=True)
    assert pipeline.run("build", "--set", "alpha=0.5").code == 0
    done = pipeline.run("metrics", "diff", "HEAD")
    assert done.code == 0, done.text
    rows = [line.split() for line in done.out.splitlines()]
    assert ["scores.json", "r2", "0.9", "0.5", "-0.4"] in rows
    assert done.out.splitlines()[0].split()[2:4] == ["HEAD", "workspace"]
    bad = pipeline.run("metrics", "diff", "no-such-rev")
    assert bad.code == 2 and "no-such-rev" in bad.err and "Traceback" not in bad.err


def test_metrics_must_be_outputs(project):
    project.rules('from makeflow import rule\n'
                  'rule("a", outputs="a.txt", metrics=["m.json"], shell="true")\n')
    done = project.run("build")
    assert done.code == 2
    assert "metrics= names 'm.json', which is not one of its outputs" in done.err
    assert "Makeflow.py:2" in done.err


def test_metrics_without_metrics_rules_is_a_user_error(project):
    project.rules('from makeflow import rule\nrule("a", outputs="a.txt", shell="true")\n')
    done = project.run("metrics")
    assert done.code == 2 and "marks an output as metrics" in done.err


def test_a_malformed_metrics_file_warns_but_the_build_succeeds(project):
    project.rules('from makeflow import rule\n'
                  'rule("a", outputs="m.json", metrics=["m.json"], shell="echo {{ > {outputs}")\n')
    done = project.run("build")
    assert done.code == 0, done.text
    assert "metrics not recorded" in done.out and "m.json" in done.out
    bad = project.run("metrics")
    assert bad.code == 2 and "m.json cannot be read" in bad.err


def test_diff_needs_two_builds_with_metrics(pipeline):
    assert pipeline.run("build").code == 0
    done = pipeline.run("metrics", "diff")
    assert done.code == 2 and "fewer than two builds" in done.err


def test_yaml_without_pyyaml_says_what_to_install(monkeypatch):
    import sys

    from makeflow.errors import UserError

    monkeypatch.setitem(sys.modules, "yaml", None)  # as if PyYAML were not installed
    with pytest.raises(UserError) as caught:
        parse("m.yaml", b"r2: 0.5\n")
    assert "PyYAML is not installed" in str(caught.value)
    assert "makeflow[yaml]" in caught.value.hint
