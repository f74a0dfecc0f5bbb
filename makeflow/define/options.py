"""A rule's options (`retries=`, `timeout=`, `priority=`, ...) checked and made plain.

Apart from the rules module because most rules give no option at all, which takes one
comparison with the defaults, and the checks of each option are only for the others.
"""

from __future__ import annotations

import re
from typing import Any

from makeflow.define.resources import parse_resources
from makeflow.errors import UserError


def checked(options: dict[str, Any], label: str, where: str) -> dict[str, Any]:
    """The options checked; most rules give none, which is one comparison (== alone would
    take `retries=False` for 0, so the types of the numbers are compared too)."""
    if (options == DEFAULTS and type(options["retries"]) is int
            and type(options["priority"]) is int):
        return dict(_FROZEN_DEFAULTS)
    return _checked_options(options, label, where)


def _checked_options(options: dict[str, Any], label: str, where: str) -> dict[str, Any]:
    retries = options["retries"]
    if not isinstance(retries, int) or isinstance(retries, bool) or retries < 0:
        raise UserError(f"{label}: retries= must be a whole number >= 0, not {retries!r}",
                        where=where)
    priority = options.get("priority", 0)
    if not isinstance(priority, int) or isinstance(priority, bool):
        raise UserError(f"{label}: priority= must be a whole number, not {priority!r}",
                        where=where, hint="Give the rule that should win a higher number, "
                        "e.g. priority=1.")
    return {
        "default": bool(options["default"]),
        "cache": bool(options["cache"]),
        "checkpoint": bool(options["checkpoint"]),
        "retries": retries,
        "priority": priority,
        "protected": bool(options.get("protected", False)),
        "timeout": _duration(options["timeout"], "timeout", label, where),
        "always": bool(options["always"]),
        "max_age": _duration(options["max_age"], "max_age", label, where),
        "resources": parse_resources(options["resources"], label, where),
    }


DURATION = re.compile(r"(?:(\d+(?:\.\d+)?)d)?(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?"
                      r"(?:(\d+(?:\.\d+)?)s)?")


def parse_duration(value: float | str) -> float:
    """Seconds from a number or a text such as "90s", "10m", "24h", "7d" or "1h30m"."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    text = str(value).strip().replace(" ", "")
    m = DURATION.fullmatch(text)
    if not text or m is None or not any(m.groups()):
        raise ValueError(value)
    days, hours, minutes, seconds = (float(g) if g else 0.0 for g in m.groups())
    return days * 86400 + hours * 3600 + minutes * 60 + seconds


DEFAULTS = {"default": False, "retries": 0, "timeout": None, "always": False,
                    "max_age": None, "resources": None, "metrics": (), "cache": True,
                    "priority": 0, "protected": False, "temp": (), "checkpoint": False}


def _duration(value: Any, what: str, label: str, where: str) -> float | None:
    if value is None:
        return None
    try:
        seconds = parse_duration(value)
    except (ValueError, TypeError):
        seconds = -1.0
    if seconds <= 0:
        raise UserError(
            f"{label}: {what}={value!r} is not a duration",
            where=where, hint='Give seconds as a number, or a text like "90s", "10m", "24h", "7d".',
        )
    return seconds


_FROZEN_DEFAULTS = _checked_options(DEFAULTS, "", "")
