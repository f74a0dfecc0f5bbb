"""File patterns with `{wildcards}`: matching a path, filling one in, and listing matches.

`{name}` matches one path segment (no '/'); `{name,REGEX}` matches REGEX instead.
`expand` and `glob_wildcards` are the helpers a `Makeflow.py` uses to list target files.
"""

from __future__ import annotations

import glob as globlib
import itertools
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from makeflow.define.dynamic import note_glob
from makeflow.define.rules import WILDCARD
from makeflow.errors import UserError


@dataclass(frozen=True)
class Pattern:
    """A compiled path pattern: a regex to match, a template to fill, its literal length."""

    text: str
    regex: re.Pattern[str]
    template: str
    names: tuple[str, ...]
    literal: int  # characters outside wildcards; more means more specific

    def match(self, path: str) -> dict[str, str] | None:
        m = self.regex.fullmatch(path)
        return m.groupdict() if m else None

    def fill(self, wildcards: dict[str, str]) -> str:
        return self.template.format_map(wildcards)


@lru_cache(maxsize=4096)
def compile_pattern(text: str) -> Pattern:
    parts: list[str] = []
    template: list[str] = []
    names: list[str] = []
    pos = 0
    for m in WILDCARD.finditer(text):
        literal = text[pos : m.start()]
        parts.append(re.escape(literal))
        template.append(literal.replace("{", "{{").replace("}", "}}"))
        name, constraint = m.group(1), m.group(2)
        if name in names:
            parts.append(f"(?P={name})")
        else:
            parts.append(f"(?P<{name}>{constraint or '[^/]+'})")
            names.append(name)
        template.append("{" + name + "}")
        pos = m.end()
    parts.append(re.escape(text[pos:]))
    template.append(text[pos:].replace("{", "{{").replace("}", "}}"))
    literal = len(WILDCARD.sub("", text))
    return Pattern(text, re.compile("".join(parts)), "".join(template), tuple(names), literal)


# `{{` and `}}` are escaped braces; otherwise a `{wildcard}` or `{wildcard,REGEX}`.
_EXPAND_TOKEN = re.compile(r"\{\{|\}\}|\{([A-Za-z_][A-Za-z0-9_]*)(?:,([^{}]*))?\}")


def expand(pattern: str | Iterable[str],
           combinator: Callable[..., Iterable[tuple]] = itertools.product, /, *,
           allow_missing: bool = False, **values: Any) -> list[str]:
    """Fill `pattern` (or each of a list of patterns) with every combination of the
    given values, in order; pass `zip` as `combinator` to pair them instead.

    `{{` and `}}` stand for literal braces, so `{{name}}` comes out as the wildcard
    `{name}`. With `allow_missing=True`, a wildcard given no value is kept as written
    (constraint included), so the result is still a pattern.

    >>> expand("stats/{sample}.json", sample=["a", "b"])
    ['stats/a.json', 'stats/b.json']
    >>> expand("{{name}}.{chr}.txt", chr=[1, 2])
    ['{name}.1.txt', '{name}.2.txt']
    """
    if not isinstance(pattern, str):
        return [out for one in pattern
                for out in expand(one, combinator, allow_missing=allow_missing, **values)]
    pieces = _expand_pieces(pattern, values, allow_missing)
    names = list(dict.fromkeys(p[0] for p in pieces if isinstance(p, tuple)))
    lists = [_as_list(values[n]) for n in names]
    if len(names) == 1 and combinator in (itertools.product, zip):
        return _expand_one(pieces, lists[0])
    out = []
    for combo in combinator(*lists):
        chosen = dict(zip(names, combo, strict=True))
        out.append("".join(p if isinstance(p, str) else chosen[p[0]] for p in pieces))
    return out


def _expand_pieces(pattern: str, values: dict[str, Any],
                   allow_missing: bool) -> list[str | tuple[str, str]]:
    """The pattern as literal text and (name, text as written) for each wildcard to fill."""
    pieces: list[str | tuple[str, str]] = []
    pos = 0
    for m in _EXPAND_TOKEN.finditer(pattern):
        pieces.append(pattern[pos:m.start()])
        token = m.group(0)
        if token in ("{{", "}}"):
            pieces.append(token[0])
        elif m.group(1) in values:
            pieces.append((m.group(1), token))
        elif allow_missing:
            pieces.append(token)
        else:
            raise ValueError(f"expand({pattern!r}) needs a value for {{{m.group(1)}}}")
        pos = m.end()
    pieces.append(pattern[pos:])
    return pieces


