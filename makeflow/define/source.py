"""The project's own Python code: which files are the project's, their exact source, and
an import hook that serves those sources, so a worker runs the code the build fingerprinted.

A file is the project's when it lies under the folder of `Makeflow.py` and not inside an
installed environment (a `site-packages` folder, the running Python's prefix) or makeflow
itself. Everything else is "outside" code, which counts by its name and version only.
"""

from __future__ import annotations

import ast
import importlib.machinery
import os
import sys
import types
from pathlib import Path

from makeflow.store.hashing import hash_bytes

_MAKEFLOW = str(Path(__file__).resolve().parent.parent)
_INSTALLED = ("site-packages", "dist-packages")


class Sources:
    """The project's root and the source bytes of its files, as first read in this load.

    Reading each file once, and handing the same bytes to the workers, means the code a
    fingerprint describes is the code that runs, even if a file changes during the build.
    """

    def __init__(self, root: Path, known: dict[str, bytes] | None = None):
        self.root = str(root)
        self.prefix = self.root.rstrip(os.sep) + os.sep
        self.known: dict[str, bytes] = dict(known or {})
        self._owns: dict[str, bool] = {}
        self._outside = tuple({os.path.realpath(p) + os.sep for p in
                               (sys.prefix, sys.base_prefix, sys.exec_prefix)
                               if p and not self.prefix.startswith(os.path.realpath(p) + os.sep)})

    def owns(self, filename: str | None) -> bool:
        """Whether `filename` is the project's own code (see the module docstring)."""
        if not filename:
            return False
        known = self._owns.get(filename)
        if known is None:
            known = self._owns[filename] = self._is_project_file(filename)
        return known

    def _is_project_file(self, filename: str) -> bool:
        # `/project/../venv/bin/makeflow` (a program started by a relative path) is not
        # the project's: compare the path as it resolves, `..` and all
        filename = os.path.normpath(filename)
        if not filename.startswith(self.prefix) or filename.startswith(_MAKEFLOW + os.sep):
            return False
        parts = filename[len(self.prefix):].split(os.sep)
        if any(p in _INSTALLED or p == ".makeflow" for p in parts):
            return False
        return not filename.startswith(self._outside)

    def read(self, filename: str) -> bytes | None:
        """The file's bytes as first read in this load (None when it cannot be read)."""
        data = self.known.get(filename)
        if data is None:
            try:
                with open(filename, "rb") as f:
                    data = f.read()
            except OSError:
                return None
            self.known[filename] = data
        return data

    def module_file(self, name: str) -> str | None:
        """The project file of the module `name` (`a.b` is `a/b.py` or `a/b/__init__.py`),
        found without importing it; None when it is not the project's."""
        loaded = sys.modules.get(name)
        file = getattr(loaded, "__file__", None) if loaded is not None else None
        if file and self.owns(file):
            return file
        base = os.path.join(self.root, *name.split("."))
        for candidate in (base + ".py", os.path.join(base, "__init__.py")):
            if candidate in self.known or os.path.isfile(candidate):
                return candidate
        return None

    def module_name(self, filename: str) -> str:
        rel = os.path.relpath(filename, self.root)[: -len(".py")].split(os.sep)
        return ".".join(rel[:-1] if rel[-1] == "__init__" else rel)


def purge(sources: Sources) -> None:
    """Forget the project's modules imported by an earlier load in this process, and those
    of another project named like them (never an installed one), so the next load imports
    the files as they are now."""
    for name, module in list(sys.modules.items()):
        if name in ("__main__", "__mp_main__"):  # the running program, never a rule's module
            continue
        file = getattr(module, "__file__", None) or ""
        ours = sources.owns(file) or name == "Makeflow"
        if ours or (file and not _installed(file, sources)
                    and sources.module_file(name.partition(".")[0]) is not None):
            del sys.modules[name]


def _installed(file: str, sources: Sources) -> bool:
    return (file.startswith(_MAKEFLOW + os.sep) or file.startswith(sources._outside)
            or any(f"{os.sep}{p}{os.sep}" in file for p in _INSTALLED))


