"""Runs a `Makeflow.py` and collects its rules, turning its mistakes into clear errors."""

from __future__ import annotations

import contextlib
import re
import string
import sys
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from makeflow import gcpause
from makeflow.define import rules as rules_module
from makeflow.define import source
from makeflow.define.config import CONFIG_FILE as CONFIG_NAME
from makeflow.define.config import Shell, config, load_project
from makeflow.define.dynamic import Reads, recording
from makeflow.define.placeholders import substitute
from makeflow.define.rules import Fingerprint, Rule, freeze, wildcard_names
from makeflow.define.settings import Settings
from makeflow.errors import MakeflowError, UserError

RULES_FILE = "Makeflow.py"


@dataclass(frozen=True)
class RulesImage:
    """Exactly what a build loaded: the rules file's bytes, those of the project modules
    it reached, and the config. Workers load this, never the files as they are now, so a
    step runs the code its fingerprint describes, even after `Makeflow.py` changed or
    broke (as `makeflow watch` keeps the last good rules)."""

    file: str
    sources: dict[str, bytes]
    config: dict[str, Any]
    overrides: tuple[str, ...] = ()


@dataclass(frozen=True, eq=False)
class Pipeline:
    """A loaded rules file: its folder (where steps run), its rules and its config."""

    file: Path
    rules: tuple[Rule, ...]
    config: dict[str, Any] = field(default_factory=dict)
    overrides: tuple[str, ...] = ()
    sources: dict[str, bytes] = field(default_factory=dict)  # see RulesImage
    warnings: tuple[str, ...] = ()
    settings: Settings = field(default_factory=Settings)
    # what the rules file read as it loaded (a sample sheet): a kept graph of rules with
    # functions is used again only while it is unchanged (plan/graph_reads.py)
    reads: Reads | None = None

    @property
    def image(self) -> RulesImage:
        return RulesImage(str(self.file), self.sources, self.config, self.overrides)

    @property
    def shell(self) -> Shell:
        """How shell steps run, from the `shell` and `shell_prefix` settings."""
        return Shell.of(self.settings)

    @property
    def root(self) -> Path:
        return self.file.parent

    def rule(self, name: str) -> Rule | None:
        return next((r for r in self.rules if r.name == name), None)

    @property
    def default_rule(self) -> Rule | None:
        marked = [r for r in self.rules if r.default]
        return marked[0] if marked else (self.rules[0] if self.rules else None)


def find_rules_file(file: str | None, directory: str | None) -> Path:
    """`-f FILE` or `Makeflow.py` in `-C DIR` (default: the current folder)."""
    base = Path(directory) if directory else Path.cwd()
    if directory and not base.is_dir():
        raise UserError(f"-C {directory}: no such folder")
    path = base / (file or RULES_FILE)
    if not path.is_file():
        where = f"{base.resolve()}" if not file else None
        raise UserError(
            f"no rules file {path}" if file else f"no {RULES_FILE} in {where}",
            hint="Run makeflow in the folder of your Makeflow.py, or give -C DIR or -f FILE.",
        )
    return path.resolve()


def load(file: Path, overrides: list[str] | tuple[str, ...] = ()) -> Pipeline:
    """Read the config, run the rules file with the project folder as working directory,
    and fingerprint every Python step (a value that cannot be is a mistake, reported now)."""
    with gcpause.paused():
        return _load(Path(file).resolve(), overrides, None)


def load_image(image: RulesImage) -> Pipeline:
    """Load the rules a build loaded (in a worker): the same bytes and config, no digests.

    The project's modules stay importable from those bytes after loading, for steps that
    import them in their body."""
    with gcpause.paused():
        return _load(Path(image.file), image.overrides, image)


