"""`makeflow clean`: what a target's own step made, never a current source, never outside.

A file is removed only when makeflow recorded writing it, its content is still what it
wrote, the current rules do not read it as a source, and it lies inside the project.
"""

from __future__ import annotations

import os
import shutil

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from makeflow import BuildOptions, build, load
from makeflow.run.clean import clean
from makeflow.ui.plain import PlainReporter

CHAIN = """\
    from makeflow import rule

    rule("prepare", inputs="data/raw.csv", outputs="data/clean.csv", shell="cp {inputs} {outputs}")
    rule("train", inputs="data/clean.csv", outputs="model.txt", shell="cp {inputs} {outputs}")
    rule("report", inputs="model.txt", outputs="report.txt", shell="cp {inputs} {outputs}")
    rule("all", inputs=["report.txt", "stats/a.n", "stats/b.n"], default=True)
    rule("count", inputs="data/{s}.txt", outputs="stats/{s}.n",
         shell="wc -c < {inputs} > {outputs}")
    rule("stats", inputs=["stats/a.n", "stats/b.n"])
"""


@pytest.fixture
def chain(project):
    project.rules(CHAIN)
    project.write("data/raw.csv", "1\n")
    project.write("data/a.txt", "aa\n")
    project.write("data/b.txt", "bbb\n")
    done = project.run("build")
    assert done.code == 0, done.text
    return project


MADE = ["data/clean.csv", "model.txt", "report.txt", "stats/a.n", "stats/b.n"]


def present(project) -> set[str]:
    return {p for p in MADE if project.exists(p)}


def test_clean_of_a_file_removes_only_what_its_own_step_made(chain):
    done = chain.run("clean", "report.txt")

    assert done.code == 0, done.text
    assert present(chain) == set(MADE) - {"report.txt"}


def test_clean_of_a_rule_name_removes_only_its_outputs(chain):
    assert chain.run("clean", "train").code == 0
    assert present(chain) == set(MADE) - {"model.txt"}


def test_clean_upstream_removes_the_steps_before_it_too(chain):
    done = chain.run("clean", "--upstream", "report.txt")

    assert done.code == 0, done.text
    assert present(chain) == {"stats/a.n", "stats/b.n"}
    assert chain.read("data/raw.csv") == "1\n"


def test_clean_of_a_pattern_rule_removes_every_file_its_steps_made(chain):
    done = chain.run("clean", "count")

    assert done.code == 0, done.text
    assert present(chain) == set(MADE) - {"stats/a.n", "stats/b.n"}
    assert chain.run("build").out.count("count[") == 2


def test_clean_of_an_alias_removes_what_the_steps_it_names_made(chain):
    assert chain.run("clean", "stats").code == 0
    assert present(chain) == set(MADE) - {"stats/a.n", "stats/b.n"}


def test_clean_without_targets_removes_everything_made(chain):
    assert chain.run("clean").code == 0
    assert present(chain) == set()


def test_a_file_an_older_rule_made_is_kept_once_the_rules_read_it_as_a_source(chain):
    chain.rules(CHAIN.replace('rule("prepare", inputs="data/raw.csv", outputs="data/clean.csv", '
                              'shell="cp {inputs} {outputs}")', ""))

    done = chain.run("clean")

    assert done.code == 0, done.text
    assert chain.read("data/clean.csv") == "1\n"
    assert "data/clean.csv" in done.out and "source" in done.out
    assert not chain.exists("model.txt")


def test_a_rule_that_now_reads_what_it_once_wrote_keeps_it(chain):
    chain.rules(CHAIN.replace(
        'rule("train", inputs="data/clean.csv", outputs="model.txt"',
        'rule("train", inputs="model.txt", outputs="model2.txt"').replace(
        'inputs="model.txt", outputs="report.txt"', 'inputs="model2.txt", outputs="report.txt"'))

    for args in (("clean", "train"), ("clean",)):
        done = chain.run(*args)
        assert done.code == 0, done.text
        assert chain.read("model.txt") == "1\n"


def test_clean_never_removes_a_file_outside_the_project(tmp_path, project):
    root = tmp_path / "proj"
    root.mkdir()
    project.root = root
    project.rules("""\
        from makeflow import rule

        rule("r", outputs="results/x.txt", shell="echo hi > {outputs}")
    """)
    assert project.run("build").code == 0
    elsewhere = tmp_path / "elsewhere"
    shutil.move(root / "results", elsewhere)  # same bytes, now behind a link
    os.symlink(elsewhere, root / "results")

    done = project.run("clean")

    assert done.code == 0, done.text
    assert (elsewhere / "x.txt").read_text() == "hi\n"
    assert "outside the project" in done.text


def _rules(kept: list[int], n: int) -> str:
    """A chain f0 -> f1 -> ... -> fn; only the rules in `kept` remain (rule i makes f{i})."""
    lines = ["from makeflow import rule"]
    for i in kept:
        inputs = f'"f{i - 1}"' if i else "[]"
        lines.append(f'rule("r{i}", inputs={inputs}, outputs="f{i}", '
                     f'shell="echo {i} | cat - {{inputs}} > {{outputs}}")')
    lines.append(f'rule("all", inputs={[f"f{i}" for i in kept]!r}, default=True)')
    return "\n".join(lines) + "\n"


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(1, 5).flatmap(lambda n: st.tuples(
    st.just(n), st.lists(st.integers(0, n), min_size=1, unique=True),
    st.sampled_from(["all", "target", "upstream"]))))
def test_clean_never_removes_a_file_the_current_rules_read_as_a_source(tmp_path_factory, case):
    """Property: after rules are removed, clean keeps every file a remaining rule reads that
    no remaining rule makes, whatever it is asked to clean."""
    n, kept, how = case
    root = tmp_path_factory.mktemp("p")
    rules = root / "Makeflow.py"
    rules.write_text(_rules(list(range(n + 1)), n))
    with open(os.devnull, "w") as out:
        assert build(load(rules), [], BuildOptions(jobs=1), PlainReporter(out)).ok
    rules.write_text(_rules(sorted(kept), n))
    pipeline = load(rules)
    sources = {f"f{i - 1}" for i in kept if i and i - 1 not in kept}
    before = {p: (root / p).read_text() for p in sources}

    if how == "all":
        clean(pipeline)
    else:
        clean(pipeline, [f"r{max(kept)}"], upstream=how == "upstream")

    assert {p: (root / p).read_text() for p in sources if (root / p).exists()} == before


def test_clean_keeps_the_files_of_a_ring_of_rules(project):
    """With {f}.csv -> {f}.csv.gz and back, each file may be the only copy of the data:
    clean keeps both, whichever one makeflow last wrote."""
    project.rules("""\
        from makeflow import rule

        rule("gz", inputs="{f}.csv", outputs="{f}.csv.gz",
             shell="gzip -nc {inputs} > {outputs}")
        rule("gunzip", inputs="{f}.csv.gz", outputs="{f}.csv",
             shell="gzip -dc {inputs} > {outputs}")
        rule("head", inputs="{f}.csv", outputs="{f}.head", shell="head -1 {inputs} > {outputs}")
        rule("all", inputs=["t.head", "t.csv.gz"], default=True)
    """)
    project.write("t.csv", "a,b\n")
    assert project.run("build").code == 0
    os.remove(project.root / "t.csv")
    assert project.run("build", "t.csv").code == 0  # now makeflow wrote both files

    done = project.run("clean")

    assert done.code == 0, done.text
    assert project.read("t.csv") == "a,b\n"
    assert project.exists("t.csv.gz")
    assert not project.exists("t.head")
