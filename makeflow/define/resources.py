"""What one step of a rule needs to run: CPUs, memory and GPUs (`resources=` on a rule).

Plain data checked when the rules load. The executors turn it into admission: the local
one counts CPUs against the `-j` slots and memory and GPUs against the machine, a cluster
asks its workers for them. Resources never make a step stale.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

from makeflow.errors import UserError

KINDS = ("cpus", "mem_mb", "gpus")


class Resources(NamedTuple):
    """A step's needs; the default (one CPU, nothing else) is what a rule without
    `resources=` asks for. `declared` names the kinds the rule gave, which a cluster's
    workers must offer."""

    cpus: int = 1
    mem_mb: float = 0
    gpus: int = 0
    declared: tuple[str, ...] = ()

    @property
    def plain(self) -> bool:
        """One CPU and nothing else: such steps may queue up in an executor."""
        return self.cpus == 1 and not self.mem_mb and not self.gpus

    def asked(self) -> dict[str, float]:
        """The declared kinds and their amounts, as a cluster's worker resources."""
        return {kind: getattr(self, kind) for kind in self.declared}

    def describe(self) -> str:
        shown = self.declared or ("cpus",)
        return ", ".join(f"{kind}={_number(getattr(self, kind))}" for kind in shown)


DEFAULT = Resources()


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def parse_resources(value: Any, label: str, where: str) -> Resources:
    """`resources={"cpus": 4, "mem_mb": 16000, "gpus": 1}` checked; a mistake names the rule."""
    if value is None:
        return DEFAULT
    if not isinstance(value, Mapping):
        raise UserError(f"{label}: resources= must be a dict such as "
                        f'{{"cpus": 2, "mem_mb": 4000}}, not {type(value).__name__}', where=where)
    unknown = [str(k) for k in value if k not in KINDS]
    if unknown:
        raise UserError(f"{label}: resources= has {unknown[0]!r}, which makeflow does not know",
                        where=where, hint="Use cpus, mem_mb and gpus.")
    amounts = {kind: _amount(value[kind], kind, label, where) for kind in KINDS if kind in value}
    if amounts.get("cpus", 1) < 1:
        raise UserError(f"{label}: resources= asks for cpus={amounts['cpus']}; a step needs "
                        "at least one", where=where)
    declared = tuple(kind for kind in KINDS if kind in amounts)
    return Resources(**{k: v for k, v in amounts.items()}, declared=declared)


def _amount(value: Any, kind: str, label: str, where: str) -> float:
    whole = kind != "mem_mb"
    ok = isinstance(value, int | float) and not isinstance(value, bool) and value >= 0
    if ok and whole and not float(value).is_integer():
        ok = False
    if not ok:
        what = "a whole number" if whole else "a number of megabytes"
        raise UserError(f"{label}: resources= {kind}={value!r} must be {what} >= 0",
                        where=where)
    return int(value) if whole else float(value)
