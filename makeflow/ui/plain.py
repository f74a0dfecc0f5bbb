"""The plain view of a build: one line per step, for logs, pipes and CI.

It implements the run stage's `Reporter`; reporters only format. The live view is in
`live.py`, loaded only on a terminal, so a build in CI or a script does not pay for
importing rich.
"""

from __future__ import annotations

import itertools
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING

from makeflow.define.placeholders import substitute
from makeflow.plan.staleness import recipe_of

if TYPE_CHECKING:
    from makeflow.plan.graph import Step
    from makeflow.plan.staleness import Plan
    from makeflow.run.build import BuildResult
    from makeflow.run.executors import JobResult

LOG_TAIL = 15


def log_tail(log: str, lines: int = LOG_TAIL) -> list[str]:
    try:
        text = Path(log).read_bytes()[-16384:].decode("utf-8", "replace")
    except OSError:
        return []
    return text.splitlines()[-lines:]


def summary(result: BuildResult) -> str:
    parts = [f"ran {len(result.ran)}"]
    if result.touched:
        parts.append(f"touched {len(result.touched)}")
    if result.restored:
        parts.append(f"restored {len(result.restored)}")
    parts.append(f"fresh {len(result.fresh)}")
    if result.cut_off:
        parts.append(f"cut off {len(result.cut_off)}")
    parts.append(f"failed {len(result.failed)}")
    if result.not_run:
        parts.append(f"not run {len(result.not_run)}")
    if result.skipped:
        parts.append(f"skipped {len(result.skipped)}")
    return ", ".join(parts) + f" in {result.seconds:.2f}s"


def skip_lines(result: BuildResult, shown: set[str] = frozenset(), most: int = 10) -> list[str]:
    """The steps that stay skipped (decided by an earlier build), not shown as it ran; the
    first `most`, then how many more (`makeflow status` lists them all)."""
    lines = [f"{sid} skipped: {why}" for sid, why in result.skipped.items() if sid not in shown]
    if len(lines) > most:
        lines[most:] = [f"... and {len(lines) - most} more skipped (makeflow status lists them)"]
    return lines


def plan_lines(plan: Plan, commands: bool = False, prefix: str = "") -> Iterator[str]:
    """One line per stale step, upstream first, starting with `prefix`, with its reasons
    (and, with `commands`, a second line with what it runs). Made as they are written: a
    million lines are never all in memory. Steps below a checkpoint that must run are
    listed as its last output calls for them, and marked: they are known once it has run."""
    steps, restorable, aliases = plan.graph.steps, plan.restorable, plan.graph.aliases
    later = {s: c for c, sids in plan.waiting.items() for s in sids}
    marked = restorable or later or plan.waiting
    for sid, why in plan.stale.items():
        if sid in aliases:
            continue
        note = ""
        if marked:
            note = " (restorable from cache)" if sid in restorable else ""
            if sid in plan.waiting:
                note += " (a checkpoint: the steps below it are known once it has run)"
            elif sid in later:
                note += f" (not known until checkpoint {later[sid]} has run)"
        yield f"{prefix}{sid}: {'; '.join(why)}{note}"
        if commands:
            yield f"  $ {step_command(steps[sid])}"


def batches(lines: Iterable[str], size: int = 1000) -> Iterator[str]:
    """Lines joined `size` at a time, so a million are a thousand writes, not a million."""
    lines = iter(lines)
    while batch := list(itertools.islice(lines, size)):
        yield "\n".join(batch)


def step_command(step: Step) -> str:
    """The command a step runs, after substitution; for a Python step, its function and
    code digest."""
    rule = step.rule
    if rule.shell is not None:
        return substitute(rule, rule.shell, step.inputs, step.outputs, step.wildcards)
    if rule.func is not None:
        return f"python: {rule.func.__qualname__}(step)  # {recipe_of(step)}"
    return ""


def transfer_text(name: str, sending: bool, done: int, total: int) -> str:
    """"uploading NAME: 4.2 of 9.4 MB (44%)", or when it is done "uploaded NAME (9.4 MB)"."""
    if done >= total:
        return f"{'uploaded' if sending else 'downloaded'} {name} ({total / 1e6:,.1f} MB)"
    return (f"{'uploading' if sending else 'downloading'} {name}: {done / 1e6:,.1f} of "
            f"{total / 1e6:,.1f} MB ({100 * done // total}%)")


