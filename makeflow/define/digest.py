"""The value digest: one stable fingerprint for everything a Python step can reach.

The rule, applied recursively from the step's function:
- A function of the project: its code (normalised source; bytecode and constants for a
  lambda or code without source), the globals it reads by name (following attribute
  chains into the project's modules: `helpers.clean` counts `clean`), its closure
  variables, its default values, and the project modules imported in its body.
- A class of the project: its normalised source (decorators included) and the globals
  its body names; without source, its bases and attributes.
- A module of the project: its whole normalised source and every project module it
  imports. Code outside the project (the standard library, installed packages, makeflow)
  counts by its name and version, never by its code.
- Values: None, bools, numbers, strings and bytes by value; lists and tuples in order;
  dicts and sets whatever their order (sets have none that holds between processes, and
  a dict built from a set would otherwise differ on every run); paths by their text;
  `functools.partial`, bound methods, `@functools.cache` wrappers and callable objects by
  what they wrap or hold; any other object by its class and the state it pickles with.
- `makeflow.config`, read in a step's body, counts as the whole configuration.

Never an address, `id()` or `hash()`: the same code and values give the same digest in
every process. A value with no state to fingerprint (a lock, an open file, a generator)
raises `Unfingerprintable`, which the loader reports with the rule's name.
"""

from __future__ import annotations

import copyreg
import dis
import functools
import json
import sys
import types
from collections.abc import Callable
from pathlib import PurePath
from typing import Any

from makeflow.define import source
from makeflow.define.source import Sources
from makeflow.define.versions import version_of
from makeflow.store.hashing import hash_text

PRIMITIVE = frozenset({type(None), bool, int, float, complex, str, bytes})
Path_ = tuple  # (parent path or None, piece): formatted only for an error


class Unfingerprintable(Exception):
    """A value makeflow cannot fingerprint stably; `path` says how the step reaches it."""

    def __init__(self, path: str, value: object, why: str):
        super().__init__(f"{path} ({describe(value)}: {why})")
        self.path, self.value, self.why = path, value, why


def describe(value: object) -> str:
    kind = type(value)
    return f"a {kind.__module__}.{kind.__qualname__}" if kind.__module__ != "builtins" \
        else f"a {kind.__qualname__}"


