"""The caches that make a no-op build quick: the resolved graph, and the stat-only check.

Each must be used when nothing changed, and must never hide a change: every test here
first brings a project to the state where the quick path is taken, then makes one change
and checks the build sees it.
"""

from __future__ import annotations

import datetime
import os
import shutil
import sys
import time
from pathlib import Path

import pytest

from makeflow.store import hashing

RULES = """
from makeflow import config, rule

rule("copy", inputs="in.txt", outputs="copy.txt", shell="cp {inputs} {outputs}")

@rule(inputs="copy.txt", outputs="upper.txt", params={"suffix": config["suffix"]})
def upper(step):
    text = step.inputs[0].read_text().upper()
    step.outputs[0].write_text(text + step.params.suffix)

rule("all", inputs=["upper.txt"], default=True)
"""


def age_all(root: Path, seconds: int = 3600) -> None:
    """Move every file's mtime into the past, as time passing does (not .makeflow's)."""
    old = time.time() - seconds
    for path in root.rglob("*"):
        if ".makeflow" not in path.parts and path.is_file():
            os.utime(path, (old, old))


@pytest.fixture
def quick(project):
    """A project whose next no-op build is settled by file stats alone."""
    project.rules(RULES)
    project.write("makeflow.toml", 'suffix = "!"\n')
    project.write("in.txt", "hello\n")
    assert set(project.build().ran) == {"copy", "upper"}
    age_all(project.root)
    second = project.build()
    assert second.ran == [] and not second.plan.quick  # the stats moved: planned in full
    return project


def test_noop_is_settled_by_stats_alone_and_reads_nothing(quick):
    before = hashing.bytes_hashed
    result = quick.build()
    assert result.plan.quick
    assert result.ran == [] and set(result.fresh) == {"copy", "upper"}
    assert hashing.bytes_hashed == before
    assert quick.build().plan.quick  # and it stays so


def test_cli_status_and_build_agree_on_the_quick_path(quick):
    done = quick.run("status")
    assert done.code == 0, done.text
    assert "up to date" in done.text
    done = quick.run("build")
    assert done.code == 0 and "ran 0" in done.text, done.text


@pytest.mark.parametrize("change, reruns", [
    ("input content", {"copy", "upper"}),
    ("input touched", set()),
    ("output deleted", {"upper"}),
    ("output edited", {"upper"}),
    ("command", {"copy"}),  # same bytes out: upper is cut off
    ("code", {"upper"}),
    ("parameter", {"upper"}),
    ("state store removed", set()),  # makeflow.lock matches every step: nothing runs
])
def test_quick_path_sees_every_change(quick, change, reruns):
    root = quick.root
    if change == "input content":
        quick.write("in.txt", "bye\n")
    elif change == "input touched":
        os.utime(root / "in.txt")
    elif change == "output deleted":
        (root / "upper.txt").unlink()
    elif change == "output edited":
        quick.write("upper.txt", "hand edit\n")
    elif change == "command":
        quick.rules(RULES.replace("cp {inputs} {outputs}", "cp -- {inputs} {outputs}"))
    elif change == "code":
        quick.rules(RULES.replace(".upper()", ".upper().strip()"))
    elif change == "parameter":
        quick.write("makeflow.toml", 'suffix = "?"\n')
    else:
        for name in ("state.db", "state.db-wal", "state.db-shm"):
            (root / ".makeflow" / name).unlink(missing_ok=True)
    result = quick.build()
    assert not result.plan.quick
    assert set(result.ran) == reruns, result.output
    expected = ("BYE" if change == "input content" else "HELLO") + "\n"
    expected += "?" if change == "parameter" else "!"
    if change == "code":
        expected = expected.replace("\n", "")
    assert quick.read("upper.txt") == expected


def test_a_comment_in_the_rules_keeps_the_quick_path(quick):
    quick.rules("# a comment\n" + RULES)
    assert quick.build().plan.quick


def test_steps_that_go_stale_with_time_never_take_the_quick_path(project):
    project.rules("""
        from makeflow import rule
        rule("fetch", outputs="data.txt", shell="date +%s%N > {outputs}", max_age="1h")
    """)
    assert project.build().ran == ["fetch"]
    age_all(project.root, seconds=60)
    assert project.build().ran == []
    result = project.build(clock=lambda: time.time() + 7200)
    assert not result.plan.quick and result.ran == ["fetch"]


def test_a_file_that_appears_lets_a_pattern_rule_apply(project):
    """Which rules apply depends on which files exist, so the saved graph must notice."""
    project.rules("""
        from makeflow import rule
        rule("fetch", inputs="download/{x}.url", outputs="data/{x}.csv",
             shell="cp {inputs} {outputs}")
    """)
    project.write("data/a.csv", "made by hand\n")
    assert project.build("data/a.csv").ran == []  # a source file: no rule could make it
    age_all(project.root)
    project.build("data/a.csv")
    project.write("download/a.url", "http://example.org/a\n")
    result = project.build("data/a.csv")
    assert result.ran == ["fetch[x=a]"]
    assert project.read("data/a.csv") == "http://example.org/a\n"


