"""File patterns with `{wildcards}`: matching a path, filling one in, and listing matches.

`{name}` matches one path segment (no '/'); `{name,REGEX}` matches REGEX instead.
`expand` and `glob_wildcards` are the helpers a `Makeflow.py` uses to list target files.
"""

from __future__ import annotations

import glob as globlib
import itertools
import os
import re
from dataclasses import dataclass
from functools import lru_cache
from types import SimpleNamespace
from typing import Any

from makeflow.define.rules import WILDCARD


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


def expand(pattern: str, **values: Any) -> list[str]:
    """Fill `pattern` with every combination of the given values, in order.

    >>> expand("stats/{sample}.json", sample=["a", "b"])
    ['stats/a.json', 'stats/b.json']
    """
    compiled = compile_pattern(pattern)
    missing = [n for n in compiled.names if n not in values]
    if missing:
        raise ValueError(f"expand({pattern!r}) needs a value for {{{missing[0]}}}")
    lists = [_as_list(values[n]) for n in compiled.names]
    return [
        compiled.fill(dict(zip(compiled.names, combo, strict=True)))
        for combo in itertools.product(*lists)
    ]


def _as_list(value: Any) -> list[str]:
    if isinstance(value, (str, int, float)):
        return [str(value)]
    return [str(v) for v in value]


def glob_wildcards(pattern: str) -> SimpleNamespace:
    """The wildcard values of the files that exist now and match `pattern`.

    Returns one list per wildcard, in the same order (``.sample``), sorted by path, so
    ``expand("stats/{sample}.json", sample=glob_wildcards("data/{sample}.csv").sample)``
    lists one target per data file.
    """
    compiled = compile_pattern(pattern)
    found = {name: [] for name in compiled.names}
    for path in sorted(globlib.glob(_glob_for(pattern), recursive=True)):
        rel = os.path.normpath(path).replace(os.sep, "/")
        values = compiled.match(rel)
        if values is not None:
            for name in compiled.names:
                found[name].append(values[name])
    return SimpleNamespace(**found)


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
