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


def _checked_ns(project, path: str) -> int:
    """When makeflow last hashed `path`, from its state store."""
    import sqlite3

    db = sqlite3.connect(project.root / ".makeflow" / "state.db")
    try:
        (checked,) = db.execute("SELECT checked_ns FROM files WHERE path=?", (path,)).fetchone()
    finally:
        db.close()
    return checked


def _ahead(project, path: str, hours: float) -> None:
    import os
    import time

    ahead = time.time() + hours * 3600
    os.utime(project.root / path, (ahead, ahead))


def test_a_file_from_the_future_is_read_once_and_the_skew_said_once(project):
    project.write("in.txt", "x")
    project.rules(CHANGES_ITS_INPUT.replace("; echo more >> {inputs}", ""))
    _ahead(project, "in.txt", 3)
    first = project.run("build")
    assert first.code == 0, first.text
    assert first.text.count("clock") == 1 and "in.txt" in first.text, first.text
    assert "3h in the future" in first.text, first.text
    read = _checked_ns(project, "in.txt")
    for command in (["build"], ["status"], ["build"]):
        again = project.run(*command)
        assert again.code == 0, again.text
        assert "clock" not in again.text, again.text
    assert "nothing to do" in again.out, again.out
    assert _checked_ns(project, "in.txt") == read  # not read again


def test_a_future_file_edited_now_is_still_seen(project):
    """Trusting a future mtime is safe because a real write stamps the clock's time."""
    project.write("in.txt", "x")
    project.rules(CHANGES_ITS_INPUT.replace("; echo more >> {inputs}", ""))
    _ahead(project, "in.txt", 2)
    assert project.run("build").code == 0
    assert project.run("build").code == 0
    (project.root / "in.txt").write_text("y")  # same size, same inode, mtime now
    again = project.run("build")
    assert again.code == 0, again.text
    assert (project.root / "b.txt").read_text() == "y"


def test_an_output_stamped_in_the_future_is_said_once(project):
    """A step that stamps its output ahead (an archive from a skewed machine) is warned
    about in the build that made it, and the next build reads nothing again."""
    project.write("in.txt", "x")
    project.rules("""
from makeflow import rule
rule("a", inputs="in.txt", outputs="a.txt",
     shell="cp {inputs} {outputs} && touch -d '+2 days' {outputs}")
rule("b", inputs="a.txt", outputs="b.txt", shell="cp {inputs} {outputs}")
""")
    first = project.run("build", "b.txt")
    assert first.code == 0, first.text
    assert first.text.count("clock") == 1 and "a.txt" in first.text, first.text
    assert "2d in the future" in first.text, first.text
    read = _checked_ns(project, "a.txt")
    again = project.run("build", "b.txt")
    assert again.code == 0 and "clock" not in again.text, again.text
    assert "nothing to do" in again.out, again.out
    assert _checked_ns(project, "a.txt") == read
