"""`makeflow why` on folders makeflow made, and on what lies inside them: never "a source"."""

from __future__ import annotations

import pytest

RULES = """\
    import os
    from makeflow import rule

    @rule(outputs="report")
    def report(step):
        os.makedirs(step.outputs[0], exist_ok=True)
        (step.outputs[0] / "index.html").write_text("hi")

    @rule(inputs="data/{s}.csv", outputs="plots/{s}")
    def plot(step):
        os.makedirs(step.outputs[0], exist_ok=True)
        (step.outputs[0] / "a.png").write_text("png")

    rule("all", inputs=["report", "plots/x"], default=True)
"""


@pytest.fixture
def built(project):
    project.rules(RULES)
    project.write("data/x.csv", "1\n")
    project.write("data/y.csv", "2\n")
    assert project.run("build").code == 0
    assert project.run("build", "plots/y").code == 0  # a step outside the default graph
    return project


@pytest.mark.parametrize(("path", "step"), [
    ("report", "report"), ("report/", "report"), ("plots/x", "plot[s=x]"),
    ("plots/y", "plot[s=y]"),
])
def test_a_folder_output_is_made_by_its_step(built, path, step):
    done = built.run("why", path)

    assert done.code == 0, done.text
    assert "source" not in done.out
    assert step in done.out and "up to date" in done.out


@pytest.mark.parametrize(("path", "folder", "step"), [
    ("report/index.html", "report", "report"),
    ("plots/x/a.png", "plots/x", "plot[s=x]"),
    ("plots/y/a.png", "plots/y", "plot[s=y]"),
])
def test_a_file_inside_a_folder_output_names_the_folder_and_its_step(built, path, folder, step):
    done = built.run("why", path)

    assert done.code == 0, done.text
    assert "source" not in done.out
    assert f"inside {folder}" in done.out and step in done.out


def test_a_folder_that_holds_outputs_is_not_a_source(built):
    done = built.run("why", "plots")

    assert done.code == 0, done.text
    assert "source" not in done.out
    assert "plot[s=x]" in done.out and "plot[s=y]" in done.out


def test_why_works_when_the_default_rule_is_a_pattern_rule(project):
    project.rules(RULES.replace('rule("all", inputs=["report", "plots/x"], default=True)', ""))
    project.write("data/x.csv", "1\n")
    assert project.run("build", "plots/x").code == 0

    done = project.run("why", "plots/x/a.png")

    assert done.code == 0, done.text
    assert "inside plots/x" in done.out
    assert project.run("why", "data/x.csv").code == 0
