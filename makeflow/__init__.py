"""makeflow: a Make-like build system for data artifacts.

The public API, for `Makeflow.py` files and for programs that drive builds.
"""

from .build import BuildOptions, BuildResult, build, status
from .config import config
from .errors import BuildFailed, MakeflowError, StepError, UserError
from .loader import Pipeline, load
from .patterns import expand, glob_wildcards
from .rules import rule

__version__ = "0.1.0"

__all__ = [
    "BuildFailed",
    "BuildOptions",
    "BuildResult",
    "MakeflowError",
    "Pipeline",
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
