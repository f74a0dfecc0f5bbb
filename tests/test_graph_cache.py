"""The saved graph comes back as it was resolved, whatever its size.

It is written and read in chunks of steps, so a million-step graph never sits in memory
twice; these tests use chunks of a few steps, so every boundary case is crossed.
"""

from __future__ import annotations

import pytest

from makeflow import load
from makeflow.plan import graph_cache
from makeflow.plan.graph_cache import cache_key, resolve_cached
from makeflow.store.fs import StatCache

RULES = """
from makeflow import expand, rule

rule("copy", inputs="in/{i}.txt", outputs="out/{i}.txt", shell="cp {inputs} {outputs}")
rule("pair", inputs=["out/0.txt", "out/1.txt"], outputs="pair.txt",
     shell="cat {inputs} > {outputs}")
rule("all", inputs=["pair.txt", *expand("out/{i}.txt", i=range(N))], outputs="all.txt",
     default=True, shell="cat {inputs} > {outputs}")
"""


def _plain(steps):
    """Steps as values (a Rule compares by identity, and each load makes new ones)."""
    return [(s.id, s.rule.name, s.wildcards, s.inputs, s.outputs) for s in steps.values()]


def _resolve(project, monkeypatch, n: int):
    for i in range(n):
        project.write(f"in/{i}.txt", f"{i}\n")
    project.rules(f"N = {n}\n" + RULES)
    pipeline = load(project.root / "Makeflow.py")
    monkeypatch.chdir(project.root)
    folder = project.root / ".makeflow"
    folder.mkdir(exist_ok=True)
    return resolve_cached(pipeline, cache_key(pipeline, []), StatCache(), folder)[:2]


@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 100])
def test_a_saved_graph_loads_as_it_was_resolved(project, monkeypatch, chunk):
    monkeypatch.setattr(graph_cache, "CHUNK", chunk)
    fresh, digest = _resolve(project, monkeypatch, 7)
    assert (project.root / ".makeflow" / "graph.cache").exists()
    loaded, again = _resolve(project, monkeypatch, 7)
    assert loaded is not fresh and again == digest
    assert _plain(loaded.steps) == _plain(fresh.steps)
    assert loaded.upstream == fresh.upstream
    assert loaded.producer == fresh.producer
    assert (loaded.sources, loaded.targets) == (fresh.sources, fresh.targets)


def test_the_digest_is_the_graphs_not_the_chunking(project, monkeypatch):
    """A graph resolved afresh gets the digest the saved one had (the no-op snapshot's
    key rests on it), and a different graph gets another."""
    _, digest = _resolve(project, monkeypatch, 5)
    (project.root / ".makeflow" / "graph.cache").unlink()
    _, again = _resolve(project, monkeypatch, 5)
    assert again == digest
    _, other = _resolve(project, monkeypatch, 6)
    assert other != digest


def test_a_truncated_cache_resolves_afresh(project, monkeypatch):
    monkeypatch.setattr(graph_cache, "CHUNK", 2)
    fresh, digest = _resolve(project, monkeypatch, 5)
    path = project.root / ".makeflow" / "graph.cache"
    data = path.read_bytes()
    for cut in (len(data) - 1, len(data) // 2, 12):
        path.write_bytes(data[:cut])
        graph, again = _resolve(project, monkeypatch, 5)
        assert again == digest and _plain(graph.steps) == _plain(fresh.steps)


def test_a_big_plan_is_printed_whole_and_status_check_still_fails(project):
    """Dry runs and status write their lines in batches and end the process without
    freeing the plan object by object: every line still arrives, in order, with the exit
    status the command chose."""
    n = 2_345
    project.rules(f"N = {n}\n" + RULES)
    for i in range(n):
        project.write(f"in/{i}.txt", f"{i}\n")

    dry = project.run("build", "-n")
    lines = dry.out.splitlines()
    assert dry.code == 0, dry.text
    assert lines[:2] == ["would run copy[i=0]: never ran", "would run copy[i=1]: never ran"]
    assert len([line for line in lines if line.startswith("would run ")]) == n + 2
    assert lines[-1] == f"{n + 2} steps would run"

    status = project.run("status", "--check")
    lines = status.out.splitlines()
    assert status.code == 1, status.text
    assert len([line for line in lines if line.startswith("stale  ")]) == n + 2
    assert lines[-1] == f"{n + 2} of {n + 2} steps stale"
