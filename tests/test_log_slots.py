"""Steps log to a reused file per job slot: a log is kept only when a step printed something
or did not succeed, and `makeflow logs` still shows every step's last run."""

from __future__ import annotations

import os

from makeflow.run.outcome import log_path

RULES = """
    import sys
    from makeflow import rule

    rule("quiet_sh", inputs="in.txt", outputs="out/quiet_sh.txt", shell="cp {inputs} {outputs}")
    rule("loud_sh", inputs="in.txt", outputs="out/loud_sh.txt",
         shell="echo hello from the shell; cp {inputs} {outputs}")

    @rule(inputs="in.txt", outputs="out/quiet_py.txt")
    def quiet_py(step):
        step.outputs[0].write_text(step.inputs[0].read_text())

    @rule(inputs="in.txt", outputs="out/loud_py.txt")
    def loud_py(step):
        print("hello from Python")
        print("and from stderr", file=sys.stderr)
        step.outputs[0].write_text(step.inputs[0].read_text())

    rule("all", inputs=["out/quiet_sh.txt", "out/loud_sh.txt", "out/quiet_py.txt",
                        "out/loud_py.txt"], default=True)
"""


def _logs(project) -> set[str]:
    folder = project.root / ".makeflow" / "logs"
    return {p.name for p in folder.iterdir()} if folder.is_dir() else set()


def test_only_steps_that_printed_keep_a_log_file(project):
    project.write("in.txt", "x\n")
    project.rules(RULES)
    assert project.run("build", "-j2").code == 0
    kept = _logs(project)
    assert os.path.basename(log_path("loud_sh")) in kept
    assert os.path.basename(log_path("loud_py")) in kept
    assert os.path.basename(log_path("quiet_sh")) not in kept
    assert os.path.basename(log_path("quiet_py")) not in kept
    assert not (project.root / ".makeflow" / "slots").exists()  # no slot file left behind


def test_logs_shows_every_steps_last_run(project):
    project.write("in.txt", "x\n")
    project.rules(RULES)
    assert project.run("build", "-j2").code == 0
    assert project.run("logs", "quiet_sh").out == "$ cp in.txt out/quiet_sh.txt\n"
    assert project.run("logs", "out/quiet_sh.txt").out == "$ cp in.txt out/quiet_sh.txt\n"
    done = project.run("logs", "quiet_py")
    assert (done.code, done.out) == (0, "")
    loud = project.run("logs", "loud_sh").out
    assert loud.startswith("$ echo hello from the shell; cp in.txt out/loud_sh.txt\n")
    assert "hello from the shell\n" in loud
    loud_py = project.run("logs", "loud_py").out
    assert "hello from Python" in loud_py and "and from stderr" in loud_py


def test_a_silent_rerun_removes_the_log_an_earlier_run_printed(project):
    project.write("in.txt", "x\n")
    project.rules("""
        from makeflow import rule
        rule("step", inputs="in.txt", outputs="out.txt",
             shell="tr a-z A-Z < in.txt; cp in.txt out.txt")
    """)
    project.write("in.txt", "loud\n")
    assert project.run("build").code == 0
    assert "LOUD" in project.run("logs", "step").out
    project.write("in.txt", "")
    assert project.run("build").code == 0
    shown = project.run("logs", "step").out
    assert "LOUD" not in shown and shown == "$ tr a-z A-Z < in.txt; cp in.txt out.txt\n"


def test_a_step_that_fails_silently_keeps_its_log(project):
    project.rules("""
        from makeflow import rule
        rule("bad", outputs="out.txt", shell="false")

        @rule(outputs="py.txt")
        def bad_py(step):
            raise ValueError("no good")
    """)
    assert project.run("build", "-k", "out.txt", "py.txt").code == 1
    assert project.run("logs", "bad").out == "$ false\n"
    assert "ValueError: no good" in project.run("logs", "bad_py").out


def test_a_python_step_that_times_out_or_crashes_keeps_what_it_printed(project):
    project.rules("""
        import os, sys, time
        from makeflow import rule

        @rule(outputs="slow.txt", timeout=1)
        def slow(step):
            print("started, then slept", flush=True)
            time.sleep(30)

        @rule(outputs="crash.txt")
        def crash(step):
            print("about to crash", flush=True)
            os._exit(3)
    """)
    assert project.run("build", "-k", "slow.txt", "crash.txt").code == 1
    assert "started, then slept" in project.run("logs", "slow").out
    assert "about to crash" in project.run("logs", "crash").out
    assert not (project.root / ".makeflow" / "slots").exists()


def test_a_step_that_never_ran_has_no_log(project):
    project.write("in.txt", "x\n")
    project.rules(RULES)
    done = project.run("logs", "quiet_sh")
    assert done.code == 2
    assert "has not run yet" in done.err


def test_a_long_log_is_kept_whole_after_its_command(project):
    project.rules("""
        from makeflow import rule
        rule("chatty", outputs="out.txt", shell="seq 30000; echo done > out.txt")
    """)
    assert project.run("build").code == 0
    lines = project.run("logs", "chatty").out.splitlines()
    assert lines[0] == "$ seq 30000; echo done > out.txt"
    assert lines[1:] == [str(i) for i in range(1, 30001)]


def test_the_log_of_a_pattern_step_by_its_id_whether_it_failed_or_was_silent(project):
    project.rules("""
        from makeflow import rule
        rule("up", outputs="out/{n}.txt",
             shell="test {wildcards.n} != bad || exit 3; echo {wildcards.n} > {outputs}")
    """)
    assert project.run("build", "-k", "out/good.txt", "out/bad.txt").code == 1
    assert project.run("logs", "up[n=bad]").out.startswith("$ test bad != bad")
    assert project.run("logs", "up[n=good]").out.startswith("$ test good != bad")
    assert project.run("logs", "out/good.txt").out.startswith("$ test good != bad")


def test_slots_left_by_a_killed_build_are_cleared_and_a_blocked_folder_only_costs_speed(
        project):
    project.write("in.txt", "x\n")
    project.rules(RULES)
    slots = project.root / ".makeflow" / "slots"
    slots.mkdir(parents=True)
    (slots / "99999-0.log").write_text("left by a build killed with kill -9\n")
    assert project.run("build", "-j2").code == 0
    assert not slots.exists()
    project.write("in.txt", "y\n")
    slots.parent.mkdir(exist_ok=True)
    slots.write_text("a file where the slots folder goes\n")
    done = project.run("build", "-j2")
    assert done.code == 0, done.text
    assert project.read("out/quiet_py.txt") == "y\n"
    assert "hello from the shell" in project.run("logs", "loud_sh").out
    assert project.run("logs", "quiet_sh").out == "$ cp in.txt out/quiet_sh.txt\n"
    assert slots.read_text() == "a file where the slots folder goes\n"
