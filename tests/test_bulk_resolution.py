"""A step with many inputs resolves them a column at a time (`Resolver.find_many`): the
graph must be the one file-by-file resolution finds, for every pipeline of pattern rules,
explicit rules and sources hypothesis can think of, and its errors the same."""

from __future__ import annotations

import contextlib
import re
from pathlib import Path

from hypothesis import event, given, settings
from hypothesis import strategies as st

from makeflow import UserError
from makeflow.define.loader import Pipeline
from makeflow.define.rules import Files, Rule
from makeflow.plan.graph import Graph, Resolver
from makeflow.store.fs import StatCache

# (outputs, inputs, priority): rules that compete for a file, chain, write two files,
# take two wildcards, would read their own output, or lead outside the project
PATTERNS = [
    (("d/{x}.a",), ("s/{x}.txt",), 0),
    (("d/{x}.a",), ("d/{x}.b",), 1),
    (("d/{x}.a",), ("d/{x}.b",), 0),
    (("d/{x}.b",), ("s/{x}.txt",), 0),
    (("{x}.c",), ("d/{x}.a",), 0),
    (("m/{x}.1", "m/{x}.2"), ("s/{x}.txt",), 0),
    (("d/n{x}.a",), ("s/{x}.txt", "s/{x}.txt"), 0),
    (("d/{x,[0-9]}.a",), ("d/{x}.a",), 0),
    (("o/{x}/{y}.t",), ("s/{x}.txt", "s/{y}.txt"), 0),
    (("w/{x}",), ("../s/{x}.txt",), 0),
    (("p/{x}.q",), ("p/./{x}.r",), 0),
    (("p/{x}.r",), ("s/{x}.txt",), 0),
    (("{x}.c",), ("{x}.c",), 0),
]
EXPLICIT = [(("d/1.a",), ("s/1.txt",)), (("e.txt",), ()), (("m/4.2",), ())]
SOURCES = ["s/0.txt", "s/1.txt", "s/2.txt", "s/3.txt"]  # on disk, now and then but one
ON_DISK = ["d/0.a", "d/2.b", "d/4.b", "3.c", "m/2.1", "p/1.r", "list.txt"]
WANTED = ["d/{i}.a", "d/n{i}.a", "d/{i}.b", "{i}.c", "m/{i}.1", "m/{i}.2", "o/{i}/{j}.t",
          "s/{i}.txt", "e.txt", "w/{i}", "p/{i}.q", "list.txt"]


@st.composite
def pipelines(draw) -> tuple[list[tuple], list[tuple], list[str], list[str]]:
    """Rules, the files on disk, and what the final step reads: mostly files some rule
    makes or that exist, so that most pipelines resolve; now and then one that does not."""
    patterns = draw(st.lists(st.sampled_from(PATTERNS), min_size=1, max_size=6, unique=True))
    explicit = draw(st.lists(st.sampled_from(EXPLICIT), max_size=2, unique=True))
    files = draw(st.lists(st.sampled_from(ON_DISK), unique=True))
    missing = draw(st.sampled_from([None, None, None, None, *SOURCES]))
    files += [s for s in SOURCES if s != missing]
    made = [_filled(out, x, y) for outs, _, _ in patterns for out in outs
            for x in range(4) for y in range(2)]
    candidates = made + [out for outs, _ in explicit for out in outs] + files
    wanted = draw(st.lists(st.sampled_from(candidates), min_size=1, max_size=14))
    if draw(st.booleans()) and draw(st.booleans()):
        wanted.append(_filled(draw(st.sampled_from(WANTED)), draw(st.integers(0, 4)), 0))
    return patterns, explicit, files, wanted


def _filled(template: str, x: int, y: int) -> str:
    values = iter((str(x), str(y)))
    return re.sub(r"\{\w+(,[^}]*)?\}", lambda _: next(values), template.replace(
        "{i}", "{x}").replace("{j}", "{y}"))


