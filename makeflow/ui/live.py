"""The live view of a build on a terminal: progress, the steps running now, a summary.

The only module that imports rich.
"""

from __future__ import annotations

import os
import threading
import time
from typing import IO, TYPE_CHECKING

from rich.console import Console, Group
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from makeflow.ui.plain import PlainReporter, log_tail, skip_lines, summary, transfer_text

if TYPE_CHECKING:
    from makeflow.plan.graph import Step
    from makeflow.plan.staleness import Plan
    from makeflow.run.build import BuildResult
    from makeflow.run.executors import JobResult


def terminal(out: IO[str]) -> Console:
    """A console on `out`; with NO_COLOR set (https://no-color.org) it writes no colour or
    other text style at all, only what the live view needs to redraw itself."""
    if os.environ.get("NO_COLOR"):
        return Console(file=out, color_system=None)
    return Console(file=out)


class RichReporter(PlainReporter):
    """A progress bar, the steps running now with their time, and a summary at the end."""

    def __init__(self, console: Console, print_commands: bool = False):
        super().__init__(console.file, print_commands=print_commands)
        self.console = console
        self.running: dict[str, float] = {}
        self.progress = Progress(
            TextColumn("[bold]building"), BarColumn(), MofNCompleteColumn(),
            TimeElapsedColumn(), console=console,
        )
        self.task = self.progress.add_task("build", total=0)
        self.live: Live | None = None
        self.where = ""
        self.moving: dict[tuple[str, bool], tuple[int, int]] = {}  # big transfers
        self._moving_lock = threading.Lock()

    def _line(self, text: str) -> None:
        self.console.print(Text(text))

    def __rich__(self) -> Group:
        table = Table.grid(padding=(0, 2))
        now = time.monotonic()
        for sid, since in list(self.running.items())[:12]:
            table.add_row(Text("  running", style="cyan"), Text(sid), f"{now - since:5.1f}s")
        if len(self.running) > 12:
            table.add_row("", Text(f"... and {len(self.running) - 12} more"), "")
        with self._moving_lock:
            moving = list(self.moving.items())
        for (name, sending), (done, total) in moving[:6]:
            arrow = "↑" if sending else "↓"
            table.add_row(Text(f"  {arrow} {'sending' if sending else 'fetching'}",
                               style="cyan"), Text(name),
                          f"{done / 1e6:,.1f}/{total / 1e6:,.1f} MB")
        if self.where:
            return Group(self.progress, Text(f"  on {self.where}", style="dim"), table)
        return Group(self.progress, table)

    def started(self, plan: Plan) -> None:
        super().started(plan)
        self.progress.update(self.task, total=self.total)
        if self.live is None:  # again after a checkpoint: the same view, a longer bar
            self.live = Live(self, console=self.console, refresh_per_second=8, transient=True)
            self.live.start()

    def step_started(self, step: Step, why: list[str]) -> None:
        self.running[step.id] = time.monotonic()
        super().step_started(step, why)  # the command, with --print-commands

    def running_on(self, where: str) -> None:
        self.where = where

    def step_cut_off(self, step: Step) -> None:
        super().step_cut_off(step)
        self.progress.update(self.task, total=self.total)

    def step_restored(self, step: Step) -> None:
        self.progress.advance(self.task)
        self.count += 1
        self.console.print(Text.assemble(("↺ ", "cyan"), step.id, ("  restored", "dim")))

    def step_finished(self, step: Step, result: JobResult) -> None:
        self.running.pop(step.id, None)
        self.progress.advance(self.task)
        self.count += 1
        seconds = result.finished - result.started
        on = f"  on {result.worker}" if result.worker else ""
        self.console.print(Text.assemble(("✓ ", "green"), step.id,
                                         (f"  {seconds:.2f}s{on}", "dim")))

    def step_failed(self, step: Step, error: str, log: str) -> None:
        self.running.pop(step.id, None)
        self.progress.advance(self.task)
        self.count += 1
        self.console.print(Text.assemble(("✗ ", "bold red"), step.id, f" failed: {error}"))
        self.console.print(Text(f"  log: {log}", style="dim"))
        for line in log_tail(log):
            self.console.print(Text(f"  │ {line}", style="dim"))

    def step_skipped(self, step: Step, reason: str, decided: bool) -> None:
        self.shown_skips.add(step.id)
        if decided:
            self.running.pop(step.id, None)
            self.progress.advance(self.task)
            self.count += 1
        else:
            self.total -= 1
            self.progress.update(self.task, total=self.total)
        self.console.print(Text.assemble(("↷ ", "yellow"), step.id, (f"  skipped: {reason}",
                                                                     "dim")))

    def transfer(self, name: str, sending: bool, done: int, total: int) -> None:
        """A big file's transfer: a row of the live view while it moves, a line when done."""
        with self._moving_lock:
            if done < total:
                self.moving[(name, sending)] = (done, total)
                return
            self.moving.pop((name, sending), None)
        self.console.print(Text.assemble(("↑ " if sending else "↓ ", "cyan"),
                                         (transfer_text(name, sending, done, total), "dim")))

    def stopped(self) -> None:
        """Take the live view off the screen, which shows the cursor again."""
        self.growing = False
        if self.live is not None:
            self.live.stop()
            self.live = None

    def finished(self, result: BuildResult) -> None:
        self.stopped()
        if self.dry_run:
            super().finished(result)
            return
        if result.plan is not None and not result.plan.runnable and not result.failed:
            self.console.print("nothing to do: everything is up to date")
        for line in skip_lines(result, self.shown_skips):
            self.console.print(Text(line, style="yellow"))
        for sid in result.touched:
            self.console.print(Text(f"{sid} touched: recorded as fresh, not run", style="cyan"))
        style = "bold red" if result.failed else "bold green"
        self.console.print(Text(summary(result), style=style))
