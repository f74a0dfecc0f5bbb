"""Outputs are written where the rules say, and a failed or killed step never replaces a
good one: the previous output is set aside in `.makeflow/` and put back."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from waiting import wait_for

from makeflow.run.outcome import log_path


def aside_entries(project) -> list[str]:
    folder = project.root / ".makeflow" / "aside"
    return sorted(os.listdir(folder)) if folder.exists() else []


def test_shell_and_python_steps_write_at_the_declared_paths(project):
    project.write("in.txt", "x")
    project.rules("""
        from makeflow import rule
        rule("sh", inputs="in.txt", outputs="out/sh.txt", shell="echo {outputs} > {outputs}")

        @rule(inputs="in.txt", outputs="out/py.txt")
        def py(step):
            step.outputs[0].write_text(str(step.outputs[0]))
    """)
    assert project.run("build", "out/sh.txt", "out/py.txt").code == 0
    assert project.read("out/sh.txt") == "out/sh.txt\n"
    assert project.read("out/py.txt") == "out/py.txt"


def test_one_step_alone_or_in_the_whole_pipeline_writes_the_same_bytes(project):
    project.write("in.txt", "x")
    project.rules("""
        from makeflow import rule
        for name in "abcd":
            rule(name, inputs="in.txt", outputs=f"out/{name}.txt",
                 shell="sleep 0.2; echo {outputs} $(pwd) > {outputs}")
        rule("all", inputs=[f"out/{n}.txt" for n in "abcd"], default=True)
    """)
    assert project.run("build", "-j", "4").code == 0
    together = {n: project.read(f"out/{n}.txt") for n in "abcd"}
    for name in "abcd":
        assert project.run("build", "-B", f"out/{name}.txt").code == 0
        assert project.read(f"out/{name}.txt") == together[name]


def test_a_failed_step_puts_the_previous_output_back(project):
    project.write("in.txt", "v1")
    project.rules("""
        from makeflow import rule
        rule("s", inputs="in.txt", outputs="out.txt", shell="cat {inputs} > {outputs}")
        rule("d", inputs="in.txt", outputs="tree",
             shell="mkdir -p tree/sub && cat {inputs} > tree/sub/f")
    """)
    assert project.run("build", "out.txt", "tree").code == 0
    project.write("in.txt", "v2")
    text = project.read("Makeflow.py")
    project.rules(text.replace("> {outputs}\"", "> {outputs}; exit 3\"")
                  .replace("> tree/sub/f\"", "> tree/sub/f; touch tree/extra; exit 3\""))
    done = project.run("build", "-k", "out.txt", "tree")
    assert done.code == 1, done.text
    assert project.read("out.txt") == "v1"
    assert project.read("tree/sub/f") == "v1"
    assert not project.exists("tree/extra")
    assert aside_entries(project) == []


def test_a_new_output_of_a_failed_step_is_removed(project):
    project.write("in.txt", "v1")
    project.rules('from makeflow import rule\n'
                  'rule("s", inputs="in.txt", outputs="out.txt", '
                  'shell="cp {inputs} {outputs}; exit 1")\n')
    assert project.run("build").code == 1
    assert not project.exists("out.txt")


def test_a_folder_output_starts_empty_on_every_run(project):
    project.write("in.txt", "a")
    project.rules("""
        from makeflow import rule
        rule("sh", inputs="in.txt", outputs="shout", stage=False,
             shell="mkdir -p shout && cp {inputs} shout/$(cat {inputs}).txt")

        @rule(inputs="in.txt", outputs="pyout")
        def py(step):
            step.outputs[0].mkdir(exist_ok=True)
            name = step.inputs[0].read_text()
            (step.outputs[0] / f"{name}.txt").write_text(name)
    """)
    assert project.run("build", "shout", "pyout").code == 0
    project.write("in.txt", "b")
    assert project.run("build", "shout", "pyout").code == 0
    assert sorted(os.listdir(project.root / "shout")) == ["b.txt"]
    assert sorted(os.listdir(project.root / "pyout")) == ["b.txt"]


KILLABLE = """
from makeflow import rule
rule("slow", inputs="in.txt", outputs="out.txt",
     shell="printf partial > {outputs}; echo $$ > pid; sleep 60; cat {inputs} > {outputs}")
