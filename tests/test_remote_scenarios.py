"""The remote cache's scenarios, one suite run against every back end: a folder (file://),
memory:// and S3 served by moto on 127.0.0.1. The builds are the library's, in this
process (memory:// lives only here); test_sharing.py runs the command line on file://
and S3. Each project is its own folder with its own .makeflow/, as on another machine."""

from __future__ import annotations

import io
import os
import shutil
import socket
import uuid
from pathlib import Path

import fsspec
import pytest

from makeflow import load
from makeflow.errors import RemoteFailed
from makeflow.run.share import pull, push
from makeflow.ui.plain import PlainReporter

from conftest import Project

RULES = """
    from makeflow import rule, config

    rule("all", inputs=["report.txt", "plots"], default=True)
    rule("train", inputs="data.txt", outputs="model.bin", params={"alpha": config["alpha"]},
         shell="echo run >> runs.log; head -c 300000 /dev/urandom > {outputs[0]}; "
               "echo {params.alpha} >> {outputs[0]}; cat {inputs[0]} >> {outputs[0]}; echo trained")
    rule("report", inputs="model.bin", outputs="report.txt",
         shell="echo run >> runs.log; wc -c < {inputs[0]} > {outputs[0]}")
    rule("plots", inputs="data.txt", outputs="plots",
         shell="echo run >> runs.log; mkdir -p {outputs[0]}/a && cp data.txt {outputs[0]}/a/x")
"""
OUTPUTS = ("model.bin", "report.txt", "plots/a/x")


@pytest.fixture(params=["file", "memory", "s3"])
def url(request, tmp_path) -> str:
    if request.param == "file":
        (tmp_path / "shared").mkdir()
        return (tmp_path / "shared").as_uri()
    if request.param == "memory":
        return f"memory://mf-{uuid.uuid4().hex}"
    return request.getfixturevalue("s3_url")


def make(root: Path, alpha: str = "0.1") -> Project:
    root.mkdir(parents=True, exist_ok=True)
    project = Project(root)
    project.rules(RULES)
    project.write("makeflow.toml", f"alpha = {alpha}\n")
    project.write("data.txt", "data\n")
    return project


def runs(project: Project) -> int:
    return project.read("runs.log").count("\n") if project.exists("runs.log") else 0


def build(project: Project, url: str, **options):
    return project.build(cache=True, remote=url, **options)


def forget_local(project: Project) -> None:
    """Drop the project's own cache, so only the remote can have a result."""
    shutil.rmtree(project.root / ".makeflow" / "cache", ignore_errors=True)


def copy_of(project: Project, root: Path, *names: str) -> Project:
    root.mkdir()
    for name in names:
        shutil.copy(project.root / name, root / name)
    return Project(root)


def test_a_to_b_to_a_restores_from_the_remote_without_running(tmp_path, url):
    project = make(tmp_path / "p")
    assert sorted(build(project, url, push=True).ran) == ["plots", "report", "train"]
    first = (project.root / "model.bin").read_bytes()
    project.write("makeflow.toml", "alpha = 0.5\n")
    assert build(project, url, push=True).ran == ["train", "report"]
    forget_local(project)
    project.write("makeflow.toml", "alpha = 0.1\n")
    result = build(project, url)
    assert result.ran == [] and sorted(result.restored) == ["report", "train"]
    assert (project.root / "model.bin").read_bytes() == first
    assert runs(project) == 5


def test_a_deleted_output_is_restored_from_the_remote(tmp_path, url):
    project = make(tmp_path / "p")
    build(project, url, push=True)
    before = (project.root / "model.bin").read_bytes()
    log = project.root / ".makeflow" / "logs" / "train.log"
    logged = log.read_bytes()
    os.unlink(project.root / "model.bin")
    os.unlink(log)
    forget_local(project)
    result = build(project, url)
    assert result.restored == ["train"] and result.ran == []
    assert (project.root / "model.bin").read_bytes() == before
    assert log.read_bytes() == logged and b"head -c 300000" in logged  # its log came too
    assert logged.endswith(b"\ntrained\n")


def test_a_second_project_with_sources_only_runs_nothing_and_gets_identical_outputs(tmp_path,
                                                                                   url):
    first = make(tmp_path / "first")
    build(first, url, push=True)
    second = make(tmp_path / "second")
    result = build(second, url)
    assert result.ran == [] and len(result.restored) == 3, result.output
    assert runs(second) == 0
    for name in OUTPUTS:
        assert (second.root / name).read_bytes() == (first.root / name).read_bytes()


