"""Who may write where: one step per file, none inside another's folder output, and
nothing outside the project folder.

The checks take the graph's steps as plain data (anything with `id`, `rule` and
`outputs`), so the resolver and the graph cache can both run them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from makeflow.define.rules import Rule
from makeflow.errors import UserError
from makeflow.store.fs import Boundary


def leaves(path: str) -> bool:
    """Whether a normalised path names something outside the project folder."""
    return path[:1] == "/" or path == ".." or path[:3] == "../"


def refuse_outside(rule: Rule, wildcards: dict[str, str], paths: tuple[str, ...]) -> None:
    """Wildcard values (`..`, or a leading `/` from `{x,.*}`) may not lead out of the project."""
    for path in paths:
        if leaves(path):
            values = ", ".join(f"{k}={v!r}" for k, v in wildcards.items())
            raise UserError(
                f"rule {rule.name} with {values} would use {path}, which is outside the "
                "project folder",
                where=rule.where,
                hint="Ask for a file whose wildcard values are plain names, or constrain the "
                     "wildcard with {name,REGEX}.",
            )


def refuse_outputs_outside(steps: Iterable[Any], root: str) -> None:
    """Refuse a step that would write through a symlinked folder that leads outside.

    It depends on the file system, not only on the rules, so it is checked on every build
    for the steps about to run, whether or not the graph came from its cache.
    """
    steps = list(steps)
    bad = Boundary(root).leaving(path for step in steps for path in step.outputs.paths)
    if not bad:
        return
    for step in steps:
        for path in step.outputs.paths:
            if path in bad:
                raise UserError(
                    f"{step.id} would write {path}, which leads outside the project folder "
                    "through a symbolic link",
                    where=step.rule.where,
                    hint="Point the link at a folder inside the project, or declare the "
                         "output at its real place inside it.",
                )


def producers(steps: Mapping[str, Any]) -> dict[str, str]:
    """Every output of the graph -> the step that writes it.

    Two steps writing one file, or one writing inside another's folder output, would undo
    each other on every build and race in parallel: both are errors that name the rules.
    One dict insert per output, then one pass over the distinct folders that hold outputs;
    cheap enough to run again on every graph loaded from the cache.
    """
    producer: dict[str, str] = {}
    for sid, step in steps.items():
        for path in step.outputs.paths:
            other = producer.setdefault(path, sid)
            if other != sid:
                a, b = steps[other].rule, step.rule
                who = f"rule {a.name} ({a.where})" if a is b else \
                    f"rules {a.name} ({a.where}) and {b.name} ({b.where})"
                raise _clash(f"{who} would both write {path}", steps[other], step)
    nested = _folder_outputs(producer)
    if nested:
        _refuse_nesting(producer, nested, steps)
    return producer


def _folder_outputs(producer: dict[str, str]) -> set[str]:
    """The outputs that other outputs sit inside (usually none)."""
    folders = {p.rpartition("/")[0] for p in producer}
    folders.discard("")
    for folder in list(folders):
        parent = folder.rpartition("/")[0]
        while parent and parent not in folders:
            folders.add(parent)
            parent = parent.rpartition("/")[0]
    return folders.intersection(producer)


def _refuse_nesting(producer: dict[str, str], nested: set[str],
                    steps: Mapping[str, Any]) -> None:
    for path, sid in producer.items():
        folder = path.rpartition("/")[0]
        while folder:
            owner = producer.get(folder) if folder in nested else None
            if owner is not None and owner != sid:
                inner, outer = steps[sid], steps[owner]
                raise _clash(
                    f"rule {inner.rule.name} ({inner.rule.where}) writes {path} inside "
                    f"{folder}, the folder output of rule {outer.rule.name} "
                    f"({outer.rule.where})", inner, outer)
            folder = folder.rpartition("/")[0]


def _clash(what: str, first: Any, second: Any) -> UserError:
    if first.id != first.rule.name or second.id != second.rule.name:
        what += f" (steps {first.id} and {second.id})"
    return UserError(
        f"{what}; they would undo each other on every build",
        where=first.rule.where,
        hint="Each file must be made by one step: rename an output, narrow a pattern with "
             "{name,REGEX}, or write the file from the step that owns its folder.",
    )
