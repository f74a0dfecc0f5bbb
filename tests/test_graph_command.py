"""`makeflow graph` with checkpoints and skips: the whole graph once a checkpoint has run,
what is not known before, and the steps recorded as skipped, in every format."""

from __future__ import annotations

import pytest
from test_checkpoints import CLUSTERS, per
from test_skip import gate

FORMATS = ["text", "dot", "mermaid"]


def graph(project, fmt="text"):
    done = project.run("graph", "--format", fmt)
    assert done.code == 0, done.text
    return done.out


def test_before_a_checkpoint_has_run_the_graph_says_what_is_not_known(project):
    project.write("n.txt", "3\n")
    project.rules(CLUSTERS)
    text = graph(project)
    assert "split [stale] (a checkpoint: the steps below it are known once it has run)" \
        in text
    assert "total [stale] (not known until checkpoint split has run)" in text
    assert "  <- split (its functions read what split wrote)" in text
    assert "per[c=" not in text
    dot = graph(project, "dot")
    assert '"step:split" -> "step:total" [style=dashed];' in dot
    assert "(not known until checkpoint split has run)" in dot
    mermaid = graph(project, "mermaid")
    assert "-.->" in mermaid and "not known until checkpoint split has run" in mermaid


@pytest.mark.parametrize("fmt", FORMATS)
def test_after_a_checkpoint_ran_the_graph_is_whole(project, fmt):
    project.write("n.txt", "3\n")
    project.rules(CLUSTERS)
    assert project.build().ran[-1] == "total"
    for _ in range(2):  # resolved, then loaded from the kept graph
        out = graph(project, fmt)
        for name in ["split", *per(0, 1, 2), "total", "clusters/2.txt", "per/2.txt"]:
            assert name in out, f"{name} missing from:\n{out}"
        assert "not known" not in out


def test_a_stale_checkpoint_shows_the_steps_its_last_output_called_for(project):
    project.write("n.txt", "2\n")
    project.rules(CLUSTERS)
    project.build()
    project.write("n.txt", "3\n")
    text = graph(project)
    assert "per[c=1] [stale] (not known until checkpoint split has run)" in text
    assert "per[c=2]" not in text


@pytest.mark.parametrize("fmt,mark", [
    ("text", "deploy [skipped: score 0.3 is below 0.4]"),
    ("dot", 'label="deploy\\n(skipped)", shape=box, style="filled,dashed", '
            "fillcolor=lightgrey"),
    ("mermaid", '["deploy (skipped)"]'),
])
def test_a_skipped_step_is_marked(project, fmt, mark):
    gate(project, "0.3")
    assert project.run("build").code == 0
    out = graph(project, fmt)
    assert mark in out, out
    if fmt == "text":
        assert "notify [skipped: deploy: score 0.3 is below 0.4]" in out
        assert "report [fresh]" in out
