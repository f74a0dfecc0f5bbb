"""Metrics files: read JSON, YAML, CSV or TSV into flat `{"a.b": value}` dicts, from the
working tree or as committed in git, and compare two sets of them.

A rule marks some of its outputs as metrics (`metrics=["metrics.json"]`); the build
records their values in the run history, `makeflow metrics` shows them, and
`makeflow metrics diff` compares two builds or two git revisions.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from makeflow.errors import UserError

Flat = dict[str, Any]


def parse(path: str, data: bytes) -> Flat:
    """The metrics in `data`, the content of `path` (its extension says the format)."""
    text = data.decode("utf-8-sig", errors="replace")
    suffix = Path(path).suffix.lower()
    try:
        if suffix in (".yaml", ".yml"):
            value = _yaml(path, text)
        elif suffix in (".csv", ".tsv"):
            return _table(text, "\t" if suffix == ".tsv" else ",")
        else:
            value = json.loads(text)
    except ValueError as exc:  # csv.Error is one too, see _table
        raise UserError(f"metrics file {path} cannot be read: {exc}",
                        hint="Metrics files are JSON, YAML, or CSV/TSV with a header row.") \
            from None
    return flatten(value)


def flatten(value: Any, prefix: str = "") -> Flat:
    """Nested keys joined with dots (`{"a": {"b": 1}}` -> `{"a.b": 1}`); list items by index."""
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    else:
        return {prefix or "value": value}
    flat: Flat = {}
    for key, item in items:
        flat.update(flatten(item, f"{prefix}.{key}" if prefix else str(key)))
    return flat


def _yaml(path: str, text: str) -> Any:
    try:
        import yaml  # PyYAML, only for YAML metrics
    except ImportError:
        raise UserError(f"metrics file {path} is YAML, and PyYAML is not installed",
                        hint="Install it with: pip install 'makeflow[yaml]' (or pyyaml), "
                        "or write the metrics as JSON.") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ValueError(str(exc).replace("\n", " ")) from None


def _table(text: str, delimiter: str) -> Flat:
    """One row: a key per column. Several rows: `LABEL.column` when the first column holds
    labels, else `ROW.column` numbered from 0."""
    import csv  # csv and subprocess load only where a metrics file needs them: a build
    import io  # imports this module, and a no-op build should not pay for them

    try:
        rows = list(csv.DictReader(io.StringIO(text), delimiter=delimiter))
    except csv.Error as exc:
        raise ValueError(str(exc)) from None
    if not rows:
        return {}
    columns = list(rows[0])
    if len(rows) == 1:
        return {c: _number(rows[0][c]) for c in columns}
    first = columns[0]
    labelled = all(not isinstance(_number(r[first]), int | float) for r in rows)
    flat: Flat = {}
    for i, row in enumerate(rows):
        name = row[first] if labelled else str(i)
        for c in columns[1:] if labelled else columns:
            flat[f"{name}.{c}"] = _number(row[c])
    return flat


def _number(text: Any) -> Any:
    if not isinstance(text, str):
        return text
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def read_current(root: Path, paths: list[str]) -> dict[str, Flat]:
    """The metrics files as they are now; missing ones are left out."""
    found = {}
    for path in paths:
        try:
            found[path] = parse(path, (root / path).read_bytes())
        except FileNotFoundError:
            continue
    return found


def read_committed(root: Path, revision: str, paths: list[str]) -> dict[str, Flat]:
    """The metrics files as committed in `revision` (`git show REV:./path`)."""
    import subprocess

    found = {}
    for path in paths:
        try:
            done = subprocess.run(["git", "show", f"{revision}:./{path}"], cwd=root,
                                  capture_output=True, timeout=60)
        except FileNotFoundError:
            raise UserError("git is not installed, so no revision can be read",
                            hint="Compare two builds instead: makeflow metrics diff RUN RUN")\
                from None
        if done.returncode == 0:
            found[path] = parse(path, done.stdout)
        elif not _missing_path(done.stderr):
            message = done.stderr.decode(errors="replace").strip().splitlines()
            raise UserError(f"git cannot read revision {revision!r} in {root}: "
                            f"{message[-1] if message else 'unknown error'}",
                            hint="Give a commit, branch or tag (e.g. HEAD~1), or a run id "
                            "from `makeflow runs`.")
    return found


def _missing_path(stderr: bytes) -> bool:
    text = stderr.decode(errors="replace")
    return "does not exist in" in text or "exists on disk, but not in" in text


def diff(old: dict[str, Flat], new: dict[str, Flat]) -> list[dict[str, Any]]:
    """Every key whose value differs: file, key, old, new and change (new - old)."""
    rows = []
    for file in sorted(set(old) | set(new)):
        before, after = old.get(file, {}), new.get(file, {})
        for key in sorted(set(before) | set(after)):
            a, b = before.get(key), after.get(key)
            if a == b:
                continue
            change = b - a if _numeric(a) and _numeric(b) else None
            rows.append({"file": file, "key": key, "old": a, "new": b, "change": change})
    return rows


def _numeric(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
