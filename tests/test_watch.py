"""Watch mode: given a watched project, when files change, then exactly the right builds run.

Most scenarios drive the real `Watcher` loop in a thread, with a real observer on real
files; the last ones run `makeflow watch` as a user would and stop it with Ctrl-C. Waits
poll for a condition with a deadline; only "nothing happens" checks sleep, and briefly.
"""

from __future__ import annotations

import io
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from makeflow import build, load
from makeflow.ui.watch_screen import PlainScreen
from makeflow.watch.schedule import Schedule
from makeflow.watch.watcher import Watcher
from makeflow.watch.watchset import RULES, SOURCE, pattern_folder, watch_set

DEBOUNCE = 0.1
QUIET = 0.6  # how long "nothing happens" is watched for: several debounces and event delays

COPY = """\
    from makeflow import rule
    rule("copy", inputs=["data/raw.csv", "scripts/tool.sh"], outputs="out/copy.txt",
         shell="sh {inputs[1]} {inputs[0]} > {outputs}")
    rule("count", inputs="out/copy.txt", outputs="out/count.txt",
         shell="wc -l < {inputs} > {outputs}", default=True)
"""

GLOB = """\
    from makeflow import expand, glob_wildcards, rule
    samples = glob_wildcards("data/{sample}.csv").sample
    rule("stats", inputs="data/{sample}.csv", outputs="stats/{sample}.txt",
         shell="wc -c < {inputs} > {outputs}")
    rule("all", inputs=expand("stats/{sample}.txt", sample=samples), default=True)
"""


def until(condition: Callable[[], object], timeout: float = 10.0, what: str = "") -> None:
    """Poll `condition` until it holds; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what or condition}")
        time.sleep(0.01)


class Running:
    """A `Watcher` running in a thread, with what it printed and each build's result."""

    def __init__(self, project, targets=(), **options):
        self.project = project
        self.out = io.StringIO()
        self.results: list = []
        self.error: BaseException | None = None
        pipeline = load(project.root / "Makeflow.py")
        self.watcher = Watcher(pipeline, targets, screen=PlainScreen(self.out),
                               debounce=options.pop("debounce", DEBOUNCE),
                               build_fn=self._build, **options)
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _build(self, *args):
        result = build(*args)
        self.results.append(result)
        return result

    def _run(self) -> None:
        try:
            self.watcher.run()
        except BaseException as exc:  # shown by the test that stops it
            self.error = exc

    @property
    def text(self) -> str:
        return self.out.getvalue()

    @property
    def idles(self) -> int:
        return self.text.count("waiting for changes")

    def idle(self, count: int, timeout: float = 10.0) -> None:
        """Wait until the loop has come to rest `count` times (once per build or reload)."""
        until(lambda: self.idles >= count, timeout, f"rest #{count}:\n{self.text}")

    def ran(self, index: int = -1) -> list[str]:
        return sorted(self.results[index].ran)

    def stays_quiet(self) -> None:
        before = (self.idles, len(self.results))
        time.sleep(QUIET)
        assert (self.idles, len(self.results)) == before, self.text


@pytest.fixture
def watching(project):
    """Start a watcher on the project (call it with targets and options); stopped at the end."""
    started: list[Running] = []

    def start(*targets: str, **options) -> Running:
        running = Running(project, targets, **options)
        started.append(running)
        running.thread.start()
        running.idle(1)
        return running

    yield start
    for running in started:
        running.watcher.stop()
        running.thread.join(10)
        assert not running.thread.is_alive(), "the watcher did not stop"
        assert running.error is None, repr(running.error)


@pytest.fixture
def copying(project):
    project.rules(COPY)
    project.write("data/raw.csv", "a\nb\n")
    project.write("scripts/tool.sh", 'cat "$1"\n')
    return project


def rewrite(path: Path, text: str) -> None:
    path.write_text(text)


# Sources, bursts, and what is ignored


def test_editing_a_source_rebuilds_its_outputs_and_nothing_more(copying, watching):
    w = watching()
    assert w.ran(0) == ["copy", "count"]
    assert "watching 3 files in 3 folders" in w.text  # raw.csv, tool.sh, Makeflow.py

    rewrite(copying.root / "data/raw.csv", "a\nb\nc\n")
    w.idle(2)

    assert copying.read("out/count.txt").strip() == "3"
    assert w.ran() == ["copy", "count"]
    assert "changed: data/raw.csv" in w.text
    w.stays_quiet()  # the build's own outputs, logs and state do not wake it


def test_a_script_listed_as_input_is_a_source(copying, watching):
    w = watching()
    rewrite(copying.root / "scripts/tool.sh", 'tac "$1"\n')
    w.idle(2)

    assert copying.read("out/copy.txt") == "b\na\n"
    assert w.ran() == ["copy", "count"]


