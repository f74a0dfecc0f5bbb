"""The `makeflow` command line, run as a user would: help, build, status, why, graph, list,
clean, logs, the project options, and the exit statuses."""

from __future__ import annotations

import re

import pytest

from makeflow import __version__

PIPELINE = """\
    from makeflow import config, rule

    rule("prepare", inputs="data/raw.csv", outputs="data/clean.csv", shell="cp {inputs} {outputs}")
    rule("train", inputs="data/clean.csv", outputs="model.txt",
         params={"alpha": config["train"]["alpha"]},
         shell="echo alpha={params.alpha} | cat - {inputs} > {outputs}")
    rule("report", inputs="model.txt", outputs="report.txt",
         shell="echo training done; cp {inputs} {outputs}", default=True)
"""

STEPS = ("prepare", "train", "report")


@pytest.fixture
def pipeline(project):
    """prepare -> train -> report, shell steps only, alpha = 0.1 in makeflow.toml."""
    project.rules(PIPELINE)
    project.write("makeflow.toml", "[train]\nalpha = 0.1\n")
    project.write("data/raw.csv", "x,y\n1,2\n")
    return project


@pytest.fixture
def built(pipeline):
    """The pipeline after one successful build."""
    done = pipeline.run("build")
    assert done.code == 0, done.text
    return pipeline


def says(out: str, step: str, reason: str) -> bool:
    """Whether one line of `out` names both the step and the reason."""
    return any(re.search(rf"\b{re.escape(step)}\b", line) and reason in line
               for line in out.splitlines())


# Help and version


def option_help(text: str, flag: str) -> str | None:
    """The description of `flag` in click's help text, without [default: ...] notes."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        cells = re.split(r"\s{2,}", line.strip(), maxsplit=1)
        if flag not in re.split(r"[ ,/]+", cells[0]):
            continue
        description = cells[1] if len(cells) > 1 else ""
        for more in lines[i + 1:]:
            if not more.startswith(" " * 8) or more.strip().startswith("-"):
                break
            description += " " + more.strip()
        return re.sub(r"\[[^\]]*\]", "", description).strip()
    return None


def test_version(project):
    done = project.run("--version")

    assert done.code == 0
    assert __version__ in done.out


def test_help_lists_every_command(project):
    done = project.run("--help")

    assert done.code == 0
    for command in ("build", "status", "why", "graph", "list", "clean", "logs", "watch",
                    "pull", "push", "cache", "runs", "report", "metrics"):
        assert re.search(rf"^\s+{command}\b", done.out, re.M), command
    listed = re.findall(r"^  (\w+)  ", done.out.partition("Commands:")[2], re.M)
    assert listed == sorted(listed)


@pytest.mark.parametrize(("typed", "meant"), [("bild", "build"), ("rnus", "runs"),
                                              ("metric", "metrics")])
def test_a_mistyped_command_gets_a_suggestion(project, typed, meant):
    """The commands whose modules load only when used are suggested like the others."""
    done = project.run(typed)

    assert done.code == 2
    assert f"No such command '{typed}'. Did you mean '{meant}'?" in done.err


@pytest.mark.parametrize(("command", "flags"), [
    ("build", ["-j", "-n", "-B", "-k", "--set", "-f", "-C"]),
    ("status", ["--check", "--set", "-f", "-C"]),
    ("why", ["--set", "-f", "-C"]),
    ("graph", ["--format", "--set", "-f", "-C"]),
    ("list", ["-f", "-C"]),
    ("clean", ["-n", "-f", "-C"]),
    ("logs", ["-f", "-C"]),
    ("watch", ["-j", "--debounce", "--poll", "--schedule", "--set", "-f", "-C"]),
])
def test_help_of_each_command_describes_its_options(project, command, flags):
    done = project.run(command, "--help")

    assert done.code == 0, done.text
    for flag in flags:
        description = option_help(done.out, flag)
        assert description is not None, f"{command} --help does not list {flag}"
        assert re.search(r"[A-Za-z]{3,}", description), \
            f"{command} --help lists {flag} without saying what it does"


# build


def test_dry_run_runs_nothing_and_lists_each_step_with_its_reason(pipeline):
    done = pipeline.run("build", "-n")

    assert done.code == 0, done.text
    for step in STEPS:
        assert says(done.out, step, "never ran"), done.out
    assert not pipeline.exists("data/clean.csv")
    assert not pipeline.exists("model.txt")
    assert not pipeline.exists("report.txt")


def test_a_second_build_runs_nothing_and_force_reruns_every_step(built):
    assert "ran 0" in built.run("build").out

    done = built.run("build", "-B")

    assert done.code == 0, done.text
    assert "ran 3" in done.out


def test_output_to_a_pipe_is_one_plain_line_per_step_and_a_summary(pipeline):
    done = pipeline.run("build")

    assert done.code == 0, done.text
    assert "\x1b[" not in done.out
    lines = done.out.splitlines()
    for step in STEPS:
        mentions = [line for line in lines if re.search(rf"\b{step}\b", line)]
        assert len(mentions) == 1, f"{step}: {mentions}"
    assert any(line.startswith("ran 3") for line in lines), done.out


# status


def test_status_before_any_build_says_never_ran_and_exits_0(pipeline):
    done = pipeline.run("status")

    assert done.code == 0, done.text
    for step in STEPS:
        assert says(done.out, step, "never ran"), done.out


def test_status_check_exits_1_when_stale_and_0_when_fresh(pipeline):
    assert pipeline.run("status", "--check").code == 1
    assert pipeline.run("build").code == 0

    done = pipeline.run("status", "--check")

    assert done.code == 0, done.text
    for step in STEPS:
        assert not says(done.out, step, "stale"), done.out


def test_status_names_a_changed_input_and_the_steps_downstream(built):
    built.write("data/raw.csv", "x,y\n1,30\n")

    done = built.run("status")

    assert done.code == 0, done.text
    assert says(done.out, "prepare", "input changed: data/raw.csv"), done.out
    assert says(done.out, "train", "upstream: prepare"), done.out
    assert says(done.out, "report", "upstream: train"), done.out


def test_status_names_a_changed_command(built):
    built.rules(PIPELINE.replace("cp {inputs} {outputs}\")", "cat {inputs} > {outputs}\")"))

    done = built.run("status")

    assert says(done.out, "prepare", "command changed"), done.out


def test_status_names_a_parameter_changed_with_set(built):
    done = built.run("status", "--set", "train.alpha=0.3")

    assert says(done.out, "train", "parameter alpha: 0.1 → 0.3"), done.out


def test_status_names_a_parameter_changed_in_makeflow_toml(built):
    built.write("makeflow.toml", "[train]\nalpha = 0.3\n")

    done = built.run("status")

    assert says(done.out, "train", "parameter alpha: 0.1 → 0.3"), done.out


def test_status_names_a_missing_output(built):
    (built.root / "model.txt").unlink()

    done = built.run("status")

    assert says(done.out, "train", "output missing: model.txt"), done.out


def test_status_names_an_output_modified_by_hand(built):
    built.write("model.txt", "a better model, by hand\n")

    done = built.run("status")

    assert says(done.out, "train", "output modified: model.txt"), done.out


PYTHON_STEP = """\
    from makeflow import config, rule

    @rule(inputs="data/raw.csv", outputs="model.txt", params={"alpha": config["train"]["alpha"]})
    def train(step):
        with open(step.outputs[0], "w") as f:
            f.write(str(step.params.alpha))
