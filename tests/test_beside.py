"""A forked child stats half of a big snapshot's files: the same suspects as one process,
whether the child succeeds or fails."""

from __future__ import annotations

import os
import signal
import sys
import threading

import pytest
from test_uptodate import age_all

from makeflow.plan import uptodate
from makeflow.store import beside as beside_module
from makeflow.store.beside import beside

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this system")


def test_the_child_sends_its_result_back():
    wait = beside(lambda: (os.getpid(), ["a", "b"]))
    assert wait is not None
    pid, names = wait()
    assert pid != os.getpid() and names == ["a", "b"]


@pytest.mark.parametrize("work", [lambda: 1 / 0, lambda: object(), lambda: os._exit(3)])
def test_a_failing_child_gives_none(work):
    wait = beside(work)
    assert wait is not None and wait() is None


def test_a_child_reaped_elsewhere_gives_none():
    """With SIGCHLD ignored the kernel reaps the child: its exit status is unknown."""
    old = signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    try:
        wait = beside(lambda: 1)
        assert wait is not None and wait() is None
    finally:
        signal.signal(signal.SIGCHLD, old)


def test_the_child_flushes_nothing_of_the_parent(tmp_path):
    with open(tmp_path / "out.txt", "w") as out:
        out.write("once\n")  # still in this process's buffer when the child exits
        wait = beside(lambda: 1)
        assert wait is not None and wait() == 1
    assert (tmp_path / "out.txt").read_text() == "once\n"


def test_forking_is_only_worth_it_on_linux_with_one_thread_and_two_cores():
    expected = (sys.platform.startswith("linux") and len(os.sched_getaffinity(0)) > 1
                if hasattr(os, "sched_getaffinity") else False)
    if threading.active_count() == 1:
        assert beside_module.worth_forking() == expected
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait, args=(10,))
    thread.start()
    try:
        assert not beside_module.worth_forking()
    finally:
        stop.set()
        thread.join()


WIDE = """
from makeflow import expand, rule

rule("copy", inputs="in/{i}.txt", outputs="out/{i}.txt", shell="cp {inputs} {outputs}")
rule("all", inputs=expand("out/{i}.txt", i=range(30)), default=True)
"""


@pytest.fixture
def wide(project, monkeypatch):
    """Thirty steps whose next no-op is settled by stats, split at two files."""
    project.rules(WIDE)
    for i in range(30):
        project.write(f"in/{i}.txt", f"{i}\n")
    project.build()
    age_all(project.root)
    project.build()
    assert project.build().plan.quick
    monkeypatch.setattr(uptodate, "SPLIT_AT", 2)
    monkeypatch.setattr(uptodate, "worth_forking", lambda: True)
    return project


@pytest.mark.parametrize("child", ["works", "fails"])
def test_changes_in_either_half_are_found(wide, monkeypatch, child):
    results = []

    def recorded(work):
        wait = beside(work if child == "works" else lambda: 1 / 0)
        return lambda: results.append(wait()) or results[-1]

    monkeypatch.setattr(uptodate, "beside", recorded)
    assert wide.build().plan.quick  # nothing moved, in either half
    # the snapshot lists each step's input then its output, step by step: steps 0 to 14
    # are the first half, 15 to 29 the child's
    wide.write("in/0.txt", "first\n")
    wide.write("in/29.txt", "last\n")
    os.unlink(wide.root / "out" / "28.txt")
    result = wide.build()
    assert set(result.ran) == {"copy[i=0]", "copy[i=28]", "copy[i=29]"}
    assert wide.read("out/0.txt") == "first\n" and wide.read("out/29.txt") == "last\n"
    if child == "works":
        assert results == [([], []), (["out/28.txt", "in/29.txt"], ["out/28.txt"])]
    else:
        assert results == [None, None]
