"""The run history: every build is recorded as it goes, with each step's outcome, time,
CPU and peak memory; `makeflow runs` lists builds; retention keeps the history bounded."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from makeflow.store import history

from conftest import restore_by_changing_back

PIPELINE = """\
    from makeflow import rule, StepError

    rule("big", outputs="big.txt",
         shell="python -c 'b = bytearray(120_000_000); "
               "open(\\"{outputs[0]}\\", \\"w\\").write(\\"x\\")'")

    @rule(inputs="big.txt", outputs="spin.txt", params={"n": 2_000_000})
    def spin(step):
        data = bytearray(90_000_000)
        total = sum(range(step.params.n))
        step.outputs[0].write_text(str(total + len(data)))

    rule("broken", inputs="spin.txt", outputs="broken.txt",
         shell="echo about to fail; echo the reason is here >&2; exit 4")
    rule("after", inputs="broken.txt", outputs="after.txt", shell="cp {inputs} {outputs}")
    rule("all", inputs=["after.txt"], default=True)
"""

ONE_STEP = 'from makeflow import rule\nrule("a", outputs="a.txt", shell="echo a > {outputs}")\n'


def last_run(project):
    with history.reading(project.root) as db:
        return history.run(db)


@pytest.fixture
def failing(project):
    project.rules(PIPELINE)
    done = project.run("build", "-k")
    assert done.code == 1, done.text
    return project


def test_a_build_records_each_step_with_its_outcome_and_measurements(failing):
    run = last_run(failing)
    assert run.result == "failed"
    assert run.command == "makeflow build -k"
    steps = {s.step: s for s in run.steps}
    assert {k: s.status for k, s in steps.items()} == {
        "big": "ran", "spin": "ran", "broken": "failed", "after": "skipped"}
    assert run.counts == {"ran": 2, "restored": 0, "failed": 1, "skipped": 1, "cut_off": 0,
                          "fresh": 0}
    big, spin, broken = steps["big"], steps["spin"], steps["broken"]
    # peak memory from the kernel's accounting: each step allocated ~120 MB / ~90 MB
    assert big.worker is None and spin.worker is None  # ran on this machine
    assert 120e6 < big.peak_rss < 400e6
    assert 90e6 < spin.peak_rss < 400e6
    assert spin.cpu > 0.01 and big.cpu > 0
    assert big.started <= big.finished <= spin.started <= spin.finished
    assert big.reasons == ["never ran"]
    assert spin.params == {"n": 2_000_000} and spin.recipe.startswith("code:")
    assert broken.exit_status == 4 and broken.error == "exit status 4"
    assert "the reason is here" in broken.log_tail
    assert broken.recipe.startswith("echo about to fail")
    assert steps["after"].reasons == ["never ran", "upstream: broken"]


def test_a_step_restored_from_the_run_cache_is_recorded_as_restored(project):
    run = last_run(restore_by_changing_back(project))
    steps = {s.step: s for s in run.steps}
    assert {k: s.status for k, s in steps.items()} == {"train": "restored",
                                                       "evaluate": "restored"}
    train = steps["train"]
    assert train.reasons == ["parameter alpha: 0.3 → 0.1"]
    assert train.params == {"alpha": 0.1} and train.recipe.startswith("code:")
    assert train.started <= train.finished and train.cpu is None
    assert run.counts["restored"] == 2 and run.counts["ran"] == 0
    assert run.fresh == ["prepare"]
    listed = json.loads(project.run("runs", "--json").out)
    assert listed["runs"][0]["counts"]["restored"] == 2
    newest = project.run("runs").out.splitlines()[1].split()
    assert newest[0] == "3" and newest[5:8] == ["0", "2", "0"]  # ran, restored, failed


def test_a_python_steps_peak_is_its_own_not_the_workers(project):
    """A worker process runs many steps: each step's peak is measured from a reset mark."""
    project.rules("""\
        from makeflow import rule

        @rule(outputs="a.txt")
        def hungry(step):
            data = bytearray(150_000_000)
            step.outputs[0].write_text(str(len(data)))

        @rule(inputs="a.txt", outputs="b.txt")
        def light(step):
            step.outputs[0].write_text("b")
        """)
    assert project.run("build", "b.txt", "-j", "1").code == 0
    steps = {s.step: s for s in last_run(project).steps}
    assert steps["hungry"].peak_rss > 150e6
    assert steps["light"].peak_rss < 100e6


