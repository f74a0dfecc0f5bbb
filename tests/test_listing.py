"""Existence answered from a folder's listing gives what `stat` gives, file by file."""

from __future__ import annotations

import os
import sys

import pytest

from makeflow.store import listing
from makeflow.store.fs import exists
from makeflow.store.listing import Existence

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="folders are listed on Linux only")


@pytest.fixture
def folder(tmp_path, monkeypatch):
    """Files, a folder, a link to a file, a broken link and a link to a folder."""
    monkeypatch.chdir(tmp_path)
    os.mkdir("d")
    for name in ("a.txt", "B.txt", "1"):
        with open(f"d/{name}", "w") as f:
            f.write(name)
    os.mkdir("d/sub")
    os.symlink("a.txt", "d/link")
    os.symlink("nowhere", "d/broken")
    os.symlink("sub", "d/dirlink")
    return tmp_path


QUESTIONS = ["d/a.txt", "d/B.txt", "d/1", "d/sub", "d/link", "d/broken", "d/dirlink",
             "d/A.txt", "d/b.txt", "d/missing", "d/sub/x", "gone/a.txt", "d/a.txt/x"]


@pytest.mark.parametrize("listed", [1, 3, 1000])
def test_answers_are_those_of_stat(folder, listed):
    ask = Existence(listed)
    assert [ask(q) for q in QUESTIONS] == [exists(q) for q in QUESTIONS]
    assert [ask(q) for q in reversed(QUESTIONS)] == [exists(q) for q in reversed(QUESTIONS)]


@pytest.mark.parametrize("listed", [1, 3, 1000])
def test_many_answers_at_once_are_those_of_stat(folder, listed):
    ask = Existence(listed)
    questions = [*QUESTIONS, "d/a.txt", "top.txt", "d/sub/x"]
    assert ask.many(questions) == [exists(q) for q in questions]
    assert ask.many(questions[::-1]) == [exists(q) for q in questions[::-1]]
    assert [ask(q) for q in questions] == [exists(q) for q in questions]


@linux_only
def test_many_questions_in_one_folder_list_it_before_any_stat(folder, monkeypatch):
    ask = Existence(5)
    calls = []
    monkeypatch.setattr(listing, "exists", lambda p: calls.append(p) or exists(p))
    answers = ask.many([f"d/n{i}" for i in range(4)] + ["d/a.txt", "d/link", "e/x"])
    assert answers == [False] * 4 + [True, True, False]
    assert calls == ["d/link", "e/x"]  # the link followed; "e" was asked about once


@linux_only
def test_an_often_asked_folder_is_read_once(folder, monkeypatch):
    ask = Existence(2)
    ask("d/a.txt")
    ask("d/missing")  # the second question lists the folder
    calls = []
    monkeypatch.setattr(listing, "exists", lambda p: calls.append(p) or exists(p))
    assert [ask(f"d/n{i}") for i in range(100)] == [False] * 100
    assert ask("d/B.txt") and ask("d/link") and not ask("d/broken")
    assert calls == ["d/link", "d/broken"]  # only links are still followed


@linux_only
def test_a_folder_whose_names_match_without_case_is_asked_file_by_file(folder, monkeypatch):
    """As on macOS or a casefolded folder: `d/A.TXT` would be found by `stat`."""
    monkeypatch.setattr(os.path, "lexists", lambda path: True)
    ask = Existence(1)
    calls = []
    monkeypatch.setattr(listing, "exists", lambda p: calls.append(p) or exists(p))
    ask("d/missing")
    ask("d/other")
    assert calls == ["d/missing", "d/other"]
