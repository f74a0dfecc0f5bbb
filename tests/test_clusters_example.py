"""examples/clusters: a checkpoint decides how many groups there are, one step summarises
each, a report reads them all; one `makeflow build`, run with the real command line."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from conftest import Project

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "clusters"


def ran(output: str) -> list[str]:
    return re.findall(r"\] (\S+) done in", output)


@pytest.fixture
def clusters(tmp_path: Path) -> Project:
    shutil.copytree(EXAMPLE, tmp_path / "clusters", ignore=shutil.ignore_patterns(
        ".makeflow", "clusters", "summary", "report.md", "makeflow.lock"))
    project = Project(tmp_path / "clusters")
    done = project.run("build")
    assert done.code == 0, done.text
    assert ran(done.out)[0] == "cluster" and ran(done.out)[-1] == "report"
    assert sorted(ran(done.out)[1:-1]) == ["summarise[c=0]", "summarise[c=1]",
                                           "summarise[c=2]"]
    return project


def test_one_build_clusters_summarises_and_reports(clusters):
    report = clusters.read("report.md")
    assert report.startswith("# 3 clusters")
    points = [json.loads(clusters.read(f"summary/{c}.json"))["points"] for c in range(3)]
    assert sum(points) == 30
    again = clusters.run("build")
    assert again.code == 0 and ran(again.out) == [] and "nothing to do" in again.out


def test_a_new_group_runs_only_its_summary_and_the_report(clusters):
    with open(clusters.root / "data/points.csv", "a") as f:
        f.write("30.0,1.0\n")
    done = clusters.run("build")
    assert done.code == 0, done.text
    assert ran(done.out) == ["cluster", "summarise[c=3]", "report"]
    assert "cut off 3" in done.out
    assert clusters.read("report.md").startswith("# 4 clusters")


def test_fewer_groups_report_the_steps_left_behind(clusters):
    dry = clusters.run("build", "-n", "--set", "cluster.gap=20")
    assert "(not known until checkpoint cluster has run)" in dry.out
    done = clusters.run("build", "--set", "cluster.gap=20")
    assert done.code == 0, done.text
    assert ran(done.out) == ["cluster", "summarise[c=0]", "report"]
    assert "no longer part of the build: summarise[c=1], summarise[c=2]" in done.text
    assert clusters.read("report.md").startswith("# 1 clusters")
