"""Messages say what happened: status, why and logs after the unusual cases. Each runs
the real CLI as a subprocess on real files."""

from __future__ import annotations

CHANGES_ITS_INPUT = """
from makeflow import rule
rule("a", inputs="in.txt", outputs="a.txt",
     shell="cp {inputs} {outputs}; echo more >> {inputs}")
rule("b", inputs="a.txt", outputs="b.txt", shell="cp {inputs} {outputs}")
rule("all", inputs=["b.txt"], default=True)
"""


def test_status_and_why_say_an_input_changed_while_the_step_ran(project):
    project.write("in.txt", "x")
    project.rules(CHANGES_ITS_INPUT)
    built = project.run("build")
    assert built.code == 0, built.text
    assert "in.txt changed while a ran" in built.out
    status = project.run("status")
    assert "a: input in.txt changed while it last ran" in status.out, status.out
    assert "never ran" not in status.out.split("b:")[0]
    why = project.run("why", "a.txt")
    assert why.code == 0, why.text
    assert "input in.txt changed while it last ran" in why.out and "never ran" not in why.out
    project.rules(CHANGES_ITS_INPUT.replace("; echo more >> {inputs}", ""))
    assert project.run("build").code == 0
    assert "all 2 steps up to date" in project.run("status").out


def test_clean_removes_what_a_step_made_while_its_input_changed(project):
    project.write("in.txt", "x")
    project.rules(CHANGES_ITS_INPUT)
    assert project.run("build").code == 0
    done = project.run("clean")
    assert done.code == 0, done.text
    assert not project.exists("a.txt") and not project.exists("b.txt")


def test_logs_of_an_alias_says_it_runs_no_command(project):
    project.write("in.txt", "x")
    project.rules(CHANGES_ITS_INPUT)
    done = project.run("logs", "all")
    assert done.code == 2, done.text
    assert "all" in done.err and "runs no command" in done.err and "Traceback" not in done.err
    assert "makeflow logs b" in done.err  # what to ask instead
