"""Python steps run in isolation: what one step does to its worker process does not reach
the next, and workers run the rules the build loaded, whatever is on disk now."""

from __future__ import annotations

import io
import subprocess
import sys

from makeflow import BuildOptions, build, load
from makeflow.ui.plain import PlainReporter


def test_chdir_environ_and_sys_path_do_not_leak_into_later_steps(project):
    project.rules('''
        import os, sys
        from makeflow import rule

        @rule(outputs="first.txt")
        def first(step):
            step.outputs[0].write_text("1")
            os.chdir("/")
            os.environ["MAKEFLOW_TEST_LEAK"] = "leaked"
            os.environ.pop("HOME", None)
            sys.path.insert(0, "/nowhere")

        @rule(inputs="first.txt", outputs="second.txt")
        def second(step):
            seen = [os.getcwd(), os.environ.get("MAKEFLOW_TEST_LEAK", "-"),
                    str("HOME" in os.environ), str("/nowhere" in sys.path)]
            step.outputs[0].write_text("\\n".join(seen))
    ''')
    result = project.build("second.txt", jobs=1)  # one worker runs both, one after the other
    assert result.ok, result.output
    cwd, leak, home, path = project.read("second.txt").splitlines()
    assert cwd == str(project.root)
    assert leak == "-"
    assert home == "True"
    assert path == "False"


def test_a_step_can_import_a_module_beside_the_rules_in_its_body(project):
    project.write("helpers.py", "def twice(text):\n    return text * 2\n")
    project.rules('''
        from makeflow import rule

        @rule(outputs="out.txt")
        def uses_helpers(step):
            import helpers

            step.outputs[0].write_text(helpers.twice("ab"))
    ''')
    elsewhere = project.root / "elsewhere"
    elsewhere.mkdir()
    done = subprocess.run([sys.executable, "-m", "makeflow", "-C", str(project.root), "build"],
                          cwd=elsewhere, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert project.read("out.txt") == "abab"


GOOD = '''
from helpers import word
from makeflow import rule

@rule(outputs="out.txt")
def write(step):
    step.outputs[0].write_text(word() + " VERSION")
'''


def build_loaded(pipeline, *targets):
    out = io.StringIO()
    result = build(pipeline, targets, BuildOptions(jobs=2), PlainReporter(out))
    result.output = out.getvalue()
    return result


def test_workers_run_the_rules_the_build_loaded_not_a_broken_file(project):
    project.write("helpers.py", "def word():\n    return 'good'\n")
    project.rules(GOOD.replace("VERSION", "v1"))
    pipeline = load(project.root / "Makeflow.py")
    project.rules("this is not python (\n")  # broken while the last good rules are kept
    result = build_loaded(pipeline)
    assert result.ok, result.output
    assert project.read("out.txt") == "good v1"


def test_workers_run_the_loaded_rules_and_helpers_after_they_change_on_disk(project):
    project.write("helpers.py", "def word():\n    return 'good'\n")
    project.rules(GOOD.replace("VERSION", "v1"))
    pipeline = load(project.root / "Makeflow.py")
    project.rules(GOOD.replace("VERSION", "v2"))
    project.write("helpers.py", "def word():\n    return 'changed'\n")
    result = build_loaded(pipeline)
    assert result.ok, result.output
    assert project.read("out.txt") == "good v1"  # what the recorded fingerprint describes
    fresh = load(project.root / "Makeflow.py")
    assert build_loaded(fresh).ran == ["write"]
    assert project.read("out.txt") == "changed v2"


def test_makeflow_started_by_a_relative_path_runs_python_steps(project, tmp_path_factory):
    """`../../venv/bin/makeflow build`: the program's own path passes through the project
    folder (`/project/../venv/...`); it is not a project module to forget between loads."""
    import os

    launcher = tmp_path_factory.mktemp("bin") / "makeflow-launcher"
    launcher.write_text("import sys\nfrom makeflow.ui.cli import main\n"
                        "if __name__ == '__main__':\n    sys.exit(main())\n")  # a console script
    project.write("in.txt", "x")
    project.rules('''
        from makeflow import rule

        @rule(inputs="in.txt", outputs="out.txt")
        def copy(step):
            step.outputs[0].write_text(step.inputs[0].read_text() + "!")
    ''')
    relative = os.path.relpath(launcher, project.root)
    assert relative.startswith("..")
    done = subprocess.run([sys.executable, relative, "build"], cwd=project.root,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert project.read("out.txt") == "x!"


DRIVER = """
import sys
from pathlib import Path
from makeflow import BuildOptions, build, load
from makeflow.ui.plain import PlainReporter

with open("driver-runs.log", "a") as runs:  # each execution of this script's top level
    runs.write("ran\\n")
result = build(load(Path("Makeflow.py")), [], BuildOptions(cache=False),
               PlainReporter(sys.stdout))
print("failed:", len(result.failed))
"""


def test_a_script_that_builds_without_a_main_guard(project):
    """A program that calls build() at its top level, without `if __name__ == "__main__"`:
    the Python workers load the rules, never that program, which would build again in
    each worker and wait for the project lock its parent holds, for ever."""
    project.write("in.txt", "x")
    project.rules('''
        from makeflow import rule

        @rule(inputs="in.txt", outputs="out.txt", default=True)
        def copy(step):
            step.outputs[0].write_text(step.inputs[0].read_text() + "!")
    ''')
    project.write("driver.py", DRIVER)
    done = subprocess.run([sys.executable, "driver.py"], cwd=project.root,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "failed: 0" in done.stdout
    assert project.read("out.txt") == "x!"
    assert project.read("driver-runs.log") == "ran\n"


def test_a_python_step_may_start_processes_of_its_own(project):
    """A worker is a daemonic process (it ends with the build); multiprocessing refuses
    children to those, so a step's own pool failed before it started."""
    project.rules('''
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor
        from makeflow import rule

        def square(x):
            return x * x

        @rule(outputs="pool.txt")
        def pool(step):
            with multiprocessing.get_context("spawn").Pool(2) as workers:
                step.outputs[0].write_text(str(workers.map(square, range(4))))

        @rule(outputs="executor.txt")
        def executor(step):
            with ProcessPoolExecutor(2) as workers:
                step.outputs[0].write_text(str(list(workers.map(square, range(4)))))
    ''')
    done = project.run("build", "pool.txt", "executor.txt")
    assert done.code == 0, done.text
    assert project.read("pool.txt") == project.read("executor.txt") == "[0, 1, 4, 9]"
