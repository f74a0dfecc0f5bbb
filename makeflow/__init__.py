"""makeflow: a Make-like build system for data artifacts.

The public API, for `Makeflow.py` files and for programs that drive builds.

What a rules file imports (`rule`, `expand`, `config`, ...) loads at once; the names that
drive builds load their modules on first use (PEP 562 `__getattr__`), so a process that
only runs a rules file (a worker) does not import the planner and the runner.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from makeflow.define.config import config
from makeflow.define.patterns import expand, glob_wildcards
from makeflow.define.rules import rule
from makeflow.errors import BuildFailed, MakeflowError, Skip, StepError, UserError

if TYPE_CHECKING:
    from makeflow.define.loader import Pipeline, load
    from makeflow.run.build import build, status
    from makeflow.run.outcome import BuildOptions, BuildResult

__version__ = "0.1.0"

__all__ = [
    "BuildFailed",
    "BuildOptions",
    "BuildResult",
    "MakeflowError",
    "Pipeline",
    "Skip",
    "StepError",
    "UserError",
    "build",
    "config",
    "expand",
    "glob_wildcards",
    "load",
    "rule",
    "status",
]

_LAZY = {  # name: the module that defines it
    "Pipeline": "makeflow.define.loader",
    "load": "makeflow.define.loader",
    "build": "makeflow.run.build",
    "status": "makeflow.run.build",
    "BuildOptions": "makeflow.run.outcome",
    "BuildResult": "makeflow.run.outcome",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'makeflow' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # looked up once
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