def _load(file: Path, overrides: list[str] | tuple[str, ...], image: RulesImage | None
          ) -> Pipeline:
    root = file.parent
    # a worker process gets the values the build read (its image); it needs no settings
    values, settings = ((image.config, Settings()) if image
                        else load_project(root, list(overrides)))
    sources = source.Sources(root, image.sources if image else None)
    source.purge(sources)
    importer = source.Importer(sources)
    before = dict(config)
    config.clear()
    config.update(values)
    rules_module.drafts.clear()
    sys.meta_path.insert(0, importer)
    try:
        # a worker that shares no disk with the build loads its image without the folder
        here = contextlib.nullcontext() if image and not root.is_dir() else contextlib.chdir(root)
        with here, _on_path(str(root)), recording(lookups=True) as reads:
            _execute(file, sources)
    except BaseException:
        config.clear()
        config.update(before)  # a watcher keeps running with the last good rules
        raise
    finally:
        if image is None:
            sys.meta_path.remove(importer)
    drafts = list(rules_module.drafts)
    rules_module.drafts.clear()
    warnings: list[str] = []
    fingerprint = None if image else _fingerprinter(sources, warnings)
    folder = str(root)
    rules = tuple([freeze(d, folder, fingerprint) for d in drafts])
    _check_unique(rules)
    for r in rules:
        _check_placeholders(r)
    return Pipeline(file, rules, values, tuple(overrides), sources.known, tuple(warnings),
                    settings, None if image else reads)


def _fingerprinter(sources: source.Sources, warnings: list[str]) -> Fingerprint:
    """What `freeze` calls for each rule: its code's digest and its params' canonical text.

    A rule with neither a function nor params has nothing to digest: a shell-only
    pipeline never imports the digest module nor makes a digester."""
    digester = None

    def fingerprint(label: str, where: str, func: Any, params: dict) -> tuple[str, str]:
        nonlocal digester
        if func is None and not params:
            return "", "{}"  # what the digest module gives for them
        from makeflow.define.digest import Digester, Unfingerprintable, describe, params_text

        if digester is None:
            digester = Digester(sources, config)
        try:
            code = digester.of_step(func, "") if func is not None else ""
            if func is not None and digester.read_config:
                warnings.append(
                    f"{label} reads config in its function, so any change to {CONFIG_NAME} or "
                    "--set reruns it; pass the values it uses through params= to rerun it only "
                    "when they change")
            return code, params_text(params, digester)
        except Unfingerprintable as exc:
            raise UserError(
                f"{label}: its function reaches {exc.path or 'a value'} ({describe(exc.value)}"
                f": {exc.why}), which makeflow cannot fingerprint stably",
                where=where,
                hint="Pass the value the step needs through params= (plain data such as "
                "numbers, strings, lists, dicts, sets and paths), or create it inside the "
                "step's function.",
            ) from None
        except RecursionError:
            raise UserError(f"{label}: its function reaches values nested too deeply to "
                            "fingerprint", where=where,
                            hint="Pass the data the step needs through params=.") from None

    return fingerprint


def _execute(file: Path, sources: source.Sources) -> None:
    try:
        data = sources.read(str(file))
        if data is None:
            raise UserError(f"cannot read {file.name}", where=file.name)
        _check_text(data, file)
        code = compile(data, str(file), "exec")
    except SyntaxError as exc:
        line = (exc.text or "").rstrip("\n")
        raise UserError(
            f"syntax error: {exc.msg}" + (f"\n    {line.strip()}" if line.strip() else ""),
            where=f"{file.name}:{exc.lineno}",
        ) from None
    except ValueError as exc:  # null bytes and the like
        raise UserError(f"cannot read {file.name}: {exc}", where=file.name) from None
    module = types.ModuleType("Makeflow")
    module.__file__ = str(file)
    sys.modules["Makeflow"] = module
    try:
        exec(code, module.__dict__)
    except MakeflowError as exc:
        if exc.where is None:
            exc.where = _user_line(exc, file)
        raise
    except SystemExit as exc:
        raise UserError(f"{file.name} called exit({exc.code})", where=file.name) from None
    except BaseException as exc:
        if isinstance(exc, KeyboardInterrupt):
            raise
        raise UserError(
            f"{type(exc).__name__}: {exc}", where=_user_line(exc, file),
            hint=f"The error happened while running {file.name}; fix it there.",
        ) from None


