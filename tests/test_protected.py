"""`protected=True`: outputs are made read-only after their step; a rerun still replaces
them, and `makeflow clean` asks before removing them (`--force` does not ask; without a
terminal and without `--force` it refuses, exit 2)."""

from __future__ import annotations

import os
import stat
import subprocess
import sys

from test_errors import user_error

RULES = """\
    from makeflow import rule

    rule("make", inputs="in.txt", outputs=["out.txt", "tree"], protected=True,
         shell="cp {inputs} {outputs[0]}; mkdir -p {outputs[1]}/sub; cp {inputs} {outputs[1]}/sub/x.txt")
    rule("plain", inputs="out.txt", outputs="plain.txt", shell="cat {inputs} > {outputs}")
"""  # noqa: E501


def writable(path) -> bool:
    return bool(os.stat(path).st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))


def built(project):
    project.rules(RULES)
    project.write("in.txt", "one\n")
    done = project.run("build", "plain.txt")
    assert done.code == 0, done.text
    return project


def test_outputs_of_a_protected_rule_are_read_only_and_others_are_not(project):
    built(project)

    assert not writable(project.root / "out.txt")
    assert not writable(project.root / "tree/sub/x.txt")
    assert writable(project.root / "tree")  # folders stay writable: a rerun can replace them
    assert writable(project.root / "plain.txt")
    assert "nothing to do" in project.run("build", "plain.txt").out  # and it stays fresh


def test_a_stale_protected_step_reruns_and_its_new_outputs_are_read_only_again(project):
    built(project)
    project.write("in.txt", "two\n")

    done = project.run("build", "plain.txt")

    assert done.code == 0, done.text
    assert project.read("out.txt") == "two\n" and project.read("tree/sub/x.txt") == "two\n"
    assert project.read("plain.txt") == "two\n"
    assert not writable(project.root / "out.txt")
    assert not os.listdir(project.root / ".makeflow/aside")  # nothing left set aside


def test_a_failed_rerun_puts_the_protected_outputs_back(project):
    built(project)
    project.rules(RULES.replace("cp {inputs} {outputs[1]}/sub/x.txt", "false"))

    done = project.run("build", "plain.txt")

    assert done.code == 1
    assert project.read("out.txt") == "one\n" and not writable(project.root / "out.txt")


def test_outputs_restored_from_the_run_cache_are_read_only_too(project):
    built(project)
    project.write("in.txt", "two\n")
    assert project.run("build", "plain.txt").code == 0
    project.write("in.txt", "one\n")

    done = project.run("build", "plain.txt")

    assert "make restored from cache" in done.out, done.text
    assert project.read("out.txt") == "one\n" and not writable(project.root / "out.txt")


def test_clean_without_a_terminal_and_without_force_refuses_and_removes_nothing(project):
    built(project)

    user_error(project.run("clean"), "protected", "out.txt", "--force")

    assert project.exists("out.txt") and project.exists("plain.txt")
    assert project.exists("tree/sub/x.txt")


def test_clean_force_removes_protected_outputs(project):
    built(project)

    done = project.run("clean", "--force")

    assert done.code == 0, done.text
    assert not project.exists("out.txt") and not project.exists("tree")
    assert not project.exists("plain.txt")


def test_clean_of_unprotected_targets_needs_no_confirmation(project):
    built(project)

    done = project.run("clean", "plain")

    assert done.code == 0, done.text
    assert not project.exists("plain.txt") and project.exists("out.txt")


def test_clean_dry_run_lists_protected_outputs_without_asking(project):
    built(project)

    done = project.run("clean", "-n")

    assert done.code == 0, done.text
    assert "would remove out.txt" in done.out and project.exists("out.txt")


def test_clean_asks_on_a_terminal_and_no_keeps_protected_outputs(project):
    """A real terminal (a pty) answers the question: "n" keeps the protected outputs and
    their step's record, and removes the rest."""
    import pty

    built(project)
    main, child = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "makeflow", "clean"], cwd=project.root,
                            stdin=child, stdout=child, stderr=child)
    os.close(child)
    seen = b""
    try:
        while b"protected output" not in seen:
            chunk = os.read(main, 1024)
            assert chunk, seen
            seen += chunk
        os.write(main, b"n\n")
        assert proc.wait(timeout=60) == 0
        while True:
            try:
                chunk = os.read(main, 1024)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
    finally:
        os.close(main)
        if proc.poll() is None:
            proc.kill()
    text = seen.decode(errors="replace")
    assert "kept out.txt: it is protected" in text, text
    assert project.exists("out.txt") and not project.exists("plain.txt")
    assert "nothing to do" in project.run("build", "out.txt").out  # its record was kept
