"""Checkpoints: a step whose output decides the rest of the graph. One build runs it, grows
the graph and runs the new steps; later builds run only what its new output calls for."""

from __future__ import annotations

import io
import json
import shutil

from makeflow import BuildOptions, build, load
from makeflow.run.build import local_executor
from makeflow.ui.plain import PlainReporter

CLUSTERS = """
import os
from makeflow import rule, expand, glob_wildcards

@rule(inputs="n.txt", outputs="clusters", checkpoint=True)
def split(step):
    os.makedirs(step.outputs[0], exist_ok=True)
    for i in range(int(step.inputs[0].read_text())):
        (step.outputs[0] / f"{i}.txt").write_text(f"cluster {i}\\n")

rule("per", inputs="clusters/{c}.txt", outputs="per/{c}.txt",
     shell="tr a-z A-Z < {inputs} > {outputs}")

rule("total", inputs=lambda: expand("per/{c}.txt", c=glob_wildcards("clusters/{c}.txt").c),
     outputs="total.txt", shell="cat {inputs} > {outputs}", default=True)
"""


def setup(project, n=3):
    project.write("n.txt", f"{n}\n")
    project.rules(CLUSTERS)


def per(*items):
    return [f"per[c={i}]" for i in items]


def test_one_build_runs_the_checkpoint_and_what_its_output_calls_for(project):
    setup(project)
    result = project.build()
    assert sorted(result.ran) == sorted(["split", *per(0, 1, 2), "total"])
    assert result.ran[0] == "split" and result.ran[-1] == "total"
    assert project.read("total.txt") == "CLUSTER 0\nCLUSTER 1\nCLUSTER 2\n"
    again = project.build()
    assert again.ran == [] and again.cut_off == []
    assert sorted(again.fresh) == sorted(["split", *per(0, 1, 2), "total"])


def test_one_more_item_runs_only_its_steps_and_the_aggregate(project):
    setup(project)
    project.build()
    project.write("n.txt", "4\n")
    result = project.build()
    assert result.ran == ["split", *per(3), "total"]
    assert project.read("total.txt").splitlines()[-1] == "CLUSTER 3"


def test_identical_output_cuts_off_everything_below(project):
    setup(project)
    project.build()
    project.write("n.txt", "3 \n")  # another input, the same clusters
    result = project.build()
    assert result.ran == ["split"]
    assert sorted(result.cut_off) == sorted([*per(0, 1, 2), "total"])
    assert project.build().ran == []


def test_an_item_that_disappeared_is_reported_and_its_output_left_to_clean(project):
    setup(project)
    project.build()
    project.write("n.txt", "2\n")
    result = project.build()
    assert result.ran == ["split", "total"]
    assert "no longer part of the build: per[c=2]" in result.output
    assert "makeflow clean" in result.output
    assert project.read("total.txt") == "CLUSTER 0\nCLUSTER 1\n"
    assert project.exists("per/2.txt")  # left in place
    assert "per[c=2]" not in project.build().output  # reported once
    done = project.run("clean")
    assert done.code == 0, done.text
    assert not project.exists("per/2.txt")


def test_dry_run_and_status_say_what_waits_for_the_checkpoint(project):
    setup(project)
    done = project.run("build", "-n")
    assert done.code == 0, done.text
    assert "split: never ran (a checkpoint: the steps below it are known once it has run)" \
        in done.out
    assert "total: never ran; upstream: split (not known until checkpoint split has run)" \
        in done.out
    assert not project.exists("clusters")
    project.build()
    project.write("n.txt", "4\n")
    done = project.run("status")
    assert "per[c=1]: upstream: split (not known until checkpoint split has run)" in done.out
    assert "per[c=3]" not in done.out  # not known yet
    assert project.run("build").code == 0
    assert "up to date" in project.run("status").out


def test_graph_shows_the_whole_graph(project):
    setup(project)
    project.build()
    done = project.run("graph")
    assert done.code == 0, done.text
    for sid in ["split", *per(0, 1, 2), "total"]:
        assert sid in done.out
    assert "clusters/2.txt" in done.out


