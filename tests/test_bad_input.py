"""Unusual and broken input: odd file names work, bad ones get exit status 2 and a clear
message, and random garbage never produces a traceback."""

from __future__ import annotations

import os
import subprocess
import sys

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st


def ran(result) -> set[str]:
    return set(result.ran)


def test_an_input_that_is_a_broken_symlink_is_a_missing_file(project):
    os.symlink("nowhere.csv", project.root / "data.csv")
    project.rules('from makeflow import rule\n'
                  'rule("s", inputs="data.csv", outputs="out.txt",\n'
                  '     shell="cp {inputs} {outputs}")\n')
    done = project.run("build")
    assert done.code == 2
    assert "no rule makes data.csv" in done.err and "Traceback" not in done.text


def test_a_file_name_with_a_newline_and_a_dollar(project):
    name = "odd\nname $HOME `x`.txt"
    (project.root / name).write_text("content")
    project.rules(f'from makeflow import rule\n'
                  f'rule("s", inputs={name!r}, outputs="out.txt",\n'
                  f'     shell="cat {{inputs}} > {{outputs}}")\n')
    assert ran(project.build()) == {"s"}
    assert project.read("out.txt") == "content"
    assert ran(project.build()) == set()


def test_a_file_name_that_is_not_utf8(project):
    raw = b"caf\xe9.txt"  # latin-1, not valid UTF-8
    with open(os.path.join(os.fsencode(project.root), raw), "wb") as f:
        f.write(b"bytes")
    name = os.fsdecode(raw)
    project.rules(f'from makeflow import rule\n'
                  f'rule("s", inputs={name!r}, outputs="out.txt",\n'
                  f'     shell="cat {{inputs}} > {{outputs}}")\n')
    done = project.run("build")
    assert done.code == 0, done.text
    assert project.read("out.txt") == "bytes"
    assert "nothing to do" in project.run("build").out


def test_an_output_outside_the_project_is_refused(project):
    project.rules('from makeflow import rule\n'
                  'rule("s", outputs="../escape.txt", shell="touch {outputs}")\n')
    done = project.run("build")
    assert done.code == 2 and "outside the project folder" in done.err
    assert not (project.root.parent / "escape.txt").exists()


def test_an_empty_wildcard_pattern_is_refused(project):
    project.rules('from makeflow import rule\n'
                  'rule("s", inputs="in/{x,}.txt", outputs="out/{x,}.txt",\n'
                  '     shell="cp {inputs} {outputs}")\n')
    done = project.run("build", "out/a.txt")
    assert done.code == 2 and "empty wildcard pattern" in done.err


def test_a_non_utf8_makeflow_toml(project):
    (project.root / "makeflow.toml").write_bytes(b"a = '\xff'\n")
    project.rules('from makeflow import rule, config\n'
                  'rule("s", outputs="o", shell="touch {outputs}")\n')
    done = project.run("build")
    assert done.code == 2 and "makeflow.toml" in done.err and "Traceback" not in done.text


def run_makeflow(folder, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "makeflow", *args], cwd=folder,
                          capture_output=True, text=True, timeout=60)


GARBAGE_SETTINGS = settings(max_examples=int(os.environ.get("MAKEFLOW_FUZZ_EXAMPLES", "12")),
                            deadline=None,
                            suppress_health_check=[HealthCheck.function_scoped_fixture])

# Fragments that look like a rules file, so garbage reaches past the parser sometimes.
PIECES = st.sampled_from([
    "from makeflow import rule, config, expand, glob_wildcards\n", "rule(", ")", "\n",
    '"a"', '"out.txt"', 'inputs=', 'outputs=', 'shell=', '"cp {inputs} {outputs}"', ", ",
    "[", "]", "{", "}", "@rule(", "def f(step):\n    pass\n", 'config["x"]', "None", "1/0",
    "import os\n", "params={", "'{wildcards.x}'", '"{x}/y"', "default=True", "lambda: 0",
    "raise SystemExit(3)\n", "exit()\n", "\x00", "é", "\\", "'''",
])


@GARBAGE_SETTINGS
@given(st.one_of(st.text(max_size=200), st.lists(PIECES, max_size=25).map("".join)))
def test_garbage_makeflow_py_exits_0_or_2_without_a_traceback(tmp_path, source):
    (tmp_path / "Makeflow.py").write_text(source, encoding="utf-8", errors="surrogateescape")
    for args in (["build", "-j", "1"], ["status"]):
        done = run_makeflow(tmp_path, *args)
        assert done.returncode in (0, 1, 2), done.stderr
        assert "Traceback" not in done.stdout + done.stderr
        if done.returncode == 1:  # a step ran and failed: that is the step's own error
            assert "FAILED" in done.stdout


@GARBAGE_SETTINGS
@given(st.text(max_size=120))
def test_garbage_makeflow_toml_exits_0_or_2_without_a_traceback(tmp_path, text):
    (tmp_path / "makeflow.toml").write_text(text, encoding="utf-8", errors="surrogateescape")
    (tmp_path / "Makeflow.py").write_text(
        'from makeflow import rule, config\nrule("s", outputs="o", shell="touch {outputs}")\n')
    done = run_makeflow(tmp_path, "build", "--set", "x=1")
    assert done.returncode in (0, 2), done.stderr
    assert "Traceback" not in done.stdout + done.stderr
