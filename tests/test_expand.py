"""`expand()` and `glob_wildcards()` behave as Snakemake users expect them to."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from makeflow import expand, glob_wildcards
from makeflow.define.patterns import compile_pattern


def test_escaped_braces_stay_literal_wildcards():
    assert expand("{{name}}.{chr}.txt", chr=[1, 2]) == ["{name}.1.txt", "{name}.2.txt"]


def test_an_escaped_wildcard_may_share_a_name_with_a_filled_one():
    assert expand("{{s}}/{s}.txt", s="a") == ["{s}/a.txt"]


def test_escaped_braces_alone_are_kept_as_single_braces():
    assert expand("a{{b.txt", x=1) == ["a{b.txt"]
    assert expand("{{}}/{x}", x=1) == ["{}/1"]


def test_allow_missing_keeps_the_wildcards_without_values():
    assert expand("{sample}/{chr}.txt", chr=[1, 2], allow_missing=True) == [
        "{sample}/1.txt", "{sample}/2.txt"]


def test_allow_missing_keeps_a_constraint_so_the_result_is_still_a_pattern():
    out = expand("{sample,[a-z]+}/{chr}.txt", chr=1, allow_missing=True)
    assert out == ["{sample,[a-z]+}/1.txt"]
    assert compile_pattern(out[0]).match("abc/1.txt") == {"sample": "abc"}


def test_a_missing_value_without_allow_missing_is_named():
    with pytest.raises(ValueError, match=r"\{sample\}"):
        expand("{sample}/{chr}.txt", chr=[1])


def test_expand_fills_a_repeated_wildcard_once():
    assert expand("{s}/{s}.txt", s=["a", "b"]) == ["a/a.txt", "b/b.txt"]


word = st.text(st.sampled_from("ab{}.-"), max_size=6)


@given(st.lists(st.one_of(word.map(lambda w: ("lit", w)),
                          st.sampled_from(["x", "y"]).map(lambda n: ("wild", n))),
                max_size=6),
       st.text(st.sampled_from("abc"), min_size=1, max_size=3))
def test_escaped_text_comes_back_verbatim_and_wildcards_are_filled(parts, value):
    """Property: expand undoes `{{`/`}}` escaping and fills every wildcard, nothing else."""
    pattern = "".join(p.replace("{", "{{").replace("}", "}}") if kind == "lit" else "{" + p + "}"
                      for kind, p in parts)
    wanted = "".join(p if kind == "lit" else value for kind, p in parts)
    assert expand(pattern, x=value, y=value) == [wanted]


def test_glob_wildcards_unpacks_like_a_tuple(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    for name in ("b", "a"):
        (tmp_path / "data" / f"{name}.csv").write_text("x")

    (ids,) = glob_wildcards("data/{id}.csv")
    found = glob_wildcards("data/{id}.csv")

    assert ids == ["a", "b"]
    assert found.id == ids
    assert found._fields == ("id",)
    assert "id=['a', 'b']" in repr(found)


def test_glob_wildcards_with_two_names_unpacks_in_order(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name in ("x/1.csv", "y/2.csv"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x")

    groups, nums = glob_wildcards("{group}/{num}.csv")

    assert (groups, nums) == (["x", "y"], ["1", "2"])


def test_a_rules_file_can_unpack_glob_wildcards(project):
    project.write("data/a.csv", "1\n")
    project.write("data/b.csv", "2\n")
    project.rules("""\
        from makeflow import rule, expand, glob_wildcards

        (ids,) = glob_wildcards("data/{id}.csv")
        rule("copy", inputs="data/{id}.csv", outputs="out/{id}.csv", shell="cp {inputs} {outputs}")
        rule("all", inputs=expand("out/{id}.csv", id=ids), default=True)
    """)

    done = project.run("build")

    assert done.code == 0, done.text
    assert project.read("out/b.csv") == "2\n"


def test_expand_takes_a_list_of_patterns_in_order():
    assert expand(["a/{x}.txt", "b/{x}.txt"], x=[1, 2]) == [
        "a/1.txt", "a/2.txt", "b/1.txt", "b/2.txt"]


def test_expand_with_zip_pairs_the_values_instead_of_crossing_them():
    assert expand("{s}_{r}.fq", zip, s=["a", "b"], r=[1, 2]) == ["a_1.fq", "b_2.fq"]
