"""Big files moving to and from the remote cache show their progress: lines on stderr
without a terminal, the live view on one; small files show none."""

from __future__ import annotations

import io
import re
import shutil
from pathlib import Path

import pytest
from terminal import Terminal

from makeflow.run.transfers import BIG, Transfers
from makeflow.store.cas import Cas
from makeflow.ui.plain import TransferLines

from conftest import Project

MIB = 1 << 20
RULES = f"""
    from makeflow import rule

    rule("all", inputs=["big.bin", "small.txt", "folder"], default=True)
    rule("big", inputs="data.txt", outputs="big.bin",
         shell="head -c {9 * MIB} /dev/urandom > {{outputs[0]}}")
    rule("small", inputs="data.txt", outputs="small.txt",
         shell="head -c {MIB} /dev/urandom > {{outputs[0]}}")
    rule("folder", inputs="data.txt", outputs="folder",
         shell="mkdir -p {{outputs[0]}}/sub && head -c {10 * MIB} /dev/urandom "
               "> {{outputs[0]}}/sub/part.bin && echo x > {{outputs[0]}}/note.txt")
"""


def make(root: Path) -> Project:
    root.mkdir(parents=True, exist_ok=True)
    project = Project(root)
    project.rules(RULES)
    project.write("data.txt", "data\n")
    return project


def plain(screen: str) -> str:
    """A terminal's text without its colours and cursor moves."""
    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", screen)


def lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if "load" in line]


@pytest.fixture
def remote(tmp_path) -> str:
    (tmp_path / "shared").mkdir()
    return (tmp_path / "shared").as_uri()


def test_build_push_pull_and_restores_show_big_files_only(tmp_path, remote):
    first = make(tmp_path / "first")
    done = first.run("build", "--push", "--remote", remote)
    assert done.code == 0, done.text
    shown = lines(done.err)
    assert "uploaded big.bin (9.4 MB)" in shown
    assert "uploaded folder/sub/part.bin (10.5 MB)" in shown
    assert any(re.fullmatch(r"uploading big\.bin: [\d.]+ of 9\.4 MB \(\d+%\)", s)
               for s in shown), done.err
    assert not any("small" in s or "note" in s for s in shown), done.err
    assert "uploaded" not in done.out  # stdout keeps the steps

    second = make(tmp_path / "second")  # sources only: every output comes from the remote
    done = second.run("build", "--remote", remote)
    assert done.code == 0 and "restored 3" in done.out, done.text
    assert "downloaded big.bin (9.4 MB)" in lines(done.err)
    assert "downloaded folder/sub/part.bin (10.5 MB)" in lines(done.err)
    assert not any("small" in s for s in lines(done.err))

    third = make(tmp_path / "third")  # with the lock: pull fetches what it names
    shutil.copy(first.root / "makeflow.lock", third.root / "makeflow.lock")
    done = third.run("pull", "--remote", remote)
    assert done.code == 0, done.text
    assert "downloaded big.bin (9.4 MB)" in lines(done.err)
    assert (third.root / "big.bin").read_bytes() == (first.root / "big.bin").read_bytes()

    other = tmp_path / "other"
    other.mkdir()
    done = first.run("push", "--remote", other.as_uri())
    assert done.code == 0, done.text
    assert "uploaded big.bin (9.4 MB)" in lines(done.err)
    assert not any("small" in s for s in lines(done.err))


def test_quiet_builds_show_no_transfers(tmp_path, remote):
    done = make(tmp_path / "p").run("build", "-q", "--push", "--remote", remote)
    assert done.code == 0 and lines(done.err) == [], done.text


def test_on_a_terminal_the_live_view_shows_big_transfers(tmp_path, remote):
    first = make(tmp_path / "first")
    term = Terminal(first.root, "build", "--push", "--remote", remote)
    assert term.wait(120) == 0, term.text
    screen = plain(term.text)
    assert "↑ uploaded big.bin (9.4 MB)" in screen, screen
    assert "small.txt (" not in screen
    second = make(tmp_path / "second")
    term = Terminal(second.root, "build", "--remote", remote)
    assert term.wait(120) == 0, term.text
    screen = plain(term.text)
    assert "↓ downloaded big.bin (9.4 MB)" in screen, screen
    assert "restored 3" in screen


def test_transfers_are_named_throttled_and_finished():
    shown: list[tuple] = []
    transfers = Transfers(lambda *event: shown.append(event), every=3600)
    transfers.name({"out/model.bin": "d" * 32}, Cas("/nonexistent"))
    transfers("e" * 32, True, MIB, 2 * MIB)  # a small file: nothing
    transfers("d" * 32, True, 4 * MIB, BIG + 1)
    transfers("d" * 32, True, 8 * MIB, BIG + 1)  # within `every`: not shown
    transfers("d" * 32, True, BIG + 1, BIG + 1)  # done: always shown
    transfers("f" * 32, False, BIG, BIG)  # a blob no output names
    assert shown == [("out/model.bin", True, 4 * MIB, BIG + 1),
                     ("out/model.bin", True, BIG + 1, BIG + 1),
                     ("blob " + "f" * 16, False, BIG, BIG)]


def test_plain_lines_are_throttled_without_a_terminal():
    out = io.StringIO()
    show = TransferLines(out)
    for done in (MIB, 2 * MIB, 3 * MIB):
        show("x.bin", False, done, 9 * MIB)
    show("x.bin", False, 9 * MIB, 9 * MIB)
    assert out.getvalue().splitlines() == ["  downloading x.bin: 1.0 of 9.4 MB (11%)",
                                           "  downloaded x.bin (9.4 MB)"]


def test_the_live_view_has_a_row_per_big_transfer_while_it_moves():
    from rich.console import Console

    from makeflow.ui.live import RichReporter

    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=120, color_system=None)
    view = RichReporter(console)
    view.transfer("big.bin", True, 4 * MIB, 9 * MIB)
    console.print(view)
    assert re.search(r"↑ sending\s+big\.bin\s+4\.2/9\.4 MB", out.getvalue()), out.getvalue()
    out.seek(0)
    out.truncate()
    view.transfer("big.bin", True, 9 * MIB, 9 * MIB)  # done: a line, and the row goes
    assert "↑ uploaded big.bin (9.4 MB)" in out.getvalue()
    console.print(view)
    assert "sending" not in out.getvalue()
