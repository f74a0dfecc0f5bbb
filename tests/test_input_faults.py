"""Odd input that must get one clear paragraph and exit status 2, never a traceback: NUL
bytes, a folder or file where makeflow expects the other, a --set value of the wrong type.
Each runs the real CLI as a subprocess on real files."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

COPY = ('from makeflow import rule\n'
        'rule("a", inputs="in.txt", outputs="a.txt", shell="cp {inputs} {outputs}")\n')


def assert_user_error(done, *words: str) -> None:
    assert done.code == 2, done.text
    assert "Traceback" not in done.text
    assert done.err.startswith("makeflow: error: "), done.err
    for word in words:
        assert word in done.err, done.err


@pytest.mark.parametrize("command", [["build"], ["status"], ["list"]])
def test_a_nul_byte_in_makeflow_py_names_its_line(project, command):
    project.write("in.txt", "x")
    (project.root / "Makeflow.py").write_bytes(COPY.encode() + b"# a \x00 here\n")
    assert_user_error(project.run(*command), "Makeflow.py:3", "NUL byte")


@pytest.mark.parametrize("where", ["inputs", "outputs"])
def test_a_nul_byte_in_a_path_names_the_rule(project, where):
    project.write("in.txt", "x")
    rules = COPY.replace('"in.txt"' if where == "inputs" else '"a.txt"', '"bad\\x00.txt"')
    project.rules(rules)
    assert_user_error(project.run("build"), "Makeflow.py:2", "rule a", "NUL byte", where)


def test_a_folder_named_makeflow_toml(project):
    project.write("in.txt", "x")
    project.rules(COPY)
    (project.root / "makeflow.toml").mkdir()
    assert_user_error(project.run("build"), "makeflow.toml", "folder")


@pytest.mark.parametrize("command", [["build"], ["status"], ["build", "-n"], ["clean"]])
def test_a_file_named_dot_makeflow(project, command):
    project.write("in.txt", "x")
    project.rules(COPY)
    project.write(".makeflow", "not a folder")
    assert_user_error(project.run(*command), ".makeflow", "is a file")
    assert project.read(".makeflow") == "not a folder"


TOML = """
name = "run"
window = 3
alpha = 0.5
fast = false
sizes = [1, 2]
[train]
depth = 4
"""

SHOW = """
from makeflow import rule, config
rule("show", outputs="shown.txt", params={"all": dict(config)},
     shell="echo {params.all} > {outputs}")
"""


@pytest.mark.parametrize("item, key, kind", [
    ("window=0,5", "window", "integer"),
    ("window=0.5", "window", "integer"),
    ("window=true", "window", "integer"),
    ("train.depth=deep", "train.depth", "integer"),
    ("alpha=fast", "alpha", "float"),
    ("fast=yes", "fast", "boolean"),
    ("sizes=3", "sizes", "array"),
    ("train=1", "train", "table"),
])
def test_set_of_the_wrong_type_names_the_key_and_the_type(project, item, key, kind):
    project.write("makeflow.toml", TOML)
    project.rules(SHOW)
    done = project.run("build", "--set", item)
    assert_user_error(done, f"--set {key}", kind)
    assert not project.exists("shown.txt")


@pytest.mark.parametrize("item, shown", [
    ("window=7", "'window': 7"),
    ("alpha=1", "'alpha': 1.0"),
    ("name=123", "'name': '123'"),
    ("name=two words", "'name': 'two words'"),
    ("fast=true", "'fast': True"),
    ("sizes=[3, 4]", "'sizes': [3, 4]"),
])
def test_set_of_the_right_type_takes_the_value(project, item, shown):
    project.write("makeflow.toml", TOML)
    project.rules(SHOW)
    done = project.run("build", "--set", item)
    assert done.code == 0, done.text
    assert shown in project.read("shown.txt")


KINDS = {"integer": ("3", int), "float": ("0.5", float), "string": ('"run"', str),
         "boolean": ("false", bool), "array": ("[1, 2]", list)}


@settings(max_examples=300, deadline=None)
@given(kind=st.sampled_from(sorted(KINDS)), text=st.one_of(
    st.text(max_size=12), st.integers().map(str), st.floats(allow_nan=False).map(str),
    st.sampled_from(["true", "false", "[1]", '"q"', "0,5", "1e3", "inf", "{a = 1}"])))
def test_set_never_changes_a_key_s_type(tmp_path_factory, kind, text):
    """For every value text: --set gives the key a value of its type, or says it cannot."""
    from makeflow.define.config import load_config
    from makeflow.errors import UserError

    root = tmp_path_factory.mktemp("cfg")
    literal, expected = KINDS[kind]
    (root / "makeflow.toml").write_text(f"key = {literal}\n", encoding="utf-8")
    try:
        got = load_config(root, [f"key={text}"])["key"]
    except UserError as exc:
        assert "--set key" in str(exc) and kind in str(exc)
        return
    assert type(got) is expected, (text, got)
