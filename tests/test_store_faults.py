"""The state store and the disk under it failing: damaged pages, a full disk, a read-only
checkout. Each runs the real CLI as a subprocess on real files."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import Done, Project

MANY = """
from makeflow import rule
for i in range(60):
    rule(f"a{i}", inputs="in.txt", outputs=f"out/a{i}.txt", shell="cp {inputs} {outputs}")
rule("all", inputs=[f"out/a{i}.txt" for i in range(60)], default=True)
"""


def damage_table(db: Path, table: str) -> None:
    """Overwrite the root page of one table with garbage, keeping the header and schema
    intact: the store opens, and only a query that reads that table fails."""
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        page = conn.execute("PRAGMA page_size").fetchone()[0]
        (root,), = conn.execute("SELECT rootpage FROM sqlite_master WHERE name=?", (table,))
    conn.close()
    for extra in ("-wal", "-shm"):
        Path(f"{db}{extra}").unlink(missing_ok=True)
    data = bytearray(db.read_bytes())
    data[(root - 1) * page:root * page] = os.urandom(page)
    db.write_bytes(bytes(data))


def test_a_store_with_damaged_pages_is_set_aside_and_the_build_goes_on(project):
    project.write("in.txt", "x")
    project.rules(MANY)
    # Neither the run cache nor makeflow.lock may stand in for the store here: with them,
    # the steps would be restored or found fresh by their lock entries instead of run.
    # Nor the no-op snapshot, which settles an unchanged project without reading it.
    project.write("makeflow.toml", "[makeflow]\ncache = false\n")
    assert project.run("build").code == 0
    for table in ("files", "steps"):
        (project.root / "makeflow.lock").unlink()
        (project.root / ".makeflow/uptodate.cache").unlink(missing_ok=True)
        damage_table(project.root / ".makeflow/state.db", table)
        status = project.run("status")
        assert status.code == 0, status.text
        assert "could not be used" in status.err and "malformed" in status.err
        assert "a0: never ran" in status.out
        done = project.run("build")
        assert done.code == 0, done.text
        assert "ran 60" in done.out
        assert "Traceback" not in status.text + done.text
        assert "nothing to do" in project.run("build").out
        aside = list((project.root / ".makeflow").glob("state.db.set-aside-*"))
        assert aside, "the damaged store is kept for a look"


# A read-only checkout: a read-only bind mount of the project in a private mount
# namespace, so the kernel refuses every write with EROFS, even to root (which ignores
# permission bits). Needs root or user namespaces; CI has them, so there it never skips.
READ_ONLY = 'mount --bind "$1" "$1" && mount -o remount,ro,bind "$1" && shift && exec "$@"'


def run_read_only(project, *args: str) -> Done:
    command = ["unshare", "-m", "--propagation", "private", "sh", "-c", READ_ONLY, "sh",
               str(project.root), sys.executable, "-m", "makeflow", *args]
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "200"}
    proc = subprocess.run(command, cwd=project.root, env=env, capture_output=True,
                          text=True, timeout=120)
    return Done(proc.returncode, proc.stdout, proc.stderr)


@pytest.fixture
def read_only_mounts(tmp_path):
    probe = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c",
                            READ_ONLY + " 2>&1", "sh", str(tmp_path), "touch",
                            str(tmp_path / "x")], capture_output=True, text=True)
    if "Read-only file system" not in probe.stderr + probe.stdout:
        if os.environ.get("CI"):
            pytest.fail(f"a read-only bind mount is needed in CI: {probe.stderr}")
        pytest.skip("no read-only bind mounts here (needs root or user namespaces)")


def store_files(project) -> list[str]:
    return sorted(p.name for p in (project.root / ".makeflow").iterdir())


def test_a_read_only_checkout_can_be_asked_but_not_built(project, read_only_mounts):
    project.write("in.txt", "x")
    project.rules(MANY)
    assert project.run("build").code == 0
    project.write("in.txt", "changed")
    before = store_files(project)
    status = run_read_only(project, "status")
    assert status.code == 0, status.text
    assert "a0: input changed: in.txt" in status.out
    check = run_read_only(project, "status", "--check")
    assert check.code == 1 and "60 of 60 steps stale" in check.out, check.text
    why = run_read_only(project, "why", "out/a3.txt")
    assert why.code == 0 and "input changed: in.txt" in why.out, why.text
    dry = run_read_only(project, "build", "-n")
    assert dry.code == 0 and "would run a0" in dry.out, dry.text
    built = run_read_only(project, "build")
    assert built.code == 2, built.text
    assert "read-only" in built.err and str(project.root) in built.err
    for done in (status, check, why, dry, built):
        assert "Traceback" not in done.text
        assert "could not be used" not in done.text
    assert store_files(project) == before
    assert project.read("out/a0.txt") == "x"


def test_a_read_only_checkout_that_never_built_says_every_step_never_ran(project,
                                                                        read_only_mounts):
    project.write("in.txt", "x")
    project.rules(MANY)
    status = run_read_only(project, "status")
    assert status.code == 0, status.text
    assert "a0: never ran" in status.out and "Traceback" not in status.text
    assert not project.exists(".makeflow")
    dry = run_read_only(project, "build", "-n", "out/a1.txt")
    assert dry.code == 0 and "would run a1: never ran" in dry.out, dry.text


# A full disk: the project on a small tmpfs of its own, mounted for the test and
# unmounted after it. Needs root (CI runs as root, so there it never skips).
@pytest.fixture
def small_disk(tmp_path):
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(disk)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        if os.environ.get("CI"):
            pytest.fail(f"mounting a small tmpfs is needed in CI: {mounted.stderr}")
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    try:
        yield Project(disk)
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def fill(project, leave: int = 0) -> None:
    """Fill the disk, then free `leave` bytes."""
    fd = os.open(project.root / "filler", os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    try:
        for size in (65536, 4096, 512, 1):
            with contextlib.suppress(OSError):
                while True:
                    os.write(fd, b"\0" * size)
    finally:
        os.close(fd)
    if leave:
        os.truncate(project.root / "filler", max(0, os.path.getsize(project.root / "filler")
                                                  - leave))


def no_space(done, *names: str) -> None:
    ours = [line for line in done.text.splitlines() if not line.startswith("  | ")]
    assert "Traceback" not in "\n".join(ours), done.text  # a step's own is in its log tail
    assert "no space left on device" in done.text.lower(), done.text
    for name in names:
        assert name in done.text, done.text


BIG = """
from pathlib import Path
from makeflow import rule
rule("small", inputs="in.txt", outputs="small.txt", shell="cp {inputs} {outputs}")

