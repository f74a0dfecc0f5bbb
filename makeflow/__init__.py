"""makeflow: a Make-like build system for data artifacts.

The public API, for `Makeflow.py` files and for programs that drive builds.
"""

from makeflow.define.config import config
from makeflow.define.loader import Pipeline, load
from makeflow.define.patterns import expand, glob_wildcards
from makeflow.define.rules import rule
from makeflow.errors import BuildFailed, MakeflowError, Skip, StepError, UserError
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
