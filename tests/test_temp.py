"""Temporary outputs (`temp=`): deleted once every step of the build that reads them has
finished; their absence alone makes nothing stale; made again only when a step that
reads them must run. The no-op shortcuts, the run cache and makeflow.lock cope with the
missing file."""

from __future__ import annotations

import os
import re
import shutil
import time

from test_errors import user_error

from makeflow.store import hashing

RULES = """\
    from makeflow import rule

    rule("big", inputs="in.txt", outputs=["big.bin", "keep.txt"], temp={temp},
         shell="cp {{inputs}} {{outputs[0]}}; echo big >> {{outputs[0]}}; cp {{inputs}} {{outputs[1]}}")
    rule("count", inputs="big.bin", outputs="count.txt", shell="wc -c < {{inputs}} > {{outputs}}")
    rule("head", inputs="big.bin", outputs="head.txt", params={{"n": {n}}},
         shell="head -c {{params.n}} {{inputs}} > {{outputs}}")
    rule("all", inputs=["count.txt", "head.txt", "keep.txt"], default=True)
"""  # noqa: E501


def ran(output: str) -> set[str]:
    return set(re.findall(r"\] (\S+) (?:done in|restored)", output))


def temp_project(project, n: int = 1, temp: str = '["big.bin"]'):
    project.rules(RULES.format(n=n, temp=temp))
    project.write("in.txt", "hello\n")
    return project


def test_a_temp_output_is_deleted_once_its_readers_have_run_and_others_stay(project):
    temp_project(project)

    done = project.run("build")

    assert done.code == 0, done.text
    assert ran(done.out) == {"big", "count", "head"}
    assert not project.exists("big.bin")
    assert project.exists("keep.txt")  # not temporary
    assert project.read("count.txt").strip() == "10" and project.read("head.txt") == "h"


def test_its_absence_makes_nothing_stale_and_the_no_op_stays_quick(project):
    temp_project(project)
    project.build()
    old = time.time() - 3600
    for path in project.root.rglob("*"):
        if ".makeflow" not in path.parts and path.is_file():
            os.utime(path, (old, old))
    assert project.build().ran == []
    before = hashing.bytes_hashed

    result = project.build()

    assert result.ran == [] and result.plan.quick
    assert hashing.bytes_hashed == before
    status = project.run("status")
    assert "all 3 steps up to date" in status.out, status.text


def test_it_is_made_again_when_a_reader_must_rerun_and_deleted_again(project):
    temp_project(project)
    project.build()
    temp_project(project, n=3)

    dry = project.run("build", "-n")
    result = project.build()

    assert "would run big: temp output big.bin is needed by head" in dry.out
    assert result.ran == ["big", "head"] and result.cut_off == ["count"]
    assert project.read("head.txt") == "hel"
    assert not project.exists("big.bin")


def test_it_is_made_again_from_the_run_cache_when_the_cache_has_it(project):
    temp_project(project)
    assert project.run("build").code == 0
    temp_project(project, n=3)

    done = project.run("build")

    assert done.code == 0, done.text
    assert "big restored from cache" in done.out
    assert project.read("head.txt") == "hel" and not project.exists("big.bin")


def test_the_cache_saves_a_temp_output_before_it_is_deleted(project, monkeypatch):
    """The cache copies outputs on its own thread; one slower than the temp file's readers
    still finds the file: the build deletes it only once every save handed over is done."""
    from makeflow.store.runcache import RunCache

    keep = RunCache.keep

    def slow(self, step, *args, **kwargs):
        time.sleep(0.5)  # a slow disk, long after `count` and `head` have read big.bin
        return keep(self, step, *args, **kwargs)

    monkeypatch.setattr(RunCache, "keep", slow)
    temp_project(project)
    first = project.build(cache=True)
    assert "could not save" not in first.output and not project.exists("big.bin")
    temp_project(project, n=3)

    again = project.build(cache=True)

    assert again.restored == ["big"] and project.read("head.txt") == "hel"


def test_a_changed_input_reruns_the_producer_and_its_readers(project):
    temp_project(project)
    project.build()
    project.write("in.txt", "goodbye\n")

    result = project.build()

    assert set(result.ran) == {"big", "count", "head"}
    assert project.read("head.txt") == "g" and not project.exists("big.bin")


def test_a_failing_reader_keeps_the_temp_file_for_next_time(project):
    project.rules(RULES.format(n=1, temp='["big.bin"]').replace(
        'shell="wc -c < {inputs} > {outputs}"', 'shell="exit 1"'))
    project.write("in.txt", "hello\n")

    result = project.build(keep_going=True)

    assert "count" in result.failed and "head" in result.ran
    assert project.exists("big.bin")


def test_asking_for_the_temp_file_makes_and_keeps_it(project):
    temp_project(project)
    project.build()

    result = project.build("big.bin")

    assert result.ran == ["big"] and project.read("big.bin") == "hello\nbig\n"


def test_temp_true_marks_every_output(project):
    temp_project(project, temp="True")

    project.build()

    assert not project.exists("big.bin") and project.exists("keep.txt")  # a target stays


def test_a_fresh_clone_with_the_lock_and_without_the_temp_file_runs_nothing(project, tmp_path):
    temp_project(project)
    assert project.run("build").code == 0
    clone = tmp_path / "clone"
    shutil.copytree(project.root, clone, ignore=shutil.ignore_patterns(".makeflow"))
    project.root = clone

    done = project.run("build")

    assert done.code == 0, done.text
    assert "nothing to do" in done.out and ran(done.out) == set()


def test_clean_after_the_temp_file_is_gone_removes_the_rest(project):
    temp_project(project)
    project.build()

    done = project.run("clean")

    assert done.code == 0, done.text
    assert not project.exists("count.txt") and not project.exists("keep.txt")


def test_temp_naming_a_file_that_is_not_an_output_is_a_user_error(project):
    temp_project(project, temp='["other.bin"]')

    user_error(project.run("build"), "rule big", "temp=", "other.bin", "Makeflow.py:3")
