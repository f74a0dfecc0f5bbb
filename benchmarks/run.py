"""Benchmark makeflow against GNU make, ninja, snakemake and doit on generated pipelines.

Every tool builds its own copy of the same pipeline (see generate.py) as a separate process,
timed from outside. For each tool, shape and size it measures, as the median of --repeat runs
after one warm-up run:

* scratch:    full build of a freshly generated directory (no outputs, no tool state);
* no-op:      the same command again, nothing changed;
* one change: after the content of one source (in/0.txt) changed;
* touch:      after the mtime of one source changed but not its content;
* peak RSS:   the largest resident set of any single process of the tool's process tree.

After every build all outputs are compared byte for byte with what they must contain, so
a tool that silently skipped work is reported as FAILED instead of looking fast. Steps that
ran are counted by comparing the outputs' mtimes before and after each build.

A tool whose scratch build times out is not run at larger sizes. If it can take outputs it
did not write as built (snakemake, with --touch), its later phases are still measured, from
a state the harness prepares that way and marks in the report.

Usage: python benchmarks/run.py [--sizes 1000,10000] [--shapes wide,layered] [--tools ...]
       [--repeat 3] [--timeout 600] [--makeflow PATH] [--out docs/benchmarks-raw.md]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from generate import (
    SHAPES,
    Pipeline,
    expected_outputs,
    source_content,
    write_tool_dir,
)

HERE = Path(__file__).resolve().parent
DEFAULT_WORKDIR = Path("/tmp/makeflow-bench")
DEFAULT_PEERS = HERE / ".peers-venv"
TOOLS = ("makeflow", "makeflow-py", "make", "ninja", "snakemake", "doit")
PHASES = ("scratch", "no-op", "one change", "touch")
CHANGED_SOURCE = "in/0.txt"
BASELINE = "make"
TIME_BIN = shutil.which("time", path="/usr/bin:/bin")
SNAKEMAKE_NOTE = (
    "snakemake then has no metadata records for the outputs it did not build; for those it "
    "decides by mtimes alone and reads no record, so if anything its no-op is cheaper than "
    "after a real build, not dearer"
)


# Tools


@dataclass(frozen=True)
class Tool:
    """How to build with one tool and how to ask for its version.

    `mark_done` is the tool's own command for taking outputs that already exist as built,
    for tools whose scratch build can exceed the timeout: the harness then writes the
    outputs itself and runs it, so that the later phases can still be measured (see
    `prepare_up_to_date`). `mark_done_note` says what that state lacks compared with a
    real build, and why it does not flatter the tool.
    """

    name: str
    build: list[str]
    version: list[str]
    missing: str | None = None  # why the tool cannot run here, if it cannot
    mark_done: list[str] | None = None
    mark_done_note: str = ""


def find_tools(peers: Path, makeflow: str | None, jobs: int) -> dict[str, Tool]:
    """Resolve every tool's executable; a tool that is not installed says why."""
    exe = {
        "makeflow": _given(makeflow) if makeflow else _default_makeflow(),
        "make": shutil.which("make"),
        "ninja": shutil.which("ninja"),
        "snakemake": _existing(peers / "bin" / "snakemake"),
        "doit": _existing(peers / "bin" / "doit"),
    }
    hints = {
        "makeflow": (f"--makeflow {makeflow} is not an executable" if makeflow
                     else "makeflow is not installed (pip install -e .)"),
        "make": "GNU make is not installed",
        "ninja": "ninja is not installed",
        "snakemake": f"not in {peers} (run benchmarks/peers.sh)",
        "doit": f"not in {peers} (run benchmarks/peers.sh)",
    }

    def tool(name: str, key: str, build: list[str], version: list[str]) -> Tool:
        path = exe[key]
        missing = None if path else hints[key]
        return Tool(name, [path or key, *build], [path or key, *version], missing)

    snakemake = tool("snakemake", "snakemake", ["--cores", str(jobs)], ["--version"])

    return {
        "makeflow": tool("makeflow", "makeflow", ["build", "-j", str(jobs)], ["--version"]),
        "makeflow-py": tool("makeflow-py", "makeflow", ["build", "-j", str(jobs)], ["--version"]),
        "make": tool("make", "make", [f"-j{jobs}", "-f", "Makefile"], ["--version"]),
        "ninja": tool("ninja", "ninja", [f"-j{jobs}"], ["--version"]),
        "snakemake": replace(
            snakemake, mark_done=[*snakemake.build, "--touch"], mark_done_note=SNAKEMAKE_NOTE
        ),
        # Threads: the actions are subprocesses anyway; -P process (forking the loaded
        # task graph into each worker) measured the same at N = 1000.
        "doit": tool("doit", "doit", ["run", "-n", str(jobs), "-P", "thread"], ["--version"]),
    }