def _expand_one(pieces: list[str | tuple[str, str]], values: list[str]) -> list[str]:
    """`expand` of one wildcard: the text around it joined once, not per value (a
    `Makeflow.py` that lists a million files calls this)."""
    slots = [i for i, p in enumerate(pieces) if isinstance(p, tuple)]
    if len(slots) > 1:  # the wildcard appears more than once
        return ["".join(v if isinstance(p, tuple) else p for p in pieces) for v in values]
    head = "".join(pieces[:slots[0]])  # type: ignore[arg-type] - all text before the slot
    tail = "".join(pieces[slots[0] + 1:])  # type: ignore[arg-type]
    return [head + v + tail for v in values]


def _as_list(value: Any) -> list[str]:
    if isinstance(value, (str, int, float)):
        return [str(value)]
    return [str(v) for v in value]


class Wildcards(tuple):
    """What `glob_wildcards` found: a tuple of lists, one per wildcard in order, that also
    answers to the wildcards' names, so both `found.sample` and `(samples,) = found` work
    (as Snakemake's named tuple does; a plain namedtuple refuses names starting with `_`)."""

    _fields: tuple[str, ...]

    def __new__(cls, names: tuple[str, ...], lists: list[list[str]]) -> Wildcards:
        found = super().__new__(cls, lists)
        found._fields = names
        return found

    def __getattr__(self, name: str) -> list[str]:
        try:
            return self[self._fields.index(name)]
        except ValueError:
            raise AttributeError(f"no wildcard {{{name}}} in this pattern; it has "
                                 f"{', '.join(self._fields) or 'none'}") from None

    def __getnewargs__(self) -> tuple[tuple[str, ...], list[list[str]]]:
        return self._fields, list(self)  # so a copy or a pickle keeps the names

    def __repr__(self) -> str:
        return "Wildcards(" + ", ".join(f"{n}={v!r}" for n, v in zip(
            self._fields, self, strict=True)) + ")"


def glob_wildcards(pattern: str) -> Wildcards:
    """The wildcard values of the files that exist now and match `pattern`.

    Returns one list per wildcard, in the same order, sorted by path: ``.sample`` names
    one, and ``(samples,) = glob_wildcards("data/{sample}.csv")`` unpacks them, so
    ``expand("stats/{sample}.json", sample=glob_wildcards("data/{sample}.csv").sample)``
    lists one target per data file.
    """
    note_glob(pattern)
    compiled = compile_pattern(pattern)
    found: list[list[str]] = [[] for _ in compiled.names]
    for path in sorted(globlib.glob(_glob_for(pattern), recursive=True)):
        rel = os.path.normpath(path).replace(os.sep, "/")
        values = compiled.match(rel)
        if values is not None:
            for i, name in enumerate(compiled.names):
                found[i].append(values[name])
    return Wildcards(compiled.names, found)


def _glob_for(pattern: str) -> str:
    """A shell glob that finds every candidate; the regex then decides.

    A segment with a constrained wildcard (which may span '/') becomes `**`.
    """
    segments = []
    for segment in pattern.split("/"):
        if any(m.group(2) for m in WILDCARD.finditer(segment)):
            segments.append("**")
        else:
            parts = WILDCARD.split(segment)
            # re.split with two groups yields literal, name, constraint, literal, ...
            segments.append("*".join(globlib.escape(p) for p in parts[::3]))
    return "/".join(segments)


def most_specific(path: str, usable: list) -> list:
    """Of the pattern rules that can make `path` (tuples that start with the pattern and
    the rule), the one that does: the highest `priority=`, then the most literal
    characters. A tie between two rules is an error, never a silent choice."""
    first = max(u[1].priority for u in usable)
    usable = [u for u in usable if u[1].priority == first]
    best = max(u[0].literal for u in usable)
    top = [u for u in usable if u[0].literal == best]
    if len({u[1].name for u in top}) > 1:
        names = " and ".join(f"{u[1].name} ({u[1].where})" for u in top)
        same = f"the same priority ({first})" if first else "no priority"
        raise UserError(
            f"{path} can be made by the pattern rules {names}, which have {same}, and "
            "neither is more specific",
            hint="Give the rule that should make it a higher priority (priority=1), make "
            "one pattern more specific, or give the file an explicit rule.",
        )
    return top
