"""Scenarios of what reruns: given a built pipeline, when something changes, then exactly
these steps run again."""

from __future__ import annotations

import os
import shutil

from makeflow.store import hashing


def ran(result) -> set[str]:
    return set(result.ran)

CHAIN = """
from makeflow import rule, config
rule("prepare", inputs="data/raw.csv", outputs="data/clean.csv",
     shell="tr a-z A-Z < {inputs[0]} > {outputs[0]}")
rule("train", inputs="data/clean.csv", outputs="model.txt",
     params={"alpha": config["train"]["alpha"]},
     shell="cat {inputs[0]} > {outputs[0]} && echo alpha={params.alpha} >> {outputs[0]}")
rule("report", inputs="model.txt", outputs="report.txt", shell="wc -l < {inputs} > {outputs}")
rule("side", inputs="data/raw.csv", outputs="side.txt", shell="cp {inputs} {outputs}")
rule("all", inputs=["report.txt", "side.txt"], default=True)
"""


def chain(project):
    project.rules(CHAIN)
    project.write("makeflow.toml", "[train]\nalpha = 0.1\n")
    project.write("data/raw.csv", "a,b\n1,2\n")
    first = project.build()
    assert ran(first) == {"prepare", "train", "report", "side"}
    return project


def test_second_build_runs_nothing(project):
    chain(project)
    assert ran(project.build()) == set()


def test_touch_reruns_nothing(project):
    chain(project)
    os.utime(project.root / "data/raw.csv", ns=(1, 1))
    assert ran(project.build()) == set()


def test_same_bytes_rewritten_or_copied_over_reruns_nothing(project):
    chain(project)
    raw = project.root / "data/raw.csv"
    copy = project.root / "elsewhere.csv"
    shutil.copy(raw, copy)
    os.replace(copy, raw)  # new inode and mtime, as after `git checkout`
    assert ran(project.build()) == set()
    raw.write_text(raw.read_text())
    assert ran(project.build()) == set()


def test_input_content_change_reruns_its_users_only(project):
    chain(project)
    project.write("data/raw.csv", "a,b\n3,4\n")
    assert ran(project.build()) == {"prepare", "train", "report", "side"}
    assert "3,4" in project.read("data/clean.csv").lower()


def test_parameter_change_reruns_only_its_users(project):
    chain(project)
    result = project.build(overrides=["train.alpha=0.3"])
    assert ran(result) == {"train", "report"}
    assert "alpha=0.3" in project.read("model.txt")


def test_early_cutoff_identical_output_stops_the_cascade(project):
    chain(project)
    # a new raw file whose upper-cased form is identical: prepare reruns, train does not
    project.write("data/raw.csv", "A,B\n1,2\n")
    result = project.build()
    assert ran(result) == {"prepare", "side"}
    assert "train" in result.cut_off and "report" in result.cut_off


def test_hand_edited_output_is_rebuilt(project):
    chain(project)
    good = project.read("model.txt")
    project.write("model.txt", "tampered\n")
    result = project.build()
    assert "train" in ran(result)
    assert project.read("model.txt") == good
    assert "report" not in ran(result)  # the rebuilt file is identical to the recorded one


def test_deleted_output_is_rebuilt(project):
    chain(project)
    (project.root / "side.txt").unlink()
    assert ran(project.build()) == {"side"}
    assert project.exists("side.txt")


def test_command_change_reruns_the_step(project):
    chain(project)
    project.rules(CHAIN.replace("wc -l <", "wc -c <"))
    assert ran(project.build()) == {"report"}


def test_noop_build_reads_no_file_content(project):
    chain(project)
    # A file changed within a second of being hashed is hashed again (its mtime may not
    # move on a second write), so age every file first; that build hashes each once more.
    for path in project.root.rglob("*"):
        if ".makeflow" not in path.parts:
            os.utime(path, ns=(10**9, 10**9))
    before = hashing.bytes_hashed
    assert ran(project.build()) == set()
    assert hashing.bytes_hashed > before
    before = hashing.bytes_hashed
    assert ran(project.build()) == set()
    assert hashing.bytes_hashed == before


def test_building_one_target_runs_only_what_leads_to_it(project):
    chain(project)
    project.write("data/raw.csv", "x\n")
    assert ran(project.build("data/clean.csv")) == {"prepare"}
    assert ran(project.build("side")) == {"side"}


def test_force_reruns_everything(project):
    chain(project)
    assert ran(project.build(force=True)) == {"prepare", "train", "report", "side"}


def test_added_input_makes_the_step_stale(project):
    chain(project)
    project.write("extra.txt", "x")
    project.rules(CHAIN.replace('inputs="model.txt"', 'inputs=["model.txt", "extra.txt"]'))
    assert ran(project.build()) == {"report"}


def test_an_input_listed_twice_settles_after_a_run_and_after_a_restore(project):
    """The record keeps one digest per file; the fingerprint counts a repeated input once
    too, or every other build would call the step stale ("order of its files changed")."""
    project.write("a.txt", "a")
    project.write("b.txt", "b")
    project.rules("""
        from makeflow import rule
        rule("c", inputs=["b.txt", "a.txt", "b.txt"], outputs="c.txt",
             shell="cat {inputs} > {outputs}")
    """)
    assert project.build("c.txt", cache=True).ran == ["c"]
    assert project.read("c.txt") == "bab"
    project.write("b.txt", "B")
    assert project.build("c.txt", cache=True).ran == ["c"]
    project.write("b.txt", "b")  # back: restored from the run cache
    restored = project.build("c.txt", cache=True)
    assert restored.ran == [] and restored.restored == ["c"], restored.output
    for _ in range(3):
        again = project.build("c.txt", cache=True)
        assert again.ran == [] and again.restored == [], again.output
    assert "up to date" in project.run("status").out


