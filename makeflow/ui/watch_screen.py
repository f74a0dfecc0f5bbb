"""How `makeflow watch` shows itself in plain lines: a reporter per build, and its own notes."""

from __future__ import annotations

from typing import IO

from makeflow.run.reporter import Reporter
from makeflow.ui.view import make_reporter


class PlainScreen:
    """Plain lines on a stream; each build reports there through `make_reporter`."""

    def __init__(self, out: IO[str]):
        self.out = out

    def reporter(self) -> Reporter:
        return make_reporter(self.out)

    def line(self, text: str) -> None:
        self.out.write(text + "\n")
        self.out.flush()

    def error(self, text: str) -> None:
        first, _, rest = text.partition("\n")
        self.line(f"error: {first}" + (f"\n{rest}" if rest else ""))

