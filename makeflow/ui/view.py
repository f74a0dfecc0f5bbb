"""Choosing how a build shows itself: the live view on a terminal, plain lines elsewhere.

Kept apart from both views so that the live one, and rich with it, loads only when a
terminal will show it.
"""

from __future__ import annotations

from typing import IO

from makeflow.run.reporter import Reporter
from makeflow.ui.plain import PlainReporter


def make_reporter(out: IO[str], quiet: bool = False, print_commands: bool = False,
                  as_json: bool = False) -> Reporter:
    """JSON lines when asked; else the live view on a terminal, plain lines otherwise."""
    if as_json:
        from makeflow.ui.jsonout import JsonReporter

        return JsonReporter(out, print_commands)
    if not quiet and out.isatty():
        from makeflow.ui.live import RichReporter, terminal

        return RichReporter(terminal(out), print_commands)
    return PlainReporter(out, quiet, print_commands)
