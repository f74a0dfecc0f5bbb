"""The graph of rules with functions and checkpoints, kept between builds.

A no-op build calls no function and globs nothing: the kept graph is checked by what its
functions read (a sample sheet's stat, a source folder's listing, a checkpoint's record).
Each scenario changes one of those and sees the graph resolved again, with the same steps
running as when every build resolved it.
"""

from __future__ import annotations

import os
import sys
import time

import pytest
from test_checkpoints import CLUSTERS, age_everything, per

_counting: list[list[tuple[str, str]]] = []


def _hook(event: str, args: tuple) -> None:
    if _counting and event in ("os.scandir", "os.listdir", "glob.glob", "test.called"):
        path = args[0] if args and isinstance(args[0], str) else ""
        _counting[-1].append((event, os.path.normpath(path) if path else path))


sys.addaudithook(_hook)


class Seen:
    """What one build did that a kept graph spares: folders listed, globs, calls."""

    def __init__(self, events: list[tuple[str, str]]):
        self.events = events

    def listed(self, folder: str) -> int:
        return sum(1 for e, p in self.events if e in ("os.scandir", "os.listdir")
                   and p == folder)

    @property
    def globs(self) -> int:
        # the project's: the scheduler globs /dev for GPUs whenever it runs steps
        return sum(1 for e, p in self.events if e == "glob.glob" and not os.path.isabs(p))

    @property
    def calls(self) -> int:
        return sum(1 for e, _ in self.events if e == "test.called")


def counted(project, **options):
    """Build in this process, counting the listings, globs and function calls."""
    _counting.append([])
    try:
        result = project.build(**options)
    finally:
        events = _counting.pop()
    result.seen = Seen(events)
    return result


def settle(project):
    """Build, make every file old (so stats are trusted), and build until the kept graph
    is saved: the state a no-op build starts from on a real project."""
    first = project.build()
    age_everything(project)
    project.build()
    assert (project.root / ".makeflow" / "graph.cache").exists()
    return first


def test_a_no_op_build_calls_no_function_and_does_not_glob_the_checkpoint(project):
    """Before, each no-op globbed `clusters/` again (a second listing, besides the check
    of the folder's tree against its record)."""
    project.write("n.txt", "3\n")
    project.rules(CLUSTERS)
    settle(project)
    quiet = counted(project)
    assert quiet.ran == [] and quiet.plan.quick
    assert quiet.seen.globs == 0
    assert quiet.seen.listed("clusters") == 1  # the tree's stat (uptodate.cache), only


def test_the_clusters_example_no_op_lists_its_checkpoint_once(project):
    import shutil
    from pathlib import Path

    example = Path(__file__).resolve().parent.parent / "examples" / "clusters"
    shutil.copytree(example, project.root, dirs_exist_ok=True, ignore=shutil.ignore_patterns(
        ".makeflow", "clusters", "summary", "report.md", "makeflow.lock"))
    settle(project)
    quiet = counted(project)
    assert quiet.ran == [] and quiet.seen.globs == 0
    assert quiet.seen.listed("clusters") == 1


def test_a_checkpoint_folder_edited_by_hand_is_seen(project):
    project.write("n.txt", "3\n")
    project.rules(CLUSTERS)
    settle(project)
    project.write("clusters/9.txt", "stray\n")
    result = project.build()
    assert result.ran == ["split"] and not project.exists("clusters/9.txt")
    assert sorted(result.cut_off) == sorted([*per(0, 1, 2), "total"])
    age_everything(project)
    project.build()
    assert counted(project).seen.globs == 0


def test_a_checkpoint_removed_by_hand_runs_again(project):
    import shutil

    project.write("n.txt", "2\n")
    project.rules(CLUSTERS)
    settle(project)
    shutil.rmtree(project.root / "clusters")
    result = project.build()
    assert result.ran == ["split"] and project.read("total.txt") == "CLUSTER 0\nCLUSTER 1\n"


def test_a_checkpoint_rerun_with_identical_output_keeps_the_graph(project):
    project.write("n.txt", "3\n")
    project.rules(CLUSTERS)
    settle(project)
    project.write("n.txt", "3 \n")
    result = counted(project)
    assert result.ran == ["split"]
    assert sorted(result.cut_off) == sorted([*per(0, 1, 2), "total"])
    assert result.seen.globs == 0  # its record is the same: the expansion still holds
    age_everything(project)
    assert counted(project).seen.globs == 0