def test_a_failed_checkpoint_leaves_the_steps_below_not_run(project):
    setup(project)
    project.write("n.txt", "not a number\n")
    result = project.build()
    assert list(result.failed) == ["split"]
    assert "total" in result.not_run
    done = project.run("build")
    assert done.code == 1 and "Traceback (most recent call last)" in done.out  # the step's log
    project.write("n.txt", "1\n")
    assert project.build().ran == ["split", *per(0), "total"]


def test_forced_build_runs_each_step_once(project):
    setup(project)
    project.build()
    result = project.build(force=True)
    assert sorted(result.ran) == sorted(["split", *per(0, 1, 2), "total"])
    assert len(result.ran) == len(set(result.ran))


def test_a_pattern_checkpoint_per_sample(project):
    """A checkpoint per sample: each sample's function reads its own checkpoint's output."""
    project.write("samples/a.txt", "2\n")
    project.write("samples/b.txt", "1\n")
    project.rules("""
        import os
        from makeflow import rule, expand, glob_wildcards

        @rule(inputs="samples/{s}.txt", outputs="parts/{s}", checkpoint=True)
        def cut(step):
            os.makedirs(step.outputs[0], exist_ok=True)
            for i in range(int(step.inputs[0].read_text())):
                (step.outputs[0] / f"{i}.txt").write_text(f"{step.wildcards['s']}{i}\\n")

        rule("sum", inputs=lambda w: expand(f"parts/{w.s}/{{i}}.txt",
                                            i=glob_wildcards(f"parts/{w.s}/{{i}}.txt").i),
             outputs="sums/{s}.txt", shell="cat {inputs} > {outputs}")
        rule("all", inputs=["sums/a.txt", "sums/b.txt"], default=True)
    """)
    result = project.build()
    assert sorted(result.ran) == ["cut[s=a]", "cut[s=b]", "sum[s=a]", "sum[s=b]"]
    assert project.read("sums/a.txt") == "a0\na1\n"
    project.write("samples/b.txt", "3\n")
    assert project.build().ran == ["cut[s=b]", "sum[s=b]"]
    assert project.read("sums/b.txt") == "b0\nb1\nb2\n"


def test_the_run_history_and_json_see_one_build(project):
    """Each part of the build starts with `build_started`; one `build_finished` ends it,
    and the run history holds one build with every step that ran."""
    setup(project)
    done = project.run("build", "--json")
    assert done.code == 0, done.text
    events = [json.loads(line) for line in done.out.splitlines() if line.strip()]
    started = [e["steps"] for e in events if e["event"] == "build_started"]
    assert started == [1, 4]
    finished = [e for e in events if e["event"] == "build_finished"]
    assert len(finished) == 1 and len(finished[0]["ran"]) == 5
    runs = project.run("runs", "--json")
    assert runs.code == 0, runs.text
    (run,) = json.loads(runs.out)["runs"]
    assert run["counts"]["ran"] == 5 and run["result"] == "ok"


def test_list_and_status_json_show_the_checkpoint(project):
    setup(project)
    project.build()
    listed = project.run("list")
    assert "split  [python, checkpoint, Makeflow.py:5]" in listed.out, listed.text
    assert "(what its inputs function returns)" in listed.out
    rules = {r["name"]: r for r in json.loads(project.run("list", "--json").out)["rules"]}
    assert rules["split"]["checkpoint"] and not rules["per"]["checkpoint"]
    project.write("n.txt", "2\n")
    stale = json.loads(project.run("status", "--json").out)["stale"]
    marks = {entry["step"]: entry.get("after_checkpoint") for entry in stale}
    assert marks == {"split": None, "per[c=0]": "split", "per[c=1]": "split",
                     "per[c=2]": "split", "total": "split"}


