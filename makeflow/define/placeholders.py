"""Filling a shell command's placeholders: every value shell-quoted, whatever the field says.

`{inputs}`, `{outputs}` (all paths, space-separated), `{inputs[0]}`, `{inputs.NAME}`,
`{params.NAME}` and `{wildcards.NAME}` take a format spec (`{params.n:03d}`, applied to the
value before it is quoted) and a conversion (`!s`, `!r`, `!a`, applied to the value, the
result quoted as one word). The filling goes through one `string.Formatter` whose
`format_field` quotes every field it writes, so no spec, conversion or attribute can put
an unquoted value into a command.
"""

from __future__ import annotations

import shlex
import string
from collections.abc import Mapping
from typing import Any

from makeflow.define.recipe import Named, Values
from makeflow.define.rules import Files, Rule
from makeflow.errors import UserError

PLACEHOLDER_ERRORS = (KeyError, AttributeError, IndexError, ValueError, TypeError)


class _Converted(str):
    """A value after `!s`, `!r` or `!a`: one word, even when the value was a list."""


class ShellFormatter(string.Formatter):
    """str.format's rules, with every field shell-quoted after its spec is applied."""

    def convert_field(self, value: Any, conversion: str | None) -> Any:
        if conversion is None:
            return value
        return _Converted(super().convert_field(value, conversion))

    def format_field(self, value: Any, format_spec: str) -> str:
        if isinstance(value, (list, tuple)) and not isinstance(value, _Converted):
            return " ".join(shlex.quote(format(item, format_spec)) for item in value)
        return shlex.quote(format(value, format_spec))


_FORMATTER = ShellFormatter()


def shell_command(template: str, inputs: Files, outputs: Files, params: Mapping[str, Any],
                  wildcards: Mapping[str, str]) -> str:
    """The command with its placeholders filled, each value quoted.

    Raises KeyError, AttributeError, IndexError, ValueError or TypeError for a placeholder
    that cannot be filled; the caller names the rule.
    """
    return _FORMATTER.vformat(template, (), {
        "inputs": Named(inputs.paths, inputs.names),
        "outputs": Named(outputs.paths, outputs.names),
        "params": Values(params),
        "wildcards": Values(wildcards),
    })


def substitute(rule: Rule, template: str, inputs: Files, outputs: Files,
               wildcards: Mapping[str, str]) -> str:
    """`shell_command`, with a mistake reported as the rule's."""
    try:
        return shell_command(template, inputs, outputs, rule.params, wildcards)
    except PLACEHOLDER_ERRORS as exc:
        raise UserError(
            f"rule {rule.name}: its shell command has a placeholder that cannot be filled "
            f"({_explain(exc)})",
            where=rule.where,
            hint="Use {inputs}, {outputs}, {inputs[0]}, {inputs.NAME}, {params.NAME} or "
            "{wildcards.NAME} (wildcards are text: a spec such as :03d needs a parameter); "
            "write a literal brace as {{ or }}.",
        ) from None


def _explain(exc: Exception) -> str:
    text = str(exc)
    if isinstance(exc, TypeError) and "indices must be integers" in text:
        text += "; name a file with {inputs.NAME}, not {inputs[NAME]}"
    return f"{type(exc).__name__}: {text}"
