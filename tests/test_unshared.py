"""Workers that share no disk with the build (`--no-shared-fs`): each step runs in a scratch
folder on its worker, its inputs fetched by digest from a remote store (a `file://` folder,
or S3 served by moto on 127.0.0.1), its outputs and log pushed there; the build records the
digests and downloads only the requested targets' outputs, or all with `--download all`."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from makeflow.store.hashing import hash_file

from conftest import Project
from executor_suite import WORKER, run_build, start_cluster

PIPELINE = '''
import os
from makeflow import rule

rule("first", inputs="src.txt", outputs=["first.txt", "first.where"],
     shell="test ! -e Makeflow.py && cut -c1-3 {inputs[0]} > {outputs[0]} && pwd > {outputs[1]}")

@rule(inputs="first.txt", outputs=["second.txt", "second.where"])
def second(step):
    assert not os.path.exists("Makeflow.py"), "the step ran in the project folder"
    step.outputs[0].write_text(step.inputs[0].read_text().upper())
    step.outputs[1].write_text(os.getcwd())

rule("third", inputs="second.txt", outputs="third.txt",
     shell="(cat {inputs[0]}; echo done) > {outputs[0]}")

rule("bad", inputs="src.txt", outputs="bad.txt",
     shell="echo boom-from-the-worker; wc -c < {inputs[0]}; exit 3")
'''


@pytest.fixture(scope="module")
def workers_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("workers")


@pytest.fixture(scope="module")
def cluster(workers_dir):
    """Two worker processes whose own folder is not the project's."""
    with start_cluster(2, local_directory=str(workers_dir)) as running:
        yield running.scheduler_address


def remote_in(tmp_path: Path) -> str:
    folder = tmp_path / "remote"
    folder.mkdir()
    return folder.as_uri()


def unshared(project, address, *targets, **options):
    options.setdefault("cache", False)
    return run_build(project, "dask", address, *targets, jobs=2, shared_fs=False, **options)


def test_steps_run_in_scratch_and_only_the_targets_come_back(project, cluster, workers_dir,
                                                              tmp_path):
    project.rules(PIPELINE)
    project.write("src.txt", "abcdef\n")
    remote = remote_in(tmp_path)
    result = unshared(project, cluster, "third.txt", remote=remote)
    assert result.ok, (result.failed, result.output)
    assert sorted(result.ran) == ["first", "second", "third"]
    assert project.read("third.txt") == "ABC\ndone\n"
    for absent in ("first.txt", "first.where", "second.txt", "second.where"):
        assert not project.exists(absent), f"{absent} was downloaded"
    assert WORKER.search(project.read(".makeflow/logs/third.log"))  # the log came back

    again = unshared(project, cluster, "third.txt", remote=remote)
    assert again.ok and again.ran == [], again.output  # outputs on the remote count

    everything = unshared(project, cluster, "third.txt", remote=remote, download="all")
    assert everything.ok and everything.ran == []
    for where in ("first.where", "second.where"):
        folder = project.read(where).strip()
        assert folder.startswith(str(workers_dir)), folder  # a scratch folder of a worker
        assert not folder.startswith(str(project.root))
        assert not os.path.exists(folder), "the scratch folder was left behind"
    assert project.read("second.txt") == "ABC\n"


def worker_blobs(workers_dir: Path) -> set[str]:
    """The names of the blobs in every worker's scratch store."""
    return {blob.name for store in workers_dir.rglob("makeflow-cas")
            for blob in store.glob("blobs/*/*")}


def test_worker_stores_keep_only_the_blobs_the_last_build_used(project, cluster, workers_dir,
                                                               tmp_path):
    project.rules(PIPELINE)
    first_source = project.write("src.txt", "abcdef\n")
    old = hash_file(str(first_source))
    remote = remote_in(tmp_path)
    assert unshared(project, cluster, "third.txt", remote=remote).ok
    assert old in worker_blobs(workers_dir)  # the source passed through a worker's store
    project.write("src.txt", "uvwxyz\n")
    result = unshared(project, cluster, "third.txt", remote=remote)
    assert sorted(result.ran) == ["first", "second", "third"], result.output
    left = worker_blobs(workers_dir)
    assert old not in left, "a blob the last build did not use was kept"
    # every blob left is a file of the last build: its source, an output or a log
    assert unshared(project, cluster, "third.txt", remote=remote, download="all").ran == []
    files = ["src.txt", "first.txt", "first.where", "second.txt", "second.where", "third.txt",
             *(f".makeflow/logs/{s}.log" for s in ("first", "second", "third"))]
    used = {hash_file(str(project.root / f)) for f in files}
    assert hash_file(str(project.root / "src.txt")) in left
    assert left <= used, left - used


def test_a_fresh_clone_with_the_same_remote_restores_every_step(project, cluster, tmp_path,
                                                                 tmp_path_factory):
    project.rules(PIPELINE)
    project.write("src.txt", "abcdef\n")
    remote = remote_in(tmp_path)
    made = unshared(project, cluster, "third.txt", remote=remote, cache=True)
    assert sorted(made.ran) == ["first", "second", "third"], made.output
    clone = Project(tmp_path_factory.mktemp("clone"))  # the sources only: no records, no lock
    for source in ("Makeflow.py", "src.txt"):
        clone.write(source, project.read(source))
    result = clone.build("third.txt", cache=True, remote=remote)
    assert result.ok, (result.failed, result.output)
    assert result.ran == [] and sorted(result.restored) == ["first", "second", "third"]
    assert clone.read("third.txt") == "ABC\ndone\n" and clone.read("second.txt") == "ABC\n"
    assert WORKER.search(clone.read(".makeflow/logs/second.log"))  # the worker's log too
    other = Project(tmp_path_factory.mktemp("other"))
    for source in ("Makeflow.py", "src.txt"):
        other.write(source, project.read(source))
    pulled = other.run("pull", "--remote", remote, "third.txt")
    assert pulled.code == 0 and "not in the cache" not in pulled.text, pulled.text
    assert other.read("third.txt") == "ABC\ndone\n"


