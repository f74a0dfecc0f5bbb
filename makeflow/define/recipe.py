"""What a step runs, and its digest: a shell command after substitution (filled in
`placeholders.py`), or a function's code.

A function's code is normalised through its syntax tree, so comments, formatting and the
docstring do not count, while the module-level helpers and constants it uses do.
"""

from __future__ import annotations

import ast
import os
import types
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from makeflow.define.rules import Files
from makeflow.store.hashing import hash_text


class Named(list):
    """A list that also answers to the names given in `inputs={"data": ...}`."""

    def __init__(self, items: Iterable[Any], names: Iterable[tuple[str, int, int]] = ()):
        super().__init__(items)
        self._names = {name: (start, stop) for name, start, stop in names}

    def __getattr__(self, name: str) -> Any:
        try:
            start, stop = self._names[name]
        except KeyError:
            raise AttributeError(f"no file is named {name!r}") from None
        return self[start] if stop - start == 1 else Named(self[start:stop])


class Values(dict):
    """Params and wildcards with attribute access: `{params.alpha}`, `step.wildcards.sample`."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(f"no value is named {name!r}") from None


class StepContext:
    """What a Python step function receives as `step`."""

    def __init__(self, name: str, inputs: Named, outputs: Named, params: Values,
                 wildcards: Values):
        self.name = name
        self.inputs = inputs
        self.outputs = outputs
        self.params = params
        self.wildcards = wildcards

    def __repr__(self) -> str:
        files = f"{[str(p) for p in self.inputs]} -> {[str(p) for p in self.outputs]}"
        return f"<step {self.name}: {files}>"


def context(name: str, inputs: Files, outputs: Files, params: Mapping[str, Any],
            wildcards: Mapping[str, str]) -> StepContext:
    return StepContext(
        name,
        Named([Path(p) for p in inputs.paths], inputs.names),
        Named([Path(p) for p in outputs.paths], outputs.names),
        Values(params),
        Values(wildcards),
    )


_code_cache: dict[Callable[..., Any], str] = {}


def code_digest(func: Callable[..., Any]) -> str:
    """Digest of a function's normalised code and of the module-level names it uses."""
    digest = _code_cache.get(func)
    if digest is None:
        digest = hash_text(*_code_parts(func, set()))
        _code_cache[func] = digest
    return digest


def _code_parts(func: Callable[..., Any], seen: set[int]) -> list[str]:
    """The normalised source of `func`, then of each helper function and constant it uses."""
    seen.add(id(func))
    found = _normalised(func)
    if found is None:  # no source (a builtin, a lambda in a REPL): fall back to bytecode
        code = getattr(func, "__code__", None)
        return [repr(code.co_code) if code else repr(func)]
    text, names = found
    parts = [text]
    module_globals = getattr(func, "__globals__", {})
    for name in sorted(names):
        if name not in module_globals:
            continue
        value = module_globals[name]
        if isinstance(value, types.FunctionType) and id(value) not in seen:
            if value.__module__ == func.__module__ or value.__globals__ is module_globals:
                parts.append(f"def {name}")
                parts.extend(_code_parts(value, seen))
        elif isinstance(value, (int, float, str, bool, bytes, tuple, frozenset, type(None))):
            parts.append(f"{name} = {value!r}")
    return parts


Normalised = tuple[str, frozenset[str]]  # the syntax tree as text, the global names it reads


def _normalised(func: Callable[..., Any]) -> Normalised | None:
    """A function's syntax tree without decorators and docstring, from its file's index."""
    code = getattr(func, "__code__", None)
    if code is None:
        return None
    index = _file_index(code.co_filename)
    return index.get((code.co_firstlineno, code.co_name)) if index else None


_file_indexes: dict[str, tuple[tuple[int, int], dict[tuple[int, str], Normalised]]] = {}


def _file_index(filename: str) -> dict[tuple[int, str], Normalised] | None:
    """Every function of a source file, parsed once, by (first line, name).

    The first line is the first decorator's, as in the function's code object. Parsing a
    file once instead of once per function keeps a pipeline of a thousand Python rules
    quick to plan.
    """
    try:
        st = os.stat(filename)
        key = (st.st_mtime_ns, st.st_size)
        known = _file_indexes.get(filename)
        if known is not None and known[0] == key:
            return known[1]
        with open(filename, "rb") as f:
            tree = ast.parse(f.read(), filename)
    except (OSError, SyntaxError, ValueError):
        return None
    index = {}
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            first = min([node.lineno] + [d.lineno for d in node.decorator_list])
            index[(first, node.name)] = _normalise(node)
    _file_indexes[filename] = (key, index)
    return index


def _normalise(node: ast.FunctionDef | ast.AsyncFunctionDef) -> Normalised:
    decorators, body = node.decorator_list, node.body
    node.decorator_list = []
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
            and isinstance(body[0].value.value, str):
        node.body = body[1:] or [ast.Pass()]
    try:
        return ast.dump(node), frozenset(_global_names(node))
    finally:
        node.decorator_list, node.body = decorators, body


def _global_names(tree: ast.AST) -> set[str]:
    return {
        n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)
    }
