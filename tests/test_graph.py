"""Graph order and cycles, for every small graph hypothesis can think of."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from makeflow import UserError
from makeflow.define.loader import Pipeline
from makeflow.define.rules import Files, Rule
from makeflow.plan.graph import resolve
from makeflow.store.fs import StatCache


def pipeline(edges: dict[int, list[int]], tmp_path) -> Pipeline:
    """Rule `rN` makes `fN` from the files of the rules it depends on; `all` wants them all."""
    rules = [Rule(f"r{n}", Files(tuple(f"f{u}" for u in ups)), Files((f"f{n}",)), "x:1",
                  shell="true") for n, ups in edges.items()]
    everything = Rule("all", Files(tuple(f"f{n}" for n in edges)), Files(), "x:1", default=True)
    return Pipeline(tmp_path / "Makeflow.py", (everything, *rules))


@st.composite
def dags(draw) -> dict[int, list[int]]:
    size = draw(st.integers(1, 12))
    return {n: draw(st.lists(st.integers(0, n - 1), max_size=3, unique=True)) if n else []
            for n in range(size)}


@settings(max_examples=60, deadline=None)
@given(dags())
def test_every_step_comes_after_the_steps_it_depends_on(tmp_path_factory, edges):
    graph = resolve(pipeline(edges, tmp_path_factory.mktemp("g")), [], StatCache())
    order = list(graph.steps)
    assert set(order) == {f"r{n}" for n in edges} | {"all"}
    for sid, ups in graph.upstream.items():
        assert all(order.index(u) < order.index(sid) for u in ups)


@settings(max_examples=60, deadline=None)
@given(dags(), st.data())
def test_a_back_edge_is_reported_as_a_cycle_path(tmp_path_factory, edges, data):
    if len(edges) < 2:
        return
    low = data.draw(st.integers(0, len(edges) - 2))
    high = data.draw(st.integers(low + 1, len(edges) - 1))
    edges[low] = [*edges[low], high]  # low now also needs high: with a path high -> low, a loop
    edges[high] = sorted({*edges[high], low})
    with pytest.raises(UserError) as error:
        resolve(pipeline(edges, tmp_path_factory.mktemp("g")), [], StatCache())
    path = str(error.value).split("cycle: ")[1].split("\n")[0].split(" -> ")
    assert path[0] == path[-1]
    steps = path[::2]
    files = path[1::2]
    for before, through, after in zip(steps, files, steps[1:], strict=False):
        assert through == f"f{before[1:]}"  # each file is made by the step before it
        assert through in {f"f{u}" for u in edges[int(after[1:])]}  # and read by the next
