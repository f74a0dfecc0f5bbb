"""The graph refuses steps that would fight over a file, and breaks a cycle at a source.

Two steps of one build writing one file, or one writing inside another's folder output,
would undo each other on every build (and race under -j2): an error when the graph is
built, naming both rules. A pattern rule whose step would close a cycle is not used for a
file that exists: the file is read as a source, as make and Snakemake do.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from makeflow import BuildOptions, build, load
from makeflow.define.loader import Pipeline
from makeflow.define.rules import Files, Rule
from makeflow.errors import UserError
from makeflow.plan import graph as graph_module
from makeflow.plan.graph import resolve
from makeflow.plan.graph_cache import cache_key, resolve_cached
from makeflow.store.fs import StatCache
from makeflow.ui.plain import PlainReporter


def user_error(done, *needles: str) -> str:
    assert done.code == 2, done.text
    assert "Traceback" not in done.text
    message = done.err.strip()
    assert message.startswith("makeflow: error:"), done.text
    assert "\n\n" not in message, f"more than one paragraph:\n{message}"
    for needle in needles:
        assert needle in message, f"{needle!r} not in:\n{message}"
    return message


def test_two_pattern_rules_whose_outputs_meet_are_an_error_naming_both(project):
    project.write("data/ab.csv", "1\n")
    project.write("data/b.csv", "2\n")
    project.rules("""\
        from makeflow import rule

        rule("split", inputs="data/{s}.csv", outputs=["out/{s}.head", "out/{s}.tail"],
             shell="head -1 {inputs} > {outputs[0]}; tail -1 {inputs} > {outputs[1]}")
        rule("tail_a", inputs="data/{s}.csv", outputs="out/a{s}.tail",
             shell="tail -1 {inputs} > {outputs}")
        rule("all", inputs=["out/ab.head", "out/ab.tail"], default=True)
    """)

    user_error(project.run("build", "-j2"), "split", "tail_a", "out/ab.tail")
    assert not project.exists("out/ab.tail")


def test_a_pattern_rule_meeting_an_explicit_rule_is_an_error_naming_both(project):
    project.write("data/a.csv", "1\n")
    project.rules("""\
        from makeflow import rule

        rule("split", inputs="data/{s}.csv", outputs=["out/{s}.head", "out/{s}.tail"],
             shell="head -1 {inputs} > {outputs[0]}; tail -1 {inputs} > {outputs[1]}")
        rule("special", outputs="out/a.tail", shell="echo special > {outputs}")
        rule("all", inputs=["out/a.head", "out/a.tail"], default=True)
    """)

    user_error(project.run("build", "-j2"), "split", "special", "out/a.tail")
    user_error(project.run("status"), "split", "special", "out/a.tail")


def test_an_output_inside_another_steps_folder_output_is_an_error(project):
    project.rules("""\
        import os
        from makeflow import rule

        @rule(outputs="report")
        def report(step):
            os.makedirs(step.outputs[0], exist_ok=True)
            (step.outputs[0] / "index.html").write_text("<p>hi</p>")

        rule("extra", outputs="report/extra.txt", shell="echo x > {outputs}")
        rule("all", inputs=["report", "report/extra.txt"], default=True)
    """)

    user_error(project.run("build"), "report", "extra", "report/extra.txt")


def test_a_nested_output_deeper_down_is_found_too(tmp_path):
    outer = Rule("outer", Files(), Files(("a",)), "x:1", shell="true")
    inner = Rule("inner", Files(), Files(("a/b/c/d.txt",)), "x:2", shell="true")
    everything = Rule("all", Files(("a", "a/b/c/d.txt")), Files(), "x:3", default=True)
    try:
        resolve(Pipeline(tmp_path / "Makeflow.py", (everything, outer, inner)), [],
                StatCache())
    except UserError as error:
        assert "outer" in str(error) and "inner" in str(error)
    else:
        raise AssertionError("a nested output was accepted")


def test_siblings_that_share_a_prefix_are_not_nested(tmp_path):
    rules = (Rule("all", Files(("a", "a.txt", "a-b/c", "ab/c")), Files(), "x:0", default=True),
             *(Rule(f"r{i}", Files(), Files((p,)), f"x:{i}", shell="true")
               for i, p in enumerate(("a", "a.txt", "a-b/c", "ab/c"))))
    graph = resolve(Pipeline(tmp_path / "Makeflow.py", rules), [], StatCache())
    assert len(graph.steps) == 5


@st.composite
def output_sets(draw):
    """Steps with outputs drawn from a small tree of names, so clashes are frequent."""
    segment = st.sampled_from(["a", "b", "a.b", "a-b"])
    path = st.lists(segment, min_size=1, max_size=3).map("/".join)
    return draw(st.lists(st.lists(path, min_size=1, max_size=2, unique=True),
                         min_size=1, max_size=6))


@settings(max_examples=150, deadline=None)
@given(output_sets())
def test_the_graph_is_refused_exactly_when_two_steps_meet(tmp_path_factory, outputs):
    """Property: an error iff two steps share a path, or one's path is under another's."""
    rules = [Rule(f"r{i}", Files(), Files(tuple(paths)), f"x:{i}", shell="true")
             for i, paths in enumerate(outputs)]
    owner: dict[str, set[int]] = {}
    for i, paths in enumerate(outputs):
        for p in paths:
            owner.setdefault(p, set()).add(i)
    clash = any(len(o) > 1 for o in owner.values()) or any(
        owner.get(anc, set()) - owner[p]
        for p in owner for anc in _ancestors(p))
    targets = [r.name for r in rules]
    pipeline = Pipeline(tmp_path_factory.mktemp("g") / "Makeflow.py", tuple(rules))
    try:
        resolve(pipeline, targets, StatCache())
    except UserError as error:
        assert clash, str(error)
        assert "both" in str(error) or "inside" in str(error)
    else:
        assert not clash


def _ancestors(path: str) -> list[str]:
    parts = path.split("/")
    return ["/".join(parts[:i]) for i in range(1, len(parts))]


def test_a_graph_from_the_cache_is_checked_for_clashes_too(tmp_path, monkeypatch):
    """A cached graph saved without the checks (by an older makeflow, or a bug) is refused
    when loaded, not trusted."""
    rules = (Rule("outer", Files(), Files(("a",)), "x:1", shell="true"),
             Rule("inner", Files(), Files(("a/b.txt",)), "x:2", shell="true"),
             Rule("all", Files(("a", "a/b.txt")), Files(), "x:3", default=True))
    pipeline = Pipeline(tmp_path / "Makeflow.py", rules)
    key = cache_key(pipeline, [])
    monkeypatch.chdir(tmp_path)
    with monkeypatch.context() as unchecked:
        unchecked.setattr(graph_module, "producers", lambda steps: {
            p: sid for sid, step in steps.items() for p in step.outputs.paths})
        resolve_cached(pipeline, key, StatCache(), tmp_path)
    assert (tmp_path / "graph.cache").exists()

    with pytest.raises(UserError, match="inside a"):
        resolve_cached(pipeline, key, StatCache(), tmp_path)


COMPRESS = """\
    from makeflow import rule

    rule("gzip", inputs="{f}.csv", outputs="{f}.csv.gz", shell="gzip -nc {inputs} > {outputs}")
    rule("gunzip", inputs="{f}.csv.gz", outputs="{f}.csv", shell="gzip -dc {inputs} > {outputs}")