@rule(inputs="small.txt", outputs="big.bin")
def big(step):
    print("writing")
    Path(step.outputs[0]).write_bytes(b"x" * 4_000_000)
"""


def test_a_python_step_on_a_full_disk_names_the_file(small_disk):
    project = small_disk
    project.write("in.txt", "x")
    project.rules(BIG)
    done = project.run("build", "big.bin")
    assert done.code == 1, done.text
    no_space(done, "big.bin")
    assert "big FAILED" in done.out and "exited with status" not in done.text
    assert "small: " not in project.run("status", "small.txt").out  # its record survived


def test_a_python_step_whose_log_cannot_be_written_says_so(small_disk):
    project = small_disk
    project.write("in.txt", "x")
    project.rules(BIG.replace('print("writing")', 'print("writing" * 100_000)'))
    assert project.run("build", "small.txt").code == 0
    fill(project, leave=300_000)  # room for the store, not for the step's printing
    done = project.run("build", "big.bin")
    assert done.code in (1, 2), done.text
    no_space(done)
    assert "exited with status 0" not in done.text


def test_build_and_status_on_a_full_disk_name_the_file(small_disk):
    project = small_disk
    project.write("in.txt", "x")
    project.rules(BIG.replace("4_000_000", "10"))
    assert project.run("build").code == 0
    project.write("in.txt", "y" * 1000)
    fill(project)
    status = project.run("status")
    assert status.code == 2, status.text
    no_space(status, "state.db")
    done = project.run("build")
    assert done.code in (1, 2), done.text
    no_space(done)
    os.unlink(project.root / "filler")
    again = project.run("build")
    assert again.code == 0, again.text
    assert project.read("small.txt") == "y" * 1000


def test_a_shell_step_on_a_full_disk_says_so(small_disk):
    project = small_disk
    project.write("in.txt", "x")
    project.rules(BIG + 'rule("huge", inputs="small.txt", outputs="huge.bin",\n'
                  '     shell="head -c 4000000 /dev/zero > {outputs}")\n')
    done = project.run("build", "huge.bin")
    assert done.code == 1, done.text
    no_space(done, "huge.bin")
    assert "huge FAILED: exit status 1; no space left on device" in done.out


@pytest.fixture
def read_only_folder(project):
    folder = project.root / "ro"
    folder.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k,ro", "tmpfs",
                              str(folder)], capture_output=True, text=True)
    if mounted.returncode != 0:
        if os.environ.get("CI"):
            pytest.fail(f"mounting a read-only tmpfs is needed in CI: {mounted.stderr}")
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def test_steps_whose_output_folder_is_read_only_fail_with_a_message(project,
                                                                    read_only_folder):
    project.write("in.txt", "x")
    project.rules("""
        from pathlib import Path
        from makeflow import rule
        rule("sh", inputs="in.txt", outputs="ro/sh.txt", shell="cp {inputs} {outputs}")
        rule("deep", inputs="in.txt", outputs="ro/sub/deep.txt", shell="cp {inputs} {outputs}")

        @rule(inputs="in.txt", outputs="ro/py.txt")
        def py(step):
            Path(step.outputs[0]).write_text("x")

        rule("all", inputs=["ro/sh.txt", "ro/sub/deep.txt", "ro/py.txt"], default=True)
    """)
    for unstaged in (False, True):
        if unstaged:  # where the rule still offers the choice, writing in place too
            project.rules(project.read("Makeflow.py").replace(
                'outputs="ro/', 'stage=False, outputs="ro/'))
            if "stage=False" not in project.read("Makeflow.py") or \
                    project.run("list").code != 0:
                continue
        done = project.run("build", "-k")
        assert done.code == 1, done.text
        ours = [line for line in done.text.splitlines() if not line.startswith("  | ")]
        assert "Traceback" not in "\n".join(ours), done.text
        for name in ("sh", "deep", "py"):
            assert f"{name} FAILED" in done.out, done.out
        assert "Read-only file system" in done.out
