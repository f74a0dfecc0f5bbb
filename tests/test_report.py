"""What a build shows: a live rich view on a terminal, plain lines elsewhere."""

from __future__ import annotations

import io

from rich.console import Console

from makeflow import BuildOptions, build, load
from makeflow.ui.live import RichReporter
from makeflow.ui.plain import PlainReporter
from makeflow.ui.view import make_reporter

RULES = """
from makeflow import rule
rule("a", inputs="in.txt", outputs="a.txt", shell="cp {inputs} {outputs}")
rule("bad", inputs="in.txt", outputs="b.txt", shell="echo to-the-log; exit 3")
rule("all", inputs=["a.txt", "b.txt"], default=True)
"""


def run_with(project, reporter):
    project.write("in.txt", "x")
    project.rules(RULES)
    pipeline = load(project.root / "Makeflow.py")
    return build(pipeline, [], BuildOptions(jobs=1, keep_going=True), reporter)


def test_terminal_gets_the_live_view_with_progress_and_summary(project):
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=120, color_system=None)
    result = run_with(project, RichReporter(console))
    text = out.getvalue()
    assert result.failed == {"bad": "exit status 3"}
    assert "✓ a" in text
    assert "✗ bad failed: exit status 3" in text and "to-the-log" in text
    assert "building" in text  # the progress bar was drawn
    assert "ran 1, fresh 0, failed 1" in text


def test_a_pipe_gets_one_plain_line_per_step(project):
    out = io.StringIO()
    assert isinstance(make_reporter(out), PlainReporter)
    run_with(project, make_reporter(out))
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("[1/2] a done in ")
    assert lines[1] == "[2/2] bad FAILED: exit status 3"
    assert "  | to-the-log" in lines
    assert lines[-1].startswith("ran 1, fresh 0, failed 1 in ")


def test_steps_cut_off_leave_the_count(project):
    project.write("in.txt", "x")
    project.rules("""
        from makeflow import rule
        rule("all", inputs=["after.txt", "late.txt"])
        rule("up", inputs="in.txt", outputs="up.txt", shell="tr a-z A-Z < {inputs} > {outputs}")
        rule("after", inputs="up.txt", outputs="after.txt", shell="cp {inputs} {outputs}")
        rule("late", inputs="in.txt", outputs="late.txt", shell="cp {inputs} {outputs}")
    """)
    project.build(jobs=1)
    project.write("in.txt", "X")
    result = project.build(jobs=1)
    assert result.cut_off == ["after"]
    lines = result.output.splitlines()
    assert lines[0].startswith("[1/3] up done") and lines[1].startswith("[2/2] late done")
