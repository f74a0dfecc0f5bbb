"""Pausing Python's cycle collector while a big, long-lived structure is built.

Loading 100,000 rules, or their graph and plan, allocates millions of objects that live
as long as the build. The collector, which runs after every so many allocations, would
walk them again and again (measured: 0.7 s of a 1.6 s load). They are moved to the
permanent generation afterwards, so later collections skip them as well; the next pause
puts them back, so a long-running watcher still frees the rules it replaced.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator


@contextlib.contextmanager
def paused() -> Iterator[None]:
    enabled = gc.isenabled()
    gc.unfreeze()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if enabled:
            gc.enable()
