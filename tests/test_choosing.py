"""Choosing and forcing from the command line: `--forcerun`, `--until` and `--touch`, each
on a real project through the real CLI, and each refusing what it cannot do (exit 2)."""

from __future__ import annotations

import re

from test_errors import user_error

CHAIN = """\
    from makeflow import rule

    rule("a", inputs="in.txt", outputs="a.txt", shell="cp {inputs} {outputs}")
    rule("b", inputs="a.txt", outputs="b.txt", shell="cp {inputs} {outputs}; echo {params.n} >> {outputs}", params={"n": 1})
    rule("c", inputs="b.txt", outputs="c.txt", shell="cp {inputs} {outputs}")
    rule("d", inputs="a.txt", outputs="d.txt", shell="cp {inputs} {outputs}")
    rule("all", inputs=["c.txt", "d.txt"], default=True)
"""  # noqa: E501


def ran(output: str) -> set[str]:
    return set(re.findall(r"\] (\S+) done in", output))


def chain(project, built: bool = True):
    project.rules(CHAIN)
    project.write("in.txt", "hello\n")
    if built:
        done = project.run("build")
        assert done.code == 0 and ran(done.out) == {"a", "b", "c", "d"}, done.text
    return project


# --forcerun


def test_forcerun_reruns_the_step_and_cuts_off_below_when_its_output_is_unchanged(project):
    chain(project)

    done = project.run("build", "--forcerun", "a")

    assert done.code == 0, done.text
    assert ran(done.out) == {"a"} and "cut off 3" in done.out


def test_forcerun_of_a_file_reruns_the_step_that_makes_it(project):
    chain(project)

    done = project.run("build", "--forcerun", "b.txt", "--no-cache")

    assert done.code == 0, done.text
    assert ran(done.out) == {"b"}  # same output as before: c is cut off, a and d untouched
    assert "cut off 1" in done.out


def test_forcerun_reaches_below_when_the_output_changes(project):
    project.rules(CHAIN.replace("echo {params.n}", "date +%s%N"))
    project.write("in.txt", "hello\n")
    assert project.run("build").code == 0

    done = project.run("build", "--forcerun", "b")

    assert done.code == 0, done.text
    assert ran(done.out) == {"b", "c"}


def test_forcerun_reruns_instead_of_restoring_from_the_run_cache(project):
    chain(project)

    done = project.run("build", "--forcerun", "d")

    assert ran(done.out) == {"d"} and "restored" not in done.out


def test_forcerun_can_be_repeated(project):
    chain(project)

    done = project.run("build", "--forcerun", "a", "--forcerun", "d.txt")

    assert done.code == 0, done.text
    assert ran(done.out) == {"a", "d"}


def test_forcerun_refuses_unknown_names_sources_and_aliases(project):
    chain(project)

    user_error(project.run("build", "--forcerun", "bb"), "--forcerun bb", "Did you mean b")
    user_error(project.run("build", "--forcerun", "in.txt"), "in.txt is a source file")
    user_error(project.run("build", "--forcerun", "all"), "all is an alias")
    user_error(project.run("build", "c.txt", "--forcerun", "d"), "--forcerun d")


# --until


def test_until_builds_only_up_to_the_rule(project):
    chain(project, built=False)

    done = project.run("build", "--until", "b")

    assert done.code == 0, done.text
    assert ran(done.out) == {"a", "b"}
    assert not project.exists("c.txt") and not project.exists("d.txt")
    rest = project.run("build")
    assert ran(rest.out) == {"c", "d"}


def test_until_a_file_and_a_stale_project(project):
    chain(project)
    project.write("in.txt", "changed\n")

    done = project.run("build", "--until", "a.txt")

    assert done.code == 0, done.text
    assert ran(done.out) == {"a"}
    assert "stale  b: upstream" not in project.run("status").out  # a ran: b is plainly stale
    assert project.run("status", "--check").code == 1


def test_a_build_after_until_is_not_fooled_by_its_quick_no_op_record(project):
    chain(project, built=False)
    assert project.run("build", "--until", "a").code == 0
    assert ran(project.run("build", "--until", "a").out) == set()

    done = project.run("build")

    assert ran(done.out) == {"b", "c", "d"}


def test_until_refuses_a_name_the_targets_do_not_need(project):
    chain(project)

    user_error(project.run("build", "c.txt", "--until", "d"), "--until d")


# --touch


def test_touch_adopts_outputs_made_elsewhere_and_the_next_build_runs_nothing(project):
    chain(project, built=False)
    for name in ("a", "b", "c", "d"):
        project.write(f"{name}.txt", f"made by hand: {name}\n")

    done = project.run("build", "--touch")

    assert done.code == 0, done.text
    assert ran(done.out) == set() and "touched 4" in done.out
    assert project.read("c.txt") == "made by hand: c\n"
    again = project.run("build")
    assert "nothing to do" in again.out and ran(again.out) == set()
    project.write("in.txt", "changed\n")  # and from now on, changes run as usual
    assert ran(project.run("build").out) == {"a", "b", "c", "d"}


def test_touch_refuses_when_an_output_is_missing_and_records_nothing(project):
    chain(project, built=False)
    for name in ("a", "b", "d"):
        project.write(f"{name}.txt", f"made by hand: {name}\n")

    message = user_error(project.run("build", "--touch"), "c.txt (c)", "nothing was recorded")

    assert "--touch" in message
    status = project.run("status")
    assert "4 of 4 steps stale" in status.out  # nothing was recorded


def test_touch_of_one_target_records_only_its_steps(project):
    chain(project, built=False)
    project.write("a.txt", "by hand\n")
    project.write("d.txt", "by hand\n")

    done = project.run("build", "--touch", "d.txt")

    assert done.code == 0, done.text
    assert "touched 2" in done.out
    assert ran(project.run("build").out) == {"b", "c"}


def test_touch_with_force_is_refused(project):
    chain(project)

    user_error(project.run("build", "--touch", "-B"), "--touch", "-B")
    user_error(project.run("build", "--touch", "--forcerun", "a"), "--forcerun")