class Digester:
    """Digests for one load: functions, classes and modules are digested once each."""

    def __init__(self, sources: Sources, config: object = None):
        self.sources = sources
        self.config = config
        self.read_config = False
        self.memo: dict[int, tuple[object, str]] = {}
        self.active: dict[int, int] = {}
        self.mins: list[int] = []
        self.codes: dict[int, tuple[types.CodeType, _Code]] = {}
        self.modules: dict[str, str] = {}
        self.versions: dict[str, str] = {}
        self.json: json.JSONEncoder | None = None  # for params_text

    def of_step(self, func: object, name: str) -> str:
        """The digest of a step's function; `read_config` says whether it reads config."""
        self.read_config = False
        return self.enc(func, (None, name))

    def of_value(self, value: object, name: str) -> str:
        return hash_text(self.enc(value, (None, name)))

    def enc(self, value: Any, path: Path_) -> str:
        kind = type(value)
        if kind in PRIMITIVE:
            return f"{kind.__name__}:{value!r}"
        key = id(value)
        known = self.memo.get(key)
        if known is not None:
            return known[1]
        depth = self.active.get(key)
        if depth is not None:  # a cycle: name it by how far up the stack it points
            self.mins[-1] = min(self.mins[-1], depth)
            return f"cycle:{len(self.mins) - depth}"
        depth = self.active[key] = len(self.mins)
        self.mins.append(depth)
        try:
            token = self._composite(value, kind, path)
        finally:
            del self.active[key]
            lowest = self.mins.pop()
        if lowest >= depth:  # not part of a cycle through something still open
            self.memo[key] = (value, token)
        elif self.mins:
            self.mins[-1] = min(self.mins[-1], lowest)
        return token

    def _composite(self, value: Any, kind: type, path: Path_) -> str:
        if kind is list or kind is tuple:
            return hash_text(kind.__name__, *[self.enc(v, (path, f"[{i}]"))
                                              for i, v in enumerate(value)])
        if kind is dict:
            return self._mapping("dict", value, path)
        if kind is set or kind is frozenset:
            return hash_text(kind.__name__, *sorted(self.enc(v, (path, "{}")) for v in value))
        if value is self.config and self.config is not None:
            self.read_config = True
            return self._mapping("config", value, path)
        if isinstance(value, PurePath):
            return f"path:{kind.__name__}:{value}"
        if kind is types.FunctionType:
            return self._function(value, path)
        if kind is types.MethodType:
            return hash_text("method", self.enc(value.__func__, path),
                             self.enc(value.__self__, (path, ".__self__")))
        if isinstance(value, types.ModuleType):
            return self._module(value)
        if isinstance(value, type):
            return self._class(value, path)
        if kind is types.CodeType:
            return self._code_text(value, path)
        if isinstance(value, (types.BuiltinFunctionType, types.MethodWrapperType,
                              types.WrapperDescriptorType, types.MethodDescriptorType)):
            owner = getattr(value, "__self__", None)
            if owner is None or isinstance(owner, types.ModuleType):
                return self._ref(value)
            return hash_text("builtin", self._ref(value), self.enc(owner, (path, ".__self__")))
        if kind is functools.partial:
            return hash_text("partial", self.enc(value.func, (path, ".func")),
                             self.enc(value.args, (path, ".args")),
                             self._mapping("kw", value.keywords, path))
        wrapped = getattr(value, "__wrapped__", None) if not isinstance(value, type) else None
        if wrapped is not None and not self.sources.owns(_file_of(kind)):
            return hash_text("wrapped", self._ref(kind), self.enc(wrapped, (path, ".__wrapped__")))
        return self._reduced(value, path)

    def _mapping(self, label: str, value: dict, path: Path_) -> str:
        items = sorted((self.enc(k, (path, "{key}")),
                        self.enc(v, (path, f"[{k!r}]" if type(k) in PRIMITIVE else "[…]")))
                       for k, v in value.items())
        return hash_text(label, *[part for item in items for part in item])

    def _reduced(self, value: Any, path: Path_) -> str:
        """Any other object: its class and the state it pickles with."""
        try:  # as pickle does: a reducer registered with copyreg (re.Pattern's) comes first
            reducer = copyreg.dispatch_table.get(type(value))
            reduced = reducer(value) if reducer is not None else value.__reduce_ex__(4)
        except Exception as exc:  # whatever pickling says: it has no stable state
            raise Unfingerprintable(_show(path), value, _one_line(exc)) from None
        if isinstance(reduced, str):  # a named singleton: its module and name
            return f"global:{getattr(value, '__module__', '?')}.{reduced}"
        parts = list(reduced) + [None] * (5 - len(reduced))
        func, args, state, listitems, dictitems = parts[:5]
        tokens = ["object", self.enc(func, (path, ".__reduce__")),
                  self.enc(args, (path, ".__reduce__")), self.enc(state, (path, ""))]
        if listitems is not None:
            tokens.append(self.enc(list(listitems), path))
        if dictitems is not None:
            tokens.append(self._mapping("items", dict(dictitems), path))
        return hash_text(*tokens)

    # --- code ---------------------------------------------------------------------------

    def _function(self, func: types.FunctionType, path: Path_) -> str:
        code = func.__code__
        if not self.sources.owns(code.co_filename):
            # outside code counts by name and version; what the project handed it does not:
            # the function a decorator wraps, the values a library's factory closed over
            parts = ["outside", self._ref(func), *self._closure(func, path)]
            if getattr(func, "__wrapped__", None) is not None:
                parts.append(self.enc(func.__wrapped__, (path, ".__wrapped__")))
            return hash_text(*parts)
        facts = self._code(code)
        parts = ["function", facts.text]
        scope = func.__globals__
        for name, chain in facts.globals:
            if name in scope:
                parts += [f"global {name}", self._global(scope[name], chain, (path, f"→{name}"))]
        parts += self._closure(func, path)
        if func.__defaults__:
            parts += ["defaults", self.enc(func.__defaults__, (path, "→default"))]
        if func.__kwdefaults__:
            parts += ["kwdefaults", self._mapping("kw", func.__kwdefaults__, (path, "→default"))]
        package = scope.get("__package__") or ""
        for name, level in facts.imports:
            parts += [f"import {name}", self._imported(name, level, package)]
        return hash_text(*parts)

    def _closure(self, func: types.FunctionType, path: Path_) -> list[str]:
        parts = []
        for name, cell in zip(func.__code__.co_freevars, func.__closure__ or (), strict=False):
            try:
                value = cell.cell_contents
            except ValueError:
                parts.append(f"closure {name} empty")
                continue
            parts += [f"closure {name}", self.enc(value, (path, f"→{name} (closure)"))]
        return parts

    def _global(self, value: Any, chain: tuple[str, ...], path: Path_) -> str:
        """A global, followed along `a.b.c` while it is a module of the project."""
        for attr in chain:
            if not (isinstance(value, types.ModuleType) and self.sources.owns(
                    getattr(value, "__file__", None))):
                break
            try:
                value = getattr(value, attr)
            except AttributeError:
                break
            path = (path, f".{attr}")
        return self.enc(value, path)

    def _code(self, code: types.CodeType) -> _Code:
        known = self.codes.get(id(code))
        if known is None:
            known = self.codes[id(code)] = (code, _Code(code, self._source_text(code)))
        return known[1]

    def _source_text(self, code: types.CodeType) -> str:
        if code.co_name != "<lambda>":  # lambdas: many may share a line, so their bytecode
            data = self.sources.read(code.co_filename)
            if data is not None:
                text = source.index(code.co_filename, data)[0].get(
                    (code.co_firstlineno, code.co_name))
                if text is not None:
                    return text
        return self._code_text(code, (None, code.co_name))

    def _code_text(self, code: types.CodeType, path: Path_) -> str:
        """Bytecode, names and constants: no file name, no line numbers."""
        consts = [self._code_text(c, path) if isinstance(c, types.CodeType)
                  else self.enc(c, path) for c in code.co_consts]
        return hash_text("code", code.co_code.hex(), repr(code.co_names),
                         repr(code.co_varnames), repr(code.co_freevars),
                         repr((code.co_argcount, code.co_kwonlyargcount, code.co_flags)), *consts)

    def _class(self, cls: type, path: Path_) -> str:
        module = sys.modules.get(cls.__module__)
        file = getattr(module, "__file__", None)
        if not self.sources.owns(file):
            return self._ref(cls)
        data = self.sources.read(file)
        text = source.index(file, data)[1].get(cls.__qualname__) if data is not None else None
        if text is None:
            return self._class_attributes(cls, path)
        parts = ["class", text]
        scope = vars(module)
        for name in _names(text):
            if name in scope and name != cls.__name__:
                parts += [f"global {name}", self.enc(scope[name], (path, f"→{name}"))]
        return hash_text(*parts)

    def _class_attributes(self, cls: type, path: Path_) -> str:
        """A class without source (made in a function, or by `type()`): what it holds."""
        parts = ["class", cls.__qualname__, self.enc(cls.__bases__, (path, ".__bases__"))]
        for name, value in sorted(vars(cls).items()):
            if name in _CLASS_NOISE or name.startswith("__dataclass"):
                continue
            if isinstance(value, (staticmethod, classmethod)):
                value = value.__func__
            elif isinstance(value, property):
                value = (value.fget, value.fset, value.fdel)
            elif isinstance(value, types.FunctionType) and not self.sources.owns(
                    value.__code__.co_filename):
                continue  # generated by a decorator such as @dataclass: the fields say it
            parts += [name, self.enc(value, (path, f".{name}"))]
        return hash_text(*parts)

    def _module(self, module: types.ModuleType) -> str:
        file = getattr(module, "__file__", None)
        if self.sources.owns(file):
            return self._module_source(file)
        return f"module:{module.__name__}@{self._version(module.__name__)}"

    def _imported(self, name: str, level: int, package: str) -> str:
        if level:
            base = package.rsplit(".", level - 1)[0] if level > 1 else package
            name = f"{base}.{name}" if name else base
        file = self.sources.module_file(name)
        if file is not None and self.sources.owns(file):
            return self._module_source(file)
        return f"module:{name}@{self._version(name)}"

    def _module_source(self, file: str) -> str:
        """A project module and every project module it imports, by their sources."""
        known = self.modules.get(file)
        if known is not None:
            return known
        seen: dict[str, str] = {}
        outside: set[str] = set()
        todo = [file]
        while todo:
            current = todo.pop()
            if current in seen:
                continue
            data = self.sources.read(current) or b""
            text, imports = source.module_text(data, current)
            seen[current] = hash_text(text)
            package = self.sources.module_name(current)
            if not current.endswith("__init__.py"):
                package = package.rpartition(".")[0]
            for name, level in imports:
                if level:
                    base = package.rsplit(".", level - 1)[0] if level > 1 else package
                    name = f"{base}.{name}" if name else base
                found = self.sources.module_file(name)
                if found is not None and self.sources.owns(found):
                    todo.append(found)
                elif name:
                    outside.add(name.partition(".")[0])
        parts = [f"{self.sources.module_name(f)}={d}" for f, d in sorted(seen.items())]
        parts += [f"{name}@{self._version(name)}" for name in sorted(outside)]
        digest = self.modules[file] = hash_text("module", *parts)
        return digest

    def _ref(self, value: Any) -> str:
        module = getattr(value, "__module__", None) or "?"
        name = getattr(value, "__qualname__", None) or getattr(value, "__name__", "?")
        return f"ref:{module}.{name}@{self._version(module)}"

    def _version(self, module: str) -> str:
        top = module.partition(".")[0]
        known = self.versions.get(top)
        if known is None:
            known = self.versions[top] = version_of(top)
        return known


