"""Running steps: parallelism, outputs in place, failures, crashes, logs and file names."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest


def ran(result) -> set[str]:
    return set(result.ran)


def spans(project, *paths: str) -> list[tuple[float, float]]:
    out = []
    for path in paths:
        start, end = project.read(path).split()
        out.append((float(start), float(end)))
    return out


def overlap(a: tuple[float, float], b: tuple[float, float]) -> bool:
    return a[0] < b[1] and b[0] < a[1]


# Each step writes when it started, waits (up to PATIENCE seconds) until the other one
# has started too, then writes when it ended. Steps that run at once meet and overlap
# however loaded the machine is; steps run one at a time cannot.
TIMED_SHELL = """
from makeflow import rule
STAMP = "python3 -c 'import time; print(time.time())'"
WAIT = "for i in $(seq 40); do [ -e started-{other} ] && break; sleep 0.05; done"
for name, other in (("a", "b"), ("b", "a")):
    rule(name, inputs="in.txt", outputs=f"{name}.txt",
         shell=f"{STAMP} > {{outputs}}; touch started-{name}; "
               + WAIT.format(other=other) + f"; {STAMP} >> {{outputs}}")
rule("all", inputs=["a.txt", "b.txt"], default=True)
"""


@pytest.mark.parametrize("jobs, together", [(2, True), (1, False)])
def test_jobs_run_steps_at_once(project, jobs, together):
    project.write("in.txt", "x")
    project.rules(TIMED_SHELL)
    assert project.run("build", "-j", str(jobs)).code == 0
    a, b = spans(project, "a.txt", "b.txt")
    assert overlap(a, b) is together


TIMED_PYTHON = """
import os, time
from makeflow import rule

def meet(step, other):
    start = time.time()
    open(f"started-{step.name}", "w").close()
    deadline = time.time() + 30
    while not os.path.exists(f"started-{other}") and time.time() < deadline:
        time.sleep(0.01)
    step.outputs[0].write_text(f"{start} {time.time()}")

@rule(inputs="in.txt", outputs="a.txt")
def a(step):
    meet(step, "b")

@rule(inputs="in.txt", outputs="b.txt")
def b(step):
    meet(step, "a")

rule("all", inputs=["a.txt", "b.txt"], default=True)
"""


def test_python_steps_run_in_parallel(project):
    project.write("in.txt", "x")
    project.rules(TIMED_PYTHON)
    result = project.build(jobs=2)
    assert ran(result) == {"a", "b"}
    assert overlap(*spans(project, "a.txt", "b.txt"))


def test_crashing_python_step_fails_alone(project):
    project.write("in.txt", "x")
    project.rules("""
        import os, signal
        from makeflow import rule
        @rule(inputs="in.txt", outputs="crash.txt")
        def crash(step):
            os.kill(os.getpid(), signal.SIGSEGV)
        @rule(inputs="in.txt", outputs="fine.txt")
        def fine(step):
            step.outputs[0].write_text("ok")
        rule("all", inputs=["crash.txt", "fine.txt"], default=True)
    """)
    result = project.build(jobs=2, keep_going=True)
    assert "crashed" in result.failed["crash"] and "SIGSEGV" in result.failed["crash"]
    assert ran(result) == {"fine"}
    assert project.read("fine.txt") == "ok"
    again = project.build(jobs=1, keep_going=True)  # the pool replaced its dead worker
    assert set(again.failed) == {"crash"}


KILLABLE = """
from makeflow import rule
rule("slow", inputs="in.txt", outputs="out.txt",
     shell="printf partial > {outputs}; {KILL}; cat {inputs} > {outputs}")
