"""Input and param functions: what a rule works out for each step when the graph is made.

`inputs=lambda w: SHEET[w.sample]` (or one named input, or a param, as a function) is kept
as a `Dynamic` beside the rule's fixed files; the resolver calls it with the step's
wildcards. A function with no parameters is called with none: the usual form for a rule
that reads what a checkpoint wrote (`inputs=lambda: expand(..., glob_wildcards(...))`).

What a function returns counts, not its code: the files it names are the step's inputs
(their paths and contents are in the step's fingerprint) and the values it gives are the
step's params. Editing a function so that it returns the same reruns nothing.
"""

from __future__ import annotations

import contextlib
import functools
import glob as globlib
import inspect
import os
import sys
import threading
import time
import types
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from makeflow.errors import UserError

FUNCTION_TYPES = (types.FunctionType, types.MethodType, functools.partial)


class WildcardValues(dict):
    """A step's wildcards as a function receives them: `w.sample` or `w["sample"]`."""

    def __getattr__(self, name: str) -> str:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(f"no wildcard {{{name}}}; this step has "
                                 f"{', '.join(self) or 'none'}") from None


@dataclass(frozen=True)
class Dynamic:
    """A rule's functions. `inputs` keeps the order the rule wrote: each item is a name
    (None for unnamed) with either fixed paths or a function; `params` maps each param
    given as a function to it."""

    inputs: tuple[tuple[str | None, tuple[str, ...] | Callable[..., Any]], ...] | None
    params: tuple[tuple[str, Callable[..., Any]], ...] = ()


def is_function(value: Any) -> bool:
    return isinstance(value, FUNCTION_TYPES)


def has_functions(inputs: Any, params: Any) -> bool:
    """Whether a rule's inputs or params use a function (the quick check, for every rule)."""
    kind = type(inputs)  # the common cases first: an ABC isinstance() check is slow
    if (kind is str or kind is list or kind is tuple) and params is None:
        return False
    if is_function(inputs):
        return True
    if isinstance(inputs, Mapping) and any(is_function(v) for v in inputs.values()):
        return True
    return isinstance(params, Mapping) and any(is_function(v) for v in params.values())


def takes_wildcards(func: Callable[..., Any]) -> bool:
    """Whether the function wants the wildcards (one parameter) or nothing."""
    try:
        signature = inspect.signature(func)
    except (TypeError, ValueError):
        return True
    positional = [p for p in signature.parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL)]
    return bool(positional)


def describe(wildcards: Mapping[str, str]) -> str:
    if not wildcards:
        return "(no wildcards)"
    return "with " + ", ".join(f"{k}={v!r}" for k, v in wildcards.items())


class NotWrittenYet(UserError):
    """A function failed opening a file that may not exist yet: if a checkpoint writes it,
    the step waits for the checkpoint (plan/dynamic.py) instead of failing."""

    def __init__(self, error: UserError, path: str):
        super().__init__(error.message, where=error.where, hint=error.hint)
        self.path = path


def call(func: Callable[..., Any], what: str, rule_name: str, where: str,
         wildcards: Mapping[str, str]) -> tuple[Any, list[str]]:
    """Call one of a rule's functions; its value and what it read on the way (paths it
    opened or listed, patterns it globbed), from which the resolver learns which
    checkpoint's output it depends on.

    A mistake inside the function is the user's: one paragraph naming the rule, what the
    function was for and the wildcards, never a traceback.
    """
    with _tracking() as read:
        try:
            value = func(WildcardValues(wildcards)) if takes_wildcards(func) else func()
        except UserError:
            raise
        except Exception as exc:
            error = UserError(
                f"rule {rule_name}: its {what} function failed {describe(wildcards)}: "
                f"{type(exc).__name__}: {exc}",
                where=_function_where(func, where),
                hint=f"Fix the function, or make sure it handles every value of the wildcards "
                     f"(rule {rule_name} is declared at {where}).",
            )
            missing = getattr(exc, "filename", None) if isinstance(exc, OSError) else None
            if isinstance(missing, str):
                read.append(_relative(missing))
                raise NotWrittenYet(error, _relative(missing)) from None
            raise error from None
    return value, read


