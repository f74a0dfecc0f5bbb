"""`makeflow.lock`: what every step last ran with and made, meant to be committed.

One entry per step: its recipe digest, params, and each input's and output's path, digest
and size. Deterministic (sorted JSON, no timestamps, host names or absolute paths of
makeflow's own), so it diffs cleanly and two machines that build the same thing write the
same file. A fresh clone has no state store; a step whose entry matches its inputs,
recipe, params and outputs is fresh without running (see `plan/staleness.py`).

A lock that does not parse (a merge conflict) is a warning and is ignored: makeflow then
relies on its store and the content of the files, as without a lock.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from pathlib import Path

from makeflow.store.state import StepRecord, dump

LOCK_FILE = "makeflow.lock"
VERSION = 1

Sizes = Callable[[str], int | None]


def entry_of(record: StepRecord, size: Sizes) -> dict:
    """A step's lock entry from its state record; `size` gives a file's size or None."""
    def files(digests: dict[str, str]) -> dict:
        out = {}
        for path, digest in digests.items():
            n = None if digest.startswith("tree:") else size(path)
            out[path] = {"digest": digest, **({"size": n} if n is not None else {})}
        return out

    return {"recipe": record.recipe, "params": json.loads(dump(record.params)),
            "inputs": files(record.inputs), "outputs": files(record.outputs)}


def record_of(entry: dict, inputs: Iterable[str], outputs: Iterable[str]) -> StepRecord | None:
    """The state record a lock entry stands for, files in the step's order; None when the
    entry is malformed or names other files than the step has."""
    try:
        ins = {p: entry["inputs"][p]["digest"] for p in inputs}
        outs = {p: entry["outputs"][p]["digest"] for p in outputs}
        if len(ins) != len(entry["inputs"]) or len(outs) != len(entry["outputs"]):
            return None
        return StepRecord(str(entry["recipe"]), dict(entry["params"]), ins, outs)
    except (KeyError, TypeError, AttributeError):
        return None


def render(entries: dict[str, dict]) -> str:
    # ASCII: a file name that is not UTF-8 (Linux allows any bytes) survives as \udcXX
    return json.dumps({"version": VERSION, "steps": entries}, sort_keys=True, indent=1) + "\n"


class LockFile:
    """The lock beside the rules file, read on first use only: a build whose store knows
    every step never opens it."""

    def __init__(self, root: Path):
        self.path = Path(root) / LOCK_FILE
        self._entries: dict[str, dict] | None = None
        self.text: str | None = None
        self.warnings: list[str] = []

    def entries(self) -> dict[str, dict]:
        """Every step's entry; empty when there is no lock or it does not parse."""
        if self._entries is None:
            self._entries = self._read()
        return self._entries

    def entry(self, step_id: str) -> dict | None:
        return self.entries().get(step_id)

    @property
    def readable(self) -> bool:
        self.entries()
        return self.text is not None and not self.warnings

    def _read(self) -> dict[str, dict]:
        try:
            self.text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}
        except (OSError, UnicodeDecodeError) as exc:
            self.warnings.append(f"{LOCK_FILE} could not be read ({exc}); it is ignored")
            return {}
        try:
            data = json.loads(self.text)
            steps = data["steps"]
            if data.get("version") != VERSION or not isinstance(steps, dict):
                raise ValueError(f"version {data.get('version')!r}")
            return steps
        except (ValueError, KeyError, TypeError) as exc:
            conflict = "<<<<<<<" in self.text
            why = "it has merge conflict markers" if conflict else f"it does not parse ({exc})"
            self.warnings.append(
                f"{self.path.name}: {why}; it is ignored, and makeflow relies on its store "
                "and the content of the files. The next successful build writes it again.")
            return {}

    def write(self, entries: dict[str, dict]) -> bool:
        """Write the lock if its text changes; whether it did (atomically)."""
        text = render(entries)
        self.entries()
        if text == self.text:
            return False
        tmp = self.path.with_name(f".{LOCK_FILE}.{os.getpid()}.tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, self.path)
        self.text, self._entries, self.warnings = text, entries, []
        return True
