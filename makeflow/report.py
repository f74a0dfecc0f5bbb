"""How a build shows itself: a live rich view on a terminal, plain lines elsewhere.

The only module that imports rich. The build calls a `Reporter`; reporters only format.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import IO, TYPE_CHECKING, Protocol

from rich.console import Console, Group
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

if TYPE_CHECKING:
    from .build import BuildResult
    from .executors import JobResult
    from .graph import Step
    from .plan import Plan

LOG_TAIL = 15


class Reporter(Protocol):
    def warning(self, text: str) -> None: ...
    def planned(self, plan: Plan) -> None: ...
    def started(self, plan: Plan) -> None: ...
    def step_started(self, step: Step, why: list[str]) -> None: ...
    def step_cut_off(self, step: Step) -> None: ...
    def step_finished(self, step: Step, result: JobResult) -> None: ...
    def step_failed(self, step: Step, error: str, log: str) -> None: ...
    def step_retrying(self, step: Step, error: str, attempt: int, retries: int,
                      delay: float) -> None: ...
    def finished(self, result: BuildResult) -> None: ...


def log_tail(log: str, lines: int = LOG_TAIL) -> list[str]:
    try:
        text = Path(log).read_bytes()[-16384:].decode("utf-8", "replace")
    except OSError:
        return []
    return text.splitlines()[-lines:]


def summary(result: BuildResult) -> str:
    parts = [f"ran {len(result.ran)}", f"fresh {len(result.fresh)}"]
    if result.cut_off:
        parts.append(f"cut off {len(result.cut_off)}")
    parts.append(f"failed {len(result.failed)}")
    if result.not_run:
        parts.append(f"not run {len(result.not_run)}")
    return ", ".join(parts) + f" in {result.seconds:.2f}s"


def plan_lines(plan: Plan) -> list[str]:
    """One line per stale step, upstream first, with its reasons."""
    return [f"{sid}: {'; '.join(why)}" for sid, why in plan.stale.items()
            if not plan.graph.steps[sid].rule.is_alias]


class PlainReporter:
    """One line per step, for logs, pipes and CI."""

    def __init__(self, out: IO[str], quiet: bool = False):
        self.out = out
        self.quiet = quiet
        self.total = 0
        self.count = 0
        self.dry_run = False

    def _line(self, text: str) -> None:
        self.out.write(text + "\n")
        self.out.flush()

    def warning(self, text: str) -> None:
        self._line(f"warning: {text}")

    def planned(self, plan: Plan) -> None:
        self.dry_run = True
        lines = plan_lines(plan)
        for line in lines:
            self._line(f"would run {line}")
        if not lines:
            self._line("nothing to do: everything is up to date")

    def started(self, plan: Plan) -> None:
        self.total = len(plan.runnable)
        self.count = 0

    def step_started(self, step: Step, why: list[str]) -> None:
        pass

    def step_cut_off(self, step: Step) -> None:
        """A step planned to run that its upstream's identical outputs made fresh."""
        self.total -= 1

    def step_finished(self, step: Step, result: JobResult) -> None:
        self.count += 1
        if not self.quiet:
            seconds = result.finished - result.started
            self._line(f"[{self.count}/{self.total}] {step.id} done in {seconds:.2f}s")

    def step_retrying(self, step: Step, error: str, attempt: int, retries: int,
                      delay: float) -> None:
        self._line(f"{step.id} failed ({error}); retry {attempt} of {retries} in {delay:g}s")

    def step_failed(self, step: Step, error: str, log: str) -> None:
        self.count += 1
        self._line(f"[{self.count}/{self.total}] {step.id} FAILED: {error}")
        self._line(f"  log: {log}")
        for line in log_tail(log):
            self._line(f"  | {line}")

    def finished(self, result: BuildResult) -> None:
        if self.dry_run:
            self._line(f"{len(plan_lines(result.plan))} steps would run" if result.plan else "")
            return
        if result.plan is not None and not result.plan.runnable and not result.failed:
            self._line("nothing to do: everything is up to date")
        self._line(summary(result))


class RichReporter(PlainReporter):
    """A progress bar, the steps running now with their time, and a summary at the end."""

    def __init__(self, console: Console):
        super().__init__(console.file)
        self.console = console
        self.running: dict[str, float] = {}
        self.progress = Progress(
            TextColumn("[bold]building"), BarColumn(), MofNCompleteColumn(),
            TimeElapsedColumn(), console=console,
        )
        self.task = self.progress.add_task("build", total=0)
        self.live: Live | None = None

    def _line(self, text: str) -> None:
        self.console.print(Text(text))

    def __rich__(self) -> Group:
        table = Table.grid(padding=(0, 2))
        now = time.monotonic()
        for sid, since in list(self.running.items())[:12]:
            table.add_row(Text("  running", style="cyan"), Text(sid), f"{now - since:5.1f}s")
        if len(self.running) > 12:
            table.add_row("", Text(f"... and {len(self.running) - 12} more"), "")
        return Group(self.progress, table)

    def started(self, plan: Plan) -> None:
        super().started(plan)
        self.progress.update(self.task, total=self.total)
        self.live = Live(self, console=self.console, refresh_per_second=8, transient=True)
        self.live.start()

    def step_started(self, step: Step, why: list[str]) -> None:
        self.running[step.id] = time.monotonic()

    def step_cut_off(self, step: Step) -> None:
        super().step_cut_off(step)
        self.progress.update(self.task, total=self.total)

    def step_finished(self, step: Step, result: JobResult) -> None:
        self.running.pop(step.id, None)
        self.progress.advance(self.task)
        self.count += 1
        seconds = result.finished - result.started
        self.console.print(Text.assemble(("✓ ", "green"), step.id, (f"  {seconds:.2f}s", "dim")))

    def step_failed(self, step: Step, error: str, log: str) -> None:
        self.running.pop(step.id, None)
        self.progress.advance(self.task)
        self.count += 1
        self.console.print(Text.assemble(("✗ ", "bold red"), step.id, f" failed: {error}"))
        self.console.print(Text(f"  log: {log}", style="dim"))
        for line in log_tail(log):
            self.console.print(Text(f"  │ {line}", style="dim"))

    def finished(self, result: BuildResult) -> None:
        if self.live is not None:
            self.live.stop()
            self.live = None
        if self.dry_run:
            super().finished(result)
            return
        if result.plan is not None and not result.plan.runnable and not result.failed:
            self.console.print("nothing to do: everything is up to date")
        style = "bold red" if result.failed else "bold green"
        self.console.print(Text(summary(result), style=style))


def make_reporter(out: IO[str], quiet: bool = False) -> Reporter:
    """Rich on a terminal, plain lines otherwise."""
    console = Console(file=out)
    if console.is_terminal and not quiet:
        return RichReporter(console)
    return PlainReporter(out, quiet)