def test_touching_a_source_reruns_nothing(copying, watching):
    w = watching()
    os.utime(copying.root / "data/raw.csv")
    rewrite(copying.root / "data/raw.csv", "a\nb\n")  # same content, new mtime
    w.idle(2)

    assert w.ran() == []
    assert "nothing to do" in w.text


def test_a_burst_of_writes_is_one_build(copying, watching):
    w = watching()
    for i in range(50):
        rewrite(copying.root / "data/raw.csv", "x\n" * (i + 1))
    w.idle(2)

    assert len(w.results) == 2
    assert copying.read("out/count.txt").strip() == "50"
    w.stays_quiet()


def test_changes_during_a_build_queue_exactly_one_more(project, watching):
    project.rules("""\
        from makeflow import rule
        rule("slow", inputs="in.txt", outputs="out.txt", shell="sleep 0.6; cp {inputs} {outputs}")
    """)
    project.write("in.txt", "0")
    w = watching()

    rewrite(project.root / "in.txt", "1")
    # the step sets its previous output aside as it starts
    until(lambda: (project.root / ".makeflow/aside").exists(), what="the step to start")
    for i in range(2, 12):
        rewrite(project.root / "in.txt", str(i))
        time.sleep(0.02)
    w.idle(3)

    assert len(w.results) == 3
    assert project.read("out.txt") == "11"
    w.stays_quiet()


def test_an_editor_replacing_a_file_is_seen(copying, watching):
    w = watching()
    temp = copying.root / "data/.raw.csv.tmp"
    temp.write_text("1\n2\n3\n4\n")
    os.replace(temp, copying.root / "data/raw.csv")
    w.idle(2)

    assert copying.read("out/count.txt").strip() == "4"


def test_swap_files_outputs_and_state_do_not_trigger_builds(copying, watching):
    w = watching()
    for name in ("data/.raw.csv.swp", "data/raw.csv~", "data/4913", "data/.#raw.csv",
                 ".git/index", ".makeflow/aside/x", "out/copy.txt", "data/unrelated.txt"):
        copying.write(name, "noise\n")
    os.replace(copying.root / "data/raw.csv~", copying.root / "data/raw.csv.bak")
    w.stays_quiet()
    assert len(w.results) == 1


# Rules, patterns, failures


def test_a_new_file_matching_a_pattern_is_built(project, watching):
    project.rules(GLOB)
    project.write("data/a.csv", "1\n")
    w = watching()
    assert w.ran(0) == ["stats[sample=a]"]

    project.write("data/b.csv", "22\n")
    w.idle(2)

    assert project.read("stats/b.txt").strip() == "3"
    assert w.ran() == ["stats[sample=b]"]
    assert "rules reloaded" in w.text


def test_a_removed_pattern_source_drops_its_target(project, watching):
    project.rules(GLOB)
    project.write("data/a.csv", "1\n")
    project.write("data/b.csv", "2\n")
    w = watching()

    (project.root / "data/b.csv").unlink()
    w.idle(2)

    assert w.results[-1].ok and "error" not in w.text


def test_a_broken_rules_file_keeps_the_last_good_rules_until_fixed(copying, watching):
    w = watching()
    good = copying.read("Makeflow.py")

    copying.write("Makeflow.py", good + "rule(\n")
    w.idle(2)
    assert "error: Makeflow.py:" in w.text and "syntax error" in w.text
    assert "still using the last good rules" in w.text
    assert len(w.results) == 1 and w.thread.is_alive()

    rewrite(copying.root / "data/raw.csv", "x\n")  # builds with the last good rules
    w.idle(3)
    assert w.ran() == ["copy", "count"]

    copying.write("Makeflow.py", good.replace("wc -l <", "wc -c <"))
    w.idle(4)
    assert w.ran() == ["count"]
    assert copying.read("out/count.txt").strip() == "2"


def test_a_config_change_reloads_the_rules(project, watching):
    project.rules("""\
        from makeflow import config, rule
        rule("say", outputs="said.txt", params={"word": config["word"]},
             shell="echo {params.word} > {outputs}")
    """)
    project.write("makeflow.toml", 'word = "hello"\n')
    w = watching()

    project.write("makeflow.toml", 'word = "bye"\n')
    w.idle(2)

    assert project.read("said.txt") == "bye\n"