NESTED = """
from makeflow import rule, expand, glob_wildcards
rule("outer", inputs="n.txt", outputs="a", checkpoint=True,
     shell="mkdir -p {outputs}; for i in $(seq 1 $(cat {inputs})); do "
           "echo $i > {outputs}/$i.txt; done")
rule("inner", inputs="a/{i}.txt", outputs="b/{i}", checkpoint=True,
     shell="mkdir -p {outputs}; for j in $(seq 1 $(cat {inputs})); do "
           "echo {wildcards.i}-$j > {outputs}/$j.txt; done")
rule("leaf", inputs="b/{i}/{j}.txt", outputs="c/{i}/{j}.txt", shell="cp {inputs} {outputs}")
rule("sum", inputs=lambda w: expand(f"c/{w.i}/{{j}}.txt", j=glob_wildcards(f"b/{w.i}/{{j}}.txt").j),
     outputs="s/{i}.txt", shell="cat /dev/null {inputs} > {outputs}")
rule("all", inputs=lambda: expand("s/{i}.txt", i=glob_wildcards("a/{i}.txt").i),
     outputs="all.txt", shell="cat {inputs} > {outputs}", default=True)
"""


def test_nested_checkpoint_below_a_checkpoint_adds_a_part(project):
    project.write("n.txt", "2\n")
    project.rules(NESTED)
    result = project.build()
    assert result.ran[0] == "outer" and len(result.ran) == 9
    assert project.read("all.txt") == "1-1\n2-1\n2-2\n"
    assert project.build().ran == []
    project.write("n.txt", "3\n")
    result = project.build()
    assert sorted(result.ran) == sorted(["outer", "inner[i=3]", "leaf[i=3,j=1]", "leaf[i=3,j=2]",
                                         "leaf[i=3,j=3]", "sum[i=3]", "all"])
    assert project.read("all.txt").endswith("3-1\n3-2\n3-3\n")


def age_everything(project, seconds_ago=3600):
    import os
    import time

    then = time.time_ns() - seconds_ago * 10**9
    for path in project.root.rglob("*"):
        if ".makeflow" not in path.parts:
            os.utime(path, ns=(then, then), follow_symlinks=False)


def test_a_no_op_build_with_a_checkpoint_is_settled_by_stats_alone(project):
    """The checkpoint's folder is in the no-op snapshot by its tree's stat: a file added
    inside it by hand is still seen, and the checkpoint runs again."""
    setup(project)
    project.build()
    age_everything(project)
    assert project.build().ran == []  # the records now trust the old mtimes
    quiet = project.build()
    assert quiet.ran == [] and quiet.plan.quick
    project.write("clusters/9.txt", "stray\n")
    result = project.build()
    assert result.ran == ["split"] and not project.exists("clusters/9.txt")
    assert sorted(result.cut_off) == sorted([*per(0, 1, 2), "total"])


OPENED = """
from makeflow import rule, expand
rule("count", inputs="n.txt", outputs="count.txt", checkpoint=True, shell="cp {inputs} {outputs}")
rule("item", outputs="items/{i}.txt", shell="echo item {wildcards.i} > {outputs}")
rule("all", inputs=lambda: expand("items/{i}.txt", i=range(int(open("count.txt").read()))),
     params={"n": lambda: int(open("count.txt").read())},
     outputs="all.txt", shell="(cat {inputs}; echo {params.n}) > {outputs}", default=True)
"""


def test_a_function_may_open_what_a_checkpoint_writes(project):
    """Not only glob_wildcards: a function that opens a checkpoint's file waits for it,
    and one that cannot open it yet is known once the checkpoint has run."""
    project.write("n.txt", "2\n")
    project.rules(OPENED)
    dry = project.run("build", "-n")
    assert dry.code == 0, dry.text
    assert "all: inputs not known yet (not known until checkpoint count has run)" in dry.out
    result = project.build()
    assert result.ran[0] == "count" and result.ran[-1] == "all"
    assert sorted(result.ran[1:-1]) == ["item[i=0]", "item[i=1]"]
    assert project.read("all.txt") == "item 0\nitem 1\n2\n"
    project.write("n.txt", "3\n")
    assert project.build().ran == ["count", "item[i=2]", "all"]
    assert project.build().ran == []


def test_a_function_opening_a_file_nothing_writes_fails_naming_the_rule(project):
    project.rules("""
        from makeflow import rule
        rule("all", inputs=lambda: open("missing.txt").read().split(), outputs="all.txt",
             shell="cat {inputs} > {outputs}", default=True)
    """)
    done = project.run("build")
    assert done.code == 2 and "Traceback" not in done.text
    assert "rule all: its inputs function failed (no wildcards): FileNotFoundError" in done.err