_CLASS_NOISE = frozenset({"__dict__", "__weakref__", "__module__", "__doc__", "__qualname__",
                          "__firstlineno__", "__static_attributes__", "__match_args__",
                          "__annotations__", "__hash__", "__slotnames__"})


class _Code:
    """What one code object contributes, worked out once: its text, the globals it reads
    (with the attribute chain after each) and the modules its body imports."""

    __slots__ = ("globals", "imports", "text")

    def __init__(self, code: types.CodeType, text: str):
        self.text = text
        found: set[tuple[str, tuple[str, ...]]] = set()
        imports: set[tuple[str, int]] = set()
        _scan(code, found, imports)
        self.globals = sorted(found)
        self.imports = sorted(imports)


def _scan(code: types.CodeType, found: set, imports: set) -> None:
    chain: list[str] | None = None
    level = 0
    for ins in dis.get_instructions(code):
        op = ins.opname
        if op in ("LOAD_GLOBAL", "LOAD_NAME"):
            if chain is not None:
                found.add((chain[0], tuple(chain[1:])))
            chain = [ins.argval]
            continue
        if chain is not None and op in ("LOAD_ATTR", "LOAD_METHOD"):
            chain.append(ins.argval)
            continue
        if chain is not None:
            found.add((chain[0], tuple(chain[1:])))
            chain = None
        if op == "LOAD_CONST" and isinstance(ins.argval, int):
            level = ins.argval
        elif op == "IMPORT_NAME":
            imports.add((ins.argval, level))
    if chain is not None:
        found.add((chain[0], tuple(chain[1:])))
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            _scan(const, found, imports)


