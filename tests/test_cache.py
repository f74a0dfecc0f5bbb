"""The local run cache in real builds: a stale step whose key is known is restored, not
run, with its outputs checked and placed atomically."""

from __future__ import annotations

import os

import pytest

from conftest import Project


@pytest.fixture(autouse=True)
def cache_on(monkeypatch):
    """The library builds of these tests use the run cache (conftest turns it off)."""
    build = Project.build
    monkeypatch.setattr(Project, "build",
                        lambda self, *targets, **options: build(self, *targets,
                                                                **{"cache": True, **options}))

RULES = """
    from makeflow import rule, config

    rule("all", inputs="report.txt", default=True)
    rule("train", inputs="data.txt", outputs="model.txt", params={"alpha": config["alpha"]},
         shell="echo run >> runs.log; echo {params.alpha} $(cat {inputs[0]}) > {outputs[0]}")
    rule("report", inputs="model.txt", outputs="report.txt",
         shell="echo report >> runs.log; cat {inputs[0]} > {outputs[0]}")
"""


def runs(project) -> int:
    return project.read("runs.log").count("\n") if project.exists("runs.log") else 0


def setup(project, alpha: str = "0.1") -> None:
    project.rules(RULES)
    project.write("makeflow.toml", f"alpha = {alpha}\n")
    project.write("data.txt", "d\n")


def test_switching_a_parameter_back_restores_without_running(project):
    setup(project)
    assert project.build().ran == ["train", "report"]
    first = project.read("model.txt")
    project.write("makeflow.toml", "alpha = 0.5\n")
    assert project.build().ran == ["train", "report"]
    project.write("makeflow.toml", "alpha = 0.1\n")
    result = project.build()
    assert result.ran == []
    assert sorted(result.restored) == ["report", "train"]
    assert project.read("model.txt") == first
    assert runs(project) == 4
    assert "restored 2" in result.output
    assert project.build().ran == [] and project.build().restored == []  # fresh now


def test_a_deleted_output_is_restored(project):
    setup(project)
    project.build()
    os.unlink(project.root / "report.txt")
    result = project.build()
    assert result.restored == ["report"] and result.ran == []
    assert project.read("report.txt") == project.read("model.txt")


LOGGED = """
    from makeflow import rule, config

    rule("all", inputs=["short.txt", "long.txt"], default=True)
    rule("short", inputs="data.txt", outputs="short.txt",
         shell="echo saying {params.a}; echo {params.a} > {outputs[0]}", params={"a": config["a"]})
    rule("long", inputs="data.txt", outputs="long.txt",
         shell="seq 3000 | sed 's/^/{params.a} /'; echo > {outputs[0]}", params={"a": config["a"]})
"""


def test_a_restored_step_shows_the_log_it_printed_short_or_long(project):
    project.rules(LOGGED)
    project.write("data.txt", "d\n")
    project.write("makeflow.toml", "a = 1\n")
    assert sorted(project.build().ran) == ["long", "short"]
    project.write("makeflow.toml", "a = 2\n")
    assert sorted(project.build().ran) == ["long", "short"]
    assert "saying 2" in project.run("logs", "short").out
    project.write("makeflow.toml", "a = 1\n")  # back: both restored, logs included
    assert sorted(project.build().restored) == ["long", "short"]
    short, long = project.run("logs", "short").out, project.run("logs", "long").out
    assert "saying 1" in short and "saying 2" not in short
    assert "1 3000" in long and "2 1" not in long and len(long) > 4096  # a blob, not inline


@pytest.mark.parametrize("link", [False, True])
def test_a_restored_output_is_a_hard_link_only_when_cache_link_is_set(project, link):
    from makeflow.store.cas import Cas
    from makeflow.store.hashing import hash_file

    setup(project)
    if link:
        project.write("makeflow.toml", "alpha = 0.1\n[makeflow]\ncache_link = true\n")
    project.build()
    digest = hash_file(str(project.root / "report.txt"))
    os.unlink(project.root / "report.txt")
    assert project.build().restored == ["report"]
    blob = Cas(project.root / ".makeflow" / "cache").path(digest)
    same = os.stat(project.root / "report.txt").st_ino == os.stat(blob).st_ino
    assert same is link
    assert project.read("report.txt") == project.read("model.txt")


