"""examples/research end to end with the real command line, on a fresh copy."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

from conftest import Project

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "research"
GENERATED = (".makeflow", "data", "models", "results", "figures", "report")


def ran(output: str) -> set[str]:
    return set(re.findall(r"\] (\S+) done in", output))


def test_the_paper_builds_then_nothing_runs_and_a_setting_reruns_only_its_steps(tmp_path):
    shutil.copytree(EXAMPLE, tmp_path / "research", ignore=shutil.ignore_patterns(*GENERATED))
    project = Project(tmp_path / "research")

    done = project.run("build", timeout=600)

    assert done.code == 0, done.text
    lakes = ("arrow", "birch", "cedar")
    per_lake = {f"{rule}[lake={lake}]" for rule in ("clean", "fit", "score", "trend", "figure")
                for lake in lakes}
    assert ran(done.out) == {"fetch", "unpack", "combine", "explore", "supplement", "metrics",
                             "paper"} | per_lake
    paper = project.read("report/paper.md")
    assert "3 of them warmed" in paper and "| cedar | 0.49 |" in paper
    assert "![Lake arrow: summer means and trend](../figures/arrow.svg)" in paper
    assert "| arrow | 18.48 |" in paper  # the table the notebook wrote
    assert project.read("report/explore.html").startswith("<!DOCTYPE html>")
    assert project.read("figures/birch.svg").startswith("<?xml")
    assert project.read("report/supplement/lakes.csv").startswith('"lake","year","temp_c"')

    assert_lock_matches_the_committed_one(project)

    again = project.run("build")
    assert again.code == 0 and ran(again.out) == set() and "nothing to do" in again.out
    assert project.run("status", "--check").code == 0

    retitled = project.run("build", "--set", 'report.title="Lakes are warming"')
    assert retitled.code == 0, retitled.text
    assert ran(retitled.out) == {"paper"}
    assert project.read("report/paper.md").startswith("# Lakes are warming\n")

    status = project.run("status", "--set", "clean.months=[6,7,8,9]")
    assert status.code == 0
    assert re.search(r"clean\[lake=arrow\].*parameter query", status.out, re.S), status.out


def assert_lock_matches_the_committed_one(project: Project) -> None:
    """The committed makeflow.lock names every step the build ran, holds no absolute path
    (the download's URL is project-relative), and agrees with this build on the files that
    makeflow's own rules made; the other outputs depend on library versions."""
    committed = json.loads((EXAMPLE / "makeflow.lock").read_text())
    written = json.loads(project.read("makeflow.lock"))
    assert set(committed["steps"]) == set(written["steps"])
    text = (EXAMPLE / "makeflow.lock").read_text()
    assert str(EXAMPLE) not in text and "file:///" not in text and "/tmp/" not in text
    assert committed["steps"]["fetch"]["params"]["url"] == "file:upstream/lakes.tar.gz"
    for step in ("fetch", "unpack"):
        for side in ("inputs", "outputs"):
            assert committed["steps"][step][side] == written["steps"][step][side], step
