"""What a report shows, worked out from one run of the history and the current graph.

The history has each step's outcome and times; the graph (resolved from the rules as they
are now) gives the edges between steps. A step of the run that the rules no longer make
is still in the table, just not in the graph.
"""

from __future__ import annotations

import heapq
import os
from dataclasses import dataclass, field
from typing import Any

from makeflow.run.outcome import log_path
from makeflow.store.history import RunEntry, StepEntry

LOG_LINES = 15
LOG_BUDGET = 1_500_000  # bytes of log tails embedded in one report, at most
TAIL_BYTES = 2000


@dataclass
class Summary:
    seconds: float
    busy: float  # the sum of every step's duration
    parallelism: float  # busy / seconds: how many steps ran at once on average
    peak: int  # most steps running at the same moment
    critical: list[str]  # the longest chain of dependent steps, by duration
    critical_seconds: float
    slots: int


@dataclass
class ReportData:
    run: RunEntry
    steps: list[dict[str, Any]]
    edges: list[tuple[str, str]]
    summary: Summary
    rules: dict[str, dict[str, Any]] = field(default_factory=dict)
    previous: RunEntry | None = None


def collect(run: RunEntry, upstream: dict[str, list[str]], rule_of: dict[str, str],
            previous: RunEntry | None = None) -> ReportData:
    """Every step of the run (fresh ones too), with slots, log tails and the summary."""
    entries = {s.step: s for s in run.steps}
    for sid in run.fresh or []:
        entries.setdefault(sid, StepEntry(sid, rule_of.get(sid, "?"), "fresh"))
    if not run.steps and not run.fresh:  # a no-op build: every step of the graph was fresh
        for sid, rule in rule_of.items():
            entries.setdefault(sid, StepEntry(sid, rule, "fresh"))
    slots = _slots([e for e in entries.values() if e.started is not None])
    steps, rules = _rows(entries, slots, run.started)
    edges = [(u, s) for s in entries if s in upstream for u in upstream[s] if u in entries]
    summary = _summary(run, entries, upstream, max(slots.values(), default=-1) + 1)
    return ReportData(run, steps, edges, summary, rules, previous)


def _rows(entries: dict[str, StepEntry], slots: dict[str, int],
          t0: float) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
    """Compact rows for the page's table; parameters once per rule, tails within budget."""
    rules: dict[str, dict[str, Any]] = {}
    rows, budget = [], LOG_BUDGET
    for e in sorted(entries.values(), key=lambda e: (e.started is None, e.started or 0, e.step)):
        rules.setdefault(e.rule, {"params": e.params})
        tail = _tail(e) if budget > 0 else None
        budget -= len(tail or "")
        rows.append({
            "id": e.step, "rule": e.rule, "status": e.status, "why": e.reasons,
            "start": None if e.started is None else round(e.started - t0, 4),
            "secs": None if e.seconds is None else round(e.seconds, 4),
            "cpu": None if e.cpu is None else round(e.cpu, 4), "rss": e.peak_rss,
            "exit": e.exit_status, "tries": e.attempts, "worker": e.worker,
            "slot": slots.get(e.step), "error": e.error, "cmd": e.recipe,
            "tail": tail, "log": e.log or (log_path(e.step) if e.finished else ""),
        })
    return rows, rules


def _tail(entry: StepEntry) -> str | None:
    """The last lines of the step's log: kept in the history for failed steps; for others
    the log on disk, unless a later run has replaced it."""
    text = entry.log_tail
    log = entry.log or log_path(entry.step)
    if not text and entry.status != "fresh" and entry.finished is not None:
        try:
            with open(log, "rb") as f:
                if os.fstat(f.fileno()).st_mtime > entry.finished + 1:
                    return None
                f.seek(max(0, os.fstat(f.fileno()).st_size - TAIL_BYTES))
                text = f.read().decode("utf-8", "replace")
        except OSError:
            return None
    if not text:
        return "" if entry.finished is not None else None
    return "\n".join(text.splitlines()[-LOG_LINES:])[-TAIL_BYTES:]


def _slots(timed: list[StepEntry]) -> dict[str, int]:
    """Each timed step's lane in the timeline: the lowest free lane when it started, so a
    lane is one of the build's job slots (per worker, when steps say where they ran)."""
    lanes: dict[str, int] = {}
    free: dict[str | None, list[int]] = {}
    busy: dict[str | None, list[tuple[float, int]]] = {}
    count: dict[str | None, int] = {}
    offset: dict[str | None, int] = {}
    for e in sorted(timed, key=lambda e: (e.started or 0.0, e.step)):
        w = e.worker
        heap, idle = busy.setdefault(w, []), free.setdefault(w, [])
        while heap and heap[0][0] <= (e.started or 0.0):
            heapq.heappush(idle, heapq.heappop(heap)[1])
        lane = heapq.heappop(idle) if idle else count.get(w, 0)
        count[w] = max(count.get(w, 0), lane + 1)
        heapq.heappush(heap, (e.finished or e.started or 0.0, lane))
        lanes[e.step] = lane
        offset.setdefault(w, 0)
    base = 0
    for w in offset:  # workers one after another
        offset[w] = base
        base += count[w]
    return {e.step: lanes[e.step] + offset[e.worker] for e in timed}


def _summary(run: RunEntry, entries: dict[str, StepEntry], upstream: dict[str, list[str]],
             slots: int) -> Summary:
    timed = [e for e in entries.values() if e.seconds is not None]
    busy = sum(e.seconds or 0.0 for e in timed)
    seconds = run.seconds or 0.0
    critical, total = critical_path(entries, upstream)
    return Summary(seconds, busy, busy / seconds if seconds > 0 else 0.0, _peak(timed),
                   critical, total, slots)


def _peak(timed: list[StepEntry]) -> int:
    events = sorted([(e.started, 1) for e in timed] + [(e.finished, -1) for e in timed])
    now = best = 0
    for _, change in events:
        now += change
        best = max(best, now)
    return best


def critical_path(entries: dict[str, StepEntry],
                  upstream: dict[str, list[str]]) -> tuple[list[str], float]:
    """The chain of dependent steps with the largest total duration in this run."""
    longest: dict[str, tuple[float, str | None]] = {}

    def visit(sid: str) -> float:
        stack = [sid]
        while stack:
            top = stack[-1]
            if top in longest:
                stack.pop()
                continue
            ups = [u for u in upstream.get(top, []) if u in entries]
            todo = [u for u in ups if u not in longest]
            if todo:
                stack.extend(todo)
                continue
            stack.pop()
            best = max(ups, key=lambda u: longest[u][0], default=None)
            own = entries[top].seconds or 0.0
            longest[top] = (own + (longest[best][0] if best else 0.0), best)
        return longest[sid][0]

    if not entries:
        return [], 0.0
    end = max(entries, key=visit)
    total, chain, at = longest[end][0], [], end
    while at is not None:
        if entries[at].seconds:
            chain.append(at)
        at = longest[at][1]
    return chain[::-1], total
