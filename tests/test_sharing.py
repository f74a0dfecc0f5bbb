"""Sharing results through a remote cache, with the real command line: a folder
(file://) and S3 served by moto on 127.0.0.1. Each project is a separate folder with its
own .makeflow/, as on another machine."""

from __future__ import annotations

import os
import shutil
import socket
import threading
from pathlib import Path

import pytest

from conftest import Project

RULES = """
    from makeflow import rule

    rule("all", inputs=["report.txt", "plots"], default=True)
    rule("train", inputs="data.txt", outputs="model.bin",
         shell="echo run >> runs.log; head -c 300000 /dev/urandom > {outputs[0]}; "
               "cat {inputs[0]} >> {outputs[0]}")
    rule("report", inputs="model.bin", outputs="report.txt",
         shell="echo run >> runs.log; wc -c < {inputs[0]} > {outputs[0]}")
    rule("plots", inputs="data.txt", outputs="plots",
         shell="echo run >> runs.log; mkdir -p {outputs[0]}/a && cp data.txt {outputs[0]}/a/x")
"""


def make(root: Path) -> Project:
    root.mkdir(parents=True, exist_ok=True)
    p = Project(root)
    p.rules(RULES)
    p.write("data.txt", "data\n")
    return p


def runs(p: Project) -> int:
    return p.read("runs.log").count("\n") if p.exists("runs.log") else 0


@pytest.fixture(params=["file", "s3"])
def remote(request, tmp_path) -> str:
    if request.param == "file":
        (tmp_path / "shared").mkdir()
        return (tmp_path / "shared").as_uri()
    return request.getfixturevalue("s3_url")


def test_a_second_project_built_against_a_pushed_remote_runs_nothing(tmp_path, remote):
    first = make(tmp_path / "first")
    done = first.run("build", "--remote", remote, "--push")
    assert done.code == 0, done.text
    assert runs(first) == 3
    second = make(tmp_path / "second")
    done = second.run("build", "--remote", remote)
    assert done.code == 0, done.text
    assert "ran 0, restored 3" in done.out
    assert runs(second) == 0
    for name in ("model.bin", "report.txt", "plots/a/x"):
        assert (second.root / name).read_bytes() == (first.root / name).read_bytes()


def test_push_uploads_fresh_steps_and_pull_restores_them_then_build_runs_nothing(tmp_path,
                                                                                remote):
    first = make(tmp_path / "first")
    first.write("makeflow.toml", f'[makeflow]\nremote = "{remote}"\n')
    assert first.run("build").code == 0
    done = first.run("push")
    assert done.code == 0, done.text
    assert "pushed 3 steps (3 new" in done.out
    assert "pushed 3 steps (0 new" in first.run("push").out
    clone = tmp_path / "clone"  # a clone that commits only sources and the lock
    clone.mkdir()
    for name in ("Makeflow.py", "makeflow.toml", "data.txt", "makeflow.lock"):
        shutil.copy(first.root / name, clone / name)
    copy = Project(clone)
    done = copy.run("status")
    assert "restorable from cache" in done.out, done.text
    done = copy.run("pull")
    assert done.code == 0, done.text
    assert runs(copy) == 0
    assert (clone / "model.bin").read_bytes() == (first.root / "model.bin").read_bytes()
    done = copy.run("build")
    assert done.code == 0 and "nothing to do" in done.out, done.text


