"""Patterns, quoting and digests: rules that must hold for every input, checked by hypothesis."""

from __future__ import annotations

import subprocess

from hypothesis import given, settings
from hypothesis import strategies as st

from makeflow import expand, glob_wildcards
from makeflow.define.patterns import compile_pattern
from makeflow.define.placeholders import shell_command
from makeflow.define.rules import Files
from makeflow.run.executors.jobs import argv_for
from makeflow.store.hashing import hash_file, hash_text, hash_tree

segment = st.text(
    st.characters(blacklist_characters="/\0", blacklist_categories=("Cs",)), min_size=1,
    max_size=20,
).filter(lambda s: s not in (".", ".."))


@given(segment, segment)
def test_a_filled_pattern_matches_back_to_its_values(a, b):
    pattern = compile_pattern("data/{sample}/{part}.csv")
    path = pattern.fill({"sample": a, "part": b})
    assert pattern.match(path) == {"sample": a, "part": b}


def test_a_plain_wildcard_stays_within_one_folder():
    assert compile_pattern("out/{x}.txt").match("out/a/b.txt") is None
    assert compile_pattern("out/{x,.+}.txt").match("out/a/b.txt") == {"x": "a/b"}


def test_a_repeated_wildcard_must_repeat_its_value():
    pattern = compile_pattern("{s}/{s}.txt")
    assert pattern.match("a/a.txt") == {"s": "a"}
    assert pattern.match("a/b.txt") is None


def test_expand_is_the_product_in_order():
    assert expand("{a}-{b}.txt", a=[1, 2], b="x") == ["1-x.txt", "2-x.txt"]


def test_glob_wildcards_lists_existing_matches(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name in ("data/b.csv", "data/a.csv", "data/sub/c.csv", "data/a.txt"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x")
    assert glob_wildcards("data/{s}.csv").s == ["a", "b"]
    assert glob_wildcards("data/{s,.+}.csv").s == ["a", "b", "sub/c"]


@settings(max_examples=60, deadline=None)
@given(st.text(st.characters(blacklist_characters="\0", blacklist_categories=("Cs",)),
               min_size=1, max_size=30))
def test_any_file_name_reaches_the_command_unchanged(name):
    command = shell_command("printf '%s' {inputs[0]}", Files((name,)), Files(), {}, {})
    out = subprocess.run(argv_for(command), capture_output=True)
    assert out.stdout == name.encode("utf-8", "surrogateescape")


@given(st.lists(st.text(max_size=5), max_size=4), st.lists(st.text(max_size=5), max_size=4))
def test_text_digests_keep_parts_apart(a, b):
    assert (hash_text(*a) == hash_text(*b)) == (a == b)


def test_file_and_tree_digests_follow_content(tmp_path):
    (tmp_path / "t/sub").mkdir(parents=True)
    (tmp_path / "t/sub/x").write_bytes(b"1")
    (tmp_path / "f").write_bytes(b"1")
    tree = hash_tree(str(tmp_path / "t"))
    assert hash_file(str(tmp_path / "f")) == hash_file(str(tmp_path / "t/sub/x"))
    (tmp_path / "t/sub/x").write_bytes(b"2")
    assert hash_tree(str(tmp_path / "t")) != tree
    (tmp_path / "t/sub/x").write_bytes(b"1")
    assert hash_tree(str(tmp_path / "t")) == tree
    (tmp_path / "t/sub/x").rename(tmp_path / "t/sub/y")
    assert hash_tree(str(tmp_path / "t")) != tree


@given(st.text(st.sampled_from("ab./"), max_size=12))
def test_a_filled_path_is_normalised_as_normpath_would(path):
    """The resolver skips `normpath` for paths it would not change; the skip must never
    change an answer."""
    import posixpath

    from makeflow.plan.steps import normal

    assert normal(path) == posixpath.normpath(path)