def test_a_corrupt_local_blob_is_not_restored_and_the_step_runs(project):
    from makeflow.store.cas import Cas
    from makeflow.store.hashing import hash_file

    setup(project)
    project.build()
    digest = hash_file(str(project.root / "report.txt"))
    blob = Cas(project.root / ".makeflow" / "cache").path(digest)
    os.chmod(blob, 0o644)
    blob.write_bytes(b"tampered\n")
    os.unlink(project.root / "report.txt")
    result = project.build()
    assert result.ran == ["report"] and result.restored == []
    assert "could not be restored" in result.output and "corrupt" in result.output
    assert project.read("report.txt") == project.read("model.txt")


def test_cache_false_always_and_max_age_rules_are_never_restored(project):
    project.rules("""
        from makeflow import rule
        rule("side", inputs="a", outputs="b", cache=False, shell="cp a {outputs[0]}")
        rule("now", inputs="a", outputs="c", always=True, shell="cp a {outputs[0]}")
        rule("aged", inputs="a", outputs="d", max_age="1d", shell="cp a {outputs[0]}")
    """)
    project.write("a", "1")
    project.build("b", "c", "d")
    for name in "bcd":
        os.unlink(project.root / name)
    result = project.build("b", "c", "d")
    assert sorted(result.ran) == ["aged", "now", "side"] and result.restored == []


def test_a_folder_output_is_restored_whole(project):
    project.rules("""
        from makeflow import rule
        rule("plots", inputs="a", outputs="plots",
             shell="mkdir -p {outputs[0]}/sub && cp a {outputs[0]}/one "
                   "&& cp a {outputs[0]}/sub/two")
    """)
    project.write("a", "content")
    project.build()
    import shutil

    shutil.rmtree(project.root / "plots")
    result = project.build()
    assert result.restored == ["plots"]
    assert project.read("plots/sub/two") == "content"


def test_the_cache_can_be_turned_off(project):
    setup(project)
    project.write("makeflow.toml", "alpha = 0.1\n[makeflow]\ncache = false\n")
    project.build()
    os.unlink(project.root / "report.txt")
    assert project.build().ran == ["report"]
    assert not (project.root / ".makeflow" / "cache").exists()


def test_status_says_which_stale_steps_are_restorable(project):
    setup(project)
    project.build()
    os.unlink(project.root / "model.txt")
    done = project.run("status")
    assert done.code == 0
    assert "train" in done.out and "restorable from cache" in done.out


def test_status_with_an_empty_cache_reads_no_input(project):
    """With nothing in the cache and no remote, no step can be restorable: status does not
    hash every input for a key (a million files, at a million steps)."""
    from makeflow import load
    from makeflow.run.build import status
    from makeflow.store import hashing

    setup(project)
    project.write("big.txt", "x" * 100_000)
    project.rules(RULES.replace('inputs="data.txt"', 'inputs=["data.txt", "big.txt"]'))
    before = hashing.bytes_hashed
    plan = status(load(project.root / "Makeflow.py"), [], cache=True)
    assert plan.runnable == ["train", "report"] and not plan.restorable
    assert hashing.bytes_hashed == before


def test_cache_command_shows_size_and_hits_and_gc_trims_it(project):
    setup(project)
    project.build()
    os.unlink(project.root / "report.txt")
    project.build()
    done = project.run("cache")
    assert done.code == 0, done.text
    assert "1 hits" in done.out and "records  2" in done.out
    assert "0 B" not in done.out
    done = project.run("cache", "gc", "--max-size", "0")
    # the two outputs hold the same bytes: one blob; the short logs live in the records
    assert done.code == 0 and "removed 1 blobs" in done.out
    assert "size     0 B in 0 blobs" in project.run("cache").out
    os.unlink(project.root / "report.txt")
    assert project.build().ran == ["report"]  # records without blobs are misses


def test_a_wrong_size_or_setting_is_a_user_error(project):
    setup(project)
    done = project.run("cache", "gc", "--max-size", "lots")
    assert done.code == 2 and "--max-size: 'lots' is not a size" in done.err
    project.write("makeflow.toml", 'alpha = 1\n[makeflow]\nremot = "s3://x"\n')
    done = project.run("build")
    assert done.code == 2 and "has no setting 'remot'" in done.err
    assert "Traceback" not in done.err
    project.write("makeflow.toml", 'alpha = 1\n[makeflow]\nremote = "file:///x"\n')
    done = project.run("build", "--set", "makeflow.remote=file:///y")
    assert done.code == 2 and "--set does not change" in done.err


