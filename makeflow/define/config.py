"""The pipeline's configuration: `makeflow.toml` beside `Makeflow.py`, plus `--set` overrides."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from makeflow.define.settings import (
    DEFAULT_PREFIX,
    DEFAULT_SHELL,
    TABLE,
    Settings,
    parse_settings,
)
from makeflow.errors import UserError

CONFIG_FILE = "makeflow.toml"
SETTINGS = TABLE  # the table of makeflow's own settings; --set leaves it alone


@dataclass(frozen=True)
class Shell:
    """How shell steps run: `program -c "prefix<newline>command"`.

    By default bash with `set -euo pipefail`, so a command fails when any of its lines or
    any stage of a pipeline fails, or when it reads an unset variable, as Snakemake does.
    """

    program: str = DEFAULT_SHELL
    prefix: str = DEFAULT_PREFIX

    @classmethod
    def of(cls, settings: Settings) -> Shell:
        """The shell the `shell` and `shell_prefix` settings name."""
        return cls(settings.shell.strip(), settings.shell_prefix)


class Config(dict):
    """The `config` that `Makeflow.py` imports; the loader fills it before running the file.

    One object for the whole process, so `from makeflow import config` always sees the
    current values.
    """


config = Config()


def load_config(root: Path, overrides: list[str]) -> dict[str, Any]:
    """Read `makeflow.toml` (if any) and apply `KEY.PATH=VALUE` overrides on top."""
    return load_project(root, overrides)[0]


def load_project(root: Path, overrides: list[str]) -> tuple[dict[str, Any], Settings]:
    """The pipeline's config values with `--set` overrides applied, and makeflow's own
    settings from the `[makeflow]` table, which the config does not show and `--set`
    does not touch."""
    path = root / CONFIG_FILE
    data = _read(path)
    settings = parse_settings(data.pop(TABLE, {}), str(path))
    for item in overrides:
        _apply(data, item)
    return data, settings


def _read(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = {}
    if path.exists():
        import tomllib  # here: most projects have no config file, and it takes ~10 ms

        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise UserError(
                f"{CONFIG_FILE} is not valid TOML: {exc}", where=str(path),
                hint="Fix the file; see https://toml.io for the syntax.",
            ) from None
        except UnicodeDecodeError:
            raise UserError(f"{CONFIG_FILE} is not UTF-8 text", where=str(path)) from None
        except IsADirectoryError:
            raise UserError(f"{CONFIG_FILE} is a folder; makeflow reads its config from a "
                            "file of that name", where=str(path),
                            hint="Rename the folder, or make it a TOML file.") from None
        except OSError as exc:
            raise UserError(f"cannot read {CONFIG_FILE}: {exc.strerror}",
                            where=str(path)) from None
    return data


_NOT_TOML = object()


def parse_value(text: str, like: Any = _NOT_TOML) -> Any:
    """A TOML literal (`0.3`, `true`, `"x"`, `[1, 2]`); anything else is taken as a string.

    With `like` (the value in the file), the value keeps its type: text for a string
    (`--set name=123` gives "123"), a float for an integer given to a float; any other
    mismatch raises TypeError naming the type expected.
    """
    import tomllib  # see _read

    try:
        value = tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        value = _NOT_TOML
    if like is _NOT_TOML:
        return text if value is _NOT_TOML else value
    if isinstance(like, str):
        return value if isinstance(value, str) else text
    if isinstance(like, float) and type(value) is int:
        return float(value)
    if value is _NOT_TOML or _toml_type(value) != _toml_type(like):
        raise TypeError(_toml_type(like))
    return value


def _toml_type(value: Any) -> str:
    """The TOML name of a value's type, as the spec spells it."""
    names = ((bool, "boolean"), (int, "integer"), (float, "float"), (str, "string"),
             (list, "array"), (dict, "table"))
    return next((name for kind, name in names if isinstance(value, kind)), "date or time")


def _apply(data: dict[str, Any], item: str) -> None:
    key, sep, raw = item.partition("=")
    key = key.strip()
    if not sep or not key:
        raise UserError(
            f"--set {item!r} is not of the form KEY=VALUE",
            hint="For example: --set train.alpha=0.3",
        )
    *parents, leaf = key.split(".")
    if (parents or [leaf])[0] == TABLE:
        raise UserError(
            f"--set {key}: the [{TABLE}] table holds makeflow's own settings, which --set "
            "does not change",
            hint="Use the command's options instead (--remote URL, build --push), the "
            "environment (MAKEFLOW_REMOTE, MAKEFLOW_CACHE_DIR), or edit makeflow.toml.",
        )
    table = data
    for i, part in enumerate(parents):
        child = table.get(part)
        if not isinstance(child, dict):
            _unknown(".".join(parents[: i + 1]), table, key)
        table = child
    if leaf not in table:
        _unknown(key, table, key)
    try:
        table[leaf] = parse_value(raw.strip(), table[leaf])
    except TypeError as exc:
        expected = str(exc)
        raise UserError(
            f"--set {key}: {key} is {_a(expected)} {expected} in {CONFIG_FILE} "
            f"(now {_shown(table[leaf])}), and {raw.strip()!r} is not one",
            hint=f"Give {_a(expected)} {expected} as a TOML literal, e.g. "
            f"--set {key}={_shown(table[leaf])}.") from None


def _a(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def _shown(value: Any) -> str:
    """A value as a TOML literal, as the user would type it after --set."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {_shown(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_shown(v) for v in value) + "]"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return str(value)


def _unknown(part: str, table: dict[str, Any], key: str) -> None:
    name = part.rsplit(".", 1)[-1]
    import difflib  # only when there is a mistake to suggest a fix for

    close = difflib.get_close_matches(name, [str(k) for k in table], n=1)
    hint = f"Did you mean {close[0]!r}?" if close else f"Add {key} to {CONFIG_FILE} first."
    raise UserError(f"--set {key}: {CONFIG_FILE} has no parameter {part!r}", hint=hint)