def _check_text(source: bytes, file: Path) -> None:
    """A NUL byte is no Python, and the compiler's own message has no line to show."""
    at = source.find(b"\0")
    if at >= 0:
        line = source.count(b"\n", 0, at) + 1
        column = at - (source.rfind(b"\n", 0, at) + 1) + 1
        raise UserError(f"a NUL byte at column {column}: {file.name} must be text",
                        where=f"{file.name}:{line}",
                        hint="Remove the byte (an editor that shows control characters "
                        "helps), or write it as \\x00 inside a string.")


def _user_line(exc: BaseException, file: Path) -> str:
    """file:line of the deepest frame in the rules file (or any file outside makeflow)."""
    import traceback  # only a failing rules file gets here

    package = str(Path(__file__).parent)
    best = None
    for frame in traceback.extract_tb(exc.__traceback__):
        if frame.filename == str(file):
            best = f"{file.name}:{frame.lineno}"
        elif best is None and not frame.filename.startswith(package):
            best = f"{frame.filename}:{frame.lineno}"
    return best or file.name


@contextlib.contextmanager
def _on_path(folder: str):
    """Let the rules file import modules that sit beside it."""
    sys.path.insert(0, folder)
    try:
        yield
    finally:
        with contextlib.suppress(ValueError):
            sys.path.remove(folder)


def _check_unique(rules: tuple[Rule, ...]) -> None:
    seen: dict[str, Rule] = {}
    for r in rules:
        if r.name in seen:
            raise UserError(
                f"two rules are named {r.name} (the other is at {seen[r.name].where})",
                where=r.where, hint="Rename one of them.",
            )
        seen[r.name] = r


def _check_placeholders(rule: Rule) -> None:
    """Fill a shell command with its own file names now, so a typo such as `{input}` is
    reported when the file loads, not when the step first runs. (A rule with functions
    is checked for each of its steps, when the graph is made: plan/dynamic.py.)"""
    if rule.shell is None or rule.dynamic is not None or _plain_placeholders(rule):
        return
    wildcards = {name: name for p in rule.outputs.paths for name in wildcard_names(p)}
    substitute(rule, rule.shell, rule.inputs, rule.outputs, wildcards)


_FORMAT = string.Formatter()
_INDEXED = re.compile(r"(inputs|outputs)\[(\d+)\]")


def _plain_placeholders(rule: Rule) -> bool:
    """Whether the command uses only `{inputs}`, `{outputs}` and indexes within range,
    which always fill: most commands, checked without filling them (100,000 rules load
    in a fraction of the time). Anything else is checked by filling it."""
    assert rule.shell is not None
    try:
        fields = _FORMAT.parse(rule.shell)
        for _, name, spec, conversion in fields:
            if name is None or name == "inputs" or name == "outputs":
                if spec or conversion:
                    return False
                continue
            indexed = _indexed.get(name)
            if indexed is None:
                indexed = _index_of(name)
            if indexed is False or spec or conversion:
                return False
            files = rule.inputs if indexed[0] else rule.outputs
            if indexed[1] >= len(files.paths):
                return False
    except ValueError:  # a lone brace: filling it gives the error to show
        return False
    return True


_indexed: dict[str, tuple[bool, int] | bool] = {}  # "inputs[0]": (True, 0); "x": False


def _index_of(name: str) -> tuple[bool, int] | bool:
    """`inputs[N]` or `outputs[N]` as (whether inputs, N); False for any other name."""
    m = _INDEXED.fullmatch(name)
    found = (m[1] == "inputs", int(m[2])) if m else False
    if len(_indexed) < 10_000:
        _indexed[name] = found
    return found