def test_a_failing_step_is_shown_and_fixing_its_input_builds(project, watching):
    project.rules("""\
        from makeflow import rule
        rule("check", inputs="in.txt", outputs="ok.txt",
             shell="echo checking; grep -q good {inputs} && cp {inputs} {outputs}")
    """)
    project.write("in.txt", "bad\n")
    w = watching()
    assert "check FAILED: exit status 1" in w.text and "| checking" in w.text
    assert "last build FAILED" in w.text

    project.write("in.txt", "good\n")
    w.idle(2)

    assert project.read("ok.txt") == "good\n"
    assert w.text.rstrip().splitlines()[-1].startswith("watching")
    assert "last build ok" in w.text.splitlines()[-1]


def test_a_deleted_source_fails_with_a_clear_line_and_watching_goes_on(copying, watching):
    w = watching()
    (copying.root / "data/raw.csv").unlink()
    w.idle(2)
    assert "error: " in w.text and "data/raw.csv" in w.text.split("error: ")[-1]
    assert w.thread.is_alive()

    copying.write("data/raw.csv", "back\n")
    w.idle(3)
    assert w.results[-1].ok and copying.read("out/copy.txt") == "back\n"


def test_a_source_folder_created_later_is_watched(project, watching):
    project.rules("""\
        from makeflow import rule
        rule("copy", inputs="deep/er/in.txt", outputs="out.txt", shell="cp {inputs} {outputs}")
    """)
    w = watching()
    assert "error: " in w.text  # no such input yet

    project.write("deep/er/in.txt", "1")
    until(lambda: read_if_there(project, "out.txt") == "1", what="out.txt")
    w.idle(2)  # at rest again: deep/er is watched now
    project.write("deep/er/in.txt", "2")
    until(lambda: read_if_there(project, "out.txt") == "2", what="the second edit")


def read_if_there(project, path: str) -> str | None:
    """The file's text, or None while a rebuild has moved the old one aside."""
    try:
        return project.read(path)
    except FileNotFoundError:
        return None


def test_polling_sees_changes_too(copying, watching):
    w = watching(poll=True)
    rewrite(copying.root / "data/raw.csv", "p\n")
    w.idle(2)
    assert copying.read("out/copy.txt") == "p\n"


def test_a_scheduled_time_runs_a_build(project, watching):
    project.rules("""\
        from makeflow import rule
        rule("fetch", outputs="fetched.txt", always=True, shell="date +%s%N > {outputs}")
    """)
    now = [1_800_000_030.0]  # 30 s past a minute
    clock = lambda: now[0]  # noqa: E731
    w = watching(schedule=Schedule("* * * * *", clock), clock=clock)
    assert "next scheduled build" in w.text

    now[0] += 29
    w.watcher.poke()
    w.stays_quiet()
    now[0] += 1
    w.watcher.poke()
    w.idle(2)

    assert "scheduled build (* * * * *)" in w.text
    assert w.ran() == ["fetch"] and len(w.results) == 2


# What is watched, without an observer


def test_what_each_path_means(copying):
    pipeline = load(copying.root / "Makeflow.py")
    ws = watch_set(pipeline.file, pipeline)
    at = lambda rel, gone=False: ws.kind(str(copying.root / rel), gone)  # noqa: E731

    assert at("Makeflow.py") == RULES and at("makeflow.toml") == RULES
    assert at("data/raw.csv") == SOURCE and at("scripts/tool.sh", gone=True) == SOURCE
    assert at("data") == SOURCE  # the folder itself, removed or replaced
    for ignored in ("out/copy.txt", "data/.raw.csv.swp", "data/raw.csv~", "data/.#raw.csv",
                    "data/4913", ".makeflow/aside/out%2Fcopy.txt", ".git/HEAD",
                    "data/raw.csv.makeflow-1a2b3c4d", "data/other.csv"):
        assert at(ignored) is None, ignored
    assert ws.kind("/elsewhere/raw.csv") is None


def test_listed_pattern_sources_reload_the_rules(project):
    project.rules(GLOB)
    project.write("data/a.csv", "1")
    pipeline = load(project.root / "Makeflow.py")
    ws = watch_set(pipeline.file, pipeline)
    at = lambda rel, gone=False: ws.kind(str(project.root / rel), gone)  # noqa: E731

    assert at("data/new.csv") == RULES
    assert at("data/a.csv", gone=True) == RULES  # no longer listed
    assert at("stats/new.txt") is None  # made by a rule
    assert at("data/.#a.csv") is None  # an editor's lock file, though it matches
    assert ws.folders == {str(project.root): False, str(project.root / "data"): False}


