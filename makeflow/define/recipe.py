"""What a step runs: a shell command after substitution (filled in `placeholders.py`), or
a function with the `step` it receives. The digest of a function and everything it
reaches is `define/digest.py`'s.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from makeflow.define.rules import Files


class Named(list):
    """A list that also answers to the names given in `inputs={"data": ...}`."""

    def __init__(self, items: Iterable[Any], names: Iterable[tuple[str, int, int]] = ()):
        super().__init__(items)
        self._names = {name: (start, stop) for name, start, stop in names}

    def __getattr__(self, name: str) -> Any:
        try:
            start, stop = self._names[name]
        except KeyError:
            raise AttributeError(f"no file is named {name!r}") from None
        return self[start] if stop - start == 1 else Named(self[start:stop])


class Values(dict):
    """Params and wildcards with attribute access: `{params.alpha}`, `step.wildcards.sample`."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(f"no value is named {name!r}") from None


class StepContext:
    """What a Python step function receives as `step`."""

    def __init__(self, name: str, inputs: Named, outputs: Named, params: Values,
                 wildcards: Values):
        self.name = name
        self.inputs = inputs
        self.outputs = outputs
        self.params = params
        self.wildcards = wildcards

    def __repr__(self) -> str:
        files = f"{[str(p) for p in self.inputs]} -> {[str(p) for p in self.outputs]}"
        return f"<step {self.name}: {files}>"


def context(name: str, inputs: Files, outputs: Files, params: Mapping[str, Any],
            wildcards: Mapping[str, str]) -> StepContext:
    return StepContext(
        name,
        Named([Path(p) for p in inputs.paths], inputs.names),
        Named([Path(p) for p in outputs.paths], outputs.names),
        Values(params),
        Values(wildcards),
    )
