"""Ready-made steps for Makeflow.py files: step functions, rule factories and helpers.

Each name is imported from its module on first use, and each module imports its heavy
libraries (pyarrow, duckdb, matplotlib, scikit-learn, nbclient) only inside the step that
needs them, so `import makeflow_rules` costs next to nothing and `makeflow status` stays
quick. The optional libraries come with extras: `pip install 'makeflow[parquet]'` and
the like; docs/rules.md lists every entry.
"""

from __future__ import annotations

import importlib
from typing import Any

_HOMES = {
    "copy_file": "files",
    "concat": "files",
    "metrics_gate": "gates",
    "download": "downloads",
    "UNPINNED": "downloads",
    "extract": "archives",
    "convert": "tables",
    "sql": "queries",
    "notebook": "notebooks",
    "new_figure": "plots",
    "save_figure": "plots",
    "stable_figure": "plots",
    "train_model": "learn",
    "evaluate_model": "learn",
    "render": "reports",
}

__all__ = sorted(_HOMES)


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'makeflow_rules' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{home}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_HOMES))
