"""`makeflow runs`: the recent builds from the run history, one line each."""

from __future__ import annotations

import time
from pathlib import Path

from makeflow.store import history
from makeflow.store.history import RunEntry


def recent_runs(root: Path, limit: int) -> list[RunEntry]:
    with history.reading(root) as db:
        return [] if db is None else history.runs(db, limit)


def when(stamp: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(stamp))


def took(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.2f}s"
    return f"{int(seconds // 60)}m{seconds % 60:02.0f}s"


def runs_lines(entries: list[RunEntry]) -> list[str]:
    """A table of builds, newest first."""
    if not entries:
        return ["no builds recorded yet"]
    lines = [f"{'run':>5}  {'started':19}  {'took':>8}  {'result':11}  "
             f"{'ran':>5} {'restored':>8} {'failed':>6} {'skipped':>7} {'fresh':>6}  targets"]
    for e in entries:
        c = e.counts
        result = "unfinished" if e.result == "running" else e.result
        targets = " ".join(e.targets) or "(default)"
        lines.append(f"{e.id:>5}  {when(e.started):19}  {took(e.seconds):>8}  {result:11}  "
                     f"{c.get('ran', 0):>5} {c.get('restored', 0):>8} {c.get('failed', 0):>6} "
                     f"{c.get('skipped', 0):>7} {c.get('fresh', 0):>6}  {targets}")
    return lines