def test_the_meter_agrees_with_the_kernels_high_water_mark(monkeypatch):
    """A Python step's peak comes from /proc/self/status after a page fault, else from the
    resident size at the reset: both agree with the kernel's VmHWM, and a big step's peak
    does not stay with the next one."""
    from makeflow.run.executors import JobResult, jobs
    from makeflow.run.executors.jobs import Meter, _peak_now

    reads = []
    monkeypatch.setattr(jobs, "_peak_now", lambda: reads.append(1) or _peak_now())

    done = JobResult(True, 0.0, 0.0, 0)
    meter = Meter()
    data = b"x" * 60_000_000  # every page written: resident
    del data
    big = meter.stop(done).peak_rss
    assert abs(big - _peak_now()) < 1_000_000 and big > 60_000_000
    for _ in range(200):  # most of these take no page fault: the quick way
        small = Meter().stop(done).peak_rss
        assert 0 < small <= _peak_now() < small + 1_000_000
    assert small < big - 50_000_000
    assert 1 <= len(reads) < 100  # the big step read the mark; most small ones did not


def test_no_op_build_is_one_row_and_keeps_the_shortcut(failing):
    failing.write("Makeflow.py", failing.read("Makeflow.py").replace("exit 4",
                                                                      "echo ok > {outputs}"))
    assert failing.run("build").code == 0
    assert failing.run("build").code == 0
    run = last_run(failing)
    assert run.result == "ok" and run.steps == [] and run.fresh is None
    assert run.counts["fresh"] == 4
    with history.reading(failing.root) as db:
        runs = history.runs(db)
    assert [r.result for r in runs] == ["ok", "ok", "failed"]
    previous = runs[1]
    assert previous.counts["ran"] == 2  # broken and after ran; big and spin stayed fresh
    with history.reading(failing.root) as db:
        full = history.run(db, previous.id)
    assert sorted(full.fresh) == ["big", "spin"]


def test_history_writes_do_not_invalidate_the_no_op_shortcut(project):
    project.rules(ONE_STEP)
    assert project.run("build").code == 0
    old = time.time() - 3600
    os.utime(project.root / "a.txt", (old, old))
    assert project.run("build").code == 0  # saves the up-to-date snapshot, and a run
    for _ in range(2):
        result = project.build()
        assert result.plan.quick, "a no-op build after a recorded one takes the shortcut"
    with history.reading(project.root) as db:
        assert len(history.runs(db)) == 4


def test_runs_lists_builds_newest_first(failing):
    done = failing.run("runs")
    assert done.code == 0, done.text
    header, row = done.out.splitlines()[:2]
    assert header.split()[:5] == ["run", "started", "took", "result", "ran"]
    assert row.split()[0] == "1" and "failed" in row.split()
    data = json.loads(failing.run("runs", "--json").out)
    assert data["version"] == 1
    (only,) = data["runs"]
    assert only["counts"]["failed"] == 1 and only["command"] == "makeflow build -k"
    assert only["seconds"] > 0


def test_runs_without_a_store_says_so(project):
    project.rules('from makeflow import rule\nrule("a", outputs="a.txt", shell="true")\n')
    done = project.run("runs")
    assert done.code == 0 and "no builds recorded yet" in done.out
    assert json.loads(project.run("runs", "--json").out) == {"version": 1, "runs": []}


def test_retention_by_count(project):
    project.rules(ONE_STEP.replace(")\n", ", always=True)\n"))
    project.write("makeflow.toml", "[makeflow]\nkeep_runs = 3\n")
    for _ in range(5):
        assert project.run("build").code == 0
    with history.reading(project.root) as db:
        ids = [r.id for r in history.runs(db)]
        kept_steps = {row[0] for row in db.execute("SELECT run FROM run_steps")}
    assert ids == [5, 4, 3]
    assert kept_steps == {3, 4, 5}


def test_retention_by_age(project):
    project.rules(ONE_STEP)
    project.write("makeflow.toml", "[makeflow]\nkeep_days = 1\n")
    assert project.run("build").code == 0
    with sqlite3.connect(project.root / ".makeflow/state.db") as db:
        db.execute("UPDATE runs SET started = started - 3 * 86400")
    assert project.run("build").code == 0
    with history.reading(project.root) as db:
        assert [r.id for r in history.runs(db)] == [2]


