"""Ctrl-C, once and twice: every step is killed, partial outputs are removed, the exit
status is 130, the terminal is left as it was. Real processes, real signals, a real pty,
bounded waits."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time

from terminal import Terminal
from waiting import gone, wait_for

# A step that ignores SIGTERM (as some tools do while they flush), with a child that
# ignores it too, writing a partial output where the user asked for it.
STUBBORN = """
from makeflow import rule
rule("quick", inputs="in.txt", outputs="quick.txt", shell="cp {inputs} {outputs}")
rule("stubborn", inputs="quick.txt", outputs="out.txt", stage=False,
     shell="trap '' TERM; printf partial > {outputs}; echo $$ > pid; "
           "sleep 60 & echo $! > child; touch started; wait")
"""


def started(project) -> bool:
    return project.exists("started") and project.exists("child") and \
        bool(project.read("child").strip())


def default_sigint() -> None:
    """Ctrl-C as a terminal gives it, even when the tests run in the background (where
    the shell starts them with SIGINT ignored, which makeflow would inherit)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def in_place(project, rules: str) -> None:
    """The rules, with the output written where the user declared it: stage=False while
    the rule offers staging, as it is once it no longer does."""
    project.rules(rules)
    if project.run("list").code != 0:
        project.rules(rules.replace("stage=False, ", ""))


def test_a_second_ctrl_c_kills_every_step_and_exits_130(project):
    project.write("in.txt", "x")
    in_place(project, STUBBORN)
    proc = subprocess.Popen([sys.executable, "-m", "makeflow", "build", "out.txt"],
                            cwd=project.root, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, preexec_fn=default_sigint)
    try:
        wait_for(lambda: started(project))
        for _ in range(3):  # an impatient user: makeflow is stopping, the step ignores TERM
            proc.send_signal(signal.SIGINT)
            time.sleep(0.3)
        out, _ = proc.communicate(timeout=15)  # never a hang (the step would sleep 60 s)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, out
    assert "Traceback" not in out, out
    assert "stopped by SIGINT while running stubborn" in out
    for name in ("pid", "child"):
        pid = int(project.read(name))
        wait_for(lambda pid=pid: gone(pid), 5)
    assert not project.exists("out.txt")  # the partial output is removed
    assert project.read("quick.txt") == "x"  # what finished stays


def test_ctrl_c_on_a_terminal_shows_the_cursor_and_starts_the_error_on_its_own_line(project):
    project.write("in.txt", "x")
    in_place(project, STUBBORN.replace("trap '' TERM; ", ""))
    term = Terminal(project.root, "build", "out.txt")
    try:
        wait_for(lambda: started(project))
        assert term.read_until(b"\x1b[?25l", 10), term.text  # the live view hid the cursor
        time.sleep(0.3)
        term.type(b"\x03")  # Ctrl-C, typed on the terminal
        code = term.wait(20)
    finally:
        term.kill()
    assert code == 130, term.text
    screen = term.output
    assert screen.rfind(b"\x1b[?25h") > screen.rfind(b"\x1b[?25l"), term.text
    screen = re.sub(rb"\x1b\[[0-9;]*m", b"", screen)  # colours only; cursor moves stay
    at = screen.find(b"makeflow: error: stopped by SIGINT")
    assert at > 0, term.text
    assert screen[:at].endswith(b"\n"), repr(screen[-400:])
    assert b"Traceback" not in screen
    wait_for(lambda: gone(int(project.read("child"))), 5)


def test_a_closed_terminal_stops_every_step_and_records_what_finished(project):
    """SIGHUP, the signal a closed terminal sends, stops the build as SIGTERM does: before,
    makeflow died at once and left its steps running, unrecorded, into the next build."""
    project.write("in.txt", "x")
    in_place(project, STUBBORN.replace("trap '' TERM; ", ""))
    term = Terminal(project.root, "build", "out.txt")
    try:
        wait_for(lambda: started(project))
        code = term.hang_up(20)
    finally:
        term.kill()
    assert code == 128 + signal.SIGHUP
    wait_for(lambda: gone(int(project.read("pid"))) and gone(int(project.read("child"))), 10)
    assert not project.exists("out.txt")  # the stopped step's partial output is removed
    status = project.run("status", "out.txt")
    assert "stubborn" in status.out and "quick" not in status.out, status.text
