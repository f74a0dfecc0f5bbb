"""plots: the same data gives the same bytes, in separate processes, for every format."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from makeflow import StepError
from makeflow_rules.plots import new_figure, save_figure

DRAW = textwrap.dedent("""
    import sys
    from makeflow_rules import stable_figure
    with stable_figure(sys.argv[1], 4, 3) as fig:
        ax = fig.subplots()
        ax.plot([1, 2, 3, 4], [2.0, 3.5, 3.1, 4.2], marker="o", label="trend")
        ax.fill_between([1, 2, 3, 4], [1, 2, 2, 3], [3, 4, 4, 5], alpha=0.2)
        ax.set_title("Lake temperature")
        ax.legend()
""")


@pytest.mark.parametrize("fmt", ["svg", "png", "pdf"])
def test_two_runs_write_identical_bytes(tmp_path, fmt):
    outputs = []
    for run in ("a", "b"):
        path = tmp_path / run / f"figure.{fmt}"
        path.parent.mkdir()
        subprocess.run([sys.executable, "-c", DRAW, str(path)], check=True, timeout=120)
        outputs.append(path.read_bytes())
    assert outputs[0] == outputs[1]
    assert len(outputs[0]) > 1000


def test_different_data_gives_different_bytes(tmp_path):
    for name, ys in (("a", [1, 2]), ("b", [1, 3])):
        fig = new_figure()
        fig.subplots().plot([0, 1], ys)
        save_figure(fig, tmp_path / f"{name}.svg")
    assert (tmp_path / "a.svg").read_bytes() != (tmp_path / "b.svg").read_bytes()


def test_an_unknown_format_fails_the_step(tmp_path):
    with pytest.raises(StepError, match=r"save figures as png, svg or pdf"):
        save_figure(new_figure(), tmp_path / "x.eps")


def test_a_figure_rule_rerun_on_same_data_stops_the_cascade(project):
    project.write("data.csv", "1,2\n2,3\n")
    project.rules("""
        from makeflow import rule
        from makeflow_rules import stable_figure, copy_file

        @rule(inputs="data.csv", outputs="fig.svg")
        def figure(step):
            rows = [line.split(",") for line in open(step.inputs[0]).read().split()]
            with stable_figure(step.outputs[0]) as fig:
                fig.subplots().plot([float(r[0]) for r in rows], [float(r[1]) for r in rows])

        rule("publish", inputs="fig.svg", outputs="paper/fig.svg", default=True)(copy_file)
    """)
    assert project.run("build").code == 0
    project.write("data.csv", "1,2\n2,3\n\n")  # new bytes, same data
    done = project.run("build")
    assert done.code == 0, done.text
    assert "figure done" in done.out and "publish done" not in done.out, done.out