"""


def test_status_names_changed_code_of_a_python_step(pipeline):
    pipeline.rules(PYTHON_STEP)
    assert pipeline.run("build").code == 0
    pipeline.rules(PYTHON_STEP.replace("str(step.params.alpha)", "repr(step.params.alpha)"))

    done = pipeline.run("status")

    assert says(done.out, "train", "code of train changed"), done.out


# why


def test_why_a_source_file(built):
    done = built.run("why", "data/raw.csv")

    assert done.code == 0, done.text
    assert "source file" in done.out


def test_why_a_made_file_stale_then_fresh(pipeline):
    stale = pipeline.run("why", "model.txt")
    assert stale.code == 0, stale.text
    assert "train" in stale.out
    assert "stale" in stale.out
    assert "never ran" in stale.out

    assert pipeline.run("build").code == 0
    fresh = pipeline.run("why", "model.txt")

    assert fresh.code == 0, fresh.text
    assert "train" in fresh.out
    assert "up to date" in fresh.out
    assert "stale" not in fresh.out


# graph and list


@pytest.mark.parametrize(("fmt", "start"), [("text", ""), ("dot", "digraph"),
                                            ("mermaid", "flowchart")])
def test_graph_shows_the_steps_and_files(pipeline, fmt, start):
    done = pipeline.run("graph", "--format", fmt)

    assert done.code == 0, done.text
    assert done.out.startswith(start)
    for name in (*STEPS, "data/raw.csv", "data/clean.csv", "model.txt", "report.txt"):
        assert name in done.out, f"{name} missing from:\n{done.out}"


def test_list_shows_each_rule_its_kind_its_files_and_the_default(project):
    project.rules("""\
        from makeflow import rule

        rule("prepare", inputs="raw.csv", outputs="clean.csv", shell="cp {inputs} {outputs}")

        @rule(inputs="clean.csv", outputs="model.txt")
        def train(step):
            pass

        rule("all", inputs=["model.txt"], default=True)
    """)

    done = project.run("list")

    assert done.code == 0, done.text
    for name in ("prepare", "train", "all", "raw.csv", "clean.csv", "model.txt"):
        assert name in done.out
    assert says(done.out, "prepare", "shell"), done.out
    assert says(done.out, "train", "python"), done.out
    assert says(done.out, "all", "alias"), done.out
    defaults = [line for line in done.out.splitlines() if "default" in line]
    assert len(defaults) == 1 and "all" in defaults[0], done.out


# clean


def test_clean_removes_made_files_keeps_sources_and_hand_edited_outputs(built):
    built.write("report.txt", "edited by hand\n")

    done = built.run("clean")

    assert done.code == 0, done.text
    assert not built.exists("data/clean.csv")
    assert not built.exists("model.txt")
    assert built.read("data/raw.csv") == "x,y\n1,2\n"
    assert built.read("report.txt") == "edited by hand\n"
    assert says(done.out, "report.txt", "kept"), done.out


def test_build_after_clean_rebuilds(built):
    assert built.run("clean").code == 0

    done = built.run("build")

    assert done.code == 0, done.text
    assert "ran 0, restored 3" in done.out  # from the run cache
    assert built.exists("data/clean.csv")
    assert built.read("report.txt").startswith("alpha=0.1")


# logs


@pytest.mark.parametrize("name", ["report", "report.txt"])
def test_logs_prints_what_the_step_printed(built, name):
    done = built.run("logs", name)

    assert done.code == 0, done.text
    assert "training done" in done.out


def test_logs_of_an_unknown_step_is_a_user_error(built):
    done = built.run("logs", "nosuchstep")

    assert done.code == 2, done.text
    assert "nosuchstep" in done.err
    assert "Traceback" not in done.text


# -C, -f and --set


def test_directory_option_builds_a_project_in_another_folder(project):
    project.write("proj/Makeflow.py", PIPELINE)
    project.write("proj/makeflow.toml", "[train]\nalpha = 0.1\n")
    project.write("proj/data/raw.csv", "x,y\n1,2\n")

    done = project.run("build", "-C", "proj")

    assert done.code == 0, done.text
    assert project.read("proj/report.txt").startswith("alpha=0.1")
    assert not project.exists("report.txt")


def test_file_option_uses_another_rules_file_and_its_folder(project):
    project.write("pipelines/flow.py", """\
        from makeflow import rule

        rule("hello", outputs="hello.txt", shell="echo hello > {outputs}")
    """)

    done = project.run("build", "-f", "pipelines/flow.py")

    assert done.code == 0, done.text
    assert project.read("pipelines/hello.txt") == "hello\n"


def test_set_changes_the_parameter_a_shell_step_sees(pipeline):
    done = pipeline.run("build", "--set", "train.alpha=0.3")

    assert done.code == 0, done.text
    assert pipeline.read("model.txt").startswith("alpha=0.3\n")
    assert pipeline.read("makeflow.toml") == "[train]\nalpha = 0.1\n"


def test_set_changes_the_parameter_a_python_step_sees(pipeline):
    pipeline.rules(PYTHON_STEP)

    done = pipeline.run("build", "--set", "train.alpha=0.3")

    assert done.code == 0, done.text
    assert pipeline.read("model.txt") == "0.3"


@pytest.mark.parametrize(("value", "initial", "seen"), [
    ("[1,2]", "[0]", "1\n2\n"),
    ("hello", '"x"', "hello\n"),
    ('"two words"', '"x"', "two words\n"),
    ("7", "0", "7\n"),
])
def test_set_values_are_toml_literals(project, value, initial, seen):
    """Each value replaces one of the same type (--set may not change a value's type)."""
    project.rules("""\
        from makeflow import config, rule

        rule("show", outputs="show.txt", params={"v": config["a"]["v"]},
             shell="printf '%s\\\\n' {params.v} > {outputs}")
    """)
    project.write("makeflow.toml", f"[a]\nv = {initial}\n")

    done = project.run("build", "--set", f"a.v={value}")

    assert done.code == 0, done.text
    assert project.read("show.txt") == seen


# Exit statuses and -k

FAILING = """\
    from makeflow import rule

    rule("all", inputs=["bad.txt", "after.txt"], default=True)
    rule("bad", outputs="bad.txt", shell="sh -c 'echo broken; exit 1'")
    rule("before", outputs="before.txt", shell="echo ok > {outputs}")
    rule("after", inputs="before.txt", outputs="after.txt", shell="cp {inputs} {outputs}")
"""


def test_exit_status_is_0_on_success(pipeline):
    assert pipeline.run("build").code == 0


def test_exit_status_is_2_for_a_user_error(pipeline):
    done = pipeline.run("build", "no-such-target")

    assert done.code == 2, done.text


def test_without_keep_going_a_failure_stops_steps_not_yet_started(project):
    project.rules(FAILING)

    done = project.run("build", "-j", "1")

    assert done.code == 1, done.text
    assert "bad" in done.out
    assert not project.exists("bad.txt")
    assert not project.exists("after.txt")  # ready only after "bad" was queued


def test_keep_going_runs_independent_steps_and_still_exits_1(project):
    project.rules(FAILING)

    done = project.run("build", "-j", "1", "-k")

    assert done.code == 1, done.text
    assert not project.exists("bad.txt")
    assert project.read("before.txt") == "ok\n"
    assert project.read("after.txt") == "ok\n"


def test_keep_going_long_option(project):
    project.rules(FAILING)

    done = project.run("build", "-j", "1", "--keep-going")

    assert done.code == 1, done.text
    assert project.exists("after.txt")
