"""A folder input counts by what a reader of it sees: symlinked files by their content,
symlinked subfolders by their tree. A change behind a link reruns the step."""

from __future__ import annotations

import os
import shutil
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from makeflow.store.hashing import hash_tree

RULES = """\
    from makeflow import rule

    rule("bundle", inputs="data", outputs="bundle.txt",
         shell="find -L {inputs} -type f | sort | xargs cat > {outputs}")
"""


def bump(path) -> None:
    """Rewrite with an mtime a second later, as an edit made a moment later would have."""
    st = os.stat(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))


@pytest.fixture
def linked(project):
    project.rules(RULES)
    project.write("shared/real.csv", "1\n")
    project.write("other/deep/x.txt", "x\n")
    project.write("data/own.txt", "own\n")
    os.symlink("../shared/real.csv", project.root / "data" / "link.csv")
    os.symlink("../other", project.root / "data" / "sub")
    result = project.build()
    assert result.ran == ["bundle"], result.output
    return project


@pytest.mark.parametrize("behind", ["shared/real.csv", "other/deep/x.txt"])
def test_a_change_behind_a_link_in_a_folder_input_reruns_the_step(linked, behind):
    time.sleep(0.01)
    linked.write(behind, "changed\n")
    bump(linked.root / behind)

    result = linked.build()

    assert result.ran == ["bundle"], result.output
    assert "changed" in linked.read("bundle.txt")
    assert linked.build().ran == []


def test_a_file_added_inside_a_linked_subfolder_reruns_the_step(linked):
    linked.write("other/deep/new.txt", "new\n")

    assert linked.build().ran == ["bundle"]


def test_a_linked_file_counts_by_content_and_a_linked_folder_by_its_tree(tmp_path):
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
    (tmp_path / "real.txt").write_text("same")
    (tmp_path / "a" / "f.txt").write_text("same")
    os.symlink("../real.txt", tmp_path / "b" / "f.txt")
    assert hash_tree(str(tmp_path / "a")) == hash_tree(str(tmp_path / "b"))

    (tmp_path / "tree").mkdir()
    (tmp_path / "tree" / "x").write_text("x")
    (tmp_path / "c").mkdir()
    (tmp_path / "d").mkdir()
    (tmp_path / "c" / "sub").mkdir()
    (tmp_path / "c" / "sub" / "x").write_text("x")
    os.symlink("../tree", tmp_path / "d" / "sub")
    assert hash_tree(str(tmp_path / "c")) == hash_tree(str(tmp_path / "d"))


def test_a_link_loop_and_a_broken_link_are_counted_without_hanging(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "f").write_text("f")
    os.symlink(".", tmp_path / "d" / "self")
    os.symlink("missing", tmp_path / "d" / "broken")

    first = hash_tree(str(tmp_path / "d"))
    os.remove(tmp_path / "d" / "broken")
    os.symlink("other-missing", tmp_path / "d" / "broken")

    assert hash_tree(str(tmp_path / "d")) != first


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.lists(st.sampled_from("abc"), min_size=1, max_size=3),
                          st.binary(max_size=8), st.booleans()), max_size=6))
def test_a_tree_with_links_hashes_as_its_copy_with_the_links_followed(tmp_path_factory, files):
    """Property: what counts is what a reader sees, so a tree equals its dereferenced copy."""
    base = tmp_path_factory.mktemp("t")
    tree, store = base / "tree", base / "store"
    tree.mkdir()
    store.mkdir()
    for i, (parts, content, linked) in enumerate(files):
        path = tree.joinpath(*parts[:-1], parts[-1] + ".f")
        path.parent.mkdir(parents=True, exist_ok=True)
        if linked:
            (store / str(i)).write_bytes(content)
            path.unlink(missing_ok=True)
            os.symlink(store / str(i), path)
        else:
            path.unlink(missing_ok=True)
            path.write_bytes(content)
    shutil.copytree(tree, base / "copy", symlinks=False)

    assert hash_tree(str(tree)) == hash_tree(str(base / "copy"))
