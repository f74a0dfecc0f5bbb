"""makeflow's own settings: the `[makeflow]` table of `makeflow.toml`.

The rest of the file is the pipeline's `config`; this table is reserved for makeflow and is
the one place that parses it, so a new setting is one field and one line here. `--set`
does not change it (the command line has its own options for these).

    [makeflow]
    remote = "s3://bucket/makeflow"   # the shared cache (also --remote, MAKEFLOW_REMOTE)
    push = false                      # upload what each build made (also build --push)
    cache = true                      # the local run cache
    cache_dir = "~/.cache/makeflow"   # one cache for all of a user's projects
    cache_max_size = "20GB"           # trimmed after a build, least recently used first
    cache_link = false                # hard links instead of copies (see docs/cache.md)
    shell = "bash"                    # how shell steps run: SHELL -c "PREFIX<newline>COMMAND"
    shell_prefix = "set -euo pipefail;"
    executor = "local"                # or "dask" (docs/cluster.md)
    scheduler = "tcp://host:8786"     # a running Dask cluster's scheduler
    shared_fs = true                  # false: Dask workers share no disk (needs a remote)
    download = "targets"              # without a shared disk, which outputs come back: "all"
    keep_runs = 100                   # run history kept: builds (0 keeps all)...
    keep_days = 90                    # ...and days
    mlflow = "sqlite:///mlflow.db"    # log each build to MLflow (also --mlflow, MAKEFLOW_MLFLOW)
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from makeflow.errors import UserError

TABLE = "makeflow"
DEFAULT_SHELL = "bash"
DEFAULT_PREFIX = "set -euo pipefail;"
DEFAULT_CACHE_DIR = os.path.join(".makeflow", "cache")


@dataclass(frozen=True)
class Settings:
    remote: str | None = None
    push: bool = False
    cache: bool = True
    cache_dir: str | None = None
    cache_max_size: int | None = None  # bytes
    cache_link: bool = False
    shell: str = DEFAULT_SHELL
    shell_prefix: str = DEFAULT_PREFIX
    executor: str | None = None  # None: local, unless a scheduler is given
    scheduler: str | None = None
    shared_fs: bool = True  # see docs/cluster.md: False runs steps in scratch folders
    download: str = "targets"  # with shared_fs off: the requested targets' outputs, or "all"
    keep_runs: int | float | None = None  # run history kept (0 keeps all); None: default
    keep_days: int | float | None = None
    mlflow: str | None = None  # an MLflow tracking URI: each build is logged there

    def cache_root(self, project: Path) -> Path:
        """Where the local cache lives: `cache_dir` (MAKEFLOW_CACHE_DIR first), relative to
        the project, or `.makeflow/cache` in it."""
        chosen = os.environ.get("MAKEFLOW_CACHE_DIR") or self.cache_dir or DEFAULT_CACHE_DIR
        return project / Path(os.path.expanduser(chosen))


_KINDS = {"remote": str, "push": bool, "cache": bool, "cache_dir": str,
          "cache_max_size": (str, int), "cache_link": bool, "shell": str, "shell_prefix": str,
          "executor": str, "scheduler": str, "shared_fs": bool, "download": str,
          "keep_runs": (int, float), "keep_days": (int, float), "mlflow": str}
_CHOICES = {"executor": ("local", "dask"), "download": ("targets", "all")}
_EXAMPLES = {"shell": 'shell = "bash" (or "sh", "zsh")',
             "shell_prefix": 'shell_prefix = "set -euo pipefail;"',
             "remote": 'remote = "s3://bucket/prefix"',
             "mlflow": 'mlflow = "sqlite:///mlflow.db"',
             "cache_max_size": 'cache_max_size = "10GB"'}


def parse_settings(table: Any, where: str) -> Settings:
    """The `[makeflow]` table as Settings; a wrong key or value is a UserError."""
    if not isinstance(table, dict):
        raise UserError(f"[{TABLE}] must be a table of settings", where=where,
                        hint=f'For example:\n[{TABLE}]\nremote = "s3://bucket/prefix"')
    known = [f.name for f in fields(Settings)]
    values: dict[str, Any] = {}
    for key, value in table.items():
        if key not in known:
            raise UserError(f"[{TABLE}] has no setting {key!r}", where=where,
                            hint="Known settings: " + ", ".join(known) + ". The [makeflow] "
                            "table is reserved for makeflow; put pipeline values elsewhere.")
        kind = _KINDS[key]
        wrong = not isinstance(value, kind) or (kind is not bool and isinstance(value, bool))
        if key in ("keep_runs", "keep_days") and (wrong or value < 0):
            raise UserError(f"[{TABLE}] {key} = {value!r} is not a number >= 0", where=where,
                            hint=f"Set {key} to how many "
                            f"{'builds' if key == 'keep_runs' else 'days'} of run history to "
                            "keep (0 keeps all).")
        if key in _CHOICES and (wrong or value not in _CHOICES[key]):
            allowed = " or ".join(repr(c) for c in _CHOICES[key])
            raise UserError(f"[{TABLE}] {key} = {value!r} must be {allowed}", where=where)
        if wrong or (key == "shell" and not value.strip()):
            example = f" For example: {_EXAMPLES[key]}" if key in _EXAMPLES else ""
            raise UserError(f"[{TABLE}] {key} = {value!r} is not a valid value", where=where,
                            hint=f"{key} takes {_kind_name(kind)}.{example}")
        values[key] = value
    if "cache_max_size" in values:
        values["cache_max_size"] = parse_size(values["cache_max_size"],
                                              f"[{TABLE}] cache_max_size", where)
    return Settings(**values)


def _kind_name(kind: Any) -> str:
    if kind is bool:
        return "true or false"
    if kind == (int, float):
        return "a number"
    if kind is str:
        return "a non-empty string"
    return 'a size such as "10GB" or a number of bytes'


_UNITS = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
          "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40}


def parse_size(value: str | int, what: str, where: str | None = None) -> int:
    """A size in bytes from `10GB`, `500 MiB`, `1.5TB` or a plain number."""
    if isinstance(value, int) and value >= 0:
        return value
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*", str(value))
    unit = m.group(2).upper() if m else ""
    if not m or unit not in _UNITS:
        raise UserError(f"{what}: {value!r} is not a size", where=where,
                        hint='Write it as e.g. "10GB", "500MB", "2GiB" or a number of bytes.')
    return int(float(m.group(1)) * _UNITS[unit])
