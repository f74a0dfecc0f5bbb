"""docs/migrating.md: its makeflow pipeline runs, and gives what its Makefile gives."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import Project

ROOT = Path(__file__).resolve().parent.parent
DOC = (ROOT / "docs" / "migrating.md").read_text()
TEXTS = ROOT / "examples" / "words" / "texts"


def block(first_line: str) -> str:
    """The fenced code block of the page whose first line is `first_line`."""
    found = re.search(rf"```\w+\n({re.escape(first_line)}\n.*?)```", DOC, re.S)
    assert found, f"no block starting {first_line!r}"
    return found.group(1)


def ran(output: str) -> set[str]:
    return set(re.findall(r"\] (\S+) done in", output))


def setup(folder: Path, files: dict[str, str]) -> Path:
    shutil.copytree(TEXTS, folder / "texts")
    for name, text in files.items():
        (folder / name).write_text(text)
    return folder


def test_the_makeflow_pipeline_runs_and_reruns_on_a_setting(tmp_path):
    project = Project(setup(tmp_path / "mf", {
        "count.py": block("# count.py"), "Makeflow.py": block("# Makeflow.py"),
        "makeflow.toml": block("# makeflow.toml")}))
    done = project.run("build", "-j", "4")
    assert done.code == 0, done.text
    report = project.read("report.txt")
    assert report.count("== texts/") == 4
    assert project.run("build").out.startswith("nothing to do")
    again = project.run("build", "--set", "count.min_length=6")
    assert again.code == 0
    assert ran(again.out) == {f"count[name={p.stem}]" for p in TEXTS.glob("*.txt")} | {"report"}


def test_the_makefile_gives_the_same_report(tmp_path):
    if shutil.which("make") is None:
        if os.environ.get("CI"):
            pytest.fail("make is not installed")
        pytest.skip("make is not installed")
    project = Project(setup(tmp_path / "mf", {
        "count.py": block("# count.py"), "Makeflow.py": block("# Makeflow.py"),
        "makeflow.toml": block("# makeflow.toml")}))
    assert project.run("build").code == 0
    folder = setup(tmp_path / "make", {"count.py": block("# count.py"),
                                       "Makefile": block("# Makefile")})
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    subprocess.run(["make", "-s"], cwd=folder, env=env, check=True, timeout=60)
    assert (folder / "report.txt").read_text() == project.read("report.txt")
