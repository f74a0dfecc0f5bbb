"""What the watcher listens to: the sources, rules and folders a build depends on, and the
noise (version control, editors' swap files, makeflow's own state) it ignores.
"""

from __future__ import annotations

import os
import posixpath
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from makeflow.define.config import CONFIG_FILE
from makeflow.define.loader import Pipeline
from makeflow.define.patterns import Pattern, compile_pattern
from makeflow.define.rules import WILDCARD
from makeflow.plan.graph import Graph
from makeflow.store.state import STATE_DIR

RULES = "rules"  # reload the rules, then build
SOURCE = "source"  # build

MAX_FOLDERS = 64  # above this, watch whole top-level folders instead (one thread per folder)

EDITOR_NAMES = re.compile(r"(\.sw[a-p]|~)$|^\.#|^#.*#$|^4913$")


def is_noise(rel: str) -> bool:
    """Paths no build reads: version control, makeflow's own state (with the outputs of
    running steps set aside there), editors' swap and temporary files, and the names
    `fs.replace` gives to the copies it makes."""
    parts = rel.split("/")
    name = parts[-1]
    return (parts[0] == STATE_DIR or ".git" in parts or EDITOR_NAMES.search(name) is not None
            or ".makeflow-" in name)


def _shape(text: str) -> str:
    """A pattern with its wildcards blanked, so `out/{a}.txt` and `out/{b}.txt` compare equal."""
    return WILDCARD.sub("{}", text)


@dataclass(frozen=True, eq=False)
class WatchSet:
    """What the watcher listens to, and what it ignores.

    `sources` are the files the targets depend on that no rule makes (absolute paths);
    `rules` the rules file and its config. `listed` are the input patterns of pattern
    rules: a new file matching one may be listed by a `glob_wildcards` in the rules file,
    so it reloads the rules. Outputs are relative to `root`, as rules name them.
    """

    root: str
    rules: frozenset[str]
    sources: frozenset[str] = frozenset()
    trees: tuple[str, ...] = ()  # sources that are folders: a change inside counts
    parents: frozenset[str] = frozenset()  # folders above sources, for folder events
    outputs: frozenset[str] = frozenset()
    output_patterns: tuple[Pattern, ...] = ()
    listed: tuple[Pattern, ...] = ()
    folders: dict[str, bool] = field(default_factory=dict)  # folder -> recursive

    @property
    def files(self) -> int:
        """How many files are watched: the sources, and the rules files that exist."""
        return len(self.sources - self.rules) + sum(os.path.exists(p) for p in self.rules)

    def relative(self, path: str) -> str | None:
        rel = os.path.relpath(path, self.root).replace(os.sep, "/")
        return None if rel == "." or rel.startswith("../") or rel == ".." else rel

    def kind(self, path: str, gone: bool = False) -> str | None:
        """RULES, SOURCE or None for an event at `path`; `gone` when it was removed or
        renamed away, which for a listed file changes what the rules file lists."""
        rel = self.relative(path)
        if rel is None or is_noise(rel):
            return None
        if path in self.rules:
            return RULES
        if path in self.sources or path in self.parents or self._in_tree(path):
            return RULES if gone and self._is_listed(rel) else SOURCE
        if rel in self.outputs or any(p.match(rel) for p in self.output_patterns):
            return None
        return RULES if self._is_listed(rel) else None

    def _in_tree(self, path: str) -> bool:
        return any(path.startswith(tree + os.sep) for tree in self.trees)

    def _is_listed(self, rel: str) -> bool:
        return any(p.match(rel) for p in self.listed)


def watch_set(file: Path, pipeline: Pipeline | None = None, graph: Graph | None = None) -> WatchSet:
    """The watch set for a pipeline, from its graph when one could be resolved, else from
    its rules alone (every input no rule makes); with no pipeline, the rules files only."""
    root = str(file.parent)
    # the project's modules the rules reached count as the rules: they are the steps' code
    modules = pipeline.sources if pipeline is not None else ()
    rules = frozenset({str(file), os.path.join(root, CONFIG_FILE), *modules})
    if pipeline is None:
        return WatchSet(root, rules, folders=folders_for(root, rules, (), ()))
    explicit = [r for r in pipeline.rules if not r.is_pattern]
    outputs = {p for r in explicit for p in r.outputs.paths}
    output_patterns = tuple(compile_pattern(p) for r in pipeline.rules if r.is_pattern
                            for p in r.outputs.paths)
    if graph is not None:
        relative = list(graph.sources)
        outputs |= {p for step in graph.steps.values() for p in step.outputs.paths}
    else:
        relative = _rule_sources(pipeline, outputs, output_patterns)
    sources = frozenset(os.path.join(root, p) for p in relative)
    trees = tuple(sorted(p for p in sources if os.path.isdir(p)))
    listed = _listed(pipeline, output_patterns)
    return WatchSet(root, rules, sources, trees, _parents(sources, root), frozenset(outputs),
                    output_patterns, listed, folders_for(root, rules | sources, trees, listed))