"""


def test_kill_9_of_makeflow_mid_step_puts_the_good_output_back_on_the_next_build(project):
    project.write("in.txt", "v1")
    project.rules(KILLABLE.replace("sleep 60; ", ""))
    assert project.run("build").code == 0
    project.write("in.txt", "v2")
    project.rules(KILLABLE)
    (project.root / "pid").unlink()
    proc = subprocess.Popen([sys.executable, "-m", "makeflow", "build"], cwd=project.root,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for(lambda: project.exists("pid") and project.read("pid").strip())
    proc.kill()
    proc.wait(timeout=20)
    os.killpg(int(project.read("pid")), signal.SIGKILL)  # the step's group outlives makeflow
    assert project.read("out.txt") == "partial"  # the step wrote in place
    status = project.run("status")  # reads only: the next build recovers
    assert status.code == 0 and "Traceback" not in status.text

    project.rules(KILLABLE.replace("sleep 60; ", "exit 3; "))
    done = project.run("build")
    assert done.code == 1, done.text
    assert project.read("out.txt") == "v1"
    assert aside_entries(project) == []

    project.rules(KILLABLE.replace("sleep 60; ", ""))
    assert project.run("build").code == 0
    assert project.read("out.txt") == "v2"


def test_ctrl_c_mid_step_puts_the_good_output_back(project):
    project.write("in.txt", "v1")
    project.rules(KILLABLE.replace("sleep 60; ", ""))
    assert project.run("build").code == 0
    project.write("in.txt", "v2")
    project.rules(KILLABLE)
    (project.root / "pid").unlink()
    proc = subprocess.Popen([sys.executable, "-m", "makeflow", "build"], cwd=project.root,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    wait_for(lambda: project.exists("pid") and project.read("pid").strip())
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 130, out
    assert project.read("out.txt") == "v1"
    assert aside_entries(project) == []


def test_steps_whose_names_differ_only_in_odd_characters_have_their_own_logs(project):
    ids = ["up[n=a b]", "up[n=a_b]", "up[n=a/b]", "up[n=a:b]", "up[n=a_b]x"]
    paths = {log_path(i) for i in ids}
    assert len(paths) == len(ids)
    assert all(len(os.path.basename(p).encode()) <= 255 for p in paths)
    assert log_path("up[n=x" + "y" * 400 + "]") != log_path("up[n=x" + "y" * 399 + "]")
    project.rules("""
        from makeflow import rule
        rule("up", outputs="out/{n}.txt", shell="echo {wildcards.n} > {outputs}")
        rule("all", inputs=["out/a b.txt", "out/a_b.txt"], default=True)
    """)
    assert project.run("build").code == 0
    assert "a b" in project.run("logs", "up[n=a b]").out
    assert "a_b" in project.run("logs", "up[n=a_b]").out
    assert "a b" not in project.run("logs", "up[n=a_b]").out


def test_a_failed_copy_across_file_systems_leaves_no_partial_file(tmp_path):
    """A file-size limit makes the copy from /dev/shm (tmpfs) to tmp_path fail midway."""
    shm = Path("/dev/shm")
    if not shm.is_dir() or os.stat(shm).st_dev == os.stat(tmp_path).st_dev:
        import pytest

        pytest.skip("needs /dev/shm on another file system than tmp_path")
    script = (
        "import os, resource, signal, sys\n"
        "from makeflow.store import fs\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000))\n"
        "try:\n"
        "    fs.replace(sys.argv[1], sys.argv[2])\n"
        "except OSError as exc:\n"
        "    print('failed', exc.errno)\n"
    )
    src_dir = Path(f"/dev/shm/makeflow-test-{os.getpid()}")
    src_dir.mkdir()
    try:
        for kind in ("file", "tree"):
            src = src_dir / kind
            if kind == "file":
                src.write_bytes(b"x" * 1_000_000)
            else:
                (src / "sub").mkdir(parents=True)
                (src / "sub" / "a").write_bytes(b"x" * 10)
                (src / "sub" / "b").write_bytes(b"x" * 1_000_000)
            dst = tmp_path / f"{kind}.out"
            done = subprocess.run([sys.executable, "-c", script, str(src), str(dst)],
                                  capture_output=True, text=True, timeout=60)
            assert done.stdout.startswith("failed"), done.stdout + done.stderr
            assert os.listdir(tmp_path) == [], os.listdir(tmp_path)
            assert src.exists()
    finally:
        import shutil

        shutil.rmtree(src_dir, ignore_errors=True)


def test_a_step_that_cannot_start_leaves_its_previous_output_alone(project):
    project.write("in.txt", "v1")
    project.rules('from makeflow import rule\n'
                  'rule("s", inputs="in.txt", outputs="out.txt",\n'
                  '     shell="cat {inputs} > {outputs}")\n')
    assert project.run("build").code == 0
    project.write("in.txt", "v2")
    logs = project.root / ".makeflow" / "logs"
    for log in logs.iterdir():
        log.unlink()
    logs.rmdir()
    logs.write_text("a file where the logs folder should be")
    done = project.run("build")
    assert done.code == 1, done.text
    assert "Traceback" not in done.text
    assert project.read("out.txt") == "v1"


def test_what_a_killed_build_set_aside_goes_back_to_its_own_path(tmp_path, monkeypatch):
    """Entry names are the paths, escaped, or a digest with the path beside it."""
    from makeflow.store import aside

    monkeypatch.chdir(tmp_path)
    paths = ["out/a.txt", "out/100%/#1.txt", "out%2Fa.txt", "d/" + "x" * 250 + ".txt", "tree"]
    for path in paths[:-1]:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(f"good {path}")
    Path("tree/sub").mkdir(parents=True)
    Path("tree/sub/f").write_text("good tree")
    assert len({aside.entry_name(p) for p in paths}) == len(paths)
    aside.Aside().set_aside(paths)  # then the build is killed mid-step:
    for path in paths[:-1]:
        Path(path).write_text("partial")
    Path("tree").mkdir()
    Path("tree/stray").write_text("partial")
    assert sorted(aside.recover()) == sorted(paths)
    for path in paths[:-1]:
        assert Path(path).read_text() == f"good {path}"
    assert sorted(os.listdir("tree")) == ["sub"]
    assert os.listdir(aside.ASIDE) == []