PYTHON_STEPS = """
from makeflow import rule

SCALE = 2

def double(text):
    return text * SCALE

@rule(inputs="in.txt", outputs="out.txt")
def work(step):
    # make the output
    step.outputs[0].write_text(double(step.inputs[0].read_text()))
"""


def test_python_step_comment_and_format_do_not_count_but_logic_and_helpers_do(project):
    project.write("in.txt", "ab")
    project.rules(PYTHON_STEPS)
    assert ran(project.build()) == {"work"}
    assert project.read("out.txt") == "abab"
    project.rules(PYTHON_STEPS.replace("# make the output", "# another comment\n\n")
                  .replace("double(step.inputs[0].read_text())",
                           "double( step.inputs[0].read_text() )"))
    assert ran(project.build()) == set()
    project.rules(PYTHON_STEPS.replace("return text * SCALE", "return text * SCALE + '!'"))
    assert ran(project.build()) == {"work"}
    assert project.read("out.txt") == "abab!"
    project.rules(PYTHON_STEPS.replace("SCALE = 2", "SCALE = 3"))
    assert ran(project.build()) == {"work"}
    assert project.read("out.txt") == "ababab"


def test_pattern_rules_make_one_step_per_file_and_aggregate(project):
    for name in "abc":
        project.write(f"data/{name}.csv", f"{name}\n")
    project.rules("""
        from makeflow import rule, expand, glob_wildcards
        samples = glob_wildcards("data/{sample}.csv").sample
        rule("all", inputs="summary.txt")
        rule("stats", inputs="data/{sample}.csv", outputs="stats/{sample}.txt",
             shell="cat {inputs} {inputs} > {outputs}")
        rule("summary", inputs=expand("stats/{sample}.txt", sample=samples),
             outputs="summary.txt", shell="cat {inputs} > {outputs}")
    """)
    assert ran(project.build()) == {"stats[sample=a]", "stats[sample=b]", "stats[sample=c]",
                                    "summary"}
    assert project.read("summary.txt") == "a\na\nb\nb\nc\nc\n"
    project.write("data/b.csv", "B\n")
    assert ran(project.build()) == {"stats[sample=b]", "summary"}
    project.write("data/d.csv", "d\n")
    assert ran(project.build()) == {"stats[sample=d]", "summary"}
    assert ran(project.build("stats/a.txt")) == set()


def test_directory_output_is_hashed_as_a_tree(project):
    project.write("n.txt", "3")
    project.rules("""
        from makeflow import rule
        rule("split", inputs="n.txt", outputs="parts",
             shell="mkdir -p {outputs} && for i in 1 2 3; do echo $i > {outputs}/$i.txt; done")
        rule("join", inputs="parts", outputs="joined.txt", shell="cat {inputs}/*.txt > {outputs}")
    """)
    project.write("Makeflow.py", project.read("Makeflow.py").replace(
        'rule("split"', 'rule("all", inputs="joined.txt")\nrule("split"'))
    assert ran(project.build()) == {"split", "join"}
    assert project.read("joined.txt") == "1\n2\n3\n"
    assert ran(project.build()) == set()
    project.write("parts/2.txt", "two\n")
    assert ran(project.build()) == {"split"}  # rebuilt to what it was: join is cut off
    assert project.read("parts/2.txt") == "2\n"


def test_a_parameter_that_changes_type_is_a_change(project):
    project.write("makeflow.toml", "[train]\nalpha = 1\n")
    project.write("data/raw.csv", "a\n")
    project.rules(CHAIN)
    project.build()
    project.write("makeflow.toml", "[train]\nalpha = 1.0\n")  # --set may not change a type
    result = project.build()
    assert "train" in result.ran
    assert result.plan.stale["train"] == ["parameter alpha: 1 → 1.0"]


def test_a_step_record_keeps_every_field_through_the_store(tmp_path):
    import dataclasses

    from makeflow.store.state import StateStore, StepRecord

    record = StepRecord("shell:x", {"alpha": [1, 2]}, {"in.txt": "d1"}, {"out.txt": "d2"},
                        123, 0.5)
    expected = dataclasses.asdict(record)
    del expected["moved"]  # kept only for a run whose input changed while it ran
    del expected["skipped"]  # kept only for a step that chose to skip
    assert record.as_json() == expected
    skipped = dataclasses.replace(record, outputs={"out.txt": ""}, skipped="r2 is low")
    assert skipped.as_json()["skipped"] == "r2 is low"
    with StateStore(tmp_path) as state:
        state.record_step("s", record, {})
        state.record_step("k", skipped, {})
    with StateStore(tmp_path) as state:
        assert state.record("s") == record
        assert state.fingerprint("s") == record.fingerprint
        assert state.record("k") == skipped and state.skips == {"k": "r2 is low"}


def test_a_scratch_build_reads_each_file_once(project):
    """A file just written is not trusted across builds (its mtime is too recent), but the
    build that wrote it reads it once, not again for every step that reads it."""
    from makeflow.store import hashing

    project.rules("""
        from makeflow import rule
        rule("a", inputs="src.txt", outputs="a.txt", shell="cp {inputs} {outputs}")
        rule("b", inputs="a.txt", outputs="b.txt", shell="cp {inputs} {outputs}")
        rule("c", inputs=["a.txt", "b.txt"], outputs="c.txt", shell="cat {inputs} > {outputs}")
    """)
    project.write("src.txt", "x" * 1000)
    before = hashing.bytes_hashed
    assert project.build("c", jobs=1).ran == ["a", "b", "c"]
    assert hashing.bytes_hashed - before == 1000 + 1000 + 1000 + 2000