def _rule_sources(pipeline: Pipeline, outputs: set[str],
                  output_patterns: tuple[Pattern, ...]) -> list[str]:
    """Inputs without wildcards that no rule makes: the sources when no graph is at hand."""
    paths = dict.fromkeys(p for r in pipeline.rules for p in r.inputs.paths
                          if not WILDCARD.search(p))
    return [p for p in paths
            if p not in outputs and not any(o.match(p) for o in output_patterns)]


def _listed(pipeline: Pipeline, output_patterns: tuple[Pattern, ...]) -> tuple[Pattern, ...]:
    """Input patterns of pattern rules that no rule's outputs share: files users add."""
    made = {_shape(p.text) for p in output_patterns}
    texts = dict.fromkeys(p for r in pipeline.rules if r.is_pattern for p in r.inputs.paths
                          if WILDCARD.search(p) and _shape(p) not in made)
    return tuple(compile_pattern(t) for t in texts)


def _parents(sources: Iterable[str], root: str) -> frozenset[str]:
    found: set[str] = set()
    for path in sources:
        parent = os.path.dirname(path)
        while parent != root and parent.startswith(root + os.sep) and parent not in found:
            found.add(parent)
            parent = os.path.dirname(parent)
    return frozenset(found)


def pattern_folder(text: str) -> tuple[str, bool]:
    """The folder holding a pattern's files, and whether they may lie in subfolders too."""
    segments = text.split("/")
    for i, segment in enumerate(segments):
        if WILDCARD.search(segment):
            deep = i < len(segments) - 1 or any(m.group(2) for m in WILDCARD.finditer(text))
            return "/".join(segments[:i]), deep
    return posixpath.dirname(text), False


def folders_for(root: str, files: Iterable[str], trees: Iterable[str],
                listed: Iterable[Pattern]) -> dict[str, bool]:
    """Folders to watch (folder -> recursive): each file's folder, each source tree, each
    listed pattern's folder. A folder that does not exist yet is stood in for by its
    nearest existing parent, whose event on creating it wakes the watcher."""
    wanted: dict[str, bool] = {}
    for path in files:
        _want(wanted, _existing(os.path.dirname(path), root), False)
    for tree in trees:
        _want(wanted, tree, True)
    for pattern in listed:
        folder, deep = pattern_folder(pattern.text)
        full = os.path.join(root, folder) if folder else root
        existing = _existing(full, root)
        _want(wanted, existing, deep and existing == full)
    return _collapse(_without_nested(wanted), root)


def _want(wanted: dict[str, bool], folder: str, recursive: bool) -> None:
    wanted[folder] = wanted.get(folder, False) or recursive


def _existing(folder: str, root: str) -> str:
    while folder != root and not os.path.isdir(folder) and folder.startswith(root + os.sep):
        folder = os.path.dirname(folder)
    return folder


def _without_nested(wanted: dict[str, bool]) -> dict[str, bool]:
    deep = [f for f, recursive in wanted.items() if recursive]
    return {f: r for f, r in wanted.items()
            if not any(f != d and f.startswith(d + os.sep) for d in deep)}


def _collapse(wanted: dict[str, bool], root: str) -> dict[str, bool]:
    """Too many folders: watch each top-level folder whole instead, or else the root."""
    if len(wanted) <= MAX_FOLDERS:
        return wanted
    tops = {root: False}
    for folder in wanted:
        rel = os.path.relpath(folder, root)
        if rel != ".":
            tops[os.path.join(root, rel.split(os.sep)[0])] = True
    return tops if len(tops) <= MAX_FOLDERS else {root: True}