def test_the_makeflow_table_is_not_part_of_the_pipeline_config(project):
    project.rules("""
        from makeflow import rule, config
        rule("show", outputs="keys.txt", params={"names": ",".join(sorted(config))},
             shell="echo {params.names} > {outputs[0]}")
    """)
    project.write("makeflow.toml", 'alpha = 1\n[makeflow]\ncache = false\n')
    project.build()
    assert project.read("keys.txt").strip() == "alpha"


def test_the_lock_is_written_sorted_without_times_or_hosts_and_identical_elsewhere(project,
                                                                               tmp_path):
    import json
    import shutil

    setup(project)
    project.build()
    text = project.read("makeflow.lock")
    lock = json.loads(text)
    assert sorted(lock["steps"]) == ["report", "train"]
    assert lock["steps"]["train"]["inputs"]["data.txt"]["size"] == 2
    assert lock["steps"]["train"]["params"] == {"alpha": 0.1}
    assert str(project.root) not in text and os.uname().nodename not in text
    before = os.stat(project.root / "makeflow.lock").st_mtime_ns
    project.build()
    assert os.stat(project.root / "makeflow.lock").st_mtime_ns == before  # not rewritten
    other = tmp_path / "elsewhere"
    other.mkdir()
    for name in ("Makeflow.py", "makeflow.toml", "data.txt"):
        shutil.copy(project.root / name, other / name)
    type(project)(other).build()
    assert (other / "makeflow.lock").read_text() == text


def test_a_fresh_copy_with_committed_outputs_and_lock_runs_nothing(project, tmp_path):
    import shutil

    setup(project)
    project.build()
    clone = tmp_path / "clone"
    shutil.copytree(project.root, clone, ignore=shutil.ignore_patterns(".makeflow"))
    os.unlink(clone / "runs.log")
    copy = type(project)(clone)
    result = copy.build()
    assert result.ran == [] and result.restored == []
    assert not copy.exists("runs.log")
    copy.write("data.txt", "changed\n")
    assert copy.build().ran == ["train", "report"]


def test_a_lock_with_conflict_markers_is_a_warning_and_ignored(project, tmp_path):
    import shutil

    setup(project)
    project.build()
    clone = tmp_path / "clone"
    shutil.copytree(project.root, clone, ignore=shutil.ignore_patterns(".makeflow"))
    lock = clone / "makeflow.lock"
    lock.write_text("<<<<<<< HEAD\n" + lock.read_text() + "=======\n{}\n>>>>>>> other\n")
    result = type(project)(clone).build()
    assert "merge conflict" in result.output
    assert result.ran == ["train", "report"]  # no store, no cache, no lock: it runs
    assert "<<<<<<<" not in lock.read_text()  # and the build wrote it again


def test_two_projects_sharing_one_cache_folder_restore_each_others_results(tmp_path):
    shared = tmp_path / "user-cache"
    projects = []
    for name in ("one", "two"):
        root = tmp_path / name
        root.mkdir()
        p = Project(root)
        setup(p)
        p.write("makeflow.toml", f'alpha = 0.1\n[makeflow]\ncache_dir = "{shared}"\n')
        projects.append(p)
    assert projects[0].build().ran == ["train", "report"]
    result = projects[1].build()
    assert result.ran == [] and sorted(result.restored) == ["report", "train"]
    assert projects[1].read("report.txt") == projects[0].read("report.txt")
    assert not (tmp_path / "two" / ".makeflow" / "cache").exists()


def test_a_no_op_build_neither_opens_the_cache_nor_reads_the_lock(project, monkeypatch):
    import time

    from makeflow.run import cached
    from makeflow.store.lockfile import LockFile

    setup(project)
    project.build()
    for _ in range(50):  # until the no-op snapshot trusts every file's stat (a few builds)
        if project.build().plan.quick:
            break
        time.sleep(0.1)
    else:
        raise AssertionError("no build took the no-op path")

    def refuse(*args, **kwargs):
        raise AssertionError("a no-op build used the cache or the lock")

    monkeypatch.setattr(cached, "open_cache", refuse)
    monkeypatch.setattr(LockFile, "text", property(refuse))
    result = project.build()
    assert result.plan.quick and result.ran == [] and result.restored == []
    # an input touched, its content the same: planned in full, still no cache, and the
    # lock is only compared with what makeflow wrote, never parsed
    monkeypatch.undo()
    monkeypatch.setattr(cached, "open_cache", refuse)
    monkeypatch.setattr(LockFile, "_parse", refuse)
    before = os.stat(project.root / "makeflow.lock").st_mtime_ns
    os.utime(project.root / "data.txt", ns=(before + 10**9, before + 10**9))
    result = project.build()
    assert result.ran == [] and result.restored == []
    assert os.stat(project.root / "makeflow.lock").st_mtime_ns == before


