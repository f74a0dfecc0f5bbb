"""makeflow.lock's text: one rendering, and an update that replaces a few entries without
parsing the file gives the same bytes as writing it whole."""

from __future__ import annotations

import json
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from makeflow.store.lockfile import LOCK_FILE, LockFile, render

step_ids = st.text(min_size=1, max_size=12).map(lambda s: s.replace("\x00", "")).filter(bool)
scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text()
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3)
                      | st.dictionaries(st.text(max_size=6), inner, max_size=3), max_leaves=8)
# what makeflow writes: files with a digest and (not for folders) a size; and near misses
file_entries = (st.fixed_dictionaries({"digest": st.text(max_size=8), "size": st.integers()})
                | st.fixed_dictionaries({"digest": st.text(max_size=8)})
                | st.fixed_dictionaries({"digest": values, "size": values}))
step_entries = st.fixed_dictionaries({
    "recipe": st.text(max_size=8), "params": st.dictionaries(st.text(max_size=6), values),
    "inputs": st.dictionaries(st.text(max_size=10), file_entries, max_size=5),
    "outputs": st.dictionaries(st.text(max_size=10), file_entries, max_size=3)})
entries = step_entries | st.dictionaries(st.text(max_size=8), values, max_size=4)
locks = st.dictionaries(step_ids, entries, max_size=6)


def full(steps: dict) -> str:
    """The lock as one json.dumps writes it: what every rendering must equal."""
    return json.dumps({"version": 1, "steps": steps}, sort_keys=True, indent=1) + "\n"


@settings(max_examples=200, deadline=None)
@given(locks)
def test_render_is_json_dumps_of_the_whole_lock(steps):
    assert render(steps) == full(steps)


@settings(max_examples=100, deadline=None)
@given(locks, st.dictionaries(step_ids, entries | st.none(), max_size=4))
def test_an_update_gives_the_bytes_of_a_whole_rewrite(tmp_path_factory, steps, changes):
    root = tmp_path_factory.mktemp("lock")
    LockFile(root).write(steps)
    lock = LockFile(root)
    assert lock.ours()
    lock._parse = None  # an update of the file makeflow wrote must not parse it
    lock.update(changes)
    merged = {**steps, **{k: v for k, v in changes.items() if v is not None}}
    for sid, entry in changes.items():
        if entry is None:
            merged.pop(sid, None)
    assert (root / LOCK_FILE).read_text(encoding="utf-8") == full(merged)
    assert LockFile(root).entries() == json.loads(full(merged))["steps"]


def test_a_lock_changed_by_someone_else_is_parsed_and_written_whole(tmp_path):
    LockFile(tmp_path).write({"a": {"x": 1}, "b": {"x": 2}})
    edited = {"steps": {"b": {"x": 2}, "a": {"x": 5}, "c": {}}, "version": 1}
    (tmp_path / LOCK_FILE).write_text(json.dumps(edited))  # another layout, other entries
    lock = LockFile(tmp_path)
    assert not lock.ours()
    assert lock.update({"b": {"x": 3}})
    assert (tmp_path / LOCK_FILE).read_text() == full({"a": {"x": 5}, "b": {"x": 3}, "c": {}})
    assert LockFile(tmp_path).ours()


def test_a_lock_with_conflict_markers_is_not_trusted_by_its_old_digest(tmp_path):
    LockFile(tmp_path).write({"a": {"x": 1}})
    path = tmp_path / LOCK_FILE
    path.write_text("<<<<<<< HEAD\n" + path.read_text() + "=======\n>>>>>>> other\n")
    lock = LockFile(tmp_path)
    assert not lock.ours() and not lock.readable
    assert "merge conflict" in lock.warnings[0]


def test_unchanged_text_is_not_written_again(tmp_path):
    LockFile(tmp_path).write({"a": {"x": 1}})
    before = os.stat(tmp_path / LOCK_FILE).st_mtime_ns
    assert not LockFile(tmp_path).update({"a": {"x": 1}})
    assert os.stat(tmp_path / LOCK_FILE).st_mtime_ns == before


@pytest.mark.parametrize("steps", [{}, {"only": {}}])
def test_empty_locks_render_like_json(tmp_path, steps):
    LockFile(tmp_path).write({"z": {"x": 1}})
    LockFile(tmp_path).update({"z": None, **steps})
    assert (tmp_path / LOCK_FILE).read_text() == full(steps)


ONE_CHANGE = """
    from makeflow import rule
    for i in range(40):
        rule(f"copy{i}", inputs=f"in/{i}.txt", outputs=f"out/{i}.txt",
             shell="cp {inputs[0]} {outputs[0]}")
    rule("all", inputs=[f"out/{i}.txt" for i in range(40)], default=True)
"""


def test_a_one_change_build_writes_the_lock_a_whole_rewrite_would(project):
    project.rules(ONE_CHANGE)
    for i in range(40):
        project.write(f"in/{i}.txt", f"{i}\n")
    project.build()
    project.write("in/7.txt", "changed\n")
    assert project.build().ran == ["copy7"]
    updated = project.read(LOCK_FILE)
    assert json.loads(updated)["steps"]["copy7"]["outputs"]["out/7.txt"]["size"] == 8
    os.unlink(project.root / LOCK_FILE)
    os.unlink(project.root / ".makeflow" / "makeflow.lock.written")
    project.write("in/0.txt", "0\n")  # not changed: a build that runs nothing writes it whole
    assert project.build().ran == []
    assert project.read(LOCK_FILE) == updated