def test_a_source_that_goes_makes_the_next_rule_apply(project):
    """The snapshot's stats stand in for the graph cache's check that its sources still
    exist: a source the snapshot finds gone must still send the graph back to resolving."""
    project.rules("""
        from makeflow import rule
        rule("from_a", inputs="a/{x}.txt", outputs="out/{x}.txt", shell="cp {inputs} {outputs}",
             priority=1)
        rule("from_b", inputs="b/{x}.txt", outputs="out/{x}.txt",
             shell="tr a-z A-Z < {inputs} > {outputs}")
    """)
    project.write("a/one.txt", "from a\n")
    project.write("b/one.txt", "from b\n")
    assert project.build("out/one.txt").ran == ["from_a[x=one]"]
    age_all(project.root)
    project.build("out/one.txt")
    assert project.build("out/one.txt").plan.quick  # the snapshot is in place
    (project.root / "a" / "one.txt").unlink()
    result = project.build("out/one.txt")
    assert result.ran == ["from_b[x=one]"]
    assert project.read("out/one.txt") == "FROM B\n"


def test_a_noop_stats_each_file_once(quick, monkeypatch):
    """The one `stat` per file that make pays, not one for the graph and one more for
    the snapshot."""
    real, seen = os.stat, []

    def counting(path, *args, **kwargs):
        seen.append(os.fspath(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(os, "stat", counting)
    assert quick.build().plan.quick
    for name in ("in.txt", "copy.txt", "upper.txt"):
        assert seen.count(name) == 1, (name, seen.count(name))


def test_targets_each_get_their_own_graph(quick):
    assert quick.build("copy.txt").fresh == ["copy"]
    assert set(quick.build("upper.txt").fresh) == {"copy", "upper"}


@pytest.mark.parametrize("damage", [b"", b"\x00garbage", b"\xe3" * 100])
def test_damaged_caches_are_ignored(quick, damage):
    for name in ("graph.cache", "uptodate.cache"):
        path = quick.root / ".makeflow" / name
        assert path.exists()
        path.write_bytes(damage if damage else path.read_bytes()[:7])
    quick.write("in.txt", "changed\n")
    result = quick.build()
    assert set(result.ran) == {"copy", "upper"}
    assert quick.read("upper.txt") == "CHANGED\n!"


def test_a_copied_project_does_not_trust_the_copy(quick, tmp_path):
    """A project copied elsewhere (new inodes) plans in full, and still runs nothing."""
    other = tmp_path.parent / (tmp_path.name + "-copy")
    shutil.copytree(quick.root, other, copy_function=shutil.copy2)
    quick.root = other
    result = quick.build()
    assert not result.plan.quick and result.ran == []


CHAINS = """
from makeflow import rule

for i in range(6):
    rule(f"first{i}", inputs=f"in/{i}.txt", outputs=f"mid/{i}.txt", shell="cp {inputs} {outputs}")
    rule(f"second{i}", inputs=f"mid/{i}.txt", outputs=f"out/{i}.txt",
         shell="tr a-z A-Z < {inputs} > {outputs}")
rule("all", inputs=[f"out/{i}.txt" for i in range(6)], default=True)
"""


@pytest.fixture
def chains(project):
    project.rules(CHAINS)
    for i in range(6):
        project.write(f"in/{i}.txt", f"chain {i}\n")
    assert len(project.build().ran) == 12
    age_all(project.root)
    assert project.build().ran == []
    assert project.build().plan.quick
    return project


def test_one_change_plans_only_the_steps_it_reaches(chains):
    chains.write("in/3.txt", "changed\n")
    result = chains.build()
    assert result.plan.partial
    assert set(result.ran) == {"first3", "second3"}
    assert chains.read("out/3.txt") == "CHANGED\n"


def test_after_a_build_the_next_change_is_still_planned_partially(chains):
    """The build that reran steps saves a snapshot too, with the records it just wrote
    (too recent to trust, so they are checked again next time, by content)."""
    chains.write("in/1.txt", "one\n")
    assert set(chains.build().ran) == {"first1", "second1"}
    nothing = chains.build()
    assert nothing.plan.partial and nothing.ran == []
    chains.write("in/2.txt", "two\n")
    result = chains.build()
    assert result.plan.partial and set(result.ran) == {"first2", "second2"}
    for i, text in enumerate(["CHAIN 0", "ONE", "TWO", "CHAIN 3", "CHAIN 4", "CHAIN 5"]):
        assert chains.read(f"out/{i}.txt") == text + "\n"


def test_a_failed_step_is_never_settled_quickly(chains):
    chains.rules(CHAINS.replace("tr a-z A-Z < {inputs} > {outputs}",
                                "tr a-z A-Z < {inputs} > {outputs} && ! grep -q BAD {inputs}"))
    chains.build()
    chains.write("in/0.txt", "BAD\n")
    for _ in range(2):  # nothing changed in between: the step must fail again
        failed = chains.build(keep_going=True)
        assert list(failed.failed) == ["second0"] and not failed.plan.quick
    chains.write("in/0.txt", "good\n")
    assert set(chains.build().ran) == {"first0", "second0"}
    assert chains.read("out/0.txt") == "GOOD\n"


def test_a_step_whose_input_moved_while_it_ran_is_never_settled_quickly(chains):
    """The build does not record such a step, so it must not save 'all fresh' either."""
    chains.rules(CHAINS.replace('shell="cp {inputs} {outputs}"',
                                'shell="cp {inputs} {outputs} && echo more >> {inputs}"'))
    chains.write("in/4.txt", "four\n")
    moved = chains.build()
    assert "changed while" in moved.output
    assert "first4" in chains.build().ran


def test_an_aggregate_of_many_files_reads_their_records_in_batches(project):
    """One changed input of forty: the aggregate reruns with every other input's digest
    read from the store in a few queries, including a name that is not UTF-8."""
    names = [f"in/{i:02d}.txt" for i in range(39)] + ["in/\udcff.txt"]
    project.rules(f"""
        from makeflow import rule
        rule("all", inputs={names!r}, outputs="all.txt", shell="cat {{inputs}} > {{outputs}}")
    """)
    for name in names:
        (project.root / "in").mkdir(exist_ok=True)
        (project.root / os.fsencode(name).decode("utf-8", "surrogateescape")).write_text(
            name.encode("utf-8", "surrogateescape").decode("latin-1") + "\n")
    assert project.build().ran == ["all"]
    age_all(project.root)
    assert project.build().ran == []
    project.write("in/07.txt", "seven\n")
    result = project.build()
    assert result.plan.partial and result.ran == ["all"]
    lines = project.read("all.txt").splitlines()
    assert len(lines) == 40 and lines[7] == "seven"


def test_inputs_listed_in_another_order_are_a_change(project):
    """Reordering a rule's inputs changes its command's arguments, though not the graph's
    shape; with two identical inputs no stat moves either. Found by the property test."""
    rules = """
        from makeflow import rule
        rule("all", inputs=["out.txt", "first.txt"], default=True)
        rule("first", inputs=["b.txt", "c.txt"], outputs="first.txt",
             shell="cat {{inputs}} > {{outputs}}")
        rule("join", inputs={files!r}, outputs="out.txt", shell="cat {{inputs}} > {{outputs}}")
    """
    project.rules(rules.format(files=["b.txt", "c.txt"]))
    project.write("b.txt", "")
    project.write("c.txt", "")
    project.build()
    age_all(project.root)
    project.build()
    assert project.build().plan.quick
    project.rules(rules.format(files=["c.txt", "b.txt"]))
    result = project.build()
    assert result.ran == ["join"] and not result.plan.quick


def test_the_keys_of_the_caches_go_by_value_alone():
    """Equal rules give equal keys however their strings were made (interned or built,
    one object or two), and a value marshal cannot write (a TOML date) still has one."""
    built = "".join(["out/", "a.txt"])
    assert built is not sys.intern("out/a.txt")
    same = hashing.hash_value([(sys.intern("out/a.txt"), "out/a.txt", 1, None)])
    assert hashing.hash_value([(built, built, 1, None)]) == same
    assert hashing.hash_value([("out/a.txt", "out/a.txt", True, None)]) != same
    day = {"when": datetime.date(2026, 1, 1)}
    assert hashing.hash_value(day) == hashing.hash_value({"when": datetime.date(2026, 1, 1)})
    assert hashing.hash_value(day) != hashing.hash_value({"when": datetime.date(2026, 1, 2)})


def test_a_date_in_the_config_of_rules_with_functions_keeps_the_quick_path(project):
    """The config is part of the graph's key when rules have functions; a TOML date in it
    is digested by its repr, the same in every build."""
    project.write("makeflow.toml", "since = 2026-01-01\n")
    project.write("in.txt", "x\n")
    project.rules("""\
        from makeflow import config, rule

        rule("copy", inputs=lambda: ["in.txt"], outputs="out.txt",
             params={"since": str(config["since"])}, shell="cp {inputs} {outputs}")
    """)
    assert project.build().ran == ["copy"]
    age_all(project.root)
    assert project.build().ran == []
    result = project.build()
    assert result.ran == [] and result.plan.quick
