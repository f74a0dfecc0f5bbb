"""Loading rules: what `load` makes of each `rule()` call, and the checks of shell
commands' placeholders that run as the rules load."""

from __future__ import annotations

import dataclasses

import pytest

from makeflow import load

RULES = """\
from makeflow import rule

rule("copy", inputs=["in.txt", "b.txt"], outputs="out/copy.txt",
     shell="cat {inputs[1]} {inputs} > {outputs[0]}")
rule("wild", inputs="in/{n}.txt", outputs=["w/{n}.txt", "w/{n}.log"], priority=2,
     shell="cp {inputs} {outputs[0]}; touch {outputs[1]}", retries=1, timeout="1m",
     temp=["w/{n}.log"], protected=True, params={"a": [1, 2]})

@rule(inputs={"data": "in.txt"}, outputs="py.txt", metrics=["py.txt"], cache=False)
def python_step(step):
    step.outputs[0].write_text("x")

rule("all", inputs=["out/copy.txt", "py.txt"], default=True)
"""


def test_a_loaded_rule_is_what_the_dataclass_would_make(project):
    """`freeze` makes rules without the dataclass's __init__ (it is quicker): each must
    hold every field, and the same values, as `Rule(...)` given them makes."""
    project.rules(RULES)
    rules = load(project.root / "Makeflow.py").rules

    assert [r.name for r in rules] == ["copy", "wild", "python_step", "all"]
    for rule in rules:
        again = dataclasses.replace(rule)  # through Rule.__init__
        for field in dataclasses.fields(rule):
            assert getattr(rule, field.name) == getattr(again, field.name), field.name
        assert (rule.is_alias, rule.is_pattern) == (again.is_alias, again.is_pattern)
        assert repr(rule) == repr(again)
        with pytest.raises(dataclasses.FrozenInstanceError):
            rule.name = "other"  # type: ignore[misc]
    assert [r.is_alias for r in rules] == [False, False, False, True]
    assert [r.is_pattern for r in rules] == [False, True, False, False]


def test_a_placeholder_index_is_checked_against_each_rules_own_files(project):
    """The same `{inputs[1]}` fills for a rule with two inputs and not for one with one;
    the second is refused as the rules load, naming it and its line."""
    project.rules('from makeflow import rule\n'
                  'rule("two", inputs=["a.txt", "b.txt"], outputs="x.txt",\n'
                  '     shell="cat {inputs[1]} > {outputs[0]}")\n'
                  'rule("one", inputs=["a.txt"], outputs="y.txt",\n'
                  '     shell="cat {inputs[1]} > {outputs[0]}")\n')
    done = project.run("list")

    assert done.code == 2, done.text
    assert "Makeflow.py:4" in done.err and "rule one" in done.err
    assert "IndexError" in done.err and "Traceback" not in done.text


@pytest.mark.parametrize("command", [
    "cat {inputs} > {outputs[1]}",  # an output index out of range
    "cat {inputs[0]!z} > {outputs}",  # a conversion that does not exist
    "cat {inputs[0]:>40q} > {outputs}",  # a format spec no list takes
    "cat {inputs} > {outputs",  # an unclosed brace
])
def test_a_command_that_cannot_be_filled_is_refused_as_the_rules_load(project, command):
    project.rules('from makeflow import rule\n'
                  f'rule("r", inputs="a.txt", outputs="x.txt", shell="{command}")\n')
    done = project.run("list")

    assert done.code == 2, done.text
    assert "Makeflow.py:2" in done.err and "rule r" in done.err
    assert "placeholder that cannot be filled" in done.err and "Traceback" not in done.text


def test_commands_that_fill_load_and_list(project):
    project.rules('from makeflow import rule\n'
                  'rule("r", inputs=["a.txt", "b.txt"], outputs=["x.txt", "y.txt"],\n'
                  '     shell="cat {inputs[0]} {inputs[1]} {{literal}} > {outputs[1]}; '
                  'touch {outputs}")\n')
    done = project.run("list")

    assert done.code == 0, done.text
    assert done.out.startswith("r (default)  [shell, Makeflow.py:2]")
