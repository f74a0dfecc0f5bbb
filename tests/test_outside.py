"""Nothing resolves outside the project folder: targets, wildcard values, symlinked folders.

A build may read what it likes through its declared inputs, but it writes (and `clean`
removes) only inside the folder of `Makeflow.py`.
"""

from __future__ import annotations

import os
import shutil

import pytest


def user_error(done, *needles: str) -> str:
    assert done.code == 2, done.text
    assert "Traceback" not in done.text
    message = done.err.strip()
    assert message.startswith("makeflow: error:"), done.text
    assert "\n\n" not in message, f"more than one paragraph:\n{message}"
    for needle in needles:
        assert needle in message, f"{needle!r} not in:\n{message}"
    return message


@pytest.fixture
def inside(tmp_path, project):
    """The project lives in tmp_path/proj, so tmp_path itself is outside it."""
    root = tmp_path / "proj"
    root.mkdir()
    project.root = root
    return project


ANY_OUT = """\
    from makeflow import rule

    rule("make", outputs="{name,.*}.out", shell="echo made > {outputs}")
"""


@pytest.mark.parametrize("target", ["../x.out", "sub/../../x.out"])
def test_a_target_above_the_project_is_refused(inside, target):
    inside.rules(ANY_OUT)

    user_error(inside.run("build", target), "outside the project")
    assert not (inside.root.parent / "x.out").exists()


def test_an_existing_file_above_the_project_is_refused_too(inside):
    inside.rules(ANY_OUT)
    (inside.root.parent / "x.txt").write_text("mine")

    user_error(inside.run("status", "../x.txt"), "outside the project")


def test_an_absolute_target_outside_is_refused(inside, tmp_path):
    inside.rules(ANY_OUT)

    user_error(inside.run("build", str(tmp_path / "x.out")), "outside the project")
    assert not (tmp_path / "x.out").exists()


def test_an_absolute_target_inside_is_taken_as_relative(inside):
    inside.rules(ANY_OUT)

    done = inside.run("build", str(inside.root / "sub" / "a.out"))

    assert done.code == 0, done.text
    assert inside.read("sub/a.out") == "made\n"
    assert "make[name=sub/a]" in inside.run("why", "sub/a.out").out
    why = inside.run("why", str(inside.root / "sub" / "a.out"))
    assert "made by make[name=sub/a]" in why.out and "up to date" in why.out, why.text


def test_a_wildcard_value_of_dot_dot_is_refused(inside):
    inside.rules("""\
        from makeflow import rule

        rule("res", inputs="{n}/data.csv", outputs="res/{n}.out", shell="cp {inputs} {outputs}")
    """)
    (inside.root.parent / "data.csv").write_text("secret")

    user_error(inside.run("build", "res/...out"), "outside the project", "res")
    assert not inside.exists("res/...out")


def test_a_wildcard_value_starting_with_a_slash_is_refused(inside):
    inside.rules("""\
        from makeflow import rule

        rule("grab", inputs="{p}", outputs="copy{p,.*}", shell="cp {inputs} {outputs}")
    """)

    user_error(inside.run("build", "copy/etc/hostname"), "outside the project", "grab")


def test_an_output_under_a_symlinked_folder_leading_outside_is_refused(inside, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    os.symlink(elsewhere, inside.root / "results")
    inside.rules("""\
        from makeflow import rule

        rule("r", outputs="results/x.txt", shell="echo hi > {outputs}")
    """)

    user_error(inside.run("build"), "results/x.txt", "outside the project")
    assert list(elsewhere.iterdir()) == []


def test_an_output_that_is_a_symlink_leading_outside_is_refused(inside, tmp_path):
    (tmp_path / "theirs.txt").write_text("not yours")
    os.symlink(tmp_path / "theirs.txt", inside.root / "x.txt")
    inside.rules("""\
        from makeflow import rule

        rule("r", outputs="x.txt", shell="echo hi > {outputs}", stage=False)
    """)

    user_error(inside.run("build"), "x.txt", "outside the project")
    assert (tmp_path / "theirs.txt").read_text() == "not yours"


@pytest.mark.parametrize("dangling", [False, True])
def test_a_symlink_among_many_outputs_of_one_folder_is_refused(inside, tmp_path, dangling):
    """Past a few hundred outputs in one folder, the folder is listed once instead of an
    lstat per output: a link among them, even one whose target does not exist yet, is
    still found."""
    theirs = tmp_path / "theirs.txt"
    if not dangling:
        theirs.write_text("not yours")
    (inside.root / "out").mkdir()
    os.symlink(theirs, inside.root / "out" / "417.txt")
    inside.rules("""\
        from makeflow import expand, rule

        rule("make", outputs="out/{i}.txt", shell="echo hi > {outputs}")
        rule("all", inputs=expand("out/{i}.txt", i=range(600)), default=True)
    """)

    user_error(inside.run("build"), "out/417.txt", "outside the project")
    assert theirs.exists() != dangling
    assert dangling or theirs.read_text() == "not yours"
    assert sorted(os.listdir(inside.root / "out")) == ["417.txt"]


def test_a_symlink_among_many_outputs_that_stays_inside_is_fine(inside):
    """The folder's listing names the link; following it leads inside, so the dry run
    plans every step and refuses none."""
    (inside.root / "out").mkdir()
    (inside.root / "kept").mkdir()
    os.symlink(inside.root / "kept" / "417.txt", inside.root / "out" / "417.txt")
    inside.rules("""\
        from makeflow import expand, rule

        rule("make", outputs="out/{i}.txt", shell="echo hi > {outputs}")
        rule("all", inputs=expand("out/{i}.txt", i=range(600)), default=True)
    """)

    done = inside.run("build", "-n")
    assert done.code == 0, done.text
    assert "would run make[i=417]: never ran" in done.out
    assert done.out.count("would run make[") == 600


def test_a_cached_graph_does_not_skip_the_symlink_check(inside, tmp_path):
    inside.rules("""\
        from makeflow import rule

        rule("r", outputs="results/x.txt", shell="echo hi > {outputs}")
    """)
    assert inside.run("build").code == 0
    elsewhere = tmp_path / "elsewhere"
    shutil.move(inside.root / "results", elsewhere)
    os.remove(elsewhere / "x.txt")
    os.symlink(elsewhere, inside.root / "results")

    user_error(inside.run("build"), "outside the project")
    assert list(elsewhere.iterdir()) == []


def test_a_symlinked_folder_inside_the_project_is_fine(inside):
    (inside.root / "real").mkdir()
    os.symlink("real", inside.root / "results")
    inside.rules("""\
        from makeflow import rule

        rule("r", outputs="results/x.txt", shell="echo hi > {outputs}")
    """)

    done = inside.run("build")

    assert done.code == 0, done.text
    assert inside.read("real/x.txt") == "hi\n"