def _pipeline(root: Path, patterns, explicit, wanted) -> Pipeline:
    rules = [Rule(f"p{n}", Files(ins), Files(outs), f"Makeflow.py:{n}", shell="true",
                  priority=priority) for n, (outs, ins, priority) in enumerate(patterns)]
    rules += [Rule(f"e{n}", Files(ins), Files(outs), "Makeflow.py:99", shell="true")
              for n, (outs, ins) in enumerate(explicit)]
    final = Rule("all", Files(tuple(wanted)), Files(("all.txt",)), "Makeflow.py:100",
                 shell="true", default=True)
    return Pipeline(root / "Makeflow.py", (final, *rules))


def _resolve(pipeline: Pipeline, many: int, column: int) -> tuple[Graph, Resolver] | str:
    """The graph (or the error) with columns from `many` inputs, `column` files at a time."""
    with contextlib.chdir(pipeline.root):
        resolver = Resolver(pipeline, StatCache())
        resolver.many, resolver.column = many, column
        try:
            return resolver.resolve([]), resolver
        except UserError as error:
            return str(error)


def _shape(graph: Graph) -> tuple:
    steps = [(s.id, s.rule.name, s.wildcards, s.inputs, s.outputs)
             for s in graph.steps.values()]
    return steps, graph.upstream, graph.sources, graph.producer, graph.targets


@settings(max_examples=500, deadline=None)
@given(pipelines())
def test_columns_resolve_the_graph_file_by_file_resolution_does(tmp_path_factory, drawn):
    patterns, explicit, files, wanted = drawn
    root = tmp_path_factory.mktemp("p")
    for name in files:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(name)
    pipeline = _pipeline(root, patterns, explicit, wanted)
    one_by_one = _resolve(pipeline, many=10**9, column=10_000)
    event(one_by_one.split(":")[2][:30] if isinstance(one_by_one, str) else
          f"{min(len(one_by_one[0].steps), 5)}+ steps")
    for many, column in ((1, 10_000), (1, 2), (3, 1)):
        in_columns = _resolve(pipeline, many, column)
        if isinstance(one_by_one, str) or isinstance(in_columns, str):
            assert in_columns == one_by_one
            continue
        assert _shape(in_columns[0]) == _shape(one_by_one[0])
        assert in_columns[1].cut_files == one_by_one[1].cut_files
        # the graph cache rests on what was probed: each answer must be the file system's
        probed = in_columns[1].probed
        assert all(probed[p] == (root / p).exists() for p in probed)
        assert set(one_by_one[1].probed) <= set(probed)


def _copies(project, size: int, wanted: str, more: str = "") -> None:
    """`size` sources copied by a pattern rule; a final step reading `wanted`."""
    for i in range(size):
        project.write(f"in/{i}.txt", f"{i}\n")
    project.rules(
        "from makeflow import expand, rule\n"
        'rule("copy", inputs="in/{i}.txt", outputs="out/{i}.txt", '
        'shell="cp {inputs[0]} {outputs[0]}")\n' + more +
        f'rule("all", inputs={wanted}, outputs="all.txt", shell="cat {{inputs}} > {{outputs}}", '
        "default=True)\n")


def test_a_step_reading_hundreds_of_outputs_builds_them_all(project) -> None:
    _copies(project, 600, 'expand("out/{i}.txt", i=range(600))')
    done = project.run("build", "-q")
    assert done.code == 0, done.err
    assert project.read("all.txt") == "".join(f"{i}\n" for i in range(600))
    again = project.run("build", "-n")
    assert again.code == 0 and "up to date" in again.out.lower(), again.out


def test_a_missing_source_among_hundreds_is_named_with_the_step(project) -> None:
    _copies(project, 600, 'expand("out/{i}.txt", i=range(601))')
    done = project.run("build", "-n")
    assert done.code == 2, done.err
    assert "no rule makes out/600.txt, which all needs" in done.err
    assert "in/600.txt does not exist" in done.err
    assert "Traceback" not in done.err


def test_a_wildcard_leading_outside_among_hundreds_is_refused(project) -> None:
    (project.root.parent / "data.csv").write_text("secret")
    _copies(project, 300, '[*expand("out/{i}.txt", i=range(300)), "res/...out"]',
            'rule("res", inputs="{n}/data.csv", outputs="res/{n}.out", shell="true")\n')
    done = project.run("build", "-n")
    assert done.code == 2, done.err
    assert "rule res with n='..' would use ../data.csv, which is outside the project" \
        in done.err, done.err
    assert "Traceback" not in done.err
