"""Input and param functions: a pattern rule whose inputs or params come from a function of
the wildcards (a sample sheet), with what reruns when the sheet changes, and the mistakes."""

from __future__ import annotations

SHEET = """
from makeflow import rule, expand
from sheet import SHEET

rule("merge", inputs=lambda w: SHEET[w.sample]["reads"], outputs="merged/{sample}.txt",
     params={"n": lambda w: SHEET[w.sample]["n"], "tag": "v1"},
     shell="(cat {inputs}; echo n={params.n} {params.tag}) > {outputs}")

@rule(inputs={"reads": lambda w: SHEET[w.sample]["reads"], "ref": "ref.txt"},
      outputs="py/{sample}.txt")
def py(step):
    names = [p.name for p in step.inputs.reads] if isinstance(step.inputs.reads, list) \\
        else [step.inputs.reads.name]
    step.outputs[0].write_text(",".join(names) + "|" + step.inputs.ref.read_text())

rule("all", inputs=expand(["merged/{s}.txt", "py/{s}.txt"], s=sorted(SHEET)), default=True)
"""


def sheet(project, a_reads=("a1", "a2"), a_n=2):
    reads = [f"data/{r}.fq" for r in a_reads]
    project.write("sheet.py", f"SHEET = {{'a': {{'reads': {reads!r}, 'n': {a_n}}}, "
                              "'b': {'reads': ['data/b1.fq'], 'n': 1}}\n")


def setup(project):
    for name in ("a1", "a2", "a3", "b1"):
        project.write(f"data/{name}.fq", f"{name}\n")
    project.write("ref.txt", "ref")
    sheet(project)
    project.rules(SHEET)


def test_inputs_and_params_come_from_the_sheet(project):
    setup(project)
    result = project.build()
    assert sorted(result.ran) == ["merge[sample=a]", "merge[sample=b]", "py[sample=a]",
                                  "py[sample=b]"]
    assert project.read("merged/a.txt") == "a1\na2\nn=2 v1\n"
    assert project.read("merged/b.txt") == "b1\nn=1 v1\n"
    assert project.read("py/a.txt") == "a1.fq,a2.fq|ref"
    assert project.read("py/b.txt") == "b1.fq|ref"
    assert project.build().ran == []


def test_a_changed_sheet_reruns_only_the_steps_whose_values_changed(project):
    setup(project)
    project.build()
    sheet(project, a_reads=("a1", "a3"))  # sample a reads other files
    assert sorted(project.build().ran) == ["merge[sample=a]", "py[sample=a]"]
    assert project.read("merged/a.txt") == "a1\na3\nn=2 v1\n"
    sheet(project, a_reads=("a1", "a3"), a_n=5)  # a param only merge uses
    result = project.build()
    assert result.ran == ["merge[sample=a]"]
    assert project.read("merged/a.txt") == "a1\na3\nn=5 v1\n"
    done = project.run("status", "merged/a.txt")
    assert done.code == 0 and "up to date" in done.out


def test_a_changed_input_file_reruns_its_step(project):
    setup(project)
    project.build()
    project.write("data/b1.fq", "changed\n")
    assert sorted(project.build().ran) == ["merge[sample=b]", "py[sample=b]"]


def test_why_a_param_function_reruns_is_said(project):
    setup(project)
    project.build()
    sheet(project, a_n=3)
    done = project.run("status")
    assert "merge[sample=a]: parameter n: 2 → 3" in done.out, done.text


def test_an_inputs_function_may_return_named_inputs(project):
    project.write("x.csv", "x")
    project.write("x.json", "{}")
    project.rules("""
        from makeflow import rule
        rule("pair", inputs=lambda w: {"table": f"{w.name}.csv", "meta": f"{w.name}.json"},
             outputs="out/{name}.txt", shell="cat {inputs.meta} {inputs.table} > {outputs}")
        rule("all", inputs="out/x.txt", default=True)
    """)
    assert project.build().ran == ["pair[name=x]"]
    assert project.read("out/x.txt") == "{}x"


def test_a_failing_function_names_the_rule_and_the_wildcards(project):
    setup(project)
    done = project.run("build", "merged/zz.txt")
    assert done.code == 2, done.text
    assert "Traceback" not in done.text
    assert "rule merge: its inputs function failed with sample='zz': KeyError: 'zz'" in done.err
    assert "Makeflow.py:5" in done.err


def test_a_failing_param_function_names_the_param(project):
    project.write("a.txt", "a")
    project.rules("""
        from makeflow import rule
        rule("r", inputs="{x}.txt", outputs="out/{x}.txt", params={"k": lambda w: 1 / 0},
             shell="cp {inputs} {outputs}")
        rule("all", inputs="out/a.txt", default=True)
    """)
    done = project.run("build")
    assert done.code == 2 and "Traceback" not in done.text
    assert "rule r: its param 'k' function failed with x='a': ZeroDivisionError" in done.err


def test_a_function_returning_no_paths_is_an_error_naming_the_rule(project):
    project.write("a.txt", "a")
    project.rules("""
        from makeflow import rule
        rule("r", inputs=lambda w: 42, outputs="out/{x}.txt", shell="touch {outputs}")
        rule("all", inputs="out/a.txt", default=True)
    """)
    done = project.run("build")
    assert done.code == 2 and "Traceback" not in done.text
    assert "rule r with x='a'" in done.err and "not int" in done.err


def test_a_function_returning_an_unfilled_wildcard_is_an_error(project):
    project.rules("""
        from makeflow import rule
        rule("r", inputs=lambda w: "data/{x}.txt", outputs="out/{x}.txt", shell="touch {outputs}")
        rule("all", inputs="out/a.txt", default=True)
    """)
    done = project.run("build")
    assert done.code == 2 and "Traceback" not in done.text
    assert "{wildcard}" in done.err and "rule r with x='a'" in done.err


def test_a_bad_placeholder_with_a_function_is_found_before_anything_runs(project):
    project.write("a.txt", "a")
    project.rules("""
        from makeflow import rule
        rule("r", inputs=lambda w: f"{w.x}.txt", outputs="out/{x}.txt",
             shell="cat {inputs.nothere} > {outputs}")
        rule("all", inputs="out/a.txt", default=True)
    """)
    done = project.run("build")
    assert done.code == 2 and "Traceback" not in done.text
    assert "rule r: its shell command has a placeholder" in done.err
    assert not project.exists("out")


def test_editing_a_function_that_returns_the_same_reruns_nothing(project):
    """What a function returns counts, not its code (docs/dynamic.md)."""
    setup(project)
    project.build()
    project.rules(SHEET.replace('lambda w: SHEET[w.sample]["n"]',
                                'lambda w: int(str(SHEET[w.sample]["n"]))'))
    assert project.build().ran == []