def test_a_checkpoint_with_new_output_grows_the_graph_and_keeps_it(project):
    project.write("n.txt", "2\n")
    project.rules(CLUSTERS)
    settle(project)
    project.write("n.txt", "4\n")
    result = project.build()
    assert sorted(result.ran) == sorted(["split", *per(2, 3), "total"])
    age_everything(project)
    project.build()
    again = counted(project)
    assert again.ran == [] and again.seen.globs == 0
    assert sorted(again.fresh) == sorted(["split", *per(0, 1, 2, 3), "total"])


SHEET_IN_FUNCTION = """
import json, sys
from makeflow import rule

def reads(w):
    sys.audit("test.called")
    return json.load(open("sheet.json"))[w.s]

rule("merge", inputs=reads, outputs="merged/{s}.txt", shell="cat {inputs} > {outputs}")
rule("all", inputs=["merged/a.txt", "merged/b.txt"], default=True)
"""

SHEET_AT_LOAD = """
import json, sys
from makeflow import rule

SHEET = json.load(open("sheet.json"))

def reads(w):
    sys.audit("test.called")
    return SHEET[w.s]

rule("merge", inputs=reads, outputs="merged/{s}.txt", shell="cat {inputs} > {outputs}")
rule("all", inputs=["merged/a.txt", "merged/b.txt"], default=True)
"""


@pytest.mark.parametrize("rules", [SHEET_IN_FUNCTION, SHEET_AT_LOAD],
                         ids=["read-by-the-function", "read-as-the-rules-load"])
def test_an_edited_sample_sheet_resolves_the_graph_again(project, rules):
    for name in ("a1", "a2", "b1"):
        project.write(f"data/{name}.txt", f"{name}\n")
    project.write("sheet.json", '{"a": ["data/a1.txt"], "b": ["data/b1.txt"]}')
    project.rules(rules)
    settle(project)
    quiet = counted(project)
    assert quiet.ran == [] and quiet.seen.calls == 0
    project.write("sheet.json", '{"a": ["data/a1.txt", "data/a2.txt"], "b": ["data/b1.txt"]}')
    result = counted(project)
    assert result.ran == ["merge[s=a]"] and result.seen.calls == 2
    assert project.read("merged/a.txt") == "a1\na2\n"


GLOB_SOURCES = """
import glob, sys
from makeflow import rule, expand, glob_wildcards

def found():
    sys.audit("test.called")
    return ["data/a.csv", *[p for p in FOUND if p != "data/a.csv"]]

rule("all", inputs=found, outputs="all.txt", shell="cat {inputs} > {outputs}", default=True)
"""


@pytest.mark.parametrize("found,new", [
    # one folder listed: its mtime tells
    ('expand("data/{s}.csv", s=glob_wildcards("data/{s}.csv").s)', "data/c.csv"),
    # a folder not listed, only looked in: globbed again
    ('sorted(glob.glob("data/*/c.csv"))', "data/g/c.csv"),
    # any depth
    ('expand("data/{s}.csv", s=glob_wildcards("data/{s,.*}.csv").s)', "data/g/c.csv"),
    ('sorted(glob.glob("data/**/*.csv", recursive=True))', "data/g/c.csv"),
], ids=["one-folder", "folder-wildcard", "any-depth", "recursive"])
def test_a_file_added_to_a_globbed_source_folder_is_seen(project, found, new):
    project.write("data/a.csv", "a\n")
    project.write("data/g/b.csv", "b\n")
    project.rules(GLOB_SOURCES.replace("FOUND", found))
    settle(project)
    quiet = counted(project)
    assert quiet.ran == [] and quiet.seen.calls == 0
    project.write(new, "new\n")
    result = counted(project)
    assert result.seen.calls == 1
    assert result.ran == ["all"] and "new" in project.read("all.txt")


ONE_SOURCE = GLOB_SOURCES.replace(
    "FOUND", 'expand("data/{s}.csv", s=glob_wildcards("data/{s}.csv").s)')


