"""Shared fixtures: a project folder in tmp_path, and ways to run makeflow on it for real."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

from makeflow import BuildOptions, build, load
from makeflow.ui.plain import PlainReporter


@dataclass
class Done:
    """The outcome of one `makeflow` command run as a subprocess."""

    code: int
    out: str
    err: str

    @property
    def text(self) -> str:
        return self.out + self.err


class Project:
    """A pipeline folder: write files, run the real CLI, run the library's build()."""

    def __init__(self, root: Path):
        self.root = root

    def write(self, path: str, text: str) -> Path:
        full = self.root / path
        full.parent.mkdir(parents=True, exist_ok=True)
        full.write_text(textwrap.dedent(text) if "\n" in text else text, encoding="utf-8")
        return full

    def rules(self, text: str) -> Path:
        return self.write("Makeflow.py", textwrap.dedent(text))

    def read(self, path: str) -> str:
        return (self.root / path).read_text(encoding="utf-8")

    def exists(self, path: str) -> bool:
        return (self.root / path).exists()

    def run(self, *args: str, timeout: float = 120) -> Done:
        """`makeflow ARGS` in the project folder, as a user would type it."""
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "200"}
        proc = subprocess.run(
            [sys.executable, "-m", "makeflow", *args], cwd=self.root, env=env,
            capture_output=True, text=True, timeout=timeout,
        )
        return Done(proc.returncode, proc.stdout, proc.stderr)

    def build(self, *targets: str, **options: object):
        """The library's build() with a plain reporter; returns the BuildResult."""
        pipeline = load(self.root / "Makeflow.py", tuple(options.pop("overrides", ())))
        out = io.StringIO()
        result = build(pipeline, targets, BuildOptions(**options), PlainReporter(out))
        result.output = out.getvalue()
        return result


@pytest.fixture
def project(tmp_path: Path) -> Project:
    return Project(tmp_path)