def test_pull_restores_outputs_recorded_in_the_lock_without_run_records(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    first = make(tmp_path / "first")
    assert first.run("build", "--remote", shared.as_uri(), "--push").code == 0
    shutil.rmtree(shared / "runs")  # only blobs: the lock says which ones
    clone = tmp_path / "clone"
    clone.mkdir()
    for name in ("Makeflow.py", "data.txt", "makeflow.lock"):
        shutil.copy(first.root / name, clone / name)
    done = Project(clone).run("status", "--remote", shared.as_uri())
    assert done.out.count("restorable from cache") == 2, done.text  # by the lock's entries
    done = Project(clone).run("pull", "--remote", shared.as_uri())
    assert done.code == 0, done.text
    assert (clone / "report.txt").read_text() == (first.root / "report.txt").read_text()
    assert "nothing to do" in Project(clone).run("build").out


def test_a_corrupt_remote_blob_is_not_restored_and_the_step_runs(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    first = make(tmp_path / "first")
    assert first.run("build", "--remote", shared.as_uri(), "--push").code == 0
    for blob in (shared / "blobs").rglob("*"):
        if blob.is_file() and blob.stat().st_size > 200_000:  # model.bin's blob
            blob.write_bytes(b"poison")
    second = make(tmp_path / "second")
    done = second.run("build", "--remote", shared.as_uri())
    assert done.code == 0, done.text
    assert "bad blob" in done.out
    assert runs(second) == 2  # train (and so report) ran; plots was restored
    assert (second.root / "model.bin").read_bytes() != b"poison"


def test_an_unreachable_remote_warns_once_and_the_build_goes_on(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    p = make(tmp_path / "p")
    env = {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "AWS_ACCESS_KEY_ID": "x",
           "AWS_SECRET_ACCESS_KEY": "x", "AWS_DEFAULT_REGION": "us-east-1"}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        done = p.run("build", "--remote", "s3://nowhere/cache", "--push")
        assert done.code == 0, done.text
        assert done.out.count("s3://nowhere/cache") == 1
        assert "goes on without the remote cache" in done.out
        assert runs(p) == 3
        done = p.run("push", "--remote", "s3://nowhere/cache")
        assert done.code == 1 and "s3://nowhere/cache" in done.err
        assert "Traceback" not in done.err
        os.unlink(p.root / "report.txt")
        shutil.rmtree(p.root / ".makeflow" / "cache")  # so only the remote could have it
        done = p.run("pull", "--remote", "s3://nowhere/cache")
        assert done.code == 1 and "s3://nowhere/cache" in done.err
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def test_a_failing_step_keeps_its_exit_status_with_a_broken_remote(tmp_path):
    p = make(tmp_path / "p")
    p.rules(RULES.replace("wc -c <", "exit 3; wc -c <"))
    done = p.run("build", "--remote", (tmp_path / "missing").as_uri())
    assert done.code == 1
    assert "missing" in done.out and "FAILED" in done.out


def test_pull_and_push_without_a_remote_are_user_errors(tmp_path):
    p = make(tmp_path / "p")
    for command in ("pull", "push"):
        done = p.run(command)
        assert done.code == 2 and "needs a remote cache" in done.err


def test_two_builds_pushing_the_same_step_at_once(tmp_path, remote):
    projects = [make(tmp_path / f"p{i}") for i in range(2)]
    for p in projects:
        p.rules(RULES.replace("head -c 300000 /dev/urandom", "head -c 300000 /dev/zero"))
    results: list = [None, None]

    def run(i: int) -> None:
        results[i] = projects[i].run("build", "--remote", remote, "--push")

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(r.code == 0 and "warning" not in r.out for r in results), results
    third = make(tmp_path / "third")
    third.rules(RULES.replace("head -c 300000 /dev/urandom", "head -c 300000 /dev/zero"))
    done = third.run("build", "--remote", remote)
    assert "ran 0, restored 3" in done.out, done.text


def test_makeflow_remote_in_the_environment_is_the_remote_and_empty_turns_it_off(tmp_path,
                                                                               monkeypatch):
    shared = tmp_path / "shared"
    shared.mkdir()
    monkeypatch.setenv("MAKEFLOW_REMOTE", shared.as_uri())
    first = make(tmp_path / "first")
    assert first.run("build", "--push").code == 0
    assert list((shared / "runs").rglob("*.json"))
    second = make(tmp_path / "second")
    done = second.run("status")
    assert done.out.count("restorable from cache") == 2, done.text  # train and plots
    monkeypatch.setenv("MAKEFLOW_REMOTE", "")
    done = second.run("status")
    assert "restorable" not in done.out, done.text
    done = second.run("pull")
    assert done.code == 2 and "needs a remote cache" in done.err
    monkeypatch.setenv("MAKEFLOW_REMOTE", shared.as_uri())
    done = second.run("build")
    assert done.code == 0 and "ran 0, restored 3" in done.out, done.text


@pytest.fixture
def s3_with_auth(tmp_path):
    """A moto S3 server of its own on 127.0.0.1 that checks credentials (moto's
    INITIAL_NO_AUTH_ACTION_COUNT=0), started and stopped here; its URL."""
    import subprocess
    import sys
    import time

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = Path(sys.executable).with_name("moto_server")
    if not server.exists():
        if os.environ.get("CI"):
            pytest.fail("moto[server] is needed in CI: pip install -e '.[test]'")
        pytest.skip("moto[server] is not installed")
    proc = subprocess.Popen([str(server), "-H", "127.0.0.1", "-p", str(port)],
                            env={**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": "0"},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while True:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            assert time.monotonic() < deadline and proc.poll() is None, "moto did not start"
            time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_wrong_credentials_warn_once_and_push_and_pull_fail(tmp_path, s3_with_auth,
                                                            monkeypatch):
    for name, value in {"AWS_ENDPOINT_URL": s3_with_auth, "AWS_ACCESS_KEY_ID": "wrong",
                        "AWS_SECRET_ACCESS_KEY": "wrong", "AWS_DEFAULT_REGION": "us-east-1"
                        }.items():
        monkeypatch.setenv(name, value)
    url = "s3://team/cache"
    p = make(tmp_path / "p")
    done = p.run("build", "--remote", url, "--push")
    assert done.code == 0, done.text
    assert done.out.count(url) == 1 and "goes on without the remote cache" in done.out
    assert "access to team was refused" in done.out and "credentials" in done.out, done.out
    assert runs(p) == 3
    done = p.run("push", "--remote", url)
    assert done.code == 1 and url in done.err and "Traceback" not in done.err, done.text
    os.unlink(p.root / "report.txt")
    shutil.rmtree(p.root / ".makeflow" / "cache")
    done = p.run("pull", "--remote", url)
    assert done.code == 1 and url in done.err and "Traceback" not in done.err, done.text
    p.rules(RULES.replace("wc -c <", "exit 3; wc -c <"))
    done = p.run("build", "--remote", url)
    assert done.code == 1 and done.out.count(url) == 1 and "FAILED" in done.out, done.text


def test_push_true_in_the_makeflow_table_pushes_every_build(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    first = make(tmp_path / "first")
    first.write("makeflow.toml", f'[makeflow]\nremote = "{shared.as_uri()}"\npush = true\n')
    assert first.run("build").code == 0
    second = make(tmp_path / "second")
    done = second.run("build", "--remote", shared.as_uri())
    assert done.code == 0 and "ran 0, restored 3" in done.out, done.text
