"""What a command imports: a no-op build loads only the modules it uses, so every build
does not pay for the history views, `clean`, the run cache, the digest of Python code or
a TOML parser it does not need. Checked by the modules a real process ends up holding."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time

import pytest

SHELL_ONLY = """\
    from makeflow import rule

    rule("a", inputs="in.txt", outputs="a.txt", shell="cp {inputs} {outputs}")
    rule("b", inputs="a.txt", outputs="b.txt", shell="cp {inputs[0]} {outputs[0]}",
         default=True)
"""

# Modules a no-op build of shell steps without a config file never uses.
NOT_FOR_A_NOOP = [
    "makeflow.define.digest", "makeflow.run.clean", "makeflow.run.cached",
    "makeflow.run.scheduler", "makeflow.run.temp", "makeflow.plan.temp",
    "makeflow.plan.made", "makeflow.store.metrics", "makeflow.store.runcache",
    "makeflow.store.cas", "makeflow.store.remote", "makeflow.ui.cli_history",
    "makeflow.ui.cli_sharing", "makeflow.ui.tracking", "makeflow.ui.graphs",
    "makeflow.ui.history_view", "makeflow.ui.metrics_view", "tomllib", "traceback", "rich",
    "fsspec", "watchdog", "shutil",
]

PROBE = """\
import json, sys
from makeflow.ui.cli import cli
try:
    cli(prog_name="makeflow", args=sys.argv[1:])
except SystemExit as exc:
    code = exc.code
print(json.dumps({"code": code, "modules": sorted(sys.modules)}), file=sys.stderr)
"""


def modules_after(cwd, *args: str) -> tuple[int, set[str]]:
    """The exit status of `makeflow ARGS` run in a fresh process, and its modules then."""
    proc = subprocess.run([sys.executable, "-c", PROBE, *args], cwd=cwd, capture_output=True,
                          text=True, timeout=120)
    last = json.loads(proc.stderr.strip().splitlines()[-1])
    return last["code"], set(last["modules"])


@pytest.fixture
def shell_project(tmp_path):
    (tmp_path / "Makeflow.py").write_text(textwrap.dedent(SHELL_ONLY), encoding="utf-8")
    (tmp_path / "in.txt").write_text("x\n", encoding="utf-8")
    return tmp_path


def age_all(root) -> None:
    """Move the project's files an hour into the past, so their records are trusted and
    the next no-op build is settled by their stats alone (plan/uptodate.py)."""
    old = time.time() - 3600
    for path in root.glob("*.txt"):
        os.utime(path, (old, old))


def test_a_noop_build_imports_only_what_it_uses(shell_project):
    code, _ = modules_after(shell_project, "build")
    assert code in (0, None)
    age_all(shell_project)
    assert modules_after(shell_project, "build")[0] in (0, None)  # saves the stat snapshot
    code, modules = modules_after(shell_project, "build")  # settled by the snapshot

    assert code in (0, None)
    assert (shell_project / "b.txt").read_text() == "x\n"
    assert sorted(set(NOT_FOR_A_NOOP) & modules) == []


def test_commands_still_load_what_they_need(shell_project):
    modules_after(shell_project, "build")
    (shell_project / "makeflow.toml").write_text("[x]\ny = 1\n", encoding="utf-8")

    code, modules = modules_after(shell_project, "runs")
    assert code in (0, None)
    assert {"makeflow.ui.cli_history", "makeflow.ui.history_view"} <= modules
    code, modules = modules_after(shell_project, "status")
    assert code in (0, None)
    assert "tomllib" in modules  # for the config file
    code, modules = modules_after(shell_project, "clean", "-n")
    assert code in (0, None)
    assert "makeflow.run.clean" in modules


def test_the_public_api_loads_the_runner_on_first_use():
    probe = ("import sys, makeflow; before = 'makeflow.run.build' in sys.modules; "
             "from makeflow import BuildOptions, build, load, status; "
             "print(before, build.__module__, status.__module__, load.__module__, "
             "BuildOptions.__module__, 'load' in dir(makeflow))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         timeout=60, check=True).stdout.split()

    assert out == ["False", "makeflow.run.build", "makeflow.run.build",
                   "makeflow.define.loader", "makeflow.run.outcome", "True"]
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        import makeflow

        makeflow.nothing  # noqa: B018
