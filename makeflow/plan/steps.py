"""A step, one run of a rule, and how its id and paths are made from a rule's templates.

Shared by the file-by-file resolver (`graph.py`) and the one that resolves many files a
column at a time (`columns.py`), which must make exactly the same steps.
"""

from __future__ import annotations

import posixpath
from typing import NamedTuple

from makeflow.define.patterns import compile_pattern
from makeflow.define.rules import Files, Rule

NO_STEPS: list[str] = []  # the upstream of every step that reads no step: shared, never changed
new = tuple.__new__  # a named tuple without its Python-level __new__: a million calls
UNKNOWN = object()  # what the resolver's producer table gives for a file not looked up yet


class Step(NamedTuple):
    """One run of a rule, with concrete input and output paths (a tuple, cheap to make)."""

    id: str
    rule: Rule
    wildcards: dict[str, str]
    inputs: Files
    outputs: Files


def step_id(rule_name: str, wildcards: dict[str, str]) -> str:
    if not wildcards:
        return rule_name
    if len(wildcards) == 1:
        for k, v in wildcards.items():
            return f"{rule_name}[{k}={v}]"
    return rule_name + "[" + ",".join([f"{k}={v}" for k, v in wildcards.items()]) + "]"


def templates_of(files: Files) -> tuple[str, ...]:
    """The `format_map` templates of a pattern rule's paths."""
    return tuple(compile_pattern(p).template for p in files.paths)


def filled(templates: tuple[str, ...], wildcards: dict[str, str]) -> tuple[str, ...]:
    return tuple([normal(t.format_map(wildcards)) for t in templates])


def normal(path: str) -> str:
    """`normpath`, skipped when it would change nothing: it changes only empty paths, `//`,
    a trailing `/`, and `.` or `..` parts, each of which one of these tests catches."""
    if not path or path[0] == "." or "/." in path or "//" in path or path[-1] == "/":
        return posixpath.normpath(path)
    return path


def may_change(files: list[tuple[str, ...]]) -> bool:
    """Whether `normal` could change any of these paths, or one could lead outside the
    project (a path that starts with `.` or `/`): one search of their joined text for
    what those tests look for, instead of a call per path."""
    text = "\0" + "\0".join(["\0".join(paths) for paths in files]) + "\0"
    return any(mark in text for mark in ("\0\0", "\0.", "\0/", "/.", "//", "/\0"))
