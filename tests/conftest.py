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
        """The library's build() with a plain reporter; returns the BuildResult.

        The run cache is off unless `cache=True` is given: these builds check what runs
        and when, and a restore would stand in for a run. The cache's own tests turn it on.
        """
        options.setdefault("cache", False)
        pipeline = load(self.root / "Makeflow.py", tuple(options.pop("overrides", ())))
        out = io.StringIO()
        result = build(pipeline, targets, BuildOptions(**options), PlainReporter(out))
        result.output = out.getvalue()
        return result


@pytest.fixture
def project(tmp_path: Path) -> Project:
    return Project(tmp_path)


RESTORABLE = """\
    from makeflow import config, rule

    rule("prepare", outputs="data.txt", shell="echo data > {outputs}")

    @rule(inputs="data.txt", outputs="model.txt", params={"alpha": config["alpha"]})
    def train(step):
        step.outputs[0].write_text(f"model {step.params.alpha}")

    rule("evaluate", inputs="model.txt", outputs="score.txt", shell="wc -c {inputs} > {outputs}")
    rule("all", inputs="score.txt", default=True)
"""


def restore_by_changing_back(project: Project) -> Project:
    """Build, change a param, build, change it back, build: the last build restores the
    steps from the run cache instead of running them."""
    project.rules(RESTORABLE)
    for alpha in ("0.1", "0.3", "0.1"):
        project.write("makeflow.toml", f"alpha = {alpha}\n")
        done = project.run("build")
        assert done.code == 0, done.text
    assert "restored" in done.text
    return project


@pytest.fixture(scope="session")
def moto_server():
    """An S3 endpoint served by moto on 127.0.0.1, started and stopped here.

    Skipped when moto is not installed, unless CI is set: there a missing server fails.
    """
    try:
        from moto.server import ThreadedMotoServer
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail("moto[server] is needed in CI: pip install -e '.[test]'")
        pytest.skip("moto[server] is not installed")
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3_url(moto_server, monkeypatch, request):
    """A fresh bucket on the moto server, as an s3:// URL; the AWS variables point every
    client, in this process and in subprocesses, at that server."""
    import boto3

    for name, value in {"AWS_ENDPOINT_URL": moto_server, "AWS_ACCESS_KEY_ID": "testing",
                        "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
                        "AWS_REGION": "us-east-1"}.items():
        monkeypatch.setenv(name, value)
    bucket = "mf-" + "".join(c for c in request.node.name.lower() if c.isalnum())[:40]
    boto3.client("s3").create_bucket(Bucket=bucket)
    return f"s3://{bucket}/cache"