def test_a_checkpoint_that_does_not_write_what_a_function_opens_fails_after_it_ran(project):
    project.write("n.txt", "1\n")
    project.rules("""
        from makeflow import rule
        rule("c", inputs="n.txt", outputs="out", checkpoint=True, shell="mkdir -p {outputs}")
        rule("all", inputs=lambda: open("out/list.txt").read().split(), outputs="all.txt",
             shell="cat {inputs} > {outputs}", default=True)
    """)
    done = project.run("build")
    assert done.code == 2 and "Traceback" not in done.text
    assert "rule all: its inputs function failed" in done.err and "out/list.txt" in done.err
    assert "[1/1] c done" in done.out  # the checkpoint ran first


def test_a_function_reading_an_ordinary_rules_output_is_refused(project):
    project.write("n.txt", "2\n")
    project.rules("""
        from makeflow import rule
        rule("count", inputs="n.txt", outputs="count.txt", shell="cp {inputs} {outputs}")
        rule("all", inputs=lambda: ["n.txt"] * int(open("count.txt").read()), outputs="a.txt",
             shell="cat {inputs} > {outputs}", default=True)
    """)
    project.write("count.txt", "1\n")
    done = project.run("build")
    assert done.code == 2 and "Traceback" not in done.text
    assert "rule all: a function of it reads count.txt, which rule count makes" in done.err
    assert "Mark rule count checkpoint=True" in done.err


def test_the_live_view_and_plain_lines_count_on_as_the_graph_grows(project):
    import io

    from rich.console import Console

    from makeflow import BuildOptions, build, load
    from makeflow.ui.live import RichReporter
    from makeflow.ui.plain import PlainReporter

    setup(project)
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=120, color_system=None)
    result = build(load(project.root / "Makeflow.py"), [], BuildOptions(cache=False),
                   RichReporter(console))
    assert result.ok and len(result.ran) == 5
    assert "✓ split" in out.getvalue() and "✓ total" in out.getvalue()
    assert "ran 5, fresh 0, failed 0" in out.getvalue()
    project.write("n.txt", "4\n")
    plain = io.StringIO()
    build(load(project.root / "Makeflow.py"), [], BuildOptions(cache=False, jobs=1),
          PlainReporter(plain))
    lines = plain.getvalue().splitlines()
    assert lines[0].startswith("[1/1] split done")
    assert lines[1].startswith("[2/3] per[c=3] done") and lines[2].startswith("[3/3] total")


def test_pull_restores_the_checkpoint_then_what_its_output_calls_for(project, tmp_path):
    remote = f"file://{tmp_path / 'remote'}"
    (tmp_path / "remote").mkdir()
    setup(project)
    assert project.run("build", "--remote", remote, "--push").code == 0
    for made in ("per", "clusters", ".makeflow"):
        shutil.rmtree(project.root / made)
    (project.root / "total.txt").unlink()
    done = project.run("pull", "--remote", remote)
    assert done.code == 0, done.text
    assert "restored 5" in done.out and "nothing to do" not in done.out
    assert project.read("per/2.txt") == "CLUSTER 2\n"
    project.write("n.txt", "5\n")  # no cached split for this: nothing below can be known
    done = project.run("pull", "--remote", remote)
    assert done.code == 0 and "not run 5" in done.out, done.text


TEMP_ACROSS_PARTS = """
import os
from makeflow import rule, expand, glob_wildcards

rule("prep", inputs="seed.txt", outputs="big.txt", temp=True,
     shell="cat {inputs} {inputs} > {outputs}")
rule("early", inputs="big.txt", outputs="early.txt", shell="wc -l < {inputs} > {outputs}")

@rule(inputs="n.txt", outputs="clusters", checkpoint=True)
def split(step):
    os.makedirs(step.outputs[0], exist_ok=True)
    for i in range(int(step.inputs[0].read_text())):
        (step.outputs[0] / f"{i}.txt").write_text(f"cluster {i}\\n")

rule("per", inputs=["clusters/{c}.txt", "big.txt"], outputs="per/{c}.txt",
     shell="cat {inputs} > {outputs}")

rule("total", inputs=lambda: ["early.txt", *expand("per/{c}.txt",
                                                   c=glob_wildcards("clusters/{c}.txt").c)],
     outputs="total.txt", shell="cat {inputs} > {outputs}", default=True)
"""