"""


def test_an_existing_file_breaks_a_cycle_of_pattern_rules(project):
    project.rules(COMPRESS)
    project.write("table.csv", "a,b\n1,2\n")

    done = project.run("build", "table.csv.gz")

    assert done.code == 0, done.text
    assert "gunzip" not in done.out
    assert project.exists("table.csv.gz")
    assert project.run("build", "table.csv.gz").code == 0
    assert project.run("status", "table.csv.gz").out.strip().endswith("up to date")


def test_the_reverse_direction_breaks_the_cycle_at_the_other_file(project):
    project.rules(COMPRESS)
    project.write("table.csv", "a,b\n1,2\n")
    assert project.run("build", "table.csv.gz").code == 0
    os.remove(project.root / "table.csv")

    done = project.run("build", "table.csv")

    assert done.code == 0, done.text
    assert project.read("table.csv") == "a,b\n1,2\n"


def test_the_cut_stays_at_the_users_file_once_both_exist(project):
    """Once the build made table.csv.gz, both files exist: the cycle must still be cut at
    table.csv, the file makeflow did not make, or the next build would rewrite the user's
    table.csv from the .gz (and lose an edit made since)."""
    project.rules(COMPRESS + """
    rule("head", inputs="{f}.csv", outputs="{f}.head", shell="head -1 {inputs} > {outputs}")
    rule("all", inputs=["table.head", "table.csv.gz"], default=True)
    """)
    project.write("table.csv", "a,b\n1,2\n")
    first = project.run("build")
    assert first.code == 0, first.text

    again = project.run("build")
    assert again.code == 0, again.text
    assert "ran 0" in again.out, again.out

    project.write("table.csv", "c,d\n3,4\n")
    edited = project.run("build")
    assert edited.code == 0, edited.text
    assert "gunzip" not in edited.out
    assert project.read("table.csv") == "c,d\n3,4\n"
    assert project.read("table.head") == "c,d\n"
    assert "ran 0" in project.run("build").out


def test_a_cycle_is_not_broken_at_a_file_the_build_itself_writes(project):
    project.rules(COMPRESS)
    project.write("table.csv.gz", "not really gzip")

    user_error(project.run("build", "table.csv.gz"), "cycle", "gzip[f=table]")
    assert project.read("table.csv.gz") == "not really gzip"


def test_a_cycle_with_no_file_to_break_it_is_still_an_error(project):
    project.rules(COMPRESS)

    user_error(project.run("build", "table.csv.gz"), "no rule makes")


def test_an_explicit_cycle_is_an_error_even_when_the_files_exist(project):
    project.rules("""\
        from makeflow import rule

        rule("a", inputs="y.txt", outputs="x.txt", shell="cp {inputs} {outputs}")
        rule("b", inputs="x.txt", outputs="y.txt", shell="cp {inputs} {outputs}")
    """)
    project.write("x.txt", "x")
    project.write("y.txt", "y")

    user_error(project.run("build", "a"), "cycle")


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(2, 3).flatmap(lambda k: st.tuples(
    st.just(k), st.sets(st.integers(0, k - 1), min_size=1), st.integers(0, k - 1),
    st.integers(0, k - 1))))
def test_a_ring_of_pattern_rules_builds_once_and_then_stays_put(tmp_path_factory, case):
    """Property: with pattern rules in a ring (x.e0 -> x.e1 -> ... -> x.e0), a reader of
    one of its files, and some of the files present, a build either is refused or
    settles: no file is both read as a source and written, no source file changes, the
    next build runs nothing, and an edit of a source reruns only what reads it."""
    k, present, target, read = case
    root = tmp_path_factory.mktemp("ring")
    lines = ["from makeflow import rule",
             f'rule("read", inputs="{{f}}.e{read}", outputs="{{f}}.r", '
             'shell="cp {inputs} {outputs}")']
    for i in range(k):
        j = (i + 1) % k
        lines.append(f'rule("to{j}", inputs="{{f}}.e{i}", outputs="{{f}}.e{j}", '
                     f'shell="cp {{inputs}} {{outputs}}")')
    (root / "Makeflow.py").write_text("\n".join(lines) + "\n")
    for i in present:
        (root / f"x.e{i}").write_text(f"user {i}\n")
    targets = ["x.r", f"x.e{target}"]
    try:
        first = _build(root, targets)
    except UserError:
        return
    graph = first.plan.graph
    sources = set(graph.sources)
    assert not sources & set(graph.producer), (sources, graph.producer)
    kept = {p: (root / p).read_text() for p in sources}
    assert _build(root, targets).ran == []
    assert {p: (root / p).read_text() for p in sources} == kept
    for p in sources:
        (root / p).write_text("edited\n")
    _build(root, targets)
    assert {p: (root / p).read_text() for p in sources} == dict.fromkeys(sources, "edited\n")
    assert _build(root, targets).ran == []


def _build(root, targets):
    with open(os.devnull, "w") as out:
        result = build(load(root / "Makeflow.py"), targets, BuildOptions(jobs=1),
                       PlainReporter(out))
    assert result.ok, result.failed
    return result
