"""What the library's step functions receive, for tests that call them directly."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any


def fake_step(files_in: list[Path], files_out: list[Path], /, **params: Any) -> SimpleNamespace:
    """A `step` with these files and parameters, as makeflow would hand it over."""
    return SimpleNamespace(name="test", inputs=[Path(p) for p in files_in],
                           outputs=[Path(p) for p in files_out], params=params, wildcards={})
