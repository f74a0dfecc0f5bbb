"""The local run cache keeps its records in one SQLite file (`runs.db`), not a file per
record; record files an older makeflow wrote are still read, a damaged index costs only
misses, and builds that share a cache write it in turn."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys

import pytest

from makeflow.store.runcache import record_key

from conftest import Project

RULES = """
    from makeflow import rule, config

    rule("all", inputs=["a.txt", "b.txt"], default=True)
    rule("a", inputs="data.txt", outputs="a.txt",
         shell="echo run >> runs.log; echo {params.x} $(cat {inputs[0]}) > {outputs[0]}",
         params={"x": config["x"]})
    rule("b", inputs="a.txt", outputs="b.txt",
         shell="echo run >> runs.log; cat {inputs[0]} {inputs[0]} > {outputs[0]}")
"""


def setup(project: Project, x: str = "1") -> None:
    project.rules(RULES)
    project.write("makeflow.toml", f"x = {x}\n")
    project.write("data.txt", "d\n")


def runs(project: Project) -> int:
    return project.read("runs.log").count("\n") if project.exists("runs.log") else 0


def rows(cache) -> dict[str, bytes]:
    with sqlite3.connect(cache / "runs.db") as db:
        return {k: bytes(v) for k, v in db.execute("SELECT key, record FROM runs")}


def test_records_are_rows_of_one_file_not_a_file_each(project):
    setup(project)
    assert project.run("build").code == 0
    cache = project.root / ".makeflow" / "cache"
    assert len(rows(cache)) == 2
    assert not (cache / "runs").exists()
    os.unlink(project.root / "b.txt")
    os.unlink(project.root / "a.txt")
    done = project.run("build")
    assert done.code == 0 and runs(project) == 2, done.text  # both restored, none ran
    assert "records  2 step results" in project.run("cache").out


def test_record_files_an_older_makeflow_wrote_are_still_read(project):
    setup(project)
    assert project.run("build").code == 0
    cache = project.root / ".makeflow" / "cache"
    for key, data in rows(cache).items():  # the layout of an older makeflow's cache
        path = cache / record_key(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    os.unlink(cache / "runs.db")
    os.unlink(project.root / "b.txt")
    assert "restorable from cache" in project.run("status").out  # found in the old files
    project.write("makeflow.toml", "x = 2\n")
    assert project.run("build").code == 0 and runs(project) == 4
    project.write("makeflow.toml", "x = 1\n")  # back: found in the old files
    done = project.run("build")
    assert done.code == 0 and runs(project) == 4, done.text
    assert project.read("a.txt") == "1 d\n"


def test_a_damaged_index_is_set_aside_and_started_anew(project):
    setup(project)
    cache = project.root / ".makeflow" / "cache"
    cache.mkdir(parents=True)
    (cache / "runs.db").write_bytes(b"this is not a database" * 100)
    done = project.run("build")
    assert done.code == 0, done.text
    assert "Traceback" not in done.text and "could not save" not in done.text
    assert project.read("b.txt") == "1 d\n1 d\n"
    assert (cache / "runs.db.damaged").read_bytes().startswith(b"this is not a database")
    assert len(rows(cache)) == 2
    os.unlink(project.root / "b.txt")
    assert project.run("build").code == 0 and runs(project) == 2  # restored


def test_a_cache_that_cannot_be_written_is_a_warning(project):
    setup(project)
    cache = project.root / ".makeflow" / "cache"
    cache.mkdir(parents=True)
    (cache / "runs.db").mkdir()  # in the way of the index: no write can succeed
    done = project.run("build")
    assert done.code == 0, done.text
    assert "Traceback" not in done.text
    assert "could not save" in done.text and "runs.db" in done.text
    assert project.read("b.txt") == "1 d\n1 d\n"


def test_two_builds_sharing_a_cache_both_save_every_record(tmp_path):
    cache = tmp_path / "shared-cache"
    projects = []
    for name in ("one", "two"):
        project = Project(tmp_path / name)
        project.root.mkdir()
        project.rules("""
            from makeflow import rule, expand
            rule("step", inputs="in/{i}.txt", outputs="out/{i}.txt",
                 shell="cp {inputs} {outputs}")
            rule("all", inputs=expand("out/{i}.txt", i=range(200)), default=True)
        """)
        for i in range(200):
            project.write(f"in/{i}.txt", f"{name} {i}\n")
        projects.append(project)
    env = {**os.environ, "MAKEFLOW_CACHE_DIR": str(cache)}
    procs = [subprocess.Popen([sys.executable, "-m", "makeflow", "build", "-j2"], cwd=p.root,
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True) for p in projects]
    outputs = [proc.communicate(timeout=300)[0] for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0], outputs
    unsaved = [line for out in outputs for line in out.splitlines() if "could not save" in line]
    assert unsaved == []
    assert len(rows(cache)) == 400


@pytest.mark.parametrize("what", ["status", "list"])
def test_a_lookup_never_makes_the_cache_folder(project, what):
    setup(project)
    assert project.run(what).code == 0
    assert not (project.root / ".makeflow" / "cache" / "runs.db").exists()
