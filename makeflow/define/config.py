"""The pipeline's configuration: `makeflow.toml` beside `Makeflow.py`, plus `--set` overrides."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from makeflow.errors import UserError

CONFIG_FILE = "makeflow.toml"


class Config(dict):
    """The `config` that `Makeflow.py` imports; the loader fills it before running the file.

    One object for the whole process, so `from makeflow import config` always sees the
    current values.
    """


config = Config()


def load_config(root: Path, overrides: list[str]) -> dict[str, Any]:
    """Read `makeflow.toml` (if any) and apply `KEY.PATH=VALUE` overrides on top."""
    path = root / CONFIG_FILE
    data: dict[str, Any] = {}
    if path.exists():
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise UserError(
                f"{CONFIG_FILE} is not valid TOML: {exc}", where=str(path),
                hint="Fix the file; see https://toml.io for the syntax.",
            ) from None
        except UnicodeDecodeError:
            raise UserError(f"{CONFIG_FILE} is not UTF-8 text", where=str(path)) from None
    for item in overrides:
        _apply(data, item)
    return data


def parse_value(text: str) -> Any:
    """A TOML literal (`0.3`, `true`, `"x"`, `[1, 2]`); anything else is taken as a string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def _apply(data: dict[str, Any], item: str) -> None:
    key, sep, raw = item.partition("=")
    key = key.strip()
    if not sep or not key:
        raise UserError(
            f"--set {item!r} is not of the form KEY=VALUE",
            hint="For example: --set train.alpha=0.3",
        )
    *parents, leaf = key.split(".")
    table = data
    for i, part in enumerate(parents):
        child = table.get(part)
        if not isinstance(child, dict):
            _unknown(".".join(parents[: i + 1]), table, key)
        table = child
    if leaf not in table:
        _unknown(key, table, key)
    table[leaf] = parse_value(raw.strip())


def _unknown(part: str, table: dict[str, Any], key: str) -> None:
    name = part.rsplit(".", 1)[-1]
    import difflib  # only when there is a mistake to suggest a fix for

    close = difflib.get_close_matches(name, [str(k) for k in table], n=1)
    hint = f"Did you mean {close[0]!r}?" if close else f"Add {key} to {CONFIG_FILE} first."
    raise UserError(f"--set {key}: {CONFIG_FILE} has no parameter {part!r}", hint=hint)
