"""The version that outside code counts by: the Python version for the standard library,
the installed distribution's for a package. Found once per process per module."""

from __future__ import annotations

import functools
import os
import sys
from pathlib import Path


@functools.cache
def version_of(top: str) -> str:
    """`python3.11` for the standard library; for a package, its distribution's version
    ('?' when none is installed). Never what an imported module says (whether it is
    imported differs between processes, and the digest must not), except for makeflow,
    always imported, whose version is known without importing `importlib.metadata`."""
    if top in sys.stdlib_module_names or top in ("builtins", "__main__"):
        return f"python{sys.version_info[0]}.{sys.version_info[1]}"
    if top in ("makeflow", "makeflow_rules"):
        return f"makeflow {getattr(sys.modules.get('makeflow'), '__version__', '?')}"
    from importlib import metadata

    for name in (top, top.replace("_", "-")):
        try:
            return f"{name} {metadata.version(name)}"
        except (metadata.PackageNotFoundError, ValueError):
            continue
    try:
        return _installed_version(top)
    except (OSError, ImportError, ValueError):
        return "?"


def _installed_version(top: str) -> str:
    """The version of the distribution that installed the module `top` (`sklearn` is
    scikit-learn's), found among the distributions beside it: reading every installed
    distribution's file list costs a third of a second; this, a few milliseconds."""
    import importlib.util
    from importlib import metadata

    spec = importlib.util.find_spec(top)
    if spec is None or not spec.origin or not os.path.isabs(spec.origin):
        return "?"
    site = os.path.dirname(spec.origin)
    if spec.submodule_search_locations is not None:
        site = os.path.dirname(site)
    dists = [metadata.PathDistribution(Path(site, entry)) for entry in sorted(os.listdir(site))
             if entry.endswith(".dist-info")]
    found = [d for d in dists if top in (d.read_text("top_level.txt") or "").split()]
    if not found:  # no top_level.txt (most wheels now): search their file lists
        marks = (f"{top}/", f"{top}.py,", f"{top}.")
        found = [d for d in dists if any(("\n" + (d.read_text("RECORD") or "")).count("\n" + m)
                                         for m in marks)]
    found = [f"{d.metadata['Name']} {d.version}" for d in found]
    return ",".join(found) or "?"
