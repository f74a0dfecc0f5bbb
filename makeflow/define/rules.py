"""Rules as plain frozen data, the `rule()` call that declares them, and their validation.

`rule()` only records what the user wrote (with its file:line); the loader turns the
records into `Rule` objects once the whole `Makeflow.py` has run.
"""

from __future__ import annotations

import functools
import posixpath
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from makeflow.define.dynamic import Dynamic, has_functions, is_function
from makeflow.define.options import checked as _options
from makeflow.define.resources import DEFAULT, Resources
from makeflow.errors import UserError

RULE_NAME = re.compile(r"[A-Za-z0-9_.\-]+")
WILDCARD = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)(?:,([^{}]*))?\}")


class Files(NamedTuple):
    """An ordered list of paths, some of them named (`inputs={"data": ...}`).

    A tuple: a big pipeline makes hundreds of thousands, and tuples are cheap to make.
    """

    paths: tuple[str, ...] = ()
    names: tuple[tuple[str, int, int], ...] = ()  # (name, start, stop) into paths


@dataclass(frozen=True, eq=False)
class Rule:
    """One rule of a pipeline. A rule whose outputs have `{wildcards}` is a pattern rule."""

    name: str
    inputs: Files
    outputs: Files
    where: str
    shell: str | None = None
    func: Callable[..., Any] | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    default: bool = False
    retries: int = 0
    timeout: float | None = None  # seconds
    always: bool = False
    max_age: float | None = None  # seconds
    resources: Resources = DEFAULT
    code: str = ""  # the digest of `func` and all it reaches (define/digest.py)
    params_text: str = ""  # `params` as canonical JSON, the form the fingerprint uses
    metrics: tuple[str, ...] = ()  # outputs that hold metrics (JSON, YAML, CSV, TSV)
    cache: bool = True  # results may be restored from the run cache
    priority: int = 0  # settles which of two pattern rules makes a file: higher wins
    protected: bool = False  # outputs made read-only after the step; `clean` asks first
    temp: tuple[str, ...] = ()  # outputs deleted once every step of a build reading them ran
    checkpoint: bool = False  # functions that read its outputs wait until it has run
    dynamic: Dynamic | None = None  # input and param functions (define/dynamic.py)

    # Cached on first use (a rule never changes): the planner asks a million times.
    @functools.cached_property
    def is_pattern(self) -> bool:
        return any(WILDCARD.search(p) for p in self.outputs.paths)

    @functools.cached_property
    def is_alias(self) -> bool:
        return self.shell is None and self.func is None


@dataclass
class Draft:
    """What one `rule()` call recorded; `attach` adds the function when used as a decorator."""

    name: str | None
    inputs: Any
    outputs: Any
    shell: str | None
    params: Any
    options: dict[str, Any]
    where: str
    func: Callable[..., Any] | None = None

    def attach(self, func: Callable[..., Any]) -> Callable[..., Any]:
        if not callable(func):
            raise UserError(
                f"@rule must decorate a function, not {type(func).__name__}", where=self.where
            )
        self.func = func
        self.name = self.name or func.__name__
        return func


drafts: list[Draft] = []