def test_a_temporary_file_read_after_a_checkpoint_lives_until_its_last_reader(project):
    """A temp file read before the checkpoint and by steps the checkpoint calls for is
    deleted only once the last of them, in the grown graph, has run."""
    project.write("n.txt", "2\n")
    project.write("seed.txt", "s\n")
    project.rules(TEMP_ACROSS_PARTS)
    result = project.build()
    assert result.ok, result.output
    assert sorted(result.ran) == sorted(["prep", "early", "split", *per(0, 1), "total"])
    assert project.read("per/1.txt") == "cluster 1\ns\ns\n"
    assert not project.exists("big.txt")  # its last reader ran: deleted
    again = project.build()
    assert again.ran == [], again.output


def test_a_held_temporary_file_goes_when_the_grown_part_has_nothing_to_run(project):
    """The checkpoint reran with the same output: the steps below are cut off, and the temp
    file its part held is deleted all the same, leaving a no-op next."""
    project.write("n.txt", "2\n")
    project.write("seed.txt", "s\n")
    project.rules(TEMP_ACROSS_PARTS)
    assert project.build().ok
    project.rules(TEMP_ACROSS_PARTS.replace("wc -l < {inputs}", "wc -l < {inputs} | cat"))
    project.write("n.txt", "2 \n")  # the checkpoint reruns, and writes the same clusters
    result = project.build()
    assert result.ok, result.output
    assert sorted(result.ran) == ["early", "prep", "split"], result.output
    assert sorted(result.cut_off) == [*per(0, 1), "total"], result.output
    assert not project.exists("big.txt")
    assert project.build().ran == []


SKIPPING_CHECKPOINT = CLUSTERS.replace(
    "    os.makedirs(step.outputs[0], exist_ok=True)\n",
    "    from makeflow import Skip\n"
    "    if step.inputs[0].read_text().strip() == '0':\n"
    "        raise Skip('no clusters today')\n"
    "    os.makedirs(step.outputs[0], exist_ok=True)\n")


def test_a_checkpoint_that_skips_skips_what_waits_for_it_in_the_same_build(project):
    project.write("n.txt", "0\n")
    project.rules(SKIPPING_CHECKPOINT)
    result = project.build()
    assert result.ok, result.output
    assert result.not_run == [], result.output
    assert set(result.skipped) == {"split", "total"}, result.output
    again = project.build()
    assert again.ran == [] and set(again.skipped) == {"split", "total"}, again.output
    project.write("n.txt", "2\n")
    grown = project.build()
    assert sorted(grown.ran) == sorted(["split", *per(0, 1), "total"]), grown.output
    assert grown.skipped == {}, grown.output


class Recorded:
    """An executor whose `shutdown` calls are counted (their `kill`), the rest passed on."""

    def __init__(self, executor, shutdowns: list[bool]):
        self.executor, self.shutdowns = executor, shutdowns

    def __getattr__(self, name):
        return getattr(self.executor, name)

    def shutdown(self, kill: bool = False) -> None:
        self.shutdowns.append(kill)
        self.executor.shutdown(kill=kill)


def test_a_build_in_parts_makes_one_executor_and_stops_it_once(project):
    setup(project)
    made, shutdowns = [], []

    def factory(pipeline, options):
        made.append(Recorded(local_executor(pipeline, options), shutdowns))
        return made[-1]

    result = build(load(project.root / "Makeflow.py"), [], BuildOptions(cache=False),
                   PlainReporter(io.StringIO()), factory)
    assert sorted(result.ran) == sorted(["split", *per(0, 1, 2), "total"])
    assert len(made) == 1 and shutdowns == [False]
    project.write("n.txt", "x\n")  # the checkpoint fails: no second part, still one stop
    made.clear()
    failed = build(load(project.root / "Makeflow.py"), [], BuildOptions(cache=False),
                   PlainReporter(io.StringIO()), factory)
    assert list(failed.failed) == ["split"] and len(made) == 1 and shutdowns == [False] * 2
