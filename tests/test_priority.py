"""`priority=N` settles which of two pattern rules makes a file; without it a tie is an error."""

from __future__ import annotations

import pytest
from test_errors import user_error

TWO_RULES = """\
    from makeflow import rule

    rule("upper", inputs="src/{{n}}.txt", outputs="out/{{n}}.txt", shell="tr a-z A-Z < {{inputs}} > {{outputs}}"{upper})
    rule("copy", inputs="src/{{n}}.txt", outputs="out/{{n}}.txt", shell="cp {{inputs}} {{outputs}}"{copy})
"""  # noqa: E501


def test_the_rule_with_the_higher_priority_makes_the_file(project):
    project.rules(TWO_RULES.format(upper=", priority=2", copy=", priority=1"))
    project.write("src/a.txt", "hello\n")

    done = project.run("build", "out/a.txt")

    assert done.code == 0, done.text
    assert project.read("out/a.txt") == "HELLO\n"


def test_changing_the_priority_changes_which_rule_makes_the_file(project):
    project.rules(TWO_RULES.format(upper=", priority=1", copy=""))
    project.write("src/a.txt", "hello\n")
    assert project.run("build", "out/a.txt").code == 0
    assert project.read("out/a.txt") == "HELLO\n"

    project.rules(TWO_RULES.format(upper="", copy=", priority=1"))
    done = project.run("build", "out/a.txt")

    assert done.code == 0, done.text
    assert project.read("out/a.txt") == "hello\n"


def test_priority_wins_over_a_more_specific_pattern(project):
    project.rules("""\
        from makeflow import rule

        rule("generic", inputs="src/{n}.txt", outputs="out/{n}.txt", shell="printf generic > {outputs}", priority=1)
        rule("special", inputs="src/{n}.txt", outputs="out/x-{n}.txt", shell="printf special > {outputs}")
    """)  # noqa: E501
    project.write("src/x-a.txt", "x\n")
    project.write("src/a.txt", "a\n")

    done = project.run("build", "out/x-a.txt")

    assert done.code == 0, done.text
    assert project.read("out/x-a.txt") == "generic"


def test_equal_priorities_are_still_an_error_naming_both_rules_and_the_way_out(project):
    project.rules(TWO_RULES.format(upper=", priority=3", copy=", priority=3"))
    project.write("src/a.txt", "hello\n")

    user_error(project.run("build", "out/a.txt"), "out/a.txt", "upper", "copy",
               "same priority (3)", "priority=1")
    assert not project.exists("out/a.txt")


def test_no_priority_at_all_stays_an_error(project):
    project.rules(TWO_RULES.format(upper="", copy=""))
    project.write("src/a.txt", "hello\n")

    user_error(project.run("build", "out/a.txt"), "no priority", "upper", "copy")


def test_a_priority_that_is_not_a_whole_number_is_a_user_error(project):
    project.rules(TWO_RULES.format(upper=", priority='high'", copy=""))
    project.write("src/a.txt", "hello\n")

    user_error(project.run("build", "out/a.txt"), "rule upper", "priority=", "'high'",
               "Makeflow.py:3")


@pytest.mark.parametrize("option", ["priority=False", "retries=False", "retries=0.0"])
def test_a_number_given_as_a_bool_or_a_float_is_still_refused(project, option):
    """Most rules give no options, which is checked by comparing with the defaults; a
    value equal to a default but of another type (False == 0 == 0.0) is still refused."""
    project.rules(TWO_RULES.format(upper=f", {option}", copy=""))
    project.write("src/a.txt", "hello\n")

    user_error(project.run("build", "out/a.txt"), "rule upper", option.split("=")[0] + "=",
               "Makeflow.py:3")
