"""download: a real HTTP server on 127.0.0.1, pins checked, flaky servers retried."""

from __future__ import annotations

import hashlib
import http.server
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from makeflow import StepError
from makeflow_rules.downloads import fetch_with_retries, main

from conftest import Project

BODY = b"day,temperature\n1,4.5\n2,5.1\n"
PIN = hashlib.sha256(BODY).hexdigest()


@dataclass
class Server:
    """A file server whose first `failures` answers are errors of the chosen `fault`."""

    port: int = 0
    files: dict[str, bytes] = field(default_factory=lambda: {"/data.csv": BODY})
    failures: int = 0
    fault: str = "503"  # or "short": a Content-Length the body never reaches
    requests: int = 0

    def url(self, path: str = "/data.csv") -> str:
        return f"http://127.0.0.1:{self.port}{path}"


def handler_for(server: Server) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            server.requests += 1
            body = server.files.get(self.path)
            if body is None:
                self.send_error(404, "Not Found")
            elif server.failures > 0:
                server.failures -= 1
                self._fail(body)
            else:
                self._send(body, len(body))

        def _fail(self, body: bytes) -> None:
            if server.fault == "503":
                self.send_error(503, "Service Unavailable")
            else:
                self._send(body[: len(body) // 2], len(body))
                self.close_connection = True

        def _send(self, body: bytes, length: int) -> None:
            self.send_response(200)
            self.send_header("Content-Length", str(length))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    return Handler


@pytest.fixture
def server() -> Iterator[Server]:
    state = Server()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler_for(state))
    state.port = httpd.server_address[1]
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=10)


def test_a_download_writes_the_file_and_returns_its_sha256(server, tmp_path):
    target = tmp_path / "data.csv"
    assert fetch_with_retries(server.url(), target, 0, 0.0, 10) == PIN
    assert target.read_bytes() == BODY


@pytest.mark.parametrize("fault", ["503", "short"])
def test_a_flaky_server_succeeds_on_retry(server, tmp_path, fault, capsys):
    server.failures, server.fault = 2, fault
    target = tmp_path / "data.csv"
    assert fetch_with_retries(server.url(), target, 3, 0.01, 10) == PIN
    assert target.read_bytes() == BODY
    assert server.requests == 3
    assert capsys.readouterr().out.count("trying again") == 2


def test_retries_run_out_with_the_last_reason(server, tmp_path):
    server.failures = 10
    with pytest.raises(StepError, match=r"HTTP 503 Service Unavailable \(after 3 attempts\)"):
        fetch_with_retries(server.url(), tmp_path / "x", 2, 0.01, 10)
    assert server.requests == 3


def test_a_missing_file_is_not_retried(server, tmp_path):
    with pytest.raises(StepError, match="HTTP 404"):
        fetch_with_retries(server.url("/nope.csv"), tmp_path / "x", 5, 0.01, 10)
    assert server.requests == 1


def test_a_refused_connection_is_retried_then_reported(tmp_path):
    with pytest.raises(StepError, match=r"cannot download .*refused.*after 2 attempts"):
        fetch_with_retries("http://127.0.0.1:9/x", tmp_path / "x", 1, 0.01, 5)


def test_file_urls_need_no_extra(tmp_path):
    source = tmp_path / "source.csv"
    source.write_bytes(BODY)
    assert fetch_with_retries(source.as_uri(), tmp_path / "copy.csv", 0, 0, 5) == PIN
    with pytest.raises(StepError, match="No such file"):
        fetch_with_retries((tmp_path / "absent.csv").as_uri(), tmp_path / "x", 3, 5, 5)


def test_a_project_relative_file_url_works_wherever_the_project_is(project, tmp_path_factory):
    """`file:upstream/raw.csv` names a file in the project: the same URL, and the same
    makeflow.lock, in any clone; a moved project runs nothing again."""
    import shutil

    project.write("upstream/raw.csv", BODY.decode())
    rules(project, "file:upstream/raw.csv", PIN)
    done = project.run("build")
    assert done.code == 0, done.text
    assert project.read("data/raw.csv") == BODY.decode()
    lock = project.read("makeflow.lock")
    assert '"url": "file:upstream/raw.csv"' in lock and str(project.root) not in lock
    elsewhere = tmp_path_factory.mktemp("elsewhere") / "project"
    moved = Project(Path(shutil.move(str(project.root), str(elsewhere))))
    again = moved.run("build")
    assert again.code == 0 and "nothing to do" in again.out, again.text
    assert moved.read("makeflow.lock") == lock