class TransferLines:
    """Big files' transfers to and from the remote cache, as lines on `out` (stderr):
    rewritten in place on a terminal, else one line per file every `QUIET` seconds and
    one when it is done. Called from the transfer threads."""

    QUIET = 5.0

    def __init__(self, out: IO[str]):
        self.out, self._lock = out, threading.Lock()
        self.tty = out.isatty()
        self._last: dict[str, float] = {}

    def __call__(self, name: str, sending: bool, done: int, total: int) -> None:
        text, now = transfer_text(name, sending, done, total), time.monotonic()
        with self._lock:
            if self.tty:
                end = "\n" if done >= total else ""
                self.out.write(f"\r\x1b[2K  {text}{end}")
            elif done >= total or name not in self._last or now - self._last[name] >= self.QUIET:
                self._last[name] = now
                self.out.write(f"  {text}\n")
            self.out.flush()


class PlainReporter:
    """One line per step, for logs, pipes and CI."""

    def __init__(self, out: IO[str], quiet: bool = False, print_commands: bool = False):
        self.out = out
        self.quiet = quiet
        self.print_commands = print_commands
        self.total = 0
        self.count = 0
        self.dry_run = False
        self.shown_skips: set[str] = set()
        self.growing = False  # started once in this build: the graph grew after a checkpoint
        self._transfers: TransferLines | None = None

    def _line(self, text: str) -> None:
        self.out.write(text + "\n")
        self.out.flush()

    def warning(self, text: str) -> None:
        self._line(f"warning: {text}")

    def planned(self, plan: Plan) -> None:
        self.dry_run = True
        lines = plan_lines(plan, self.print_commands, "would run ")
        wrote = False
        for batch in batches(lines):
            self._line(batch)
            wrote = True
        if not wrote:
            self._line("nothing to do: everything is up to date")
        for sid, why in plan.skipped.items():
            if not plan.graph.steps[sid].rule.is_alias:
                self._line(f"{sid} skipped: {why}")

    def started(self, plan: Plan) -> None:
        """A build's steps are planned; called again, within one build, for each part run
        after a checkpoint (docs/dynamic.md): the count goes on, the total grows."""
        if self.growing:
            self.total += len(plan.runnable)
            return
        self.growing = True
        self.total = len(plan.runnable)
        self.count = 0

    def step_started(self, step: Step, why: list[str]) -> None:
        if self.print_commands:
            self._line(f"{step.id}: $ {step_command(step)}")

    def running_on(self, where: str) -> None:
        """Where the steps run, when it is not this machine (a cluster's workers)."""
        if not self.quiet:
            self._line(f"running on {where}")

    def step_cut_off(self, step: Step) -> None:
        """A step planned to run that its upstream's identical outputs made fresh."""
        self.total -= 1

    def step_restored(self, step: Step) -> None:
        """A stale step whose outputs came from the run cache instead of running it."""
        self.count += 1
        if not self.quiet:
            self._line(f"[{self.count}/{self.total}] {step.id} restored from cache")

    def step_finished(self, step: Step, result: JobResult) -> None:
        self.count += 1
        if not self.quiet:
            seconds = result.finished - result.started
            on = f" on {result.worker}" if result.worker else ""
            self._line(f"[{self.count}/{self.total}] {step.id} done in {seconds:.2f}s{on}")

    def step_skipped(self, step: Step, reason: str, decided: bool) -> None:
        """A step that chose to make nothing (`decided`: it ran and raised `Skip`), or a
        stale step below one, which does not run."""
        self.shown_skips.add(step.id)
        if decided:
            self.count += 1
        else:
            self.total -= 1
        if not self.quiet:
            where = f"[{self.count}/{self.total}] " if decided else ""
            self._line(f"{where}{step.id} skipped: {reason}")

    def step_retrying(self, step: Step, error: str, attempt: int, retries: int,
                      delay: float) -> None:
        self._line(f"{step.id} failed ({error}); retry {attempt} of {retries} in {delay:g}s")

    def step_failed(self, step: Step, error: str, log: str) -> None:
        self.count += 1
        self._line(f"[{self.count}/{self.total}] {step.id} FAILED: {error}")
        self._line(f"  log: {log}")
        for line in log_tail(log):
            self._line(f"  | {line}")

    def transfer(self, name: str, sending: bool, done: int, total: int) -> None:
        """A big file's transfer, as lines on stderr (stdout keeps the steps)."""
        if self.quiet:
            return
        if self._transfers is None:
            self._transfers = TransferLines(sys.stderr)
        self._transfers(name, sending, done, total)

    def stopped(self) -> None:
        """Plain lines leave nothing to put back; the next build counts from one."""
        self.growing = False

    def finished(self, result: BuildResult) -> None:
        self.growing = False
        if self.dry_run:
            self._line(f"{len(result.plan.runnable)} steps would run" if result.plan else "")
            return
        if result.plan is not None and not result.plan.runnable and not result.failed:
            self._line("nothing to do: everything is up to date")
        for sid in result.touched:
            self._line(f"{sid} touched: its outputs are recorded as fresh, it did not run")
        for line in skip_lines(result, self.shown_skips):
            self._line(line)
        self._line(summary(result))
