"""Planning at a million steps: dry run, status and no-op build, side by side, in turns.

Long, and run on demand only: at N = 1,000,000 the generator writes a million sources
(minutes, and 4 GB of disk blocks; without `--full` every tool reads one shared copy of
them through a symlinked `in` folder, with `--full` each tool gets its own), a makeflow
dry run takes seconds to tens of seconds, and `--full` adds a scratch build of every step
by every tool (an hour or more on 2 cores). Every tool has its own folder for the
pipeline of `generate.py`:

* `makeflow` (the executable given by `--makeflow`, or the one beside this Python);
* `before` (with `--before PATH`): another makeflow, e.g. an install of an older commit,
  so a change is measured against its base under the same load;
* `make` (GNU make), for reference: `make -n`, `make -q`, `make -j2`.

Phases, each run `--repeat` times with the tools taking turns (A B C, then C B A, ...),
so that the noise of a shared machine falls on all of them alike:

| phase | makeflow | make |
|---|---|---|
| dry run, first | `build -n` with no `.makeflow/` (nothing cached) | `make -n` |
| dry run | `build -n` again (the graph is cached now) | `make -n` |
| status | `status` | `make -q` |
| scratch (`--full`) | `build -j2` on fresh sources | `make -j2` |
| no-op (`--full`) | `build -j2` again | `make -j2` again |
| dry run / status, built (`--full`) | as above, after the build | as above |

Each cell is the median wall time of the whole process with its peak resident set (from
`/usr/bin/time`, the largest process of its tree). The load average is printed with every
phase. A scratch build's outputs are compared byte for byte with what they must be.

Usage: python benchmarks/planning.py [--sizes 1000000] [--shapes wide] [--repeat 3]
       [--before PATH] [--makeflow PATH] [--full] [--workdir DIR] [--out FILE]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import statistics
import sys
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from generate import FORMATS, LIST_FILE, SHAPES, Pipeline, write_sources
from run import Project, _default_makeflow, _given, execute, machine_summary

DEFAULT_WORKDIR = Path("/tmp/makeflow-planning")
TIMEOUT = 4 * 3600


@dataclass(frozen=True)
class Contender:
    """One tool to time: a label, its executable, and whether it is a makeflow."""

    label: str
    exe: str
    makeflow: bool

    def argv(self, phase: str, jobs: int) -> list[str]:
        kind = phase.split(",")[0]
        if self.makeflow:
            return [self.exe, *{"dry run": ["build", "-n"], "status": ["status"]}.get(
                kind, ["build", "-j", str(jobs)])]
        return [self.exe, "-f", "Makefile", *{"dry run": ["-n"], "status": ["-q"]}.get(
            kind, [f"-j{jobs}"])]


@dataclass
class Cell:
    seconds: list[float] = field(default_factory=list)
    rss_kb: list[int] = field(default_factory=list)
    failed: str = ""

    def show(self) -> str:
        if self.failed:
            return f"FAILED ({self.failed})"
        if not self.seconds:
            return "—"
        mid = statistics.median(self.seconds)
        spread = f" ({min(self.seconds):.2f} to {max(self.seconds):.2f})" if len(
            self.seconds) > 1 else ""
        peak = f", {max(self.rss_kb) / 1024:.0f} MB" if self.rss_kb else ""
        return f"{mid:.2f} s{spread}{peak}"


def load() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


def progress(text: str) -> None:
    print(f"[{dt.datetime.now():%H:%M:%S}] {text}", file=sys.stderr, flush=True)


def measure(phase: str, contenders: list[Contender], projects: dict[str, Project],
            repeat: int, jobs: int) -> tuple[dict[str, Cell], str]:
    """Run one phase for every tool, `repeat` rounds, the order reversed every round."""
    cells = {c.label: Cell() for c in contenders}
    before = load()
    for round_ in range(repeat):
        order = contenders if round_ % 2 == 0 else list(reversed(contenders))
        for c in order:
            cell, project = cells[c.label], projects[c.label]
            if cell.failed:
                continue
            if phase.startswith("scratch"):
                project.fresh()
            elif phase == "dry run, first" and c.makeflow:
                shutil.rmtree(project.root / ".makeflow", ignore_errors=True)
            log = project.root.parent / f"{c.label}-{phase.replace(' ', '_')}-{round_}.log"
            outcome = execute(c.argv(phase, jobs), project.root, log, TIMEOUT, probe_rss=True)
            ok = outcome.returncode == 0 or (phase.startswith("status") and not c.makeflow)
            if outcome.timed_out or not ok:
                cell.failed = f"exit {outcome.returncode}, see {log}"
                continue
            if phase.startswith("scratch"):
                wrong = project.check()
                if wrong:
                    cell.failed = wrong
                    continue
            cell.seconds.append(outcome.seconds)
            if outcome.rss_kb:
                cell.rss_kb.append(outcome.rss_kb)
            progress(f"{phase} {c.label}: {outcome.seconds:.2f} s, "
                     f"{(outcome.rss_kb or 0) / 1024:.0f} MB")
    return cells, f"{before} → {load()}"


def shared_sources(project: Project, sources: Path) -> None:
    """The tool's folder with its sources in one folder that every tool links to: planning
    only reads them, and writing a million files once instead of once per tool saves
    minutes. Every tool reads them through the same symlinked folder, `in`."""
    if not sources.exists():
        write_sources(project.pipeline, sources)
    project.root.mkdir(parents=True)
    for sub in project.pipeline.output_dirs():
        (project.root / sub).mkdir(parents=True, exist_ok=True)
    os.symlink(sources / "in", project.root / "in")
    shutil.copyfile(sources / LIST_FILE, project.root / LIST_FILE)
    fmt = FORMATS[project.tool]
    (project.root / fmt.filename).write_text(fmt.render(project.pipeline))


def bench(pipeline: Pipeline, contenders: list[Contender], args: argparse.Namespace) -> str:
    base = args.workdir / f"{pipeline.shape}-{pipeline.size}"
    shutil.rmtree(base, ignore_errors=True)
    projects = {}
    for c in contenders:
        progress(f"generating {pipeline.shape} N={pipeline.size} for {c.label}")
        project = projects[c.label] = Project("makeflow" if c.makeflow else "make", pipeline,
                                              base / c.label)
        if args.full:
            project.fresh()
        else:
            shared_sources(project, base / "sources")
    phases = ["dry run, first", "dry run", "status"]
    if args.full:
        phases += ["scratch", "no-op", "dry run, built", "status, built"]
    rows = []
    for phase in phases:
        cells, loads = measure(phase, contenders, projects, args.repeat, args.jobs)
        rows.append(f"| {phase} | " + " | ".join(cells[c.label].show() for c in contenders)
                    + f" | {loads} |")
    head = (f"\n### {pipeline.shape}, N = {pipeline.size:,}\n\n| phase | "
            + " | ".join(c.label for c in contenders) + " | load average (1/5/15 min) |\n"
            + "|---|" + "---:|" * len(contenders) + "---|\n")
    return head + "\n".join(rows) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1000000")
    parser.add_argument("--shapes", default="wide")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--makeflow", help="the makeflow to time (default: beside this Python)")
    parser.add_argument("--before", help="another makeflow to time beside it, in turns")
    parser.add_argument("--no-make", action="store_true", help="leave GNU make out")
    parser.add_argument("--full", action="store_true",
                        help="also a scratch build, a no-op, and status after it (long)")
    parser.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    exe = _given(args.makeflow) if args.makeflow else _default_makeflow()
    if exe is None:
        parser.error("no makeflow found (pip install -e ., or --makeflow PATH)")
    contenders = [Contender("makeflow", exe, True)]
    if args.before:
        before = _given(args.before)
        if before is None:
            parser.error(f"--before {args.before} is not an executable")
        contenders.append(Contender("before", before, True))
    if not args.no_make and shutil.which("make"):
        contenders.append(Contender("make", shutil.which("make"), False))
    shapes = [s for s in args.shapes.split(",") if s]
    if set(shapes) - set(SHAPES):
        parser.error(f"shapes: choose from {', '.join(SHAPES)}")
    started = dt.datetime.now(dt.UTC)
    report = [f"# Planning at scale, {started:%Y-%m-%d %H:%M} UTC", "", *machine_summary(),
              "", "Command: `" + " ".join(["python", "benchmarks/planning.py",
                                             *(argv if argv is not None else sys.argv[1:])])
              + "`", ""]
    report += [f"- {c.label}: `{c.exe}`" for c in contenders]
    for size in (int(s) for s in args.sizes.split(",") if s):
        for shape in shapes:
            table = bench(Pipeline(shape, size), contenders, args)
            print(table, file=sys.stderr)
            report.append(table)
    text = "\n".join(report) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
