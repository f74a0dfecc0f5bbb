"""What a Python step's fingerprint covers: given a built pipeline of Python steps, when one
value the step can reach changes, then that step (and only it) runs again; when nothing
changes, nothing runs, even in another process with another hash seed."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest


def ran(result) -> set[str]:
    return set(result.ran)


# One rule per kind of value; each writes what it reads, so a rerun shows up in its output.
KINDS = '''
import dataclasses
import enum
import functools
import re
from pathlib import Path

from makeflow import rule

LIST = [1, 2, 3]
WORD = re.compile(r"[a-z]+")
DICT = {"a": 1, "b": [2, 3]}
SET = {"x", "y", "z"}
NESTED = {"k": [1, {"deep": (2, frozenset({"p", "q"}))}]}
FROM_SET = {name: len(name) for name in {"alpha", "beta", "gamma"}}


class Scale:
    factor = 2

    def apply(self, x):
        return x * self.factor


@dataclasses.dataclass(frozen=True)
class Settings:
    n: int = 1
    names: tuple = ("a", "b")


SETTINGS = Settings(n=1)


class Color(enum.Enum):
    RED = 1
    BLUE = 2


CHOICE = Color.RED
WHERE = Path("some/where.txt")


@functools.cache
def cached(x):
    return x + 1


def write(step, value):
    step.outputs[0].write_text(repr(value))


@rule(outputs="list.txt")
def use_list(step):
    write(step, LIST)


@rule(outputs="dict.txt")
def use_dict(step):
    write(step, DICT)


@rule(outputs="set.txt")
def use_set(step):
    write(step, sorted(SET))


@rule(outputs="nested.txt")
def use_nested(step):
    write(step, NESTED["k"][1]["deep"][0])


@rule(outputs="from_set.txt")
def use_from_set(step):
    write(step, sorted(FROM_SET.items()))


@rule(outputs="class.txt")
def use_class(step):
    write(step, Scale().apply(3))


@rule(outputs="dataclass.txt")
def use_dataclass(step):
    write(step, SETTINGS.n)


@rule(outputs="enum.txt")
def use_enum(step):
    write(step, CHOICE.value)


@rule(outputs="path.txt")
def use_path(step):
    write(step, str(WHERE))


@rule(outputs="cached.txt")
def use_cached(step):
    write(step, cached(1))


@rule(outputs="regex.txt")
def use_regex(step):
    write(step, WORD.findall("ab1cd"))


@rule(outputs="plain.txt")
def plain(step):
    write(step, "plain")


rule("all", default=True, inputs=[
    f"{name}.txt" for name in ("list", "dict", "set", "nested", "from_set", "class",
                               "dataclass", "enum", "path", "cached", "regex", "plain")])
'''

EDITS = [
    ("use_list", "LIST = [1, 2, 3]", "LIST = [1, 2, 4]"),
    ("use_dict", '"b": [2, 3]', '"b": [2, 4]'),
    ("use_set", 'SET = {"x", "y", "z"}', 'SET = {"x", "y", "w"}'),
    ("use_nested", '(2, frozenset({"p", "q"}))', '(2, frozenset({"p", "r"}))'),
    ("use_from_set", '"beta", "gamma"}', '"beta", "delta"}'),
    ("use_class", "factor = 2", "factor = 5"),
    ("use_class", "return x * self.factor", "return x * self.factor + 1"),
    ("use_dataclass", "SETTINGS = Settings(n=1)", "SETTINGS = Settings(n=2)"),
    ("use_dataclass", 'names: tuple = ("a", "b")', 'names: tuple = ("a", "c")'),
    ("use_enum", "RED = 1", "RED = 3"),
    ("use_path", '"some/where.txt"', '"some/else.txt"'),
    ("use_cached", "return x + 1", "return x + 2"),
    ("use_regex", 'r"[a-z]+"', 'r"[a-c]+"'),
]


def test_editing_any_module_level_value_reruns_only_its_users(project):
    project.rules(KINDS)
    first = project.build()
    assert len(ran(first)) == 12
    assert ran(project.build()) == set()
    text = KINDS
    for step, old, new in EDITS:
        assert old in text, old
        text = text.replace(old, new)
        project.rules(text)
        assert ran(project.build()) == {step}, (old, new)
        assert ran(project.build()) == set(), (old, new)


FACTORY = '''
import functools

from makeflow import rule


def make_rule(name, n):
    @rule(name, outputs=f"{name}.txt")
    def step(s):
        s.outputs[0].write_text(str(n))


make_rule("one", 1)
make_rule("two", 2)


def shout(text):
    def run(step):
        step.outputs[0].write_text(text)
    return run


rule("closed", outputs="closed.txt")(shout("hi"))
rule("lam", outputs="lam.txt")(lambda step: step.outputs[0].write_text("L1"))
SUFFIX = "!"
rule("lam_closed", outputs="lam_closed.txt")(
    (lambda v: lambda step: step.outputs[0].write_text(v + SUFFIX))("v1"))

SIZES = [1, 2]


@rule(outputs="defaults.txt")
def defaults(step, sizes=SIZES, *, scale=3):
    step.outputs[0].write_text(str([s * scale for s in sizes]))


def write(n, step, word="w"):
    step.outputs[0].write_text(f"{n} {word}")


rule("part", outputs="part.txt")(functools.partial(write, 1, word="a"))


class Writer:
    def __init__(self, n):
        self.n = n

    def __call__(self, step):
        step.outputs[0].write_text(str(self.n))


rule("obj", outputs="obj.txt")(Writer(1))


class Greeter:
    def __init__(self, word):
        self.word = word

    def greet(self, step):
        step.outputs[0].write_text(self.word)


rule("bound", outputs="bound.txt")(Greeter("hello").greet)
rule("every", default=True, inputs=[
    f"{name}.txt" for name in ("one", "two", "closed", "lam", "lam_closed", "defaults",
                               "part", "obj", "bound")])
'''

FACTORY_EDITS = [
    ("two", 'make_rule("two", 2)', 'make_rule("two", 3)'),
    ("closed", 'shout("hi")', 'shout("ho")'),
    ("lam", '"L1"', '"L2"'),
    ("lam_closed", '("v1")', '("v2")'),
    ("lam_closed", 'SUFFIX = "!"', 'SUFFIX = "?"'),
    ("defaults", "SIZES = [1, 2]", "SIZES = [1, 3]"),
    ("defaults", "scale=3", "scale=4"),
    ("part", 'functools.partial(write, 1, word="a")', 'functools.partial(write, 2, word="a")'),
    ("part", 'functools.partial(write, 2, word="a")', 'functools.partial(write, 2, word="b")'),
    ("part", 'write_text(f"{n} {word}")', 'write_text(f"{n}-{word}")'),
    ("obj", "Writer(1)", "Writer(2)"),
    ("obj", "write_text(str(self.n))", "write_text(str(self.n + 1))"),
    ("bound", 'Greeter("hello")', 'Greeter("bye")'),
]


def test_closures_lambdas_defaults_partials_and_callable_objects_count(project):
    project.rules(FACTORY)
    assert len(ran(project.build())) == 9
    assert ran(project.build()) == set()
    text = FACTORY
    for step, old, new in FACTORY_EDITS:
        text = text.replace(old, new)
        assert text != project.read("Makeflow.py"), old
        project.rules(text)
        assert ran(project.build()) == {step}, (old, new)
    assert ran(project.build()) == set()
    assert project.read("two.txt") == "3"
    assert project.read("obj.txt") == "3"


HELPERS = '''
import helpers
from tools.text import shout

from makeflow import rule


@rule(outputs="top.txt")
def top(step):
    step.outputs[0].write_text(helpers.clean(" a "))


@rule(outputs="table.txt")
def table(step):
    step.outputs[0].write_text(str(helpers.TABLE["x"]))


@rule(outputs="pkg.txt")
def pkg(step):
    step.outputs[0].write_text(shout("b"))


@rule(outputs="body.txt")
def body(step):
    import lazy

    step.outputs[0].write_text(lazy.VALUE)


@rule(outputs="other.txt")
def other(step):
    step.outputs[0].write_text("other")


rule("all", default=True,
     inputs=["top.txt", "table.txt", "pkg.txt", "body.txt", "other.txt"])
'''


def helper_project(project):
    project.rules(HELPERS)
    project.write("helpers.py", "import util\n\nTABLE = {'x': [1]}\n\n"
                  "def clean(text):\n    return util.strip(text)\n")
    project.write("util.py", "def strip(text):\n    return text.strip()\n")
    project.write("tools/__init__.py", "")
    project.write("tools/text.py", "def shout(text):\n    return text.upper()\n")
    project.write("lazy.py", "VALUE = 'one'\n")
    assert ran(project.build()) == {"top", "table", "pkg", "body", "other"}
    assert ran(project.build()) == set()
    return project


def test_helper_modules_beside_the_rules_count_as_the_steps_code(project):
    helper_project(project)
    project.write("helpers.py", project.read("helpers.py").replace("util.strip(text)",
                                                                   "util.strip(text) + '.'"))
    assert ran(project.build()) == {"top"}
    assert project.read("top.txt") == "a."
    project.write("helpers.py", project.read("helpers.py").replace("[1]", "[2]"))
    assert ran(project.build()) == {"table"}
    project.write("util.py", "def strip(text):\n    return text.strip().upper()\n")
    assert ran(project.build()) == {"top"}
    assert project.read("top.txt") == "A."
    project.write("tools/text.py", "def shout(text):\n    return text.upper() + '!'\n")
    assert ran(project.build()) == {"pkg"}
    assert project.read("pkg.txt") == "B!"
    project.write("lazy.py", "VALUE = 'two'\n")
    assert ran(project.build()) == {"body"}
    assert project.read("body.txt") == "two"
    assert ran(project.build()) == set()


def test_a_step_reading_config_in_its_body_reruns_when_config_changes(project):
    project.write("makeflow.toml", "[train]\nalpha = 0.1\n[other]\nx = 1\n")
    project.rules('''
        from makeflow import rule, config

        @rule(outputs="alpha.txt")
        def reads(step):
            step.outputs[0].write_text(str(config["train"]["alpha"]))

        @rule(outputs="plain.txt")
        def plain(step):
            step.outputs[0].write_text("plain")

        rule("all", inputs=["alpha.txt", "plain.txt"], default=True)
    ''')
    first = project.run("build")
    assert first.code == 0, first.text
    assert "reads" in first.text and "params=" in first.text  # the warning
    assert project.run("build", "--set", "train.alpha=0.5").code == 0
    assert project.read("alpha.txt") == "0.5"
    result = project.build(overrides=["train.alpha=0.7"])
    assert ran(result) == {"reads"}
    assert project.read("alpha.txt") == "0.7"
    assert ran(project.build(overrides=["train.alpha=0.7"])) == set()


@pytest.mark.parametrize("value, shown", [
    ("threading.Lock()", "lock"),
    ("open(__file__)", "TextIOWrapper"),
    ("(i for i in range(3))", "generator"),
])
def test_a_value_that_cannot_be_fingerprinted_is_a_load_error(project, value, shown):
    project.rules(f'''
        import threading
        from makeflow import rule

        THING = {value}

        @rule(outputs="out.txt")
        def uses_it(step):
            step.outputs[0].write_text(str(THING))
    ''')
    for command in (["build"], ["status"], ["list"]):
        done = project.run(*command)
        assert done.code == 2, done.text
        assert "Traceback" not in done.text
        assert "uses_it" in done.text and "THING" in done.text and shown in done.text
        assert "params=" in done.text
    assert not project.exists("out.txt")


def test_params_reach_the_step_as_declared_and_fingerprint_the_same(project):
    project.rules('''
        from pathlib import Path
        from makeflow import rule

        @rule(outputs="out.txt", params={"names": {"a", "b", "c"}, "where": Path("x/y"),
                                         "pair": (1, 2), "frozen": frozenset({"q", "r"})})
        def show(step):
            p = step.params
            assert type(p.names) is set and p.names == {"a", "b", "c"}, p.names
            assert isinstance(p.where, Path) and p.where == Path("x/y"), p.where
            assert p.pair == (1, 2) and type(p.pair) is tuple, p.pair
            assert type(p.frozen) is frozenset, p.frozen
            step.outputs[0].write_text(str(sorted(p.names)))
    ''')
    assert_stable_across_processes(project, {"show"})
    project.write("Makeflow.py", project.read("Makeflow.py").replace('"c"}', '"d"}'))
    assert ran(project.build()) == {"show"}


def run_cli(project, seed: str, *args: str):
    env = {**os.environ, "PYTHONHASHSEED": seed}
    return subprocess.run([sys.executable, "-m", "makeflow", *args], cwd=project.root,
                          env=env, capture_output=True, text=True, timeout=120)


def assert_stable_across_processes(project, steps: set[str], *targets: str) -> None:
    first = run_cli(project, "1", "build", *targets)
    assert first.returncode == 0, first.stdout + first.stderr
    for step in steps:
        assert step in first.stdout, first.stdout
    for seed in ("2", "3", "random"):
        again = run_cli(project, seed, "status", "--check", *targets)
        assert again.returncode == 0, (seed, again.stdout + again.stderr)


def test_every_kind_of_value_fingerprints_the_same_in_every_process(project):
    project.rules(KINDS + textwrap.dedent(FACTORY).replace("from makeflow import rule", "")
                  .replace("def write(n, step, word", "def write2(n, step, word")
                  .replace("partial(write,", "partial(write2,"))
    assert_stable_across_processes(project, {"use_set", "use_from_set", "obj", "part"},
                                   "all", "every")


def test_helper_modules_fingerprint_the_same_in_every_process(project):
    helper_project(project)
    assert_stable_across_processes(project, set())


def test_a_decorator_from_outside_the_project_does_not_hide_the_code_it_wraps(project):
    outside = project.root.parent / f"{project.root.name}_lib"
    outside.mkdir()
    (outside / "outside_deco.py").write_text(
        "import functools\n\n"
        "def logged(func):\n"
        "    @functools.wraps(func)\n"
        "    def wrapper(*args):\n"
        "        return func(*args)\n"
        "    return wrapper\n\n"
        "def factory(word):\n"
        "    def step(s):\n"
        "        s.outputs[0].write_text(word)\n"
        "    return step\n")
    project.rules(f'''
        import sys
        sys.path.insert(0, {str(outside)!r})
        from outside_deco import factory, logged
        from makeflow import rule

        @logged
        def helper():
            return "v1"

        @rule(outputs="out.txt")
        def work(step):
            step.outputs[0].write_text(helper())

        rule("made", outputs="made.txt")(factory("w1"))
        rule("all", inputs=["out.txt", "made.txt"], default=True)
    ''')
    assert ran(project.build()) == {"work", "made"}
    assert ran(project.build()) == set()
    project.write("Makeflow.py", project.read("Makeflow.py").replace('"v1"', '"v2"'))
    assert ran(project.build()) == {"work"}
    project.write("Makeflow.py", project.read("Makeflow.py").replace('"w1"', '"w2"'))
    assert ran(project.build()) == {"made"}
    assert project.read("made.txt") == "w2"