class Importer:
    """Imports the project's modules from `Sources`: the bytes read once, in the coordinator
    and in every worker alike. Other modules are left to Python's own finders. (A finder
    on `sys.meta_path`; not an `importlib.abc` subclass, whose import costs 4 ms a build.)"""

    def __init__(self, sources: Sources):
        self.sources = sources

    def find_spec(self, name: str, path: object = None, target: object = None):
        file = self.sources.module_file(name)
        if file is None or not self.sources.owns(file) or self.sources.read(file) is None:
            return None
        package = os.path.basename(file) == "__init__.py"
        loader = _SourceLoader(name, file, self.sources)
        spec = importlib.machinery.ModuleSpec(name, loader, origin=file, is_package=package)
        spec.has_location = True
        if package:
            spec.submodule_search_locations = [os.path.dirname(file)]
        return spec


class _SourceLoader(importlib.machinery.SourceFileLoader):
    def __init__(self, name: str, path: str, sources: Sources):
        super().__init__(name, path)
        self.sources = sources

    def get_data(self, path: str) -> bytes:
        if path == self.path:
            data = self.sources.read(path)
            if data is not None:
                return data
        return super().get_data(path)

    def path_stats(self, path: str) -> dict:  # never use a cached .pyc: the bytes decide
        raise OSError("no bytecode cache for project sources")


# --- source indexes: each function and class of a file, normalised, parsed once per content

Normalised = str
_indexes: dict[tuple[str, str], tuple[dict, dict]] = {}


def index(filename: str, data: bytes) -> tuple[dict[tuple[int, str], str], dict[str, str]]:
    """Functions by (first line, name) and classes by qualified name, as normalised text:
    the syntax tree without comments, formatting, docstrings, or functions' decorators."""
    key = (filename, hash_bytes(data))
    known = _indexes.get(key)
    if known is not None:
        return known
    try:
        tree = ast.parse(data, filename)
    except (SyntaxError, ValueError):
        tree = ast.Module(body=[], type_ignores=[])
    functions: dict[tuple[int, str], str] = {}
    classes: dict[str, str] = {}
    _walk(tree, "", functions, classes)
    if len(_indexes) > 256:
        _indexes.clear()
    _indexes[key] = (functions, classes)
    return functions, classes


def _walk(node: ast.AST, prefix: str, functions: dict, classes: dict) -> None:
    for child in ast.iter_child_nodes(node):
        if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
            first = min([child.lineno] + [d.lineno for d in child.decorator_list])
            functions[(first, child.name)] = _dump(child, keep_decorators=False)
            _walk(child, f"{prefix}{child.name}.<locals>.", functions, classes)
        elif isinstance(child, ast.ClassDef):
            classes[prefix + child.name] = _dump(child, keep_decorators=True)
            _walk(child, f"{prefix}{child.name}.", functions, classes)
        else:
            _walk(child, prefix, functions, classes)


def _dump(node: ast.AST, keep_decorators: bool) -> str:
    """The node as text without docstrings (anywhere inside) and, unless kept, decorators."""
    saved = []
    for n in ast.walk(node):
        if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Module)):
            body = n.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                    and isinstance(body[0].value.value, str):
                saved.append((n, "body", body))
                n.body = body[1:] or [ast.Pass()]
    if not keep_decorators and isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        saved.append((node, "decorator_list", node.decorator_list))
        node.decorator_list = []
    try:
        return ast.dump(node)
    finally:
        for n, attr, value in saved:
            setattr(n, attr, value)


def module_text(data: bytes, filename: str) -> tuple[str, list[tuple[str, int]]]:
    """A whole module normalised, and the modules it imports as (name, level) pairs."""
    try:
        tree = ast.parse(data, filename)
    except (SyntaxError, ValueError):
        return hash_bytes(data), []
    imports: list[tuple[str, int]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imports.extend((alias.name, 0) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            imports.append((base, node.level))
            imports.extend((f"{base}.{a.name}" if base else a.name, node.level)
                           for a in node.names if a.name != "*")
    return _dump(tree, keep_decorators=True), imports


def is_module(value: object) -> bool:
    return isinstance(value, types.ModuleType)