def test_many_folders_are_watched_through_their_top_level_folder(project):
    for i in range(100):
        project.write(f"data/s{i}/in.txt", "x")
    project.rules("""\
        from makeflow import rule
        rule("all", inputs=[f"data/s{i}/in.txt" for i in range(100)], outputs="all.txt",
             shell="cat {inputs} > {outputs}")
    """)
    pipeline = load(project.root / "Makeflow.py")
    ws = watch_set(pipeline.file, pipeline)

    assert ws.folders == {str(project.root): False, str(project.root / "data"): True}
    assert ws.kind(str(project.root / "data/s7/in.txt")) == SOURCE


@pytest.mark.parametrize("text, folder", [
    ("data/{s}.csv", ("data", False)),
    ("{s}.csv", ("", False)),
    ("data/{s}/reads.fq", ("data", True)),
    ("data/{path,.+}.csv", ("data", True)),
    ("in/raw.csv", ("in", False)),
])
def test_pattern_folders(text, folder):
    assert pattern_folder(text) == folder


# The real command


class Command:
    """`makeflow watch` as a subprocess, its stdout read line by line in a thread."""

    def __init__(self, root: Path, *args: str):
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "makeflow", "watch", "--debounce", str(DEBOUNCE), *args],
            cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))

    def expect(self, text: str, timeout: float = 15.0) -> str:
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                pytest.fail(f"no line with {text!r} in time; saw:\n" + "\n".join(self.seen))
            self.seen.append(line)
            if text in line:
                return line

    def interrupt(self, timeout: float = 15.0) -> int:
        self.proc.send_signal(signal.SIGINT)
        return self.proc.wait(timeout)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def command():
    started: list[Command] = []

    def start(root: Path, *args: str) -> Command:
        started.append(Command(root, *args))
        return started[-1]

    yield start
    for cmd in started:
        cmd.close()


def test_the_command_rebuilds_on_an_edit_and_stops_cleanly_on_ctrl_c(copying, command):
    cmd = command(copying.root)
    cmd.expect("waiting for changes")
    assert copying.read("out/count.txt").strip() == "2"

    rewrite(copying.root / "data/raw.csv", "1\n2\n3\n4\n5\n")
    cmd.expect("changed: data/raw.csv")
    cmd.expect("waiting for changes")
    assert copying.read("out/count.txt").strip() == "5"

    assert cmd.interrupt() == 0
    cmd.expect("stopped watching", timeout=2)


def group_alive(pgid: int) -> bool:
    """Whether any process of the group still runs (zombies waiting to be reaped do not)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


def test_ctrl_c_during_a_step_stops_it_and_leaves_no_process(project, command):
    project.rules("""\
        from makeflow import rule
        rule("long", outputs="never.txt", shell="echo $$ > pid.txt; sleep 60; touch {outputs}")
    """)
    cmd = command(project.root)
    until(lambda: project.exists("pid.txt") and project.read("pid.txt").strip(),
          what="the step to start")
    pgid = int(project.read("pid.txt"))
    assert group_alive(pgid)

    assert cmd.interrupt() == 130
    cmd.expect("stopped by SIGINT while running long")

    until(lambda: not group_alive(pgid), timeout=5, what="the step's processes to end")


def test_an_invalid_schedule_is_refused(copying):
    done = copying.run("watch", "--schedule", "0 25 * * *")
    assert done.code == 2
    assert "--schedule '0 25 * * *' is not a valid cron expression" in done.err


PY_HELPERS = """\
    from helpers import label
    from makeflow import rule

    @rule(inputs="data/raw.csv", outputs="out/labelled.txt", default=True)
    def labelled(step):
        step.outputs[0].write_text(label(step.inputs[0].read_text()))
"""


def test_python_steps_run_the_last_good_rules_while_the_file_is_broken(project, watching):
    project.rules(PY_HELPERS)
    project.write("helpers.py", "def label(text):\n    return 'good:' + text\n")
    project.write("data/raw.csv", "a\n")
    w = watching()
    assert w.ran() == ["labelled"]
    project.write("Makeflow.py", project.read("Makeflow.py") + "rule(\n")
    w.idle(2)
    assert "still using the last good rules" in w.text
    rewrite(project.root / "data/raw.csv", "b\n")  # a worker must not load the broken file
    w.idle(3)
    assert w.ran() == ["labelled"] and w.results[-1].ok, w.text
    assert project.read("out/labelled.txt") == "good:b\n"


def test_editing_a_helper_module_reruns_the_steps_that_use_it(project, watching):
    project.rules(PY_HELPERS)
    project.write("helpers.py", "def label(text):\n    return 'one:' + text\n")
    project.write("data/raw.csv", "a\n")
    w = watching()
    assert w.ran() == ["labelled"]
    project.write("helpers.py", "def label(text):\n    return 'two:' + text\n")
    w.idle(2)
    until(lambda: project.read("out/labelled.txt") == "two:a\n", what=w.text)
