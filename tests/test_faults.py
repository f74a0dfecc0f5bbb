"""Faults: killed builds, signals, timeouts, retries, broken state stores, full disks, and
two builds at once. Each runs the real CLI as a subprocess."""

from __future__ import annotations

import os
import resource
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from waiting import gone, wait_for


def start(project, *args: str, **kwargs) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "makeflow", *args], cwd=project.root,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            **kwargs)


SLOW = """
from makeflow import rule
rule("quick", inputs="in.txt", outputs="quick.txt", shell="cp {inputs} {outputs}")
rule("slow", inputs="quick.txt", outputs="slow.txt",
     shell="cp {inputs} slow.txt; echo $$ > pid; sleep 30")
"""


# The signals that stop a build, with the exit status each gives: 128 + the signal.
STOP_SIGNALS = [(signal.SIGINT, 130), (signal.SIGTERM, 143), (signal.SIGHUP, 129)]


def test_kill_9_of_makeflow_reruns_the_interrupted_step_and_nothing_else(project):
    project.write("in.txt", "x")
    project.rules(SLOW)
    proc = start(project, "build", "slow.txt")
    wait_for(lambda: project.exists("pid") and project.exists("slow.txt"))
    proc.kill()
    proc.wait()
    os.killpg(int(project.read("pid")), signal.SIGKILL)  # the orphaned step, as a user would
    db = sqlite3.connect(project.root / ".makeflow/state.db")
    assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    db.close()
    project.rules(SLOW.replace("; sleep 30", ""))
    done = project.run("build", "slow.txt")
    assert done.code == 0, done.text
    assert "slow done" in done.out and "quick done" not in done.out


@pytest.mark.parametrize("sig, code", STOP_SIGNALS)
def test_signal_stops_the_step_group_and_names_it(project, sig, code):
    project.write("in.txt", "x")
    project.rules(SLOW.replace("sleep 30", "sleep 30 & echo $! > child; wait"))
    proc = start(project, "build", "slow.txt")
    wait_for(lambda: project.exists("child") and project.read("child").strip())
    proc.send_signal(sig)
    out, _ = proc.communicate(timeout=20)
    assert proc.returncode == code, out
    assert f"stopped by {signal.Signals(sig).name} while running slow" in out
    assert "1 steps that finished are recorded" in out
    wait_for(lambda: gone(int(project.read("pid"))) and gone(int(project.read("child"))))
    assert not project.exists("slow.txt")  # a stopped step's partial output is removed
    assert "Traceback" not in out


PYTHON_SLOW = """
import multiprocessing, os, subprocess, time
from makeflow import rule

def nap(seconds):
    with open(f"pool-{os.getpid()}", "w") as mark:
        mark.write(str(os.getpid()))
    time.sleep(seconds)

@rule(inputs="in.txt", outputs="slow.txt", timeout=TIMEOUT)
def slow(step):
    child = subprocess.Popen(["sleep", "60"])
    with open("child", "w") as mark:
        mark.write(str(child.pid))
    with multiprocessing.Pool(2) as pool:
        pool.map(nap, [60, 60])
"""


def started_pids(project) -> list[int]:
    """The processes a Python step started: its subprocess and its pool's two workers."""
    marks = [project.root / "child", *project.root.glob("pool-*")]
    if len(marks) < 3 or not all(m.exists() and m.read_text().strip() for m in marks):
        return []
    return [int(m.read_text()) for m in marks]


@pytest.mark.parametrize("sig, code", STOP_SIGNALS)
def test_signal_stops_what_a_python_step_started(project, sig, code):
    project.write("in.txt", "x")
    project.rules(PYTHON_SLOW.replace("TIMEOUT", "None"))
    proc = start(project, "build", "slow.txt")
    wait_for(lambda: started_pids(project), seconds=60)
    proc.send_signal(sig)
    out, _ = proc.communicate(timeout=20)
    assert proc.returncode == code, out
    wait_for(lambda: all(gone(pid) for pid in started_pids(project)))


def test_a_timeout_stops_what_a_python_step_started(project):
    project.write("in.txt", "x")
    project.rules(PYTHON_SLOW.replace("TIMEOUT", "10"))
    started = time.monotonic()
    done = project.run("build", "slow.txt")
    assert time.monotonic() - started < 40  # not the 60 s the pool's tasks would take
    assert done.code == 1
    assert "slow FAILED: timed out after 10s" in done.out
    pids = started_pids(project)
    assert len(pids) == 3
    wait_for(lambda: all(gone(pid) for pid in pids))


def test_timeout_stops_shell_and_python_steps(project):
    project.write("in.txt", "x")
    project.rules("""
        import time
        from makeflow import rule
        rule("sh", inputs="in.txt", outputs="a.txt", timeout=0.5,
             shell="sleep 20; cp {inputs} {outputs}")
        @rule(inputs="in.txt", outputs="b.txt", timeout="1s")
        def py(step):
            time.sleep(20)
        rule("all", inputs=["a.txt", "b.txt"], default=True)
    """)
    started = time.monotonic()
    done = project.run("build", "-k", "-j", "2")
    assert done.code == 1
    assert "sh FAILED: timed out after 0.5s" in done.out
    assert "py FAILED: timed out after 1s" in done.out
    assert time.monotonic() - started < 15


