"""User errors: exit status 2 and one short paragraph naming where it is and what to do.

A step that fails is not a user error: exit status 1, with the step, its status and its log.
"""

from __future__ import annotations

import re

import pytest


def user_error(done, *needles: str) -> str:
    """Check `done` is a user error mentioning every needle; return its message."""
    assert done.code == 2, done.text
    assert "Traceback" not in done.out
    assert "Traceback" not in done.err
    message = done.err.strip()
    assert message.startswith("makeflow: error:"), done.text
    assert "\n\n" not in message, f"more than one paragraph:\n{message}"
    for needle in needles:
        assert needle in message, f"{needle!r} not in:\n{message}"
    return message


# The graph: cycles, missing files, clashes, unknown targets, ambiguous patterns


def test_a_cycle_is_shown_as_a_path_of_rules_and_files(project):
    project.rules("""\
        from makeflow import rule

        rule("a", inputs="y.txt", outputs="x.txt", shell="cp {inputs} {outputs}")
        rule("b", inputs="x.txt", outputs="y.txt", shell="cp {inputs} {outputs}")
    """)

    message = user_error(project.run("build", "a"), "cycle")

    assert re.search(r"a -> x\.txt -> b -> y\.txt -> a|b -> y\.txt -> a -> x\.txt -> b", message)


def test_a_needed_file_that_exists_nowhere_names_the_file_and_who_needs_it(project):
    project.rules("""\
        from makeflow import rule

        rule("train", inputs="data/x.csv", outputs="model.txt", shell="cp {inputs} {outputs}")
    """)

    user_error(project.run("build"), "no rule makes data/x.csv, which train needs")


def test_two_rules_claiming_one_output_are_both_named(project):
    project.rules("""\
        from makeflow import rule

        rule("first", outputs="x.txt", shell="echo 1 > {outputs}")
        rule("second", outputs="x.txt", shell="echo 2 > {outputs}")
    """)

    user_error(project.run("build"), "first", "second", "x.txt")


@pytest.mark.parametrize(("typo", "meant"), [("trian", "train"), ("modle.txt", "model.txt")])
def test_a_target_that_matches_nothing_suggests_close_names(project, typo, meant):
    project.rules("""\
        from makeflow import rule

        rule("train", outputs="model.txt", shell="echo m > {outputs}")
    """)

    message = user_error(project.run("build", typo), typo)

    assert re.search(rf"Did you mean .*\b{re.escape(meant)}\b", message), message
    assert not project.exists("model.txt")


def test_two_equally_specific_patterns_for_one_file_name_both_rules(project):
    project.rules("""\
        from makeflow import rule

        rule("upper", inputs="src/{n}.txt", outputs="out/{n}.txt", shell="tr a-z A-Z < {inputs} > {outputs}")
        rule("copy", inputs="src/{n}.txt", outputs="out/{n}.txt", shell="cp {inputs} {outputs}")
    """)  # noqa: E501
    project.write("src/a.txt", "hello\n")

    user_error(project.run("build", "out/a.txt"), "out/a.txt", "upper", "copy")
    assert not project.exists("out/a.txt")


def test_the_more_specific_pattern_wins_and_the_build_works(project):
    project.rules("""\
        from makeflow import rule

        rule("generic", inputs="src/{n}.txt", outputs="out/{n}.txt", shell="printf generic > {outputs}")
        rule("special", inputs="src/{n}.txt", outputs="out/x-{n}.txt", shell="printf special > {outputs}")
    """)  # noqa: E501
    project.write("src/a.txt", "a\n")
    project.write("src/x-a.txt", "x-a\n")  # so generic could make out/x-a.txt too

    done = project.run("build", "out/x-a.txt", "out/a.txt")

    assert done.code == 0, done.text
    assert project.read("out/x-a.txt") == "special"
    assert project.read("out/a.txt") == "generic"


def test_a_more_specific_pattern_wins_over_a_catch_all_that_matches_its_source(project):
    project.rules("""\
        from makeflow import rule

        rule("generic", inputs="src/{n}.txt", outputs="{d}/{n}.txt", shell="printf generic > {outputs}")
        rule("special", inputs="src/{n}.txt", outputs="out/{n}.txt", shell="printf special > {outputs}")
    """)  # noqa: E501
    project.write("src/a.txt", "a\n")  # a source, though "{d}/{n}.txt" matches it

    done = project.run("build", "out/a.txt")

    assert done.code == 0, done.text
    assert project.read("out/a.txt") == "special"
    assert project.read("src/a.txt") == "a\n"


def test_a_pattern_rule_named_as_a_target_asks_for_a_file_it_makes(project):
    project.rules("""\
        from makeflow import rule

        rule("counts", inputs="texts/{name}.txt", outputs="counts/{name}.tsv", shell="wc -w {inputs} > {outputs}")
    """)  # noqa: E501
    project.write("texts/river.txt", "a river\n")

    user_error(project.run("build", "counts"), "counts", "pattern", "counts/")


# Makeflow.py that does not run


def test_a_syntax_error_names_its_line(project):
    project.rules("""\
        from makeflow import rule

        rule("a", outputs="a.txt", shell="echo a > {outputs}")
        alpha = = 0.1
        rule("b", outputs="b.txt", shell="echo b > {outputs}")
    """)

    user_error(project.run("build"), "Makeflow.py:4", "syntax")


@pytest.mark.parametrize(
    ("line", "exception"),
    [
        ('print(undefined_name)', "NameError"),
        ('alpha = config["train"]["alpha"]', "KeyError"),
    ],
)
def test_an_exception_while_running_makeflow_py_names_its_line(project, line, exception):
    project.rules(f"""\
        from makeflow import config, rule

        rule("a", outputs="a.txt", shell="echo a > {{outputs}}")

        {line}
    """)

    user_error(project.run("build"), "Makeflow.py:5", exception)