def rule(
    name: str | None = None,
    /,
    *,
    inputs: Any = (),
    outputs: Any = (),
    shell: str | None = None,
    params: Mapping[str, Any] | None = None,
    default: bool = False,
    stage: bool = True,
    retries: int = 0,
    timeout: float | str | None = None,
    always: bool = False,
    max_age: float | str | None = None,
    resources: Mapping[str, float] | None = None,
    metrics: Any = (),
    cache: bool = True,
    priority: int = 0,
    protected: bool = False,
    temp: Any = (),
    checkpoint: bool = False,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Declare a rule: call it with a name and `shell=`, or use it as a decorator.

    `rule("all", inputs=[...])` with no outputs and no action is an alias. As a decorator,
    `@rule(inputs=..., outputs=...)` names the rule after the function.

    Options: `default` (what a bare `makeflow build` builds), `retries=N` (rerun a
    failing step up to N times), `timeout` (stop a step running longer, e.g. "10m"),
    `always` (stale on every build), `max_age` (stale once its last run is older, e.g.
    "24h") and `metrics` (outputs that hold metrics, for `makeflow metrics` and the
    report). `resources` says what one step needs, e.g. `{"cpus": 4, "mem_mb": 16000,
    "gpus": 1}` (admission, not a limit). `cache=False` never restores its outputs from
    the run cache (steps with side effects, or outputs not to be shared). `stage=` is
    accepted and ignored, for rules written when outputs were staged: steps always write
    their outputs in place now. `priority=N` settles which of two pattern rules that can
    make the same file makes it (the higher; 0 when not given), as Snakemake's `ruleorder`.
    `protected=True` makes the outputs read-only once the step has made them; a rerun
    still replaces them, and `makeflow clean` asks before it removes them.
    `temp=[...]` (some outputs) or `temp=True` (all) marks temporary outputs: deleted once
    every step of the build that reads them has finished, made again only when a step
    that reads them must run.

    `inputs` (or one named input) and any param may be a function of the wildcards
    (`lambda w: SHEET[w.sample]`), called when the graph is made. `checkpoint=True` marks
    a rule whose outputs decide the rest of the graph: functions that read them (through
    `glob_wildcards`, `open` and the like) wait until it has run (docs/dynamic.md).
    """
    where = _caller()
    del stage  # see the docstring
    options = {"default": default, "retries": retries, "timeout": timeout,
               "always": always, "max_age": max_age, "resources": resources,
               "metrics": metrics, "cache": cache, "priority": priority,
               "protected": protected, "temp": temp, "checkpoint": checkpoint}
    draft = Draft(name, inputs, outputs, shell, params, options, where)
    drafts.append(draft)
    return draft.attach


def _caller() -> str:
    """file:line of the code that declared the rule: the caller of `rule()`, or of the
    library function that called it when that function's module sets
    `__makeflow_factory__ = True` (the factories of makeflow_rules do), so an error points
    at the user's line rather than inside the library."""
    frame = sys._getframe(2)
    while frame.f_back is not None and frame.f_globals.get("__makeflow_factory__"):
        frame = frame.f_back
    return f"{frame.f_code.co_filename}:{frame.f_lineno}"


# Given a rule's label, where, function and params: the digest of its code and its params
# as canonical JSON (the loader's, so that this module stays plain data and checks).
Fingerprint = Callable[[str, str, Any, dict], tuple[str, str]]


def freeze(draft: Draft, root: str, fingerprint: Fingerprint | None = None) -> Rule:
    """Check a draft and turn it into a `Rule`; every mistake names the rule and its line."""
    where = _short_where(draft.where, root)
    name = draft.name
    if not name or not isinstance(name, str):
        raise UserError("a rule needs a name: rule(\"name\", ...)", where=where)
    if not RULE_NAME.fullmatch(name):
        raise UserError(
            f"rule name {name!r} may use only letters, digits, '_', '-' and '.'", where=where
        )
    label = f"rule {name}"
    dynamic = None
    raw_params = draft.params
    if has_functions(draft.inputs, draft.params):
        dynamic, inputs, raw_params = _split(draft.inputs, draft.params, label, where)
    else:
        inputs = _files(draft.inputs, "inputs", label, where)
    outputs = _files(draft.outputs, "outputs", label, where)
    if draft.shell is not None and draft.func is not None:
        raise UserError(f"{label} has both shell= and a function; keep one", where=where)
    if draft.shell is not None and not isinstance(draft.shell, str):
        raise UserError(f"{label}: shell= must be a string", where=where)
    if not outputs.paths and not inputs.paths and dynamic is None:
        raise UserError(
            f"{label} has neither inputs nor outputs, so it can never be built",
            where=where,
            hint="Give it outputs= (the files it makes) or inputs= (for an alias).",
        )
    if outputs.paths and draft.shell is None and draft.func is None:
        raise UserError(
            f"{label} has outputs but no shell= command and no function",
            where=where,
            hint="Add shell=\"...\" or use @rule(...) on a function.",
        )
    _check_wildcards(inputs, outputs, label, where)
    params = dict(raw_params or {})
    if params and not all(isinstance(k, str) for k in params):
        raise UserError(f"{label}: params= keys must be strings", where=where)
    options = _options(draft.options, label, where)
    options["metrics"] = _metrics(draft.options.get("metrics", ()), outputs, label, where)
    options["temp"] = _temp(draft.options.get("temp", ()), outputs, label, where)
    code, params_text = fingerprint(label, where, draft.func, params) if fingerprint else ("", "")
    if options["checkpoint"] and not outputs.paths:
        raise UserError(f"{label}: checkpoint=True needs outputs, which later functions read",
                        where=where)
    return _new_rule(name, inputs, outputs, where, draft, params, options, code, params_text,
                     dynamic)


def _new_rule(name: str, inputs: Files, outputs: Files, where: str, draft: Draft,
              params: dict, options: dict[str, Any], code: str, params_text: str,
              dynamic: Dynamic | None) -> Rule:
    """The `Rule` that `Rule(...)` would make, made without the frozen dataclass's
    `__init__`, which sets each of its 22 fields through `object.__setattr__` (2 of the 5
    us that checking one rule took, at 100,000 rules). The fields go in one by one, in
    their order, so the object keeps the compact dict whose keys a class's instances
    share (`dict.update` would give each rule a whole table: 2.5 times the memory).
    `is_alias` is filled in as its cached property would be on first use."""
    rule = object.__new__(Rule)
    f = rule.__dict__
    f["name"], f["inputs"], f["outputs"], f["where"] = name, inputs, outputs, where
    f["shell"], f["func"], f["params"] = draft.shell, draft.func, params
    f["default"], f["retries"] = options["default"], options["retries"]
    f["timeout"], f["always"] = options["timeout"], options["always"]
    f["max_age"], f["resources"] = options["max_age"], options["resources"]
    f["code"], f["params_text"], f["metrics"] = code, params_text, options["metrics"]
    f["cache"], f["priority"] = options["cache"], options["priority"]
    f["protected"], f["temp"] = options["protected"], options["temp"]
    f["checkpoint"], f["dynamic"] = options["checkpoint"], dynamic
    f["is_alias"] = draft.shell is None and draft.func is None
    return rule


def _split(inputs: Any, params: Any, label: str, where: str) -> tuple[Dynamic, Files, dict]:
    """A rule with functions: its functions apart, its fixed inputs (a named input given
    by a function has no paths yet) and its fixed params."""
    layout = None
    fixed = Files()
    if is_function(inputs):
        layout = ((None, inputs),)
    elif isinstance(inputs, Mapping) and any(is_function(v) for v in inputs.values()):
        items: list[tuple[str | None, Any]] = []
        for key, value in inputs.items():
            items.append((str(key), value if is_function(value)
                          else _files(value, "inputs", label, where).paths))
        layout = tuple(items)
        fixed = _files({k: () if is_function(v) else v for k, v in items},
                       "inputs", label, where)
    else:
        fixed = _files(inputs, "inputs", label, where)
    given = dict(params) if isinstance(params, Mapping) else params
    functions = tuple((str(k), v) for k, v in (given or {}).items() if is_function(v))
    if functions:
        given = {k: v for k, v in given.items() if not is_function(v)}
    return Dynamic(layout, functions), fixed, given


def _metrics(value: Any, outputs: Files, label: str, where: str) -> tuple[str, ...]:
    """The outputs marked as metrics; each must be one of the rule's outputs."""
    if not value:
        return ()
    paths = _files(value, "metrics", label, where).paths
    for path in paths:
        if path not in outputs.paths:
            raise UserError(
                f"{label}: metrics= names {path!r}, which is not one of its outputs",
                where=where,
                hint="List the metrics file in outputs= too, e.g. outputs=[\"model.pkl\", "
                "\"metrics.json\"], metrics=[\"metrics.json\"].")
    return paths


def _temp(value: Any, outputs: Files, label: str, where: str) -> tuple[str, ...]:
    """The temporary outputs: `True` for all, or a list of some of the rule's outputs."""
    if value == ():
        return ()
    if value is True:
        if not outputs.paths:
            raise UserError(f"{label}: temp=True, but it has no outputs", where=where)
        return outputs.paths
    if value is False or value is None:
        return ()
    paths = _files(value, "temp", label, where).paths
    for path in paths:
        if path not in outputs.paths:
            raise UserError(f"{label}: temp= names {path!r}, which is not one of its outputs",
                            where=where, hint="List the file in outputs= too, or give "
                            "temp=True to make every output temporary.")
    return paths


def _short_where(where: str, root: str) -> str:
    file, _, line = where.rpartition(":")
    return f"{_shown(file, root)}:{line}"


@functools.lru_cache(maxsize=64)
def _shown(file: str, root: str) -> str:
    """A rules file's name relative to the project, or in full when it lives elsewhere."""
    try:
        rel = posixpath.relpath(file, root)
    except ValueError:
        return file
    return file if rel.startswith("..") else rel


def _files(value: Any, what: str, label: str, where: str) -> Files:
    """Accept a string, a list of strings, or a dict of names to a string or list."""
    kind = type(value)  # the common cases first: an ABC isinstance() check is slow
    if kind is str:
        return Files((_clean_path(value, what, label, where),))
    if (kind is list or kind is tuple) and all(type(item) is str for item in value):
        return Files(tuple([_clean_path(item, what, label, where) for item in value]))
    if value is None:
        return Files()
    if isinstance(value, (str, bytes)) or hasattr(value, "__fspath__"):
        return Files((_clean_path(value, what, label, where),))
    if isinstance(value, Mapping):
        paths: list[str] = []
        names: list[tuple[str, int, int]] = []
        for key, item in value.items():
            start = len(paths)
            paths.extend(_files(item, what, label, where).paths)
            names.append((str(key), start, len(paths)))
        return Files(tuple(paths), tuple(names))
    try:
        items = list(value)
    except TypeError:
        raise UserError(
            f"{label}: {what}= must be a path, a list of paths or a dict of named paths, "
            f"not {type(value).__name__}",
            where=where,
        ) from None
    if all(type(item) is str for item in items):  # the common case, kept quick
        return Files(tuple([_clean_path(item, what, label, where) for item in items]))
    return Files(tuple(p for item in items for p in _files(item, what, label, where).paths))


files_of = _files  # for the resolver, which checks what an inputs function returns


_clean: dict[str, str] = {}  # paths already checked, for pipelines of 100,000 rules


def _clean_path(value: Any, what: str, label: str, where: str) -> str:
    if type(value) is str:
        if (value and value[0] not in "/. \t\n" and value[-1] != "/" and "//" not in value
                and "/." not in value and "\0" not in value):
            return value  # relative, and no empty, "." or ".." part: already normal
        known = _clean.get(value)
        if known is not None:
            return known
    path = value.decode() if isinstance(value, bytes) else str(value.__fspath__()) \
        if hasattr(value, "__fspath__") else value
    if not path.strip():
        raise UserError(f"{label}: an empty path in {what}=", where=where)
    if "\0" in path:
        raise UserError(f"{label}: {what}= has {path!r}, with a NUL byte, which no file "
                        "name can contain", where=where)
    if posixpath.isabs(path):
        raise UserError(
            f"{label}: {what}= has the absolute path {path!r}; paths are relative to the "
            "folder of Makeflow.py",
            where=where,
        )
    clean = posixpath.normpath(path)
    if clean == ".." or clean.startswith("../"):
        raise UserError(
            f"{label}: {what}= has {path!r}, which is outside the project folder", where=where
        )
    if clean == "." or clean.startswith(".makeflow/") or clean == ".makeflow":
        raise UserError(f"{label}: {what}= may not name {path!r}", where=where)
    if len(_clean) < 1_000_000:
        _clean[path] = clean
    return clean


def _check_constraint(constraint: str | None, path: str, label: str, where: str) -> None:
    if constraint is None:
        return
    if constraint == "":
        raise UserError(f"{label}: {path!r} has an empty wildcard pattern", where=where)
    try:
        re.compile(constraint)
    except re.error as exc:
        raise UserError(
            f"{label}: {path!r} has a wildcard pattern that is not a valid regular "
            f"expression ({exc})",
            where=where,
        ) from None


def wildcard_names(path: str) -> list[str]:
    return [m.group(1) for m in WILDCARD.finditer(path)]


def _check_wildcards(inputs: Files, outputs: Files, label: str, where: str) -> None:
    """Every output names the same wildcards, and inputs use no wildcard the outputs lack."""
    joined = "".join(inputs.paths + outputs.paths)  # one string: quicker to look through
    if "{" not in joined and "}" not in joined:
        return
    for path in (*inputs.paths, *outputs.paths):
        stripped = WILDCARD.sub("", path)
        if "{" in stripped or "}" in stripped:
            raise UserError(f"{label}: {path!r} has a malformed {{wildcard}}", where=where)
        for m in WILDCARD.finditer(path):
            _check_constraint(m.group(2), path, label, where)
    if not outputs.paths:
        wild = [p for p in inputs.paths if WILDCARD.search(p)]
        if wild:
            raise UserError(
                f"{label}: input {wild[0]!r} has a wildcard, but the rule has no outputs to "
                "take its value from",
                where=where,
                hint="List concrete files with expand(...) and glob_wildcards(...).",
            )
        return
    first = set(wildcard_names(outputs.paths[0]))
    for path in outputs.paths[1:]:
        if set(wildcard_names(path)) != first:
            raise UserError(
                f"{label}: outputs {outputs.paths[0]!r} and {path!r} name different wildcards",
                where=where,
            )
    for path in inputs.paths:
        extra = set(wildcard_names(path)) - first
        if extra:
            raise UserError(
                f"{label}: input {path!r} uses {{{sorted(extra)[0]}}}, which no output has, so "
                "its value could never be known",
                where=where,
            )