def test_a_fresh_copy_with_committed_outputs_and_lock_runs_nothing(tmp_path, url):
    first = make(tmp_path / "first")
    build(first, url, push=True)
    clone = tmp_path / "clone"
    shutil.copytree(first.root, clone, ignore=shutil.ignore_patterns(".makeflow", "runs.log"))
    result = build(Project(clone), url)
    assert result.ran == [] and result.restored == [], result.output
    assert not (clone / "runs.log").exists()


def test_pull_restores_a_copy_without_outputs_then_build_runs_nothing(tmp_path, url):
    first = make(tmp_path / "first")
    build(first, url)
    assert push(load(first.root / "Makeflow.py"), [], url).steps == 3
    copy = copy_of(first, tmp_path / "copy", "Makeflow.py", "makeflow.toml", "data.txt",
                   "makeflow.lock")
    result = pull(load(copy.root / "Makeflow.py"), [], url, PlainReporter(io.StringIO()))
    assert result.ran == [] and len(result.restored) == 3
    for name in OUTPUTS:
        assert (copy.root / name).read_bytes() == (first.root / name).read_bytes()
    again = build(copy, url)
    assert again.ran == [] and again.restored == [] and runs(copy) == 0


def test_a_corrupt_remote_blob_is_not_restored_and_the_step_runs(tmp_path, url):
    first = make(tmp_path / "first")
    build(first, url, push=True)
    fs, root = fsspec.core.url_to_fs(url)
    bad = [p for p in fs.find(root.rstrip("/") + "/blobs") if fs.size(p) > 200_000]
    assert len(bad) == 1  # model.bin's blob
    fs.pipe_file(bad[0], b"poison")
    second = make(tmp_path / "second")
    result = build(second, url)
    assert "bad blob" in result.output
    assert result.ran == ["train", "report"] and result.restored == ["plots"]
    assert (second.root / "model.bin").read_bytes() != b"poison"
    assert not list((second.root / ".makeflow" / "cache" / "tmp").glob("*"))


def test_two_projects_pushing_the_same_step_leave_one_record_that_restores(tmp_path, url):
    projects = [make(tmp_path / f"p{i}") for i in range(2)]
    for project in projects:
        project.rules(RULES.replace("/dev/urandom", "/dev/zero"))
        build(project, url, push=True)
    fs, root = fsspec.core.url_to_fs(url)
    assert len(fs.find(root.rstrip("/") + "/runs")) == 3  # the first writer won
    third = make(tmp_path / "third")
    third.rules(RULES.replace("/dev/urandom", "/dev/zero"))
    assert build(third, url).ran == []


def unreachable() -> str:
    """An S3 endpoint on a 127.0.0.1 port nobody listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


@pytest.mark.parametrize("failing", [False, True])
@pytest.mark.parametrize("broken", ["unreachable", "missing"])
def test_a_broken_remote_is_one_warning_and_the_same_result(tmp_path, monkeypatch, request,
                                                           broken, failing):
    if broken == "unreachable":
        for name, value in {"AWS_ENDPOINT_URL": unreachable(), "AWS_ACCESS_KEY_ID": "x",
                            "AWS_SECRET_ACCESS_KEY": "x", "AWS_DEFAULT_REGION": "us-east-1"
                            }.items():
            monkeypatch.setenv(name, value)
        url = "s3://nowhere/cache"
    else:
        url = request.getfixturevalue("s3_url").replace("s3://", "s3://no-such-bucket-")
    project = make(tmp_path / "p")
    if failing:
        project.rules(RULES.replace("wc -c <", "exit 3; wc -c <"))
    result = build(project, url, push=True)
    assert result.output.count(url) == 1, result.output
    assert "goes on without the remote cache" in result.output
    assert result.ok is not failing
    assert result.remote_error is not None
    pipeline = load(project.root / "Makeflow.py")
    with pytest.raises(RemoteFailed, match=url):
        push(pipeline, [], url)
    forget_local(project)
    (project.root / "report.txt").unlink(missing_ok=True)  # something to pull
    with pytest.raises(RemoteFailed, match=url):
        pull(pipeline, [], url, PlainReporter(io.StringIO()))