def _given(makeflow: str) -> str | None:
    """The executable named by --makeflow: a path (e.g. of a frozen install) or a name.

    Made absolute, since every build runs in its pipeline's directory.
    """
    found = shutil.which(makeflow)
    return os.path.abspath(found) if found else None


def _default_makeflow() -> str | None:
    return _beside_python("makeflow") or shutil.which("makeflow")


def _beside_python(name: str) -> str | None:
    """The script installed next to the running interpreter, i.e. in the same venv."""
    return _existing(Path(sys.executable).with_name(name))


def _existing(path: Path) -> str | None:
    return str(path) if path.is_file() and os.access(path, os.X_OK) else None


def tool_version(tool: Tool) -> str:
    """First line of `--version`, or why it is unknown."""
    if tool.missing:
        return "not installed"
    try:
        done = subprocess.run(tool.version, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unknown ({exc})"
    lines = (done.stdout or done.stderr).strip().splitlines()
    return lines[0].strip() if lines else f"unknown (exit {done.returncode})"


# Running one build


@dataclass(frozen=True)
class Outcome:
    """One finished (or killed) build process."""

    seconds: float
    returncode: int
    timed_out: bool
    rss_kb: int | None


def execute(
    argv: Sequence[str], cwd: Path, log: Path, timeout: float, probe_rss: bool
) -> Outcome:
    """Run one build and time it from outside.

    Peak RSS comes from `/usr/bin/time`, which reports the largest process of the tree
    (the tool and every child it waited for). `getrusage(RUSAGE_CHILDREN)` cannot be used
    per run: it is a running maximum over all children the harness ever had, and a child
    forked from this Python process inherits its resident size as a floor. Since
    `/usr/bin/time` itself adds about a millisecond, only the warm-up runs go through it
    (`probe_rss`); the timed runs execute the tool directly.
    """
    rss_file = log.with_suffix(".rss")
    rss_file.unlink(missing_ok=True)
    command = list(argv)
    if probe_rss and TIME_BIN:
        command = [TIME_BIN, "-f", "%M", "-o", str(rss_file), *command]
    env = {**os.environ, "LC_ALL": "C"}
    killed = threading.Event()
    with log.open("wb") as out:
        start = time.perf_counter()
        proc = subprocess.Popen(
            command, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=out,
            stderr=subprocess.STDOUT, start_new_session=True,
        )
        timer = threading.Timer(timeout, _kill_group, (proc.pid, killed))
        timer.start()
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
        timer.cancel()
    proc.returncode = os.waitstatus_to_exitcode(status)
    _kill_group(proc.pid, None)  # leftovers of a tool that exited before its children
    rss = _read_rss(rss_file) if probe_rss and TIME_BIN else None
    if probe_rss and rss is None and not TIME_BIN:
        rss = usage.ru_maxrss
    return Outcome(seconds, proc.returncode, killed.is_set(), rss)


def _kill_group(pid: int, flag: threading.Event | None) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    if flag is not None:
        flag.set()


def _read_rss(path: Path) -> int | None:
    try:
        return int(path.read_text().strip().splitlines()[-1])
    except (OSError, ValueError, IndexError):
        return None


# One tool's copy of the pipeline


class Project:
    """A tool's directory: its sources as the harness last wrote them, and output checks."""

    def __init__(self, tool: str, pipeline: Pipeline, root: Path) -> None:
        self.tool = tool
        self.pipeline = pipeline
        self.root = root
        self.outputs = [step.output for step in pipeline.steps()]
        self.sources: dict[str, bytes] = {}
        self.version = 0

    def fresh(self) -> None:
        """Regenerate from nothing, so that no output and no tool state survives."""
        if self.root.exists():
            shutil.rmtree(self.root)
        self.sources = write_tool_dir(self.tool, self.pipeline, self.root)
        self.version = 0

    def write_expected(self) -> None:
        """Write every output with the content it must have, in build order.

        Each output is written after its inputs, so no input is newer than an output that
        reads it: what a build leaves behind, as far as files go.
        """
        for name, data in expected_outputs(self.pipeline, self.sources).items():
            (self.root / name).write_bytes(data)

    def change_one(self) -> None:
        """Give one source new content, and a newer mtime than every output."""
        self.version += 1
        data = source_content(CHANGED_SOURCE, self.version)
        self.sources[CHANGED_SOURCE] = data
        self._make_newer(lambda path: path.write_bytes(data))

    def touch_one(self) -> None:
        """Bump one source's mtime, keeping its content."""
        self._make_newer(lambda path: os.utime(path))

    def _make_newer(self, write: Callable[[Path], None]) -> None:
        """Write, and again until the file is newer than every output.

        File systems stamp with a coarse clock, and make/ninja need the source to be
        strictly newer; a real edit comes well after the last build.
        """
        path = self.root / CHANGED_SOURCE
        newest = max((m for m in self.mtimes().values() if m is not None), default=0)
        write(path)
        while path.stat().st_mtime_ns <= newest:
            time.sleep(0.01)
            write(path)

    def mtimes(self) -> dict[str, int | None]:
        stamps: dict[str, int | None] = {}
        for name in self.outputs:
            try:
                stamps[name] = (self.root / name).stat().st_mtime_ns
            except FileNotFoundError:
                stamps[name] = None
        return stamps

    def count_rewritten(self, before: dict[str, int | None]) -> int:
        """Outputs whose mtime moved: the steps that ran, whatever the tool prints."""
        after = self.mtimes()
        return sum(1 for name, stamp in after.items() if stamp not in (None, before[name]))

    def check(self) -> str | None:
        """Compare every output with its expected bytes; describe the first difference."""
        for name, data in expected_outputs(self.pipeline, self.sources).items():
            path = self.root / name
            if not path.is_file():
                return f"{name} is missing"
            if path.read_bytes() != data:
                return f"{name} has wrong content"
        return None


# Phases


@dataclass
class Phase:
    """The measurements of one phase for one tool: timed runs after a warm-up."""

    name: str
    status: str = "ok"  # ok | failed | timeout | skipped | not run
    seconds: list[float] = field(default_factory=list)
    reran: list[int] = field(default_factory=list)  # every run, the warm-up first
    rss_kb: int | None = None
    detail: str = ""

    @property
    def median(self) -> float | None:
        return statistics.median(self.seconds) if self.seconds else None


@dataclass
class Result:
    """All phases of one tool on one pipeline."""

    tool: str
    phases: dict[str, Phase] = field(default_factory=dict)
    prepared: str = ""  # how the harness made the up-to-date state when scratch timed out

    @property
    def stopped(self) -> bool:
        """A phase failed or timed out, and no prepared state stands in for it."""
        return any(
            p.status != "ok" and not (p.name == "scratch" and self.prepared)
            for p in self.phases.values()
        )

    @property
    def rss_kb(self) -> int | None:
        values = [p.rss_kb for p in self.phases.values() if p.rss_kb is not None]
        return max(values) if values else None

    @property
    def timed_out(self) -> bool:
        return any(p.status == "timeout" for p in self.phases.values())


@dataclass(frozen=True)
class Settings:
    repeat: int
    timeout: float
    workdir: Path
    warmup: bool = True
    single_run: frozenset[str] = frozenset()  # tools timed once, without a warm-up
    left_out: frozenset[str] = frozenset()  # tools given a row but not run

    def for_tool(self, name: str) -> Settings:
        """One run, no warm-up, for a tool whose every build takes minutes at this size."""
        if name in self.single_run:
            return replace(self, repeat=1, warmup=False)
        return self


def measure_phase(
    name: str, tool: Tool, project: Project, settings: Settings, prepare: Callable[[], None]
) -> Phase:
    """One warm-up run (which also probes RSS), then `repeat` timed runs, all checked.

    Without a warm-up (for the largest sizes, where one build takes minutes) the first
    scratch build, which probes RSS, is timed too. The other phases take seconds, and keep
    their warm-up: a no-op is measured after a no-op, as a user meets it, not only right
    after the scratch build (where a tool that trusts a stat only once it is a second old
    still has to look at what it just wrote).
    """
    phase = Phase(name)
    logs = project.root.parent / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    warmup = settings.warmup or name != "scratch"
    for run in range(1 + settings.repeat if warmup else settings.repeat):
        prepare()
        before = project.mtimes()
        log = logs / f"{tool.name}-{name.replace(' ', '-')}-{run}.log"
        outcome = execute(tool.build, project.root, log, settings.timeout, probe_rss=run == 0)
        if outcome.timed_out:
            phase.status, phase.detail = "timeout", f"killed after {settings.timeout:g} s"
            return phase
        if outcome.returncode != 0:
            phase.status = "failed"
            phase.detail = f"exit status {outcome.returncode}, log: {log}"
            return phase
        problem = project.check()
        if problem:
            phase.status, phase.detail = "failed", f"{problem} (log: {log})"
            return phase
        phase.reran.append(project.count_rewritten(before))
        if run == 0:
            phase.rss_kb = outcome.rss_kb
        if run > 0 or not warmup:
            phase.seconds.append(outcome.seconds)
    return phase


def bench_tool(tool: Tool, pipeline: Pipeline, settings: Settings) -> Result:
    """All phases in order; a phase that fails or times out ends the tool's run.

    Except a scratch build that timed out, for a tool that can take outputs it did not
    write as built (`Tool.mark_done`): the harness then prepares that state and goes on.
    """
    root = settings.workdir / f"{pipeline.shape}-{pipeline.size}" / tool.name
    project = Project(tool.name, pipeline, root)
    result = Result(tool.name)
    preparations: dict[str, Callable[[], None]] = {
        "scratch": project.fresh,
        "no-op": lambda: None,
        "one change": project.change_one,
        "touch": project.touch_one,
    }
    for name in PHASES:
        if result.stopped:
            result.phases[name] = Phase(name, status="skipped")
            continue
        progress(f"  {tool.name:<12} {name} ...")
        phase = measure_phase(name, tool, project, settings, preparations[name])
        result.phases[name] = phase
        if name == "scratch" and phase.status == "timeout" and tool.mark_done:
            result.prepared = prepare_up_to_date(tool, project, settings, phase)
    return result


def prepare_up_to_date(tool: Tool, project: Project, settings: Settings, scratch: Phase) -> str:
    """Stand in for a scratch build that timed out; return how, for the report.

    The directory is regenerated, which drops the killed build's partial outputs, locks
    and unfinished-job markers; the harness writes every output, then runs the tool's own
    command for taking existing outputs as built. The state is used only if that command
    succeeds and leaves every output right; the no-op that follows then shows whether
    the tool agrees that nothing is left to do (the report notes a no-op that rewrites
    anything). On failure the reason goes to the scratch phase and "" is returned.
    """
    assert tool.mark_done is not None
    progress(f"  {tool.name:<12} scratch timed out; preparing the up-to-date state ...")
    project.fresh()
    project.write_expected()
    before = project.mtimes()
    log = project.root.parent / "logs" / f"{tool.name}-prepare.log"
    outcome = execute(tool.mark_done, project.root, log, settings.timeout, probe_rss=False)
    problem = _failure(outcome, log) or project.check()
    if problem:
        scratch.detail += f"; preparing the state without it failed: {problem}"
        return ""
    touched = project.count_rewritten(before)
    return (
        "the scratch build timed out, so the harness wrote every output with its expected "
        f"content, in build order, then ran `{command_line(tool.mark_done)}`, which touched "
        f"{touched} of them; peak RSS is over these phases only; {tool.mark_done_note}"
    )


def _failure(outcome: Outcome, log: Path) -> str | None:
    if outcome.timed_out:
        return f"timed out, log: {log}"
    if outcome.returncode != 0:
        return f"exit status {outcome.returncode}, log: {log}"
    return None


def command_line(argv: Sequence[str]) -> str:
    """A command as the report shows it: the program's name, not its full path."""
    return " ".join([Path(argv[0]).name, *argv[1:]])


def bench_size(pipeline: Pipeline, tools: dict[str, Tool], settings: Settings,
               timeouts: TimeoutLog) -> list[Result]:
    """Every tool on one pipeline, except those that timed out at a smaller size."""
    results = []
    for name, tool in tools.items():
        earlier = timeouts.smaller(pipeline, name)
        if earlier is not None or name in settings.left_out:
            results.append(not_run(name, earlier))
            continue
        tool_settings = settings.for_tool(name)
        result = bench_tool(tool, pipeline, tool_settings)
        if result.timed_out:
            timeouts.add(TimedOut(pipeline.shape, name, pipeline.size, tool_settings.timeout))
        results.append(result)
    return results


def not_run(tool: str, earlier: TimedOut | None) -> Result:
    """The row of a tool not run: it timed out on a smaller pipeline, or it was left out."""
    if earlier is None:
        detail = "not run: left out at this size (--not-run)"
    else:
        detail = f"not run: timed out ({fmt_limit(earlier.timeout)}) at N = {earlier.size:,}"
    return Result(tool, {"scratch": Phase("scratch", "not run", detail=detail)})


@dataclass(frozen=True)
class TimedOut:
    """A tool that was killed at one size of one shape."""

    shape: str
    tool: str
    size: int
    timeout: float


class TimeoutLog:
    """The tools that timed out, in this run and, with --timeouts FILE, in earlier ones.

    A tool that times out at one size would only take longer at a larger one, so it is not
    run there. The file carries this from one run of the harness to the next, for suites
    that run each size with its own settings (benchmarks/all.sh).
    """

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.records: list[TimedOut] = []
        if path is not None and path.exists():
            for line in path.read_text().splitlines():
                shape, tool, size, timeout = line.split()
                self.records.append(TimedOut(shape, tool, int(size), float(timeout)))

    def smaller(self, pipeline: Pipeline, tool: str) -> TimedOut | None:
        """When the tool timed out on a smaller pipeline of the same shape."""
        for record in self.records:
            same = (record.shape, record.tool) == (pipeline.shape, tool)
            if same and record.size < pipeline.size:
                return record
        return None

    def add(self, record: TimedOut) -> None:
        self.records.append(record)
        if self.path is not None:
            with self.path.open("a") as out:
                out.write(f"{record.shape} {record.tool} {record.size} {record.timeout:g}\n")


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# Report


def fmt_seconds(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds * 1000:.3g} ms"
    return f"{seconds:.3g} s" if seconds < 100 else f"{seconds:.0f} s"


def fmt_limit(timeout: float) -> str:
    return f"> {timeout / 60:g} min" if timeout >= 60 else f"> {timeout:g} s"


def fmt_counts(values: list[int]) -> str:
    """The rerun counts of the timed runs; the warm-up's too when it differed."""
    if not values:
        return ""
    timed = sorted(set(values[1:])) or sorted(set(values))
    text = "/".join(str(v) for v in timed)
    if values[0] not in timed:
        text += f" (warm-up {values[0]})"
    return text


def phase_cell(phase: Phase | None, baseline: Phase | None, timeout: float) -> str:
    if phase is None or phase.status == "skipped":
        return "—"
    if phase.status == "not run":
        return "not run"
    if phase.status == "timeout":
        return fmt_limit(timeout)
    if phase.status == "failed":
        return "FAILED"
    median = phase.median
    if median is None:
        return "—"
    cell = fmt_seconds(median)
    base = baseline.median if baseline and baseline.status == "ok" else None
    if base:
        cell += f" ({median / base:.1f}x)" if median / base < 10 else f" ({median / base:.0f}x)"
    return cell


def rss_cell(result: Result) -> str:
    rss = result.rss_kb
    return f"{rss / 1024:.0f} MiB" if rss is not None else "—"


def render_table(pipeline: Pipeline, results: list[Result], timeout: float) -> str:
    """One markdown table: rows are tools, columns the phases, times relative to make."""
    base = next((r for r in results if r.tool == BASELINE), None)
    steps = pipeline.size + 1
    lines = [
        f"### {pipeline.shape}, N = {pipeline.size:,} ({steps:,} steps)",
        "",
        "| tool | scratch | no-op | one change | reran | touch | reran | peak RSS |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    notes = []
    for result in results:
        row, row_notes = table_row(result, base, timeout)
        lines.append(row)
        notes += row_notes
    if notes:
        lines += ["", *notes]
    return "\n".join(lines) + "\n"


def table_row(result: Result, base: Result | None, timeout: float) -> tuple[str, list[str]]:
    """One tool's row, and the notes below the table that explain its cells.

    Cells measured from a state the harness prepared (`prepare_up_to_date`) carry a †,
    so that they are never read as following a real scratch build.
    """
    mark = " †" if result.prepared else ""
    cells, notes = [result.tool], []
    for name in PHASES:
        phase = result.phases.get(name) or Phase(name, status="skipped")
        baseline = base.phases.get(name) if base else None
        ok = phase.status == "ok"
        cells.append(phase_cell(phase, baseline, timeout) + (mark if ok else ""))
        if name in ("one change", "touch"):
            cells.append(fmt_counts(phase.reran) if ok else "")
        if phase.detail:
            notes.append(f"- {result.tool}, {name}: {phase.detail}")
        if name == "no-op" and ok and any(phase.reran):
            notes.append(f"- {result.tool}, no-op: rewrote {fmt_counts(phase.reran)} outputs")
    cells.append(rss_cell(result) + (mark if result.rss_kb is not None else ""))
    if result.prepared:
        notes.append(f"- † {result.tool}: {result.prepared}.")
    return "| " + " | ".join(cells) + " |", notes


def machine_summary() -> list[str]:
    """What the numbers depend on: cores, CPU, memory, OS, date."""
    cpu = "unknown"
    memory = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                memory = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
                break
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return [
        f"- date: {now}",
        f"- machine: {cores} cores (nproc), {cpu}, {memory} RAM, {platform.platform()}",
        f"- Python {platform.python_version()} (harness)",
    ]


def render_header(tools: dict[str, Tool], versions: dict[str, str], settings: Settings,
                  jobs: int, loads: tuple[float, float]) -> str:
    lines = ["# makeflow benchmarks", "", *machine_summary()]
    lines.append(
        f"- load average (1 min) at start {loads[0]:.2f}, at end {loads[1]:.2f}: other "
        "work on the machine skews the times"
    )
    lines.append(
        f"- {settings.repeat} timed run{'s' if settings.repeat > 1 else ''} per cell"
        f"{' after one warm-up' if settings.warmup else ', no warm-up for scratch builds'}; "
        "median shown; "
        f"{jobs} parallel jobs; timeout {fmt_limit(settings.timeout)[2:]} per run"
    )
    if settings.single_run:
        names = ", ".join(sorted(settings.single_run))
        lines.append(f"- one timed run per cell, no warm-up for scratch builds, for {names} "
                     "(builds of minutes)")
    if settings.left_out:
        names = ", ".join(sorted(settings.left_out))
        lines.append(f"- not run, with a row saying why: {names}")
    lines.append(f"- peak RSS: {'/usr/bin/time' if TIME_BIN else 'wait4 (harness floor)'}")
    if "makeflow" in tools and not tools["makeflow"].missing:
        lines.append(f"- makeflow executable: `{tools['makeflow'].build[0]}`")
    lines += [f"- not run: {t.name} ({t.missing})" for t in tools.values() if t.missing]
    lines += ["", "| tool | version | command |", "|---|---|---|"]
    for name, tool in tools.items():
        if tool.missing:
            continue
        lines.append(f"| {name} | {versions.get(name, '')} | `{command_line(tool.build)}` |")
    lines += [
        "",
        "Times are wall-clock seconds of the whole process; (Nx) is the ratio to make. "
        "\"reran\" counts the outputs rewritten by a build (one number per distinct count "
        "over the timed runs). FAILED means a non-zero exit or an output with wrong "
        "content.",
        "",
    ]
    return "\n".join(lines)


# Command line


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1000", help="comma-separated N (default 1000)")
    parser.add_argument("--shapes", default=",".join(SHAPES))
    parser.add_argument("--tools", default=",".join(TOOLS))
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per cell")
    parser.add_argument("--timeout", type=float, default=600, help="seconds per build")
    parser.add_argument("--jobs", type=int, default=2, help="parallel jobs for every tool")
    parser.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR)
    parser.add_argument("--peers-venv", type=Path, default=DEFAULT_PEERS)
    parser.add_argument("--makeflow", help="makeflow executable (default: beside python)")
    parser.add_argument("--out", type=Path, help="also write the markdown report here")
    parser.add_argument("--no-warmup", action="store_true",
                        help="time the first scratch build too (for sizes where a build takes "
                        "minutes); the other phases keep their warm-up")
    parser.add_argument("--single-run", default="", metavar="TOOLS",
                        help="comma-separated tools timed once, scratch with no warm-up, whatever "
                             "--repeat says (a peer whose builds take minutes)")
    parser.add_argument("--not-run", default="", metavar="TOOLS",
                        help="comma-separated tools shown with a row that says why they "
                             "were not run (timed out at a smaller size, or left out)")
    parser.add_argument("--timeouts", type=Path, metavar="FILE",
                        help="append the tools that time out to FILE, and do not run the "
                             "tools it lists at larger sizes of the same shape")
    args = parser.parse_args(argv)
    args.sizes = [int(s.replace("_", "")) for s in args.sizes.split(",") if s]
    args.shapes = [s for s in args.shapes.split(",") if s]
    args.tools = [t for t in args.tools.split(",") if t]
    args.single_run = frozenset(t for t in args.single_run.split(",") if t)
    args.not_run = [t for t in args.not_run.split(",") if t and t not in args.tools]
    checks = ((args.shapes, SHAPES, "shape"), (args.tools, TOOLS, "tool"),
              (args.single_run, TOOLS, "tool"), (args.not_run, TOOLS, "tool"))
    for value, known, what in checks:
        unknown = sorted(set(value) - set(known))
        if unknown:
            parser.error(f"unknown {what}: {', '.join(unknown)}")
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    settings = Settings(args.repeat, args.timeout, args.workdir, not args.no_warmup,
                        args.single_run, frozenset(args.not_run))
    every = find_tools(args.peers_venv, args.makeflow, args.jobs)
    tools = {name: every[name] for name in TOOLS if name in [*args.tools, *args.not_run]}
    for tool in tools.values():
        if tool.missing:
            progress(f"skipping {tool.name}: {tool.missing}")
    runnable = {name: tool for name, tool in tools.items() if not tool.missing}
    versions = {name: tool_version(tool) for name, tool in tools.items()}
    timeouts = TimeoutLog(args.timeouts)
    load_start = os.getloadavg()[0]
    sections = []
    for shape in args.shapes:
        for size in sorted(args.sizes):
            progress(f"{shape}, N={size}")
            pipeline = Pipeline(shape, size)
            results = bench_size(pipeline, runnable, settings, timeouts)
            table = render_table(pipeline, results, settings.timeout)
            progress(table)
            sections.append(table)
    loads = (load_start, os.getloadavg()[0])
    header = render_header(tools, versions, settings, args.jobs, loads)
    report = "\n".join([header, *sections])
    print(report)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(report)
        progress(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