MANY = """
    from makeflow import rule, expand

    rule("all", inputs=expand("out/{i}.txt", i=range(30)), default=True)
    rule("copy", inputs="data.txt", outputs="out/{i}.txt",
         shell="echo {wildcards.i} > {outputs[0]}")
"""


def test_a_step_with_no_record_runs_without_a_lookup_on_the_cache_threads(project,
                                                                         monkeypatch):
    from makeflow.run.cached import BuildCache

    looked_up: list[str] = []
    restore = BuildCache.restore
    monkeypatch.setattr(BuildCache, "restore", lambda self, step, key, log: (
        looked_up.append(step.id), restore(self, step, key, log))[1])
    setup(project)
    assert project.build().ran == ["train", "report"]
    assert looked_up == []  # no record, no remote, no lock entry: a sure miss, run at once
    os.unlink(project.root / "report.txt")
    assert project.build().restored == ["report"]
    assert looked_up == ["report"]


def test_every_step_of_a_build_is_saved_and_one_failing_save_spares_the_others(
        project, monkeypatch):
    from makeflow.store.runcache import RunCache

    keep = RunCache.keep

    def flaky(self, step, *args, **kwargs):
        if step == "copy[i=7]":
            raise RuntimeError("disk on fire")
        return keep(self, step, *args, **kwargs)

    monkeypatch.setattr(RunCache, "keep", flaky)
    project.rules(MANY)
    project.write("data.txt", "d\n")
    result = project.build()
    assert len(result.ran) == 30
    assert "could not save copy[i=7]" in result.output and "disk on fire" in result.output
    assert RunCache(project.root / ".makeflow" / "cache").records() == 29
    for i in range(30):
        os.unlink(project.root / f"out/{i}.txt")
    again = project.build()
    assert len(again.restored) == 29 and again.ran == ["copy[i=7]"]
    assert all(project.read(f"out/{i}.txt") == f"{i}\n" for i in range(30))


def test_an_empty_store_is_not_asked_again_but_knows_what_the_build_saved(project,
                                                                          monkeypatch):
    """A store with no record when the build began can only hold this build's saves: the
    sure-miss check answers from those, and still finds one of them."""
    from makeflow.run.cached import BuildCache
    from makeflow.store.hashing import hash_path
    from makeflow.store.runcache import RunCache
    from makeflow.store.runindex import RunIndex

    asked: list[str] = []
    monkeypatch.setattr(RunIndex, "has", lambda self, key: asked.append(key) or False)
    project.write("out.txt", "made\n")
    out = str(project.root / "out.txt")
    cache = BuildCache(RunCache(project.root / "cache"))
    step = type("S", (), {"id": "s"})()
    key = "ab" * 16

    assert cache.surely_missing(key)
    cache.save_later(step, key, {out: hash_path(out)}, "no.log", 0.1)
    assert not cache.surely_missing(key)  # saved by this build, maybe not yet written
    cache.close()
    assert asked == [] and cache.take_warnings() == []
    assert RunCache(project.root / "cache").read(key).outputs == {out: hash_path(out)}

    again = BuildCache(RunCache(project.root / "cache"))
    assert again.surely_missing("cd" * 16) and asked == ["cd" * 16]  # not empty: asked


def test_records_that_cannot_be_written_are_warned_about_and_the_build_succeeds(
        project, monkeypatch):
    """The records of a batch are written together; when that write fails (a full disk),
    each step in it is named, the build still succeeds, and the next build runs them."""
    from makeflow.store.runindex import RunIndex

    def full(self, rows):
        raise OSError(f"cannot write the run index {self.path}: database or disk is full")

    monkeypatch.setattr(RunIndex, "put_many", full)
    project.rules(MANY)
    project.write("data.txt", "d\n")
    result = project.build()
    assert result.ok and len(result.ran) == 30
    warned = [line for line in result.output.splitlines() if "could not save" in line]
    assert len(warned) == 30 and all("disk is full" in line for line in warned)
    monkeypatch.undo()
    for i in range(30):
        os.unlink(project.root / f"out/{i}.txt")
    assert len(project.build().ran) == 30  # nothing was recorded: nothing to restore