# Configuration and command line


def test_an_invalid_makeflow_toml_names_the_file_and_line(project):
    project.rules("""\
        from makeflow import rule

        rule("a", outputs="a.txt", shell="echo a > {outputs}")
    """)
    project.write("makeflow.toml", "[train]\nalpha = = 0.1\n")

    user_error(project.run("build"), "makeflow.toml", "line 2")
    assert not project.exists("a.txt")


CONFIGURED = """\
    from makeflow import config, rule

    rule("train", outputs="model.txt", params={"alpha": config["train"]["alpha"]},
         shell="echo {params.alpha} > {outputs}")
"""


def test_set_without_an_equals_sign_shows_the_form(project):
    project.rules(CONFIGURED)
    project.write("makeflow.toml", "[train]\nalpha = 0.1\n")

    user_error(project.run("build", "--set", "train.alpha"), "train.alpha", "KEY=VALUE")


def test_set_of_an_unknown_key_suggests_the_close_one(project):
    project.rules(CONFIGURED)
    project.write("makeflow.toml", "[train]\nalpha = 0.1\n")

    message = user_error(project.run("build", "--set", "train.alpah=0.3"), "train.alpah")

    assert re.search(r"Did you mean .*alpha\b", message), message
    assert not project.exists("model.txt")


def test_directory_option_to_a_missing_folder(project):
    user_error(project.run("build", "-C", "nowhere"), "nowhere")


def test_a_folder_without_makeflow_py(project):
    user_error(project.run("build"), "Makeflow.py")


def test_file_option_to_a_missing_file(project):
    project.rules("""\
        from makeflow import rule

        rule("a", outputs="a.txt", shell="echo a > {outputs}")
    """)

    user_error(project.run("build", "-f", "missing.py"), "missing.py")
    assert not project.exists("a.txt")


# Rule mistakes: each names the rule and the line of Makeflow.py that declares it

GOOD_RULE = 'rule("fine", outputs="fine.txt", shell="echo fine > {outputs}")'

RULE_MISTAKES = {
    "no inputs and no outputs": ('rule("lonely")', "lonely", "outputs"),
    "outputs but no action": ('rule("idle", outputs="x.txt")', "idle", "shell"),
    "both shell and function": (
        '@rule(outputs="x.txt", shell="echo x > {outputs}")\ndef both(step): pass',
        "both", "function",
    ),
    "absolute path": (
        'rule("abs", outputs="/tmp/x.txt", shell="echo x > {outputs}")', "abs", "/tmp/x.txt",
    ),
    "path escaping the project": (
        'rule("up", inputs="../secret.txt", outputs="x.txt", shell="cp {inputs} {outputs}")',
        "up", "../secret.txt",
    ),
    "input wildcard no output has": (
        'rule("wild", inputs="data/{sample}.csv", outputs="out/{name}.txt",'
        ' shell="cp {inputs} {outputs}")',
        "wild", "{sample}",
    ),
    "outputs with different wildcards": (
        'rule("split", inputs="d/{a}.csv", outputs=["o/{a}.txt", "o/{b}.log"],'
        ' shell="cp {inputs} {outputs}")',
        "split", "o/{b}.log",
    ),
    "unknown shell placeholder": (
        'rule("typo", outputs="x.txt", shell="echo hi > {output}")', "typo", "'output'",
    ),
    "shell placeholder index out of range": (
        'rule("index", inputs="a.txt", outputs="x.txt", shell="cat {inputs[1]} > {outputs}")',
        "index", "IndexError",
    ),
    "lone brace in a shell command": (
        'rule("brace", outputs="x.txt", shell="echo } > {outputs}")', "brace", "'}'",
    ),
    "bad conversion in a shell placeholder": (
        'rule("conv", outputs="x.txt", shell="echo {outputs!z}")', "conv", "conversion",
    ),
    "broken wildcard regex": (
        'rule("regex", inputs="s/{n}.txt", outputs="o/{n,[a-}.txt",'
        ' shell="cp {inputs} {outputs}")',
        "regex", "{n,[a-}",
    ),
}


@pytest.mark.parametrize(("source", "name", "detail"), RULE_MISTAKES.values(),
                         ids=RULE_MISTAKES.keys())
def test_a_rule_mistake_names_the_rule_and_its_line(project, source, name, detail):
    project.write("Makeflow.py", f"from makeflow import rule\n\n{GOOD_RULE}\n{source}\n")

    user_error(project.run("build", name), "Makeflow.py:4", name, detail)
    assert not project.exists("fine.txt")


# Failing steps are not user errors


def test_a_failing_step_exits_1_with_its_status_and_log_tail(project):
    project.rules("""\
        from makeflow import rule

        rule("boom", outputs="x.txt", shell="sh -c 'echo boom-line; exit 3'")
    """)

    done = project.run("build")

    assert done.code == 1, done.text
    assert "Traceback" not in done.text
    assert "boom" in done.text
    assert "exit status 3" in done.text
    assert "boom-line" in done.text
    assert not project.exists("x.txt")


def test_a_step_that_does_not_create_its_output_fails_naming_the_file(project):
    project.rules("""\
        from makeflow import rule

        rule("lazy", outputs="result.txt", shell="echo forgot to write")
    """)

    done = project.run("build")

    assert done.code == 1, done.text
    assert "Traceback" not in done.text
    assert "lazy" in done.text
    assert "result.txt" in done.text
    assert not project.exists("result.txt")
