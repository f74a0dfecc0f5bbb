"""What the library's step functions receive, for tests that call them directly."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any


def fake_step(inputs: list[Path], outputs: list[Path], **params: Any) -> SimpleNamespace:
    """A `step` with these files and parameters, as makeflow would hand it over."""
    return SimpleNamespace(name="test", inputs=[Path(p) for p in inputs],
                           outputs=[Path(p) for p in outputs], params=params, wildcards={})