def test_flaky_step_passes_on_retry(project):
    project.write("in.txt", "x")
    project.rules("""
        from makeflow import rule
        rule("flaky", inputs="in.txt", outputs="out.txt", retries=2,
             shell="echo try >> tries; test $(wc -l < tries) -ge 2 && cp {inputs} {outputs}")
    """)
    done = project.run("build")
    assert done.code == 0, done.text
    assert "retry 1 of 2" in done.out
    assert project.read("tries") == "try\ntry\n"
    assert "--- attempt 2 ---" in project.run("logs", "flaky").out


def test_retries_run_out_and_the_step_fails(project):
    project.write("in.txt", "x")
    project.rules('from makeflow import rule\n'
                  'rule("bad", inputs="in.txt", outputs="o", retries=1, shell="exit 7")\n')
    done = project.run("build")
    assert done.code == 1
    assert "retry 1 of 1" in done.out and "bad FAILED: exit status 7" in done.out


def corrupt_truncated(db: Path) -> None:
    db.write_bytes(db.read_bytes()[:100])


def corrupt_garbage(db: Path) -> None:
    db.write_bytes(os.urandom(4096))


def newer_schema(db: Path) -> None:
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE meta SET value='99' WHERE key='schema'")


@pytest.mark.parametrize("damage", [corrupt_truncated, corrupt_garbage, newer_schema])
def test_unusable_state_store_rebuilds_everything_with_a_warning(project, damage):
    project.write("in.txt", "x")
    project.rules('from makeflow import rule\n'
                  'rule("a", inputs="in.txt", outputs="a.txt", shell="cp {inputs} {outputs}")\n')
    project.write("makeflow.toml", "[makeflow]\ncache = false\n")  # a run, not a restore
    assert project.run("build").code == 0
    (project.root / "makeflow.lock").unlink()  # which would stand in for the store
    db = project.root / ".makeflow/state.db"
    for extra in ("state.db-wal", "state.db-shm"):
        (project.root / ".makeflow" / extra).unlink(missing_ok=True)
    damage(db)
    status = project.run("status")
    assert "could not be used" in status.err and "never ran" in status.out
    done = project.run("build")
    assert done.code == 0, done.text
    assert "a done" in done.out
    assert "Traceback" not in status.text + done.text
    assert "nothing to do" in project.run("build").out


def test_unwritable_output_folder_fails_the_step_with_the_os_error(project):
    project.write("in.txt", "x")
    project.write("blocked", "a file where a folder should be")
    project.rules('from makeflow import rule\n'
                  'rule("a", inputs="in.txt", outputs="blocked/a.txt",\n'
                  '     shell="cp {inputs} {outputs}")\n')
    done = project.run("build")
    assert done.code == 1
    assert "cannot prepare its output folder" in done.out and "blocked" in done.out
    assert project.read("blocked") == "a file where a folder should be"
    assert "Traceback" not in done.text


def _small_file_limit() -> None:
    """Files up to 150 kB: room for the state store's log (records and run history), not
    for the 200 kB the failing step writes."""
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (150_000, 150_000))


def test_full_disk_fails_the_step_and_keeps_the_state(project):
    """A file-size limit stands in for a full disk: a write past it stops the writer."""
    project.write("in.txt", "x")
    project.rules("""
        from makeflow import rule
        rule("small", inputs="in.txt", outputs="small.txt", shell="cp {inputs} {outputs}")
        rule("big", inputs="small.txt", outputs="big.bin",
             shell="head -c 200000 /dev/zero > {outputs}")
    """)
    proc = start(project, "build", "big.bin", preexec_fn=_small_file_limit)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 1, out
    assert "big FAILED" in out and "File size limit exceeded" in out
    assert not project.exists("big.bin")
    assert "small: " not in project.run("status", "small.txt").out  # the record survived


def test_second_build_waits_for_the_first_or_refuses_with_no_wait(project):
    """The first build's step holds until the test says `go`, so every check below sees
    it running, however loaded the machine (each wait is bounded)."""
    project.write("in.txt", "x")
    project.rules("""
        from makeflow import rule
        rule("slow", inputs="in.txt", outputs="slow.txt",
             shell="touch started; for i in $(seq 600); do [ -e go ] && break; sleep 0.1; "
                   "done; cp {inputs} {outputs}")
    """)
    first = start(project, "build")
    wait_for(lambda: project.exists("started"))
    refused = project.run("build", "--no-wait")
    assert refused.code == 2
    assert f"another makeflow (pid {first.pid}" in refused.err
    status = project.run("status")
    assert status.code == 0 and "slow" in status.out
    with open(project.root / "second.out", "w") as out:
        second = subprocess.Popen([sys.executable, "-m", "makeflow", "build"],
                                  cwd=project.root, stdout=out, stderr=subprocess.STDOUT)
        waiting = f"waiting for another makeflow (pid {first.pid}"
        wait_for(lambda: waiting in project.read("second.out"), seconds=60)
        (project.root / "go").touch()
        first.communicate(timeout=60)
        assert second.wait(timeout=60) == 0
    assert first.returncode == 0
    assert "nothing to do" in project.read("second.out")