def test_early_cutoff_and_a_source_changed_here(project, cluster, tmp_path):
    project.rules(PIPELINE)
    project.write("src.txt", "abcdef\n")
    remote = remote_in(tmp_path)
    assert unshared(project, cluster, "third.txt", remote=remote).ok
    project.write("src.txt", "abcxyz\n")  # the same first three characters
    result = unshared(project, cluster, "third.txt", remote=remote)
    assert result.ok, result.failed
    assert result.ran == ["first"]
    assert sorted(result.cut_off) == ["second", "third"]
    project.write("src.txt", "xyz\n")
    result = unshared(project, cluster, "third.txt", remote=remote)
    assert sorted(result.ran) == ["first", "second", "third"]
    assert project.read("third.txt") == "XYZ\ndone\n"


def test_a_failed_step_brings_its_log_back(project, cluster, tmp_path):
    project.rules(PIPELINE)
    project.write("src.txt", "abcdef\n")
    result = unshared(project, cluster, "bad", remote=remote_in(tmp_path))
    assert result.failed == {"bad": "exit status 3"}
    log = project.read(".makeflow/logs/bad.log")
    assert "\nboom-from-the-worker\n7\n" in log  # its input was fetched: 7 bytes
    assert WORKER.search(log)
    assert not project.exists("bad.txt")
    shown = project.run("logs", "bad")
    assert "boom-from-the-worker" in shown.out


def test_no_remote_or_no_cluster_is_exit_2_with_a_message(project, monkeypatch):
    monkeypatch.delenv("MAKEFLOW_REMOTE", raising=False)
    project.rules(PIPELINE)
    project.write("src.txt", "abcdef\n")
    done = project.run("build", "--executor", "dask", "--no-shared-fs", "third.txt")
    assert done.code == 2, done.text
    assert "--no-shared-fs needs a remote store" in done.err
    assert "Traceback" not in done.text and not project.exists("first.txt")
    project.write("makeflow.toml", "[makeflow]\nshared_fs = false\n")
    done = project.run("build", "--executor", "dask", "third.txt")
    assert done.code == 2 and "--no-shared-fs needs a remote store" in done.err
    done = project.run("build", "--executor", "local", "--remote", "file:///nowhere",
                       "third.txt")
    assert done.code == 2 and "runs steps on Dask workers" in done.err, done.text
    assert "--no-shared-fs" in project.run("watch", "--help").out


def test_the_command_line_with_its_own_cluster_and_download_all(project, tmp_path):
    project.rules(PIPELINE)
    project.write("src.txt", "abcdef\n")
    done = project.run("build", "--executor", "dask", "-j", "2", "--no-shared-fs",
                       "--remote", remote_in(tmp_path), "--download", "all", "third.txt")
    assert done.code == 0, done.text
    assert project.read("first.txt") == "abc\n" and project.read("third.txt") == "ABC\ndone\n"
    assert not project.read("first.where").strip().startswith(str(project.root))


def test_an_s3_remote_served_by_moto(project, s3_url):
    project.rules(PIPELINE)
    project.write("src.txt", "abcdef\n")
    # started here, after the fixture pointed the AWS variables at moto: workers inherit them
    with start_cluster(2) as running:
        logging.getLogger("distributed").setLevel(logging.CRITICAL)
        result = unshared(project, running.scheduler_address, "third.txt", remote=s3_url)
    assert result.ok, (result.failed, result.output)
    assert project.read("third.txt") == "ABC\ndone\n"
    assert not project.exists("second.txt")


def test_an_input_blob_gone_bad_on_the_worker_is_fetched_again(tmp_path):
    from makeflow.define.rules import Files
    from makeflow.run.executors import Job
    from makeflow.run.executors.scratch import _fetch, remote_at, scratch_store
    from makeflow.store.cas import Cas

    source = tmp_path / "src.txt"
    source.write_text("abcdef\n")
    url = remote_in(tmp_path)
    here = Cas(tmp_path / "here")
    digest = here.put(str(source))
    remote_at(url).upload(here, [digest])
    worker = scratch_store(str(tmp_path / "worker"))
    worker.put(str(source))
    os.chmod(worker.path(digest), 0o644)
    worker.path(digest).write_text("rotted\n")  # there, so not downloaded: used, then dropped
    (tmp_path / "step").mkdir()
    job = Job("first", "first", "first.log", inputs=Files(("src.txt",)),
              workdir=str(tmp_path / "step"), fetch={"src.txt": digest})
    assert _fetch(job, remote_at(url), worker) == ""
    assert (tmp_path / "step" / "src.txt").read_text() == "abcdef\n"


def test_a_remote_that_refuses_run_records_is_one_warning_and_the_build_goes_on(project, cluster,
                                                                             tmp_path):
    project.rules(PIPELINE)
    project.write("src.txt", "abcdef\n")
    remote = remote_in(tmp_path)
    (tmp_path / "remote" / "runs").write_text("not a folder\n")  # no record can be written
    # -B: no step is looked up in the cache (which would find the remote failing first)
    result = unshared(project, cluster, "third.txt", remote=remote, cache=True, force=True)
    assert result.ok and sorted(result.ran) == ["first", "second", "third"], result.output
    assert project.read("third.txt") == "ABC\ndone\n"
    warned = [line for line in result.output.splitlines() if line.startswith("warning:")]
    assert len(warned) == 1 and "Not a directory" in warned[0], result.output  # said once
    assert "the build goes on without the remote cache" in warned[0]