def _function_where(func: Callable[..., Any], where: str) -> str:
    """The function's own file:line when it has one (a lambda on the rule's line has)."""
    code = getattr(getattr(func, "func", func), "__code__", None)
    if code is None:
        return where
    file = where.rpartition(":")[0]
    if code.co_filename.endswith(file) or file.endswith(code.co_filename):
        return f"{file}:{code.co_firstlineno}"
    return where


_local = threading.local()  # what the functions being called in this thread read
_READS = {"open", "os.listdir", "os.scandir", "glob.glob"}


@contextlib.contextmanager
def _tracking():
    """Collect what the functions called inside the block read: every path opened or
    listed (an audit hook sees `open()`, `Path.read_text()`, `os.scandir()`, ...) and
    every pattern given to `glob_wildcards`."""
    stack = getattr(_local, "stack", None)
    if stack is None:
        stack = _local.stack = []
        _install_hook()
    found: list[str] = []
    stack.append(found)
    _local.lookups = getattr(_local, "lookups", 0) + 1
    try:
        yield found
    finally:
        stack.pop()
        _local.lookups -= 1


def note_glob(pattern: str) -> None:
    """Called by `glob_wildcards`: tell every function being called what it globbed."""
    for found in getattr(_local, "stack", ()):
        found.append(pattern)


class Reads(NamedTuple):
    """What was read while `recording` ran: `entries` are ("open", path), ("list", path)
    and ("glob", pattern, recursive); `opaque` says something was read that cannot be
    named (another program was started, a folder was walked by its descriptor) or checked
    again later. `since_ns` is when recording began: a stat newer than that (less a
    second, for coarse clocks) may not show a change made in the same tick. `seen` holds,
    for each entry, what it found as the block ended (`seen_now`): what a later check
    compares with, taken before anything else could change it."""

    since_ns: int
    entries: list[tuple]
    opaque: list[str]
    seen: dict[tuple, tuple]


def seen_now(entry: tuple) -> tuple:
    """What one read finds now: ("stat", size, mtime_ns, inode) for a path (size ABSENT
    when it is missing); for a glob whose folders hold wildcards or that goes any depth,
    ("glob", sorted matches); ("listed",) for a glob of one folder, whose "list" entry
    says it all (a folder's mtime moves when an entry is added, removed or renamed)."""
    path = entry[1]
    if entry[0] == "glob":
        folder, name = os.path.split(path)
        if globlib.has_magic(folder) or "**" in name:
            return ("glob", tuple(sorted(globlib.glob(path, recursive=entry[2]))))
        if globlib.has_magic(name):
            return ("listed",)
    try:
        st = os.stat(path)
    except OSError:
        return ("stat", ABSENT, 0, 0)
    return ("stat", st.st_size, st.st_mtime_ns, st.st_ino)


ABSENT = -1


@contextlib.contextmanager
def recording(lookups: bool = False):
    """Collect every read seen in this thread while the block runs, whether by a rule's
    function or by the rules file as it loads: what a kept graph must check again.

    A path only looked up (a stat) is noted while a function is being called, or in the
    whole block with `lookups` (the rules file as it runs): makeflow's own stats while it
    resolves the graph are not reads the graph rests on."""
    journals = getattr(_local, "journals", None)
    if journals is None:
        journals = _local.journals = []
    _install_hook()
    found = Reads(time.time_ns(), [], [], {})
    journals.append(found)
    _local.lookups = getattr(_local, "lookups", 0) + lookups
    try:
        with _stats_seen():
            yield found
    finally:
        journals.pop()
        _local.lookups -= lookups
        for entry in dict.fromkeys(found.entries):
            found.seen[entry] = seen_now(entry)