def test_a_bad_retention_setting_is_a_user_error(project):
    project.rules('from makeflow import rule\nrule("a", outputs="a.txt", shell="true")\n')
    project.write("makeflow.toml", '[makeflow]\nkeep_runs = "lots"\n')
    done = project.run("build")
    assert done.code == 2
    assert "keep_runs" in done.err and "makeflow.toml" in done.err
    assert "Traceback" not in done.err


def test_a_history_of_another_schema_is_dropped_not_the_records(project):
    project.rules(ONE_STEP)
    assert project.run("build").code == 0
    with sqlite3.connect(project.root / ".makeflow/state.db") as db:
        db.execute("UPDATE meta SET value='999' WHERE key='history_schema'")
    done = project.run("build")
    assert done.code == 0 and "up to date" in done.out  # the step record survived
    with history.reading(project.root) as db:
        assert [r.id for r in history.runs(db)] == [1]  # a fresh history


def test_a_killed_build_keeps_the_steps_that_finished(project):
    project.rules("""\
        from makeflow import rule
        rule("quick", outputs="q.txt", shell="echo q > {outputs}")
        rule("slow", inputs="q.txt", outputs="s.txt", shell="sleep 30; echo s > {outputs}")
        """)
    proc = subprocess.Popen([sys.executable, "-m", "makeflow", "build", "s.txt"],
                            cwd=project.root, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    log = project.root / ".makeflow/logs/slow.log"
    while not log.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    run = last_run(project)
    assert run.result == "running"  # never finished: shown as unfinished
    assert [(s.step, s.status) for s in run.steps] == [("quick", "ran")]
    assert "unfinished" in project.run("runs").out


def test_a_history_that_cannot_be_written_costs_no_step_record(project):
    """The history's rows share the step records' transaction, in a savepoint of their own:
    when SQLite refuses them, the build warns, and still keeps what its steps made."""
    project.rules(ONE_STEP.replace("rule(\"a\"", "rule(\"b\", outputs=\"b.txt\", "
                                   "shell=\"echo b > {outputs}\")\nrule(\"a\""))
    assert project.run("build", "a.txt").code == 0
    with sqlite3.connect(project.root / ".makeflow/state.db") as db:
        db.execute("CREATE TRIGGER refuse BEFORE INSERT ON run_steps "
                   "BEGIN SELECT RAISE(ABORT, 'no room for the history'); END")
    done = project.run("build", "b.txt")
    assert done.code == 0, done.text
    assert "the run history could not be written (no room for the history)" in done.text
    assert "Traceback" not in done.text
    assert project.read("b.txt") == "b\n"
    done = project.run("build", "b.txt")  # the step record was kept: nothing runs
    assert done.code == 0 and "ran 0" in done.text, done.text
    with history.reading(project.root) as db:  # the second build is not in it
        assert [(r.id, r.targets) for r in history.runs(db)] == [(2, ["b.txt"]),
                                                                (1, ["a.txt"])]


def test_watch_builds_are_recorded_too(project):
    from makeflow import BuildOptions, load
    from makeflow.watch.watcher import Watcher

    project.rules(ONE_STEP)

    class Screen:
        def reporter(self):
            import io

            from makeflow.ui.plain import PlainReporter
            return PlainReporter(io.StringIO())

        def line(self, text): pass
        def error(self, text): pass

    watcher = Watcher(load(project.root / "Makeflow.py"), (), screen=Screen(),
                      options=BuildOptions(jobs=1), debounce=0.05, poll=True)
    watcher._build()
    run = last_run(project)
    assert run.result == "ok" and [s.step for s in run.steps] == ["a"]


def test_the_recorded_command_names_the_real_outputs_not_the_stage(project):
    project.rules("""\
        from makeflow import rule
        rule("copy", inputs="in put.txt", outputs=["out put.txt", "b.txt"],
             shell="cp {inputs} {outputs[0]} && cp {inputs} {outputs[1]}")
        rule("inplace", inputs="b.txt", outputs="c.txt", stage=False,
             shell="cp {inputs} {outputs}")
        """)
    project.write("in put.txt", "x")
    assert project.run("build", "c.txt").code == 0
    steps = {s.step: s for s in last_run(project).steps}
    assert steps["copy"].recipe == "cp 'in put.txt' 'out put.txt' && cp 'in put.txt' b.txt"
    assert steps["inplace"].recipe == "cp b.txt c.txt"
