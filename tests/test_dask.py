"""What only a cluster has: its own LocalCluster, choosing it, workers that die or hold
other rules, schedulers that do not answer or go away, and `dask scheduler`/`dask worker`
started as processes of their own."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time

import pytest

from makeflow import load
from makeflow.errors import UserError
from makeflow.run.executors.choose import SCHEDULER_ENV, choose

from executor_suite import (
    WORKER,
    alive,
    dask_processes,
    free_port,
    run_build,
    start_cluster,
    wait_for_workers,
    wait_until,
)


@pytest.fixture(scope="module")
def cluster():
    with start_cluster(2, cpus=2, mem_mb=4000) as running:
        yield running.scheduler_address


def worker_addresses(address: str) -> set[str]:
    import distributed

    with distributed.Client(address, timeout=30, set_as_default=False) as client:
        return set(client.scheduler_info(n_workers=-1)["workers"])


def test_executor_dask_starts_a_local_cluster_on_127_0_0_1_and_stops_it(project):
    project.rules('''
        import os
        from makeflow import rule
        rule("shell", outputs="worker.pid", shell="echo $PPID > {outputs}")

        @rule(inputs="worker.pid", outputs="py.txt")
        def python(step):
            step.outputs[0].write_text(str(os.getppid()))
        ''')
    done = project.run("build", "--executor", "dask", "-j", "2", "py.txt")
    assert done.code == 0, done.text
    assert "Traceback" not in done.text and "distributed" not in done.err
    assert WORKER.search(project.run("logs", "worker.pid").out)
    worker, python_parent = int(project.read("worker.pid")), int(project.read("py.txt"))
    assert worker != python_parent or worker == python_parent  # both ran on workers
    assert wait_until(lambda: not alive(worker), 15), "the LocalCluster's worker still runs"


def listening_sockets(root) -> set[tuple[int, str]]:
    """(pid, address) of every listening socket of a process and its children, skipping
    the children that end while they are looked at."""
    import psutil

    found = set()
    for proc in [root, *root.children(recursive=True)]:
        try:
            found |= {(proc.pid, c.laddr.ip) for c in proc.net_connections(kind="inet")
                      if c.status == "LISTEN"}
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


def test_its_own_cluster_listens_on_127_0_0_1_only(project):
    import psutil

    project.rules('''
        from makeflow import rule
        rule("wait", outputs="w.txt",
             shell="touch started; while [ ! -e go ]; do sleep 0.1; done; touch {outputs}")
        ''')
    build = subprocess.Popen([sys.executable, "-m", "makeflow", "build", "--executor", "dask",
                              "-j", "2"], cwd=project.root, text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert wait_until(lambda: project.exists("started"), 60)
        listening = listening_sockets(psutil.Process(build.pid))
        project.write("go", "")
        out, err = build.communicate(timeout=60)
    finally:
        build.kill()
    assert build.returncode == 0, out + err
    assert listening and {ip for _, ip in listening} == {"127.0.0.1"}, listening
    assert "running on 2 Dask workers, a LocalCluster on 127.0.0.1" in out
    assert " on tcp://127.0.0.1:" in out  # the step line names its worker


def test_a_checkpoint_pipeline_runs_every_part_on_one_local_cluster(project):
    project.rules('''
        import os
        from makeflow import rule, expand, glob_wildcards

        @rule(inputs="n.txt", outputs="clusters", checkpoint=True)
        def split(step):
            os.makedirs(step.outputs[0], exist_ok=True)
            for i in range(int(step.inputs[0].read_text())):
                (step.outputs[0] / f"{i}.txt").write_text(f"cluster {i}\\n")

        rule("per", inputs="clusters/{c}.txt", outputs="per/{c}.txt",
             shell="tr a-z A-Z < {inputs} > {outputs}")
        rule("total", outputs="total.txt", shell="cat {inputs} > {outputs}", default=True,
             inputs=lambda: expand("per/{c}.txt", c=glob_wildcards("clusters/{c}.txt").c))
        ''')
    project.write("n.txt", "3\n")
    done = project.run("build", "--executor", "dask", "-j", "2")
    assert done.code == 0, done.text
    assert project.read("total.txt") == "CLUSTER 0\nCLUSTER 1\nCLUSTER 2\n"
    where = {line for line in done.out.splitlines() if "running on" in line}
    assert len(where) == 1, where  # each part on the same workers: one cluster started
    workers = set(re.findall(r"tcp://127\.0\.0\.1:\d+", where.pop()))
    logs = list((project.root / ".makeflow" / "logs").rglob("*.log"))
    ran_on = {m for log in logs for m in WORKER.findall(log.read_text())}
    assert len(logs) == 5 and ran_on and ran_on <= workers, (ran_on, workers)


def test_the_scheduler_comes_from_the_flag_the_environment_or_makeflow_toml(project,
                                                                          monkeypatch):
    project.rules('from makeflow import rule\nrule("a", outputs="a", shell="touch {outputs}")\n')
    pipeline = load(project.root / "Makeflow.py")
    monkeypatch.delenv(SCHEDULER_ENV, raising=False)
    assert choose(pipeline).kind == "local"
    assert choose(pipeline, scheduler="tcp://h:1").scheduler == "tcp://h:1"
    monkeypatch.setenv(SCHEDULER_ENV, "tcp://env:2")
    assert (choose(pipeline).kind, choose(pipeline).scheduler) == ("dask", "tcp://env:2")
    assert choose(pipeline, "local").kind == "local"
    monkeypatch.delenv(SCHEDULER_ENV)
    project.write("makeflow.toml", '[makeflow]\nexecutor = "dask"\nscheduler = "tcp://toml:3"\n')
    pipeline = load(project.root / "Makeflow.py")
    assert (choose(pipeline).kind, choose(pipeline).scheduler) == ("dask", "tcp://toml:3")
    assert choose(pipeline, "dask", "tcp://flag:4").scheduler == "tcp://flag:4"
    with pytest.raises(UserError, match="needs --executor dask"):
        choose(pipeline, "local", "tcp://flag:4")
    project.write("makeflow.toml", '[makeflow]\nexecutor = "slurm"\n')
    done = project.run("build")
    assert done.code == 2 and "[makeflow] executor = 'slurm' must be 'local' or 'dask'" \
        in done.err


def test_makeflow_toml_sends_the_build_to_a_running_cluster(project, cluster):
    project.write("makeflow.toml", f'[makeflow]\nscheduler = "{cluster}"\n')
    project.rules('from makeflow import rule\nrule("a", outputs="a", shell="touch {outputs}")\n')
    done = project.run("build")
    assert done.code == 0, done.text
    found = WORKER.search(project.run("logs", "a").out)
    assert found and found.group(1) in worker_addresses(cluster)
    assert project.run("build", "-B", "--executor", "local").code == 0
    assert not WORKER.search(project.run("logs", "a").out)


def test_watch_takes_the_executor_options(project):
    project.rules('from makeflow import rule\nrule("a", outputs="a", shell="touch {outputs}")\n')
    help_text = project.run("watch", "--help").out
    assert "--executor" in help_text and "--scheduler" in help_text


KILLER = '''
from makeflow import rule
rule("fragile", outputs="out.txt", retries={retries},
     shell="if [ -e tried ]; then touch {{outputs}}; else touch tried; kill -9 $PPID; sleep 5; fi")
'''


def test_a_step_whose_worker_dies_runs_again_elsewhere_counted_as_a_retry(project, cluster):
    project.rules(KILLER.format(retries=1))
    try:
        result = run_build(project, "dask", cluster, jobs=2)
        assert result.ok and result.retried == {"fragile": 1}, result.output
        assert project.exists("out.txt")
    finally:
        wait_for_workers(cluster, 2)


def test_a_step_whose_worker_dies_fails_naming_the_worker_once_out_of_retries(project,
                                                                              cluster):
    project.rules(KILLER.format(retries=0))
    try:
        result = run_build(project, "dask", cluster, jobs=2)
        error = result.failed["fragile"]
        assert error.startswith("its worker tcp://127.0.0.1:")
        assert error.endswith("died while it ran")
        assert "died while running this step" in project.run("logs", "fragile").out
    finally:
        wait_for_workers(cluster, 2)


def test_a_worker_with_other_rules_is_refused_and_runs_nothing(project, cluster):
    project.rules('from makeflow import rule\nrule("a", outputs="a", shell="touch {outputs}")\n')
    pipeline = load(project.root / "Makeflow.py")
    choice = choose(pipeline, "dask", cluster)  # the rules as this build loaded them
    project.rules('from makeflow import rule\n'
                  'rule("a", outputs="a", shell="echo other > {outputs}")\n')
    import io

    from makeflow import BuildOptions, build
    from makeflow.ui.plain import PlainReporter

    with pytest.raises(UserError, match=r"has another version of .*Makeflow\.py than the build"):
        build(pipeline, [], BuildOptions(jobs=2), PlainReporter(io.StringIO()), choice)
    assert not project.exists("a")


def test_a_worker_with_another_helper_module_is_refused_naming_it(project, cluster):
    project.write("helpers.py", "def line():\n    return 'one'\n")
    project.rules('''
        from makeflow import rule
        import helpers

        @rule(outputs="a.txt")
        def a(step):
            step.outputs[0].write_text(helpers.line())
        ''')
    pipeline = load(project.root / "Makeflow.py")
    assert run_build(project, "dask", cluster, jobs=2).ok  # the same helpers: it runs
    assert project.read("a.txt") == "one"
    project.write("helpers.py", "def line():\n    return 'two'\n")  # what the workers see
    import io

    from makeflow import BuildOptions, build
    from makeflow.ui.plain import PlainReporter

    choice = choose(pipeline, "dask", cluster)
    with pytest.raises(UserError) as refused:
        build(pipeline, [], BuildOptions(jobs=2, force=True), PlainReporter(io.StringIO()),
              choice)
    message = str(refused.value)
    assert "has another version of helpers.py than the build" in message, message
    assert "Makeflow.py" not in message.split("(in ")[0]  # the rules file is the same
    assert project.read("a.txt") == "one"


def test_a_scheduler_that_does_not_answer_is_exit_2_within_seconds(project):
    project.rules('from makeflow import rule\nrule("a", outputs="a", shell="touch {outputs}")\n')
    address = f"tcp://127.0.0.1:{free_port()}"
    started = time.monotonic()
    done = project.run("build", "--scheduler", address, timeout=60)
    assert done.code == 2, done.text
    assert time.monotonic() - started < 20
    assert f"cannot reach the Dask scheduler at {address}" in done.err
    assert "Traceback" not in done.text and not project.exists("a")


PIPELINE = '''
import os
from makeflow import rule
rule("first", outputs="first.txt", shell="echo one > {outputs}")

@rule(inputs="first.txt", outputs="second.txt")
def second(step):
    step.outputs[0].write_text(step.inputs[0].read_text() + "two\\n")

rule("slow", inputs="second.txt", outputs="slow.txt",
     shell="echo $$ > slow.pid; sleep SLEEP; touch {outputs}")
'''


def test_a_cluster_of_separate_scheduler_and_worker_processes(project, tmp_path_factory):
    project.rules(PIPELINE.replace("SLEEP", "0"))
    with dask_processes() as procs:
        address, _ = procs.scheduler()
        for i in range(2):
            procs.worker(address, tmp_path_factory.mktemp(f"worker{i}"))
        wait_for_workers(address, 2)
        done = project.run("build", "--scheduler", address, "slow.txt")
        assert done.code == 0, done.text
        assert project.read("second.txt") == "one\ntwo\n"
        for step in ("first", "second", "slow"):
            assert WORKER.search(project.run("logs", step).out), step
        assert project.run("status", "slow.txt").out.startswith("all 3 steps up to date")


def test_a_cluster_that_goes_away_stops_the_build_and_keeps_what_finished(project,
                                                                        tmp_path_factory):
    project.rules(PIPELINE.replace("SLEEP", "20"))
    with dask_processes() as procs:
        address, scheduler = procs.scheduler()
        procs.worker(address, tmp_path_factory.mktemp("worker"))
        wait_for_workers(address, 1)
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        build = subprocess.Popen([sys.executable, "-m", "makeflow", "build", "--scheduler",
                                  address, "slow.txt"], cwd=project.root, env=env, text=True,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            assert wait_until(lambda: project.exists("slow.pid")
                              and project.read("slow.pid").endswith("\n"), 60)
            procs.stop(scheduler)
            out, err = build.communicate(timeout=90)
        finally:
            build.kill()
    assert build.returncode == 1, out + err
    assert f"the Dask cluster at {address} went away" in out + err
    assert "Traceback" not in out + err
    stale = project.run("status", "slow.txt").out
    assert "stale  slow" in stale and "first" not in stale and "second" not in stale


def test_the_run_history_says_which_worker_ran_each_step(project, cluster):
    project.rules('''
        from makeflow import rule
        rule("shell", outputs="a.txt", shell="echo a > {outputs}")

        @rule(inputs="a.txt", outputs="b.txt")
        def python(step):
            step.outputs[0].write_text("b")
        ''')
    done = project.run("build", "--scheduler", cluster, "b.txt")
    assert done.code == 0, done.text
    from makeflow.store import history

    with history.reading(project.root) as db:
        run = history.run(db)
    workers = worker_addresses(cluster)
    assert {s.step: s.status for s in run.steps} == {"shell": "ran", "python": "ran"}
    assert all(s.worker in workers for s in run.steps), [s.worker for s in run.steps]
    assert all(s.cpu is not None and s.peak_rss for s in run.steps)
