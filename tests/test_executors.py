"""One suite for every executor: the same scenarios run on the local executor and on Dask
(a LocalCluster of worker processes on 127.0.0.1, shared by this module)."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import time

import pytest

from executor_suite import WORKER, alive, cli_args, run_build, start_cluster, wait_until


@pytest.fixture(scope="module")
def cluster():
    # every worker may hold any step this machine can: -j and memory are counted by makeflow
    with start_cluster(2, cpus=2, mem_mb=4000) as running:
        yield running.scheduler_address


@pytest.fixture(params=["local", "dask"])
def where(request):
    """(executor, scheduler address or None)."""
    if request.param == "local":
        return "local", None
    return "dask", request.getfixturevalue("cluster")


def test_outputs_are_made_and_a_second_build_runs_nothing(project, where):
    project.write("in.txt", "hello\n")
    project.rules('''
        from makeflow import rule
        rule("upper", inputs="in.txt", outputs="up.txt", shell="tr a-z A-Z < {inputs} > {outputs}")

        @rule(inputs="up.txt", outputs="count.txt")
        def count(step):
            step.outputs[0].write_text(str(len(step.inputs[0].read_text())))
    ''')
    result = run_build(project, *where, "count.txt", jobs=2)
    assert result.ok and sorted(result.ran) == ["count", "upper"], result.output
    assert project.read("up.txt") == "HELLO\n" and project.read("count.txt") == "6"
    assert run_build(project, *where, "count.txt", jobs=2).ran == []


def test_early_cutoff_stops_at_an_identical_output(project, where):
    project.write("in.txt", "a b\n")
    project.rules('''
        from makeflow import rule
        rule("words", inputs="in.txt", outputs="n.txt", shell="wc -w < {inputs} > {outputs}")
        rule("report", inputs="n.txt", outputs="r.txt", shell="cat {inputs} > {outputs}")
    ''')
    assert run_build(project, *where, "r.txt", jobs=2).ok
    project.write("in.txt", "c d\n")  # the same number of words
    result = run_build(project, *where, "r.txt", jobs=2)
    assert result.ran == ["words"] and result.cut_off == ["report"], result.output


def test_a_failed_step_stops_the_build_and_keep_going_runs_the_rest(project, where):
    project.rules('''
        from makeflow import rule
        rule("bad", outputs="bad.txt", shell="exit 3")
        rule("after", inputs="bad.txt", outputs="after.txt", shell="touch {outputs}")
        rule("other", outputs="other.txt", shell="sleep 0.3; touch {outputs}")
        rule("all", inputs=["after.txt", "other.txt"], default=True)
    ''')
    result = run_build(project, *where, jobs=2, keep_going=True)
    assert result.failed == {"bad": "exit status 3"}
    assert result.ran == ["other"] and result.not_run == ["after"]


def test_a_failing_python_step_reports_its_error(project, where):
    project.rules('''
        from makeflow import rule, StepError

        @rule(outputs="gate.txt")
        def gate(step):
            raise StepError("r2 0.31 is below 0.40")
    ''')
    result = run_build(project, *where, jobs=2)
    assert result.failed == {"gate": "r2 0.31 is below 0.40"}


def test_retries_rerun_a_failing_step(project, where):
    project.rules('''
        from makeflow import rule
        rule("flaky", outputs="out.txt", retries=2,
             shell="if [ -e tried ]; then touch {outputs}; else touch tried; exit 1; fi")
    ''')
    result = run_build(project, *where, jobs=2)
    assert result.ok and result.retried == {"flaky": 1}, result.output
    assert "--- attempt 2 ---" in project.run("logs", "flaky").out


@pytest.mark.parametrize("kind", ["shell", "python"])
def test_a_timed_out_step_is_killed_with_its_children(project, where, kind):
    project.rules('''
        import os, subprocess
        from makeflow import rule
        rule("slow_shell", outputs="s.txt", timeout=5,
             shell="sleep 60 & echo $! > child.pid; wait")

        @rule(outputs="p.txt", timeout=5)
        def slow_python(step):
            open("python.pid", "w").write(str(os.getpid()))
            subprocess.run(["sleep", "60"])
    ''')
    target = "s.txt" if kind == "shell" else "p.txt"
    started = time.monotonic()
    result = run_build(project, *where, target, jobs=2)
    assert list(result.failed.values()) == ["timed out after 5s"]
    assert time.monotonic() - started < 40
    pid = int(project.read("child.pid" if kind == "shell" else "python.pid"))
    assert wait_until(lambda: not alive(pid), 10), f"{kind} step {pid} still runs"


def test_steps_that_wait_are_cancelled_when_a_step_fails(project, where):
    project.rules('''
        from makeflow import rule
        rule("bad", outputs="bad.txt", shell="exit 1")
        for i in range(8):
            rule(f"later{i}", outputs=f"later{i}.txt", shell="sleep 3; touch {outputs}")
        rule("all", inputs=["bad.txt"] + [f"later{i}.txt" for i in range(8)], default=True)
    ''')
    # a cluster holds queued steps on its workers: long ones leave a loaded machine seconds
    # to hear of the failure and cancel them
    result = run_build(project, *where, jobs=2)
    assert list(result.failed) == ["bad"]
    assert len(result.not_run) >= 5, result.output  # at most the ones running went on
    made = [i for i in range(8) if project.exists(f"later{i}.txt")]
    assert sorted(result.ran) == [f"later{i}" for i in made]


def test_ctrl_c_kills_the_running_steps(project, where):
    project.rules('''
        from makeflow import rule
        rule("long", outputs="long.txt", shell="echo $$ > long.pid; sleep 60; touch {outputs}")
    ''')
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "makeflow", "build", "-j", "2",
                             *cli_args(*where)], cwd=project.root, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert wait_until(lambda: project.exists("long.pid")
                          and project.read("long.pid").endswith("\n"), 60)
        pid = int(project.read("long.pid"))
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, out + err
    assert "stopped by SIGINT" in err and "Traceback" not in out + err
    assert wait_until(lambda: not alive(pid), 10)
    assert not project.exists("long.txt")


def test_logs_show_the_step_output_and_where_it_ran(project, where):
    project.rules('''
        from makeflow import rule
        rule("hello", outputs="h.txt", shell="echo hello from the step; touch {outputs}")
    ''')
    assert run_build(project, *where, jobs=2).ok
    log = project.run("logs", "h.txt").out
    assert "hello from the step" in log
    assert bool(WORKER.search(log)) is (where[0] == "dask")


def test_a_two_cpu_step_takes_two_slots(project, where):
    project.rules('''
        from makeflow import rule
        for name in ("a", "b", "c"):
            rule(name, outputs=f"{name}.txt", resources={"cpus": 2},
                 shell="date +%s.%N > {outputs}; sleep 0.4; date +%s.%N >> {outputs}")
        rule("all", inputs=["a.txt", "b.txt", "c.txt"], default=True)
    ''')
    assert run_build(project, *where, jobs=2).ok
    spans = sorted(tuple(map(float, project.read(f"{n}.txt").split())) for n in "abc")
    for (_, end), (start, _) in itertools.pairwise(spans):
        assert start >= end, f"two 2-CPU steps ran at once with -j 2: {spans}"


def test_a_step_no_worker_can_hold_is_refused_before_the_build(project, where):
    project.rules('''
        from makeflow import rule
        rule("first", outputs="first.txt", shell="touch {outputs}")
        rule("huge", inputs="first.txt", outputs="huge.txt", shell="touch {outputs}",
             resources={"cpus": 64, "mem_mb": 10_000_000})
    ''')
    done = project.run("build", "-j", "2", "huge.txt", *cli_args(*where))
    assert done.code == 2, done.text
    assert "step huge asks for cpus=64, mem_mb=10000000, which no worker can ever hold" \
        in done.err
    assert "Makeflow.py:4" in done.err and "Traceback" not in done.text
    assert not project.exists("first.txt")


def test_python_steps_run_in_a_child_process_not_the_build_or_worker_thread(project, where):
    project.rules('''
        import os, threading
        from makeflow import rule

        @rule(outputs="who.txt")
        def who(step):
            step.outputs[0].write_text(f"{os.getpid()} {threading.current_thread().name}")
    ''')
    assert run_build(project, *where, jobs=2).ok
    pid, thread = project.read("who.txt").split(" ", 1)
    assert int(pid) != os.getpid() and thread == "MainThread"