_hooked: list[bool] = []
# programs started: what they read cannot be seen, so a graph resting on them is not kept
_STARTS = {"subprocess.Popen", "os.system", "os.exec", "os.spawn", "os.posix_spawn",
           "os.startfile"}
_WATCHED = frozenset({*_READS, *_STARTS, "glob.glob/2"})


def _install_hook() -> None:
    """One audit hook for the process, doing nothing unless a function is being called,
    or reads are being recorded, in its thread (an audit hook cannot be removed)."""
    if _hooked:
        return
    _hooked.append(True)

    sys.addaudithook(_seen)


def _seen(event: str, args: tuple) -> None:
    """One read or program start in this thread: told to the functions being called
    and to the journals being recorded."""
    if event not in _WATCHED:
        return
    if event in _READS:
        stack = getattr(_local, "stack", None)
        if stack and args and isinstance(args[0], (str, os.PathLike)):
            path = _relative(os.fspath(args[0]))
            for found in stack:
                found.append(path)
    journals = getattr(_local, "journals", None)
    if journals:
        _journal(journals, event, args)


# Python raises no audit event for os.stat, so `os.path.exists`, `Path.is_file` and the
# like would go unseen: while reads are recorded, these three are wrapped (process-wide,
# as the os module is; a call from a thread that records nothing goes straight through).
_STATS = ("stat", "lstat", "access")
_wrapping = threading.Lock()
_recorders: list[int] = [0]


@contextlib.contextmanager
def _stats_seen():
    with _wrapping:
        if _recorders[0] == 0:
            for name in _STATS:
                setattr(os, name, _watched(getattr(os, name)))
        _recorders[0] += 1
    try:
        yield
    finally:
        with _wrapping:
            _recorders[0] -= 1
            if _recorders[0] == 0:
                for name in _STATS:
                    setattr(os, name, getattr(os, name).__wrapped__)


def _watched(real: Callable[..., Any]) -> Callable[..., Any]:
    """`real`, telling what it looked up as an `open` of the path (what a later check
    compares: the file's stat, or that it is still missing)."""
    @functools.wraps(real)
    def looked_up(path: Any, *args: Any, **kwargs: Any) -> Any:
        if getattr(_local, "lookups", 0) and not getattr(_local, "looking", False):
            _local.looking = True
            try:
                if kwargs.get("dir_fd") is not None:
                    _seen("os.scandir", (None,))  # relative to a descriptor: opaque
                elif isinstance(path, (str, bytes, os.PathLike)):
                    _seen("open", (os.fsdecode(path),))
            finally:
                _local.looking = False
        return real(path, *args, **kwargs)
    return looked_up


def _journal(journals: list[Reads], event: str, args: tuple) -> None:
    """Note one read in every journal open in this thread."""
    entry, opaque = None, None
    if event in _STARTS:
        opaque = f"a program was started ({event})"
    elif event == "glob.glob/2":
        if len(args) > 2 and (args[2] is not None or args[3] is not None):
            opaque = "glob with root_dir or dir_fd"
    elif not args or not isinstance(args[0], (str, bytes, os.PathLike)):
        if event != "open":  # a descriptor opened again was seen opened by its path
            opaque = f"{event} of a descriptor"
    else:
        path = os.fsdecode(args[0])
        if event == "glob.glob":
            entry = ("glob", path, bool(args[1]) if len(args) > 1 else False)
        else:
            entry = ("open" if event == "open" else "list", _relative(path or "."))
    for reads in journals:
        if entry is not None:
            reads.entries.append(entry)
        if opaque is not None:
            reads.opaque.append(opaque)


def _relative(path: str) -> str:
    """A path as the rules name it: relative to the working folder (the project's, while
    the graph is made)."""
    if os.path.isabs(path):
        path = os.path.relpath(path)
    return os.path.normpath(path).replace(os.sep, "/")
