"""The example pipelines, run end to end with the real command line on fresh copies."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from conftest import Project

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
GENERATED = (".makeflow", "data", "deploy", "model.pkl", "metrics.json", "counts", "top",
             "report.txt")


def copy_example(name: str, tmp_path: Path) -> Project:
    target = tmp_path / name
    shutil.copytree(EXAMPLES / name, target, ignore=shutil.ignore_patterns(*GENERATED))
    return Project(target)


def ran(output: str) -> set[str]:
    return set(re.findall(r"\] (\S+) done in", output))


@pytest.fixture
def ml(tmp_path: Path) -> Project:
    project = copy_example("ml", tmp_path)
    done = project.run("build")
    assert done.code == 0, done.text
    assert ran(done.out) == {"load", "split", "train", "evaluate", "deploy"}
    return project


def test_ml_builds_deploys_and_then_does_nothing(ml):
    metrics = json.loads(ml.read("metrics.json"))
    assert metrics["r2"] > 0.4 and metrics["n_test"] > 50
    assert (ml.root / "deploy/model.pkl").read_bytes() == (ml.root / "model.pkl").read_bytes()
    again = ml.run("build")
    assert again.code == 0 and ran(again.out) == set()
    assert "nothing to do" in again.out


def test_ml_alpha_change_reruns_train_and_what_follows_only(ml):
    toml = ml.root / "makeflow.toml"
    toml.write_text(toml.read_text().replace("alpha = 0.1", "alpha = 0.5"))
    done = ml.run("build")
    assert done.code == 0, done.text
    assert ran(done.out) == {"train", "evaluate", "deploy"}


def test_ml_tour_ends_with_metrics_diff_and_a_report(ml):
    """The README's tour: change alpha, rebuild, compare the metrics, write the report."""
    before = json.loads(ml.read("metrics.json"))
    done = ml.run("build", "--set", "train.alpha=0.5")
    assert done.code == 0, done.text
    after = json.loads(ml.read("metrics.json"))
    diff = ml.run("metrics", "diff")
    assert diff.code == 0, diff.text
    header, *rows = diff.out.splitlines()
    assert header.split() == ["file", "key", "run", "1", "run", "2", "change"]
    r2 = next(row.split() for row in rows if row.split()[1] == "r2")
    assert float(r2[2]) == before["r2"] and float(r2[3]) == after["r2"]
    assert float(r2[4]) == pytest.approx(after["r2"] - before["r2"], abs=1e-6)
    shown = ml.run("metrics")
    assert f"r2: {after['r2']}" in shown.out
    report = ml.run("report")
    assert report.code == 0, report.text
    page = ml.read("makeflow-report.html")
    assert "id='metrics'" in page and "metrics.json" in page


def test_ml_gate_below_min_r2_skips_deploy_with_the_reason_and_keeps_the_deployed_model(ml):
    deployed = (ml.root / "deploy/model.pkl").read_bytes()
    done = ml.run("build", "--set", "train.alpha=1000")
    assert done.code == 0, done.text
    assert re.search(r"deploy skipped: r2 -?[0-9.]+ is below the threshold 0.4", done.out)
    assert "skipped 1" in done.out and "failed 0" in done.out
    assert "Traceback" not in done.text
    assert (ml.root / "deploy/model.pkl").read_bytes() == deployed

    again = ml.run("build", "--set", "train.alpha=1000")  # nothing changed: nothing runs
    assert again.code == 0, again.text
    assert "nothing to do" in again.out and ran(again.out) == set()
    assert re.search(r"deploy skipped: r2 -?[0-9.]+ is below the threshold 0.4", again.out)

    back = ml.run("build")  # the old alpha: the gate passes (restored from the run cache)
    assert back.code == 0, back.text
    assert "deploy restored from cache" in back.out and "skipped" not in back.out


def test_ml_model_target_builds_only_what_it_needs(tmp_path):
    project = copy_example("ml", tmp_path)
    done = project.run("build", "model.pkl")
    assert done.code == 0, done.text
    assert ran(done.out) == {"load", "split", "train"}
    assert not project.exists("metrics.json")


def test_words_pattern_pipeline(tmp_path):
    words = copy_example("words", tmp_path)
    names = sorted(p.stem for p in (words.root / "texts").glob("*.txt"))
    done = words.run("build")
    assert done.code == 0, done.text
    assert len(ran(done.out)) == 2 * len(names) + 1
    report = words.read("report.txt")
    assert [line[3:-3] for line in report.splitlines() if line.startswith("==")] == names
    text = words.root / "texts" / f"{names[0]}.txt"
    text.write_text(text.read_text() + "\nzebra zebra zebra zebra zebra zebra zebra zebra\n")
    again = words.run("build")
    assert ran(again.out) == {f"counts[name={names[0]}]", f"top[name={names[0]}]", "report"}
    assert "zebra" in words.read("report.txt")