def _names(text: str) -> list[str]:
    """The names a class's dumped syntax tree loads (Name(id='x', ctx=Load()))."""
    import re

    return sorted(set(re.findall(r"Name\(id='([A-Za-z_][A-Za-z0-9_]*)', ctx=Load\(\)\)", text)))


def _file_of(kind: type) -> str | None:
    return getattr(sys.modules.get(kind.__module__), "__file__", None)


def _show(path: Path_) -> str:
    """`helper → TABLE['x']` from the pieces: "→" starts each name a function reads."""
    pieces = []
    while path is not None:
        path, piece = path
        pieces.append(piece)
    return "".join(reversed(pieces)).lstrip("→").replace("→", " → ")


def params_text(params: dict, digester: Digester) -> str:
    """Params as canonical JSON: plain JSON as it always was; a set sorted, a path as its
    text, any other value by its digest, so the text is the same in every process."""
    if not params:
        return "{}"
    encoder = digester.json
    if encoder is None:
        encoder = digester.json = json.JSONEncoder(sort_keys=True, default=_canonical(digester))
    try:
        return encoder.encode(params)
    except (TypeError, ValueError):  # keys JSON cannot hold (tuples): the digest of it all
        return json.dumps({"$digest": digester.of_value(params, "params=")})


def _canonical(digester: Digester) -> Callable[[object], object]:
    def canonical(value: object) -> object:
        if isinstance(value, (set, frozenset)):
            return {f"${type(value).__name__}": sorted(value, key=lambda v: json.dumps(
                v, sort_keys=True, default=canonical))}
        if isinstance(value, PurePath):
            return {"$path": str(value)}
        return {f"${type(value).__qualname__}": digester.of_value(value, "params=")}

    return canonical


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