def test_editing_makeflow_py_resolves_again(project):
    project.write("data/a.csv", "a\n")
    project.rules(ONE_SOURCE)
    settle(project)
    assert counted(project).seen.calls == 0
    project.rules(ONE_SOURCE + "# a comment\n")
    result = counted(project)
    assert result.ran == [] and result.seen.calls == 1


def test_a_function_that_starts_a_program_is_called_on_every_build(project):
    """What another program reads cannot be seen, so such a graph is not kept."""
    project.write("data/a.csv", "a\n")
    project.rules(ONE_SOURCE.replace(
        "    sys.audit(\"test.called\")\n",
        "    sys.audit(\"test.called\")\n    import subprocess\n"
        "    subprocess.run(['true'], check=True)\n"))
    project.build()
    age_everything(project)
    project.build()
    assert not (project.root / ".makeflow" / "graph.cache").exists()
    assert counted(project).seen.calls == 1


def test_a_sheet_edited_within_the_clocks_tick_is_not_trusted(project):
    """A stat taken right after the file changed could miss a second change in the same
    tick: such a graph is not kept until the file has settled."""
    project.write("data/a1.txt", "a1\n")
    project.write("data/b1.txt", "b1\n")
    project.write("sheet.json", '{"a": ["data/a1.txt"], "b": ["data/b1.txt"]}')
    project.rules(SHEET_IN_FUNCTION)
    settle(project)
    now = time.time_ns()
    os.utime(project.root / "sheet.json", ns=(now, now))
    assert counted(project).seen.calls == 2
    assert not (project.root / ".makeflow" / "graph.cache").exists()


def test_a_sheet_changed_after_the_rules_loaded_is_checked_as_it_was_read(project):
    """A watcher builds again with the rules it loaded: the graph it keeps must carry the
    sheet's stat from when the rules read it, not from when the graph was saved, or a
    later build that reads the new sheet would take the old graph for its own."""
    import io

    from makeflow import BuildOptions, build, load
    from makeflow.ui.plain import PlainReporter

    for name in ("a1", "a2", "b1"):
        project.write(f"data/{name}.txt", f"{name}\n")
    project.write("sheet.json", '{"a": ["data/a1.txt"], "b": ["data/b1.txt"]}')
    project.rules(SHEET_AT_LOAD)
    age_everything(project, 7200)
    loaded = load(project.root / "Makeflow.py")  # reads the sheet as it is now
    project.write("sheet.json", '{"a": ["data/a2.txt"], "b": ["data/b1.txt"]}')
    age_everything(project)
    build(loaded, [], BuildOptions(cache=False), PlainReporter(io.StringIO()))
    assert project.read("merged/a.txt") == "a1\n"  # what the loaded rules say
    result = project.build()
    assert result.ran == ["merge[s=a]"] and project.read("merged/a.txt") == "a2\n"


EXISTS = """
import os, sys
from pathlib import Path
from makeflow import rule

def chosen(w):
    sys.audit("test.called")
    extra = ["extra/{0}.txt".format(w.s)] if CHECK else []
    return ["data/{0}.txt".format(w.s), *extra]

rule("merge", inputs=chosen, outputs="merged/{s}.txt", shell="cat {inputs} > {outputs}")
rule("all", inputs=["merged/a.txt"], default=True)
"""


@pytest.mark.parametrize("check", ['os.path.exists("extra/" + w.s + ".txt")',
                                   'Path("extra", w.s + ".txt").is_file()',
                                   'os.access("extra/" + w.s + ".txt", os.R_OK)'],
                         ids=["os.path.exists", "Path.is_file", "os.access"])
def test_a_file_a_function_only_looked_for_is_checked_again(project, check):
    """Python raises no audit event for a stat: a function choosing its inputs by whether
    a file exists must still see the file appear, not be handed the kept graph."""
    project.write("data/a.txt", "a\n")
    project.rules(EXISTS.replace("CHECK", check))
    settle(project)
    quiet = counted(project)
    assert quiet.ran == [] and quiet.seen.calls == 0
    project.write("extra/a.txt", "extra\n")
    result = counted(project)
    assert result.seen.calls == 1
    assert result.ran == ["merge[s=a]"] and project.read("merged/a.txt") == "a\nextra\n"
    assert not hasattr(os.stat, "__wrapped__")  # put back once the graph was made
