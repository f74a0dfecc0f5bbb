"""Shell steps: every failing line or pipeline stage fails the step, the shell is a
setting, any length of command runs, and placeholders are quoted whatever they say."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest


def rules(project, command: str, **extra: str) -> None:
    options = "".join(f", {k}={v}" for k, v in extra.items())
    project.rules(f"from makeflow import rule\n"
                  f"rule('s', inputs='in.txt', outputs='out.txt', shell={command!r}{options})\n")


@pytest.mark.parametrize("command", [
    "cp missing.txt x; echo ok > {outputs}",
    "cp missing.txt x\necho ok > {outputs}",
    "false | cat > {outputs}",
    "echo ok > {outputs}; cat missing.txt | sort > /dev/null",
    "echo $UNSET_VARIABLE_OF_NOBODY > {outputs}",
])
def test_a_failing_line_or_stage_fails_the_step(project, command):
    project.write("in.txt", "x")
    rules(project, command)
    done = project.run("build")
    assert done.code == 1, done.text
    assert "s FAILED" in done.text
    assert not project.exists("out.txt")
    assert "never ran" in project.run("status").out


def test_the_default_shell_is_bash(project):
    project.write("in.txt", "x")
    rules(project, "echo ${{BASH_VERSION:+bash}} > {outputs}")
    assert project.run("build").code == 0, project.run("logs", "s").text
    assert project.read("out.txt") == "bash\n"


def test_the_shell_and_its_prefix_are_settings(project):
    project.write("in.txt", "x")
    project.write("makeflow.toml", '[makeflow]\nshell = "sh"\nshell_prefix = ""\n')
    rules(project, "cp missing.txt x; echo ${{BASH_VERSION:-sh}} > {outputs}")
    done = project.run("build")
    assert done.code == 0, done.text
    assert project.read("out.txt") == "sh\n"

    project.write("makeflow.toml", '[makeflow]\nshell_prefix = "set -e; X=from-prefix;"\n')
    rules(project, "false | cat; echo $X > {outputs}")
    assert project.run("build", "-B").code == 0
    assert project.read("out.txt") == "from-prefix\n"


def test_a_prefix_that_sets_things_up_runs_before_a_plain_command_too(project):
    project.write("in.txt", "x")
    project.write("bin/tool", "#!/bin/sh\necho tool > \"$1\"\n")
    (project.root / "bin/tool").chmod(0o755)
    project.write("makeflow.toml", '[makeflow]\nshell_prefix = "set -eu; PATH=$PWD/bin:$PATH;"\n')
    rules(project, "tool out.txt")
    done = project.run("build")
    assert done.code == 0, done.text
    assert project.read("out.txt") == "tool\n"


@pytest.mark.parametrize("toml, words", [
    ('[makeflow]\nshell = 3\n', "shell"),
    ('[makeflow]\nshell = ""\n', "shell"),
    ('[makeflow]\nshell_prefix = ["set -e"]\n', "shell_prefix"),
    ('makeflow = 1\n', "[makeflow]"),
])
def test_bad_shell_settings_are_refused_naming_the_key(project, toml, words):
    project.write("in.txt", "x")
    project.write("makeflow.toml", toml)
    rules(project, "cp {inputs} {outputs}")
    for command in (("build",), ("status",), ("list",)):
        done = project.run(*command)
        assert done.code == 2, done.text
        assert words in done.text and "makeflow.toml" in done.text
        assert "Traceback" not in done.text


def test_set_cannot_change_makeflows_own_settings(project):
    project.write("in.txt", "x")
    project.write("makeflow.toml", '[makeflow]\nshell = "bash"\n')
    rules(project, "cp {inputs} {outputs}")
    done = project.run("build", "--set", "makeflow.shell=sh")
    assert done.code == 2, done.text
    assert "[makeflow]" in done.text and "Traceback" not in done.text


def test_a_command_longer_than_the_systems_limit_for_one_argument_runs(project):
    names = [f"data/sample_with_a_rather_long_name_{i:05d}.txt" for i in range(4000)]
    for name in names:
        project.write(name, name[-9:-4] + "\n")
    project.rules("from makeflow import rule\n"
                  f"NAMES = {names!r}\n"
                  "rule('gather', inputs=NAMES, outputs='all.txt', "
                  "shell='cat {inputs} > {outputs}')\n"
                  "rule('plain', inputs=NAMES, outputs='n.txt', "
                  "shell='python count.py {outputs} {inputs}')\n")
    project.write("count.py", "import sys\nopen(sys.argv[1], 'w').write(str(len(sys.argv)))\n")
    assert sum(len(n) + 1 for n in names) > 128 * 1024
    done = project.run("build", "gather", "n.txt")
    assert done.code == 0, done.text
    assert project.read("all.txt").split() == [n[-9:-4] for n in names]
    assert project.read("n.txt") == str(len(names) + 2)


def test_a_format_spec_applies_before_quoting(project):
    project.write("in.txt", "x")
    project.rules("from makeflow import rule\n"
                  "rule('s', inputs='in.txt', outputs='out.txt', params={'n': 7, 'x': 0.5},\n"
                  "     shell='echo {params.n:03d} {params.x:.2f} {params.n:>4} > {outputs}')\n")
    done = project.run("build")
    assert done.code == 0, done.text
    assert project.read("out.txt") == "007 0.50    7\n"


@pytest.mark.parametrize("command", ["status", "list", "build"])
@pytest.mark.parametrize("placeholder", [
    "{params.n:03d}",  # a text parameter
    "{wildcards.n:03d}",  # wildcards are text
    "{inputs[data]}",  # a list subscripted by a name
    "{params.n[x]}",
    "{inputs.nope}",
])
def test_a_placeholder_that_cannot_be_filled_is_refused_when_the_rules_load(
        project, command, placeholder):
    project.write("data.txt", "x")
    project.rules("from makeflow import rule\n"
                  "rule('up', inputs={'data': 'data.txt'}, outputs='out/{n}.txt',\n"
                  "     params={'n': 'seven'}, shell='echo " + placeholder + " > {outputs}')\n"
                  "rule('all', inputs=['out/a.txt'], default=True)\n")
    done = project.run(command)
    assert done.code == 2, done.text
    assert "rule up" in done.text and "placeholder" in done.text
    assert "Traceback" not in done.text


def test_watch_refuses_a_placeholder_that_cannot_be_filled(project):
    project.write("data.txt", "x")
    project.rules("from makeflow import rule\n"
                  "rule('up', inputs=['data.txt'], outputs='out.txt',\n"
                  "     shell='cat {inputs[data]} > {outputs}')\n")
    proc = subprocess.Popen([sys.executable, "-m", "makeflow", "watch", "--poll"],
                            cwd=project.root, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        out, _ = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
    assert proc.returncode == 2, out
    assert "rule up" in out and "Traceback" not in out


HOSTILE = "x;touch pwned;echo $(touch pwned2)'\""


@pytest.mark.parametrize("field, expected", [
    ("{wildcards.n!s}", HOSTILE),
    ("{wildcards.n!r}", repr(HOSTILE)),
    ("{wildcards.n!a}", ascii(HOSTILE)),
    ("{params.p!s}", HOSTILE),
    ("{params.p!r}", repr(HOSTILE)),
    ("{params.l!s}", str([HOSTILE])),
    ("{wildcards.n:>40}", HOSTILE.rjust(40)),
    ("{wildcards.n.__class__}", "<class 'str'>"),
])
def test_a_conversion_or_spec_never_bypasses_shell_quoting(project, field, expected):
    project.write("Makeflow.py",
                  "from makeflow import rule\n"
                  f"rule('up', outputs='out/{{n}}.txt', params={{'p': {HOSTILE!r}, "
                  f"'l': [{HOSTILE!r}]}},\n"
                  f"     shell='printf %s {field} > {{outputs}}')\n")
    target = f"out/{HOSTILE}.txt"
    done = project.run("build", target)
    assert done.code == 0, done.text
    assert project.read(target) == expected
    assert not project.exists("pwned") and not project.exists("pwned2")


def test_a_killed_shell_step_stops_quickly(project):
    """bash -c runs the last command in place: a timeout stops the whole step."""
    project.write("in.txt", "x")
    rules(project, "sleep 30; echo > {outputs}", timeout="'1s'")
    started = time.monotonic()
    done = project.run("build")
    assert done.code == 1 and "timed out" in done.text
    assert time.monotonic() - started < 20