def test_other_schemes_go_through_fsspec(tmp_path):
    import fsspec

    with fsspec.open("memory://rules-test/data.csv", "wb") as f:
        f.write(BODY)
    assert fetch_with_retries("memory://rules-test/data.csv", tmp_path / "m.csv", 0, 0, 5) == PIN
    assert (tmp_path / "m.csv").read_bytes() == BODY


def test_the_helper_prints_a_pin(server, capsys):
    assert main([server.url()]) == 0
    assert capsys.readouterr().out == f"{PIN}  {server.url()}\n"


def rules(project: Project, url: str, pin: str, extra: str = "") -> None:
    project.rules(f"""
        from makeflow_rules import download
        download("fetch", url={url!r}, output="data/raw.csv", sha256={pin!r},
                 backoff=0.01{extra})
    """)


def test_a_build_downloads_once_and_then_does_nothing(server, project):
    rules(project, server.url(), PIN)
    done = project.run("build")
    assert done.code == 0, done.text
    assert project.read("data/raw.csv") == BODY.decode()
    assert project.run("status", "--check").code == 0
    assert server.requests == 1


def test_a_wrong_pin_fails_the_step_clearly_and_writes_nothing(server, project):
    rules(project, server.url(), "0" * 64)
    done = project.run("build")
    assert done.code == 1
    assert f"has sha256 {PIN}, but the rule pins {'0' * 64}" in done.out
    assert f'sha256="{PIN}"' in done.out
    assert "Traceback" not in done.text
    assert not project.exists("data/raw.csv")


def test_a_flaky_server_succeeds_on_retry_in_a_build(server, project):
    server.failures = 2
    rules(project, server.url(), PIN)
    done = project.run("build")
    assert done.code == 0, done.text
    assert server.requests == 3
    assert project.read("data/raw.csv") == BODY.decode()


def test_changing_the_url_reruns_the_download(server, project):
    server.files["/copy.csv"] = BODY
    rules(project, server.url(), PIN)
    assert project.run("build").code == 0
    rules(project, server.url("/copy.csv"), PIN)
    status = project.run("status")
    assert re.search(r"parameter url: \S+/data.csv → \S+/copy.csv", status.out), status.out
    assert project.run("build").code == 0
    assert server.requests == 2


def test_max_age_downloads_again_and_checks_the_pin_again(server, project):
    rules(project, server.url(), PIN, extra=', max_age="1s"')
    assert project.run("build").code == 0
    time.sleep(1.2)
    status = project.run("status", "--check")
    assert status.code == 1 and "older than" in status.out
    server.files["/data.csv"] = BODY + b"3,6.0\n"
    done = project.run("build")
    assert done.code == 1 and "but the rule pins" in done.out
    assert project.read("data/raw.csv") == BODY.decode()  # the last good file stays


def test_unpinned_data_is_refreshed_when_allowed(server, project):
    rules(project, server.url(), "UNPINNED", extra=', max_age="1s"')
    assert project.run("build").code == 0
    server.files["/data.csv"] = b"new\n"
    time.sleep(1.2)
    assert project.run("build").code == 0
    assert project.read("data/raw.csv") == "new\n"


@pytest.mark.parametrize(("args", "message"), [
    ('url="http://x/a", output="a.csv"', "missing 1 required keyword-only argument: 'sha256'"),
    ('url="http://x/a", output="a.csv", sha256="abc"', "must be the file's 64-digit hex sha256"),
    ('url="http://x/a", output="a.csv", sha256="UNPINNED"', "would download once and never"),
    ('url="data/a.csv", output="a.csv", sha256="0" * 64', "is not a URL"),
    ('url="http://x/{n}", output="{n}.csv", sha256="0" * 64', "one pinned file"),
    ('url="http://x/a", output="a.csv", sha256="0" * 64, retries=-1', "retries= must be"),
    ('url="http://x/a", output="a.csv", sha256="0" * 64, colour=True', "unknown option colour="),
])
def test_mistakes_in_a_download_rule_name_the_line(project, args, message):
    project.rules(f"""
        from makeflow_rules import download

        download("fetch", {args})
    """)
    done = project.run("build")
    assert done.code == 2, done.text
    assert "Makeflow.py:4" in done.err and message in done.err, done.err
    assert "Traceback" not in done.text


def test_a_rule_error_from_a_factory_points_at_the_users_line(project):
    project.rules("""
        from makeflow import rule
        from makeflow_rules import download

        rule("fetch", outputs="x", shell="true")
        download("fetch", url="http://x/a", output="a.csv", sha256="0" * 64)
    """)
    done = project.run("list")
    assert done.code == 2
    assert re.search(r"Makeflow.py:6: two rules are named fetch \(the other is at "
                     r"Makeflow.py:5\)", done.err), done.err

