"""How a factory in this package declares its rule: through `makeflow.rule`, with every
argument that shapes the outputs in `params=`, so the step's fingerprint covers it.

A factory's step function is a module-level function (its code is fingerprinted like any
other step's); what varies between rules made by one factory travels in the parameters,
never in a closure, whose captured values a code digest would not see.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any

from makeflow import UserError, rule

# makeflow's `rule()` points its errors at the first caller outside this package.
__makeflow_factory__ = True

# The options a factory passes on to rule(): all of its keywords but what the factory sets
# itself, and stage= (accepted by rule() for old rules, and meaningless now).
RULE_OPTIONS = frozenset(
    name for name, p in inspect.signature(rule).parameters.items()
    if p.kind is p.KEYWORD_ONLY and name not in ("inputs", "outputs", "shell", "params", "stage")
)


def declare(factory: str, name: str, func: Callable[..., Any], *, inputs: Any, outputs: Any,
            params: Mapping[str, Any], options: Mapping[str, Any]) -> Callable[..., Any]:
    """Declare rule `name` running `func`; `options` are the caller's extra rule options."""
    if not isinstance(name, str) or not name:
        raise UserError(
            f"{factory}() needs the rule's name first, e.g. {factory}(\"fetch_data\", ...)"
        )
    unknown = sorted(set(options) - RULE_OPTIONS)
    if unknown:
        raise UserError(
            f"{factory}({name!r}) got an unknown option {unknown[0]}=",
            hint=f"Options passed on to the rule: {', '.join(sorted(RULE_OPTIONS))}.",
        )
    return rule(name, inputs=inputs, outputs=outputs, params=dict(params), **options)(func)


def single_path(factory: str, name: str, what: str, value: Any) -> str:
    """A one-file argument (`output=`, `archive=`...) as a string, or a clear error."""
    if isinstance(value, str) and value:
        return value
    if hasattr(value, "__fspath__"):
        return str(value.__fspath__())
    raise UserError(
        f"{factory}({name!r}): {what}= must be one path (a string), not {type(value).__name__}"
    )


def suffix(path: str) -> str:
    """The format-giving suffix of a path, lower case: '.parquet', '.tar.gz', '.csv'."""
    base = path.rsplit("/", 1)[-1].lower()
    for double in (".tar.gz", ".tar.bz2", ".tar.xz"):
        if base.endswith(double):
            return double
    dot = base.rfind(".")
    return base[dot:] if dot > 0 else ""