"""


def test_step_killed_by_a_signal_leaves_the_previous_output(project):
    project.write("in.txt", "v1")
    project.rules(KILLABLE.replace("{KILL}", "true"))
    assert project.run("build").code == 0
    assert project.read("out.txt") == "v1"
    project.write("in.txt", "v2")
    project.rules(KILLABLE.replace("{KILL}", "kill -9 $$"))
    done = project.run("build")
    assert done.code == 1
    assert "killed by SIGKILL" in done.text
    assert project.read("out.txt") == "v1"


def test_interrupted_build_leaves_the_previous_output_and_reruns(project):
    project.write("in.txt", "v1")
    project.rules("""
        from makeflow import rule
        rule("slow", inputs="in.txt", outputs="out.txt",
             shell="printf partial > {outputs}; touch started; sleep 30; cat {inputs} > {outputs}")
    """)
    project.rules(project.read("Makeflow.py").replace("sleep 30; ", ""))
    assert project.run("build").code == 0
    (project.root / "started").unlink()
    project.rules(project.read("Makeflow.py").replace("started; ", "started; sleep 30; "))
    proc = subprocess.Popen([sys.executable, "-m", "makeflow", "build"], cwd=project.root,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 20
    while not project.exists("started") and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=20)
    assert proc.returncode == 130, out
    assert "stopped by SIGINT while running slow" in out
    assert project.read("out.txt") == "v1"
    assert not list((project.root / ".makeflow").glob("aside/*"))
    assert "command changed" in project.run("status").out


def test_failed_step_keeps_the_old_output(project):
    project.write("in.txt", "v1")
    project.rules('from makeflow import rule\n'
                  'rule("s", inputs="in.txt", outputs="out.txt", shell="cp {inputs} {outputs}")\n')
    project.build()
    project.write("in.txt", "v2")
    project.rules('from makeflow import rule\n'
                  'rule("s", inputs="in.txt", outputs="out.txt", '
                  'shell="cp {inputs} {outputs}; exit 1")\n')
    result = project.build()
    assert result.failed == {"s": "exit status 1"}
    assert project.read("out.txt") == "v1"


def test_stage_false_is_accepted_and_a_failed_steps_new_outputs_are_deleted(project):
    project.write("in.txt", "v1")
    project.rules('from makeflow import rule\n'
                  'rule("s", inputs="in.txt", outputs="out.txt", stage=False,\n'
                  '     shell="cp {inputs} out.txt; exit 1")\n')
    result = project.build()
    assert "s" in result.failed
    assert not project.exists("out.txt")


def test_step_writes_its_own_file_names(project):
    project.write("in.txt", "v1")
    project.rules('from makeflow import rule\n'
                  'rule("s", inputs="in.txt", outputs="out.txt",\n'
                  '     shell="cp in.txt out.txt")\n')
    assert ran(project.build()) == {"s"}
    assert ran(project.build()) == set()


def test_step_without_its_declared_output_fails_naming_it(project):
    project.write("in.txt", "x")
    project.rules('from makeflow import rule\n'
                  'rule("s", inputs="in.txt", outputs=["a.txt", "b.txt"], '
                  'shell="cp {inputs} {outputs[0]}")\n')
    result = project.build()
    assert "did not create its output b.txt" in result.failed["s"]
    assert not project.exists("a.txt")


def test_failure_stops_the_build_unless_keep_going(project):
    project.write("in.txt", "x")
    project.rules("""
        from makeflow import rule
        rule("bad", inputs="in.txt", outputs="bad.txt", shell="exit 4")
        rule("after", inputs="bad.txt", outputs="after.txt", shell="cp {inputs} {outputs}")
        rule("other", inputs="in.txt", outputs="other.txt", shell="cp {inputs} {outputs}")
        rule("all", inputs=["after.txt", "other.txt"], default=True)
    """)
    result = project.build(jobs=1)
    assert result.failed == {"bad": "exit status 4"}
    assert "other" not in result.ran
    result = project.build(jobs=1, keep_going=True)
    assert result.ran == ["other"] and "after" in result.not_run
    assert project.exists("other.txt") and not project.exists("after.txt")


@pytest.mark.parametrize("jobs", [1, 2])
def test_steps_waiting_their_turn_do_not_start_after_a_failure(project, jobs):
    """Shell steps queue two per job slot; the ones queued when a step fails never start,
    also when the failure is found after the command (a declared output is missing)."""
    project.write("in.txt", "x")
    project.rules("""
        from makeflow import expand, rule
        rule("bad", inputs="in.txt", outputs="bad.txt", shell="true")
        rule("other", inputs="in.txt", outputs="other/{i}.txt", shell="cp {inputs} {outputs}")
        rule("all", inputs=["bad.txt", *expand("other/{i}.txt", i=range(6))], default=True)
    """)
    result = project.build(jobs=jobs)
    assert list(result.failed) == ["bad"]
    # at -j1 nothing after `bad`; at -j2 the step beside it, and those that followed it
    # before the failure was seen, but never every one
    assert len(result.ran) < (1 if jobs == 1 else 6)
    others = {f"other[i={i}]": f"other/{i}.txt" for i in range(6)}
    assert set(result.not_run) == set(others) - set(result.ran)
    assert all(project.exists(path) == (sid in result.ran) for sid, path in others.items())


def test_a_failure_with_a_retry_left_lets_the_queued_steps_run(project):
    project.write("in.txt", "x")
    project.rules("""
        from makeflow import expand, rule
        rule("flaky", inputs="in.txt", outputs="flaky.txt", retries=1,
             shell="test -f tried || {{ touch tried; exit 3; }}; cp {inputs} {outputs}")
        rule("other", inputs="in.txt", outputs="other/{i}.txt", shell="cp {inputs} {outputs}")
        rule("all", inputs=["flaky.txt", *expand("other/{i}.txt", i=range(4))], default=True)
    """)
    result = project.build(jobs=1)
    assert not result.failed and not result.not_run
    assert sorted(result.ran) == ["flaky", *(f"other[i={i}]" for i in range(4))]


def test_input_changed_while_running_is_not_recorded(project):
    project.write("in.txt", "x")
    project.rules('from makeflow import rule\n'
                  'rule("s", inputs="in.txt", outputs="out.txt",\n'
                  '     shell="cp {inputs} {outputs}; echo more >> {inputs}")\n')
    result = project.build()
    assert "in.txt changed while s ran" in result.output
    assert ran(project.build()) == {"s"}


def test_steps_run_in_the_project_folder_and_get_output_folders(project):
    project.write("in.txt", "x")
    project.rules('from makeflow import rule\n'
                  'rule("s", inputs="in.txt", outputs="deep/er/out.txt",\n'
                  '     shell="pwd > {outputs}")\n')
    assert project.run("build", "-C", str(project.root)).code == 0
    assert project.read("deep/er/out.txt").strip() == str(project.root)


@pytest.mark.parametrize("name", ["with space.txt", "it's \"q\".txt", "ünïcødé ☃.txt",
                                  "dollar $HOME.txt"])
def test_unusual_file_names_are_quoted(project, name):
    project.write(name, "content")
    project.rules(f'from makeflow import rule\n'
                  f'rule("s", inputs={name!r}, outputs="copy of " + {name!r},\n'
                  f'     shell="cat {{inputs}} > {{outputs}}; '
                  f'echo {{inputs[0]}} >> {{outputs}}")\n')
    assert ran(project.build()) == {"s"}
    assert project.read("copy of " + name) == f"content{name}\n"


def test_named_inputs_in_shell_and_python(project):
    project.write("data.txt", "D")
    project.write("extra.txt", "E")
    project.rules("""
        from makeflow import rule
        rule("sh", inputs={"data": "data.txt", "extra": "extra.txt"},
             outputs={"out": "sh.txt"}, shell="cat {inputs.extra} {inputs.data} > {outputs.out}")
        @rule(inputs={"data": "data.txt", "extra": "extra.txt"}, outputs={"out": "py.txt"},
              params={"sep": "-"})
        def py(step):
            text = step.inputs.data.read_text() + step.params.sep + step.inputs.extra.read_text()
            step.outputs.out.write_text(text)
        rule("all", inputs=["sh.txt", "py.txt"], default=True)
    """)
    assert ran(project.build()) == {"sh", "py"}
    assert project.read("sh.txt") == "ED"
    assert project.read("py.txt") == "D-E"


def test_logs_keep_each_steps_output(project):
    project.write("in.txt", "x")
    project.rules("""
        from makeflow import rule
        rule("sh", inputs="in.txt", outputs="a.txt",
             shell="echo hello-shell; cp {inputs} {outputs}")
        @rule(inputs="in.txt", outputs="b.txt")
        def py(step):
            print("hello-python")
            step.outputs[0].write_text("b")
        rule("all", inputs=["a.txt", "b.txt"], default=True)
    """)
    project.build()
    assert "hello-shell" in project.run("logs", "sh").out
    assert "hello-python" in project.run("logs", "b.txt").out


def test_step_error_fails_with_its_message_only(project):
    project.write("in.txt", "x")
    project.rules("""
        from makeflow import rule, StepError
        @rule(inputs="in.txt", outputs="gate.txt")
        def gate(step):
            raise StepError("r2 0.31 is below the threshold 0.40")
    """)
    done = project.run("build")
    assert done.code == 1
    assert "r2 0.31 is below the threshold 0.40" in done.text
    assert "Traceback" not in done.text


def test_python_in_a_command_is_the_interpreter_running_makeflow(project):
    project.write("which.py", "import sys\nopen(sys.argv[1], 'w').write(sys.executable)\n")
    project.rules("""
        from makeflow import rule
        rule("which", inputs="which.py", outputs="which.txt", shell="python {inputs} {outputs}")
    """)
    env = {**os.environ, "PATH": "/usr/bin:/bin"}  # as in a shell without the venv active
    done = subprocess.run([sys.executable, "-m", "makeflow", "build"], cwd=project.root,
                          env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert project.read("which.txt") == sys.executable


def test_a_command_that_does_not_exist_fails_the_step(project):
    project.write("in.txt", "x")
    project.rules('from makeflow import rule\n'
                  'rule("s", inputs="in.txt", outputs="o", shell="no-such-program {inputs}")\n')
    done = project.run("build")
    assert done.code == 1
    assert "s FAILED: cannot run: command not found" in done.out
