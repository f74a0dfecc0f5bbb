"""What recording the run history costs: two installs of makeflow, one without the history
and one with it, built in turns on the same generated pipelines.

For each size and each pipeline kind (`makeflow`: shell steps, `makeflow-py`: Python
steps) it generates a fresh copy per install, then alternates between the installs
--repeat times: a scratch build (after removing outputs and state) and three no-op
builds. Taking turns spreads the noise of a shared machine over both. It reports the
median wall time and the median CPU time (user + system of makeflow and every process it
waited for, from os.wait4), which other load on the machine disturbs less, and the median
of the per-turn CPU ratios (each turn builds with every install back to back).

Usage: python benchmarks/history_overhead.py --before PATH --after PATH [--also NAME=PATH]
       [--sizes 1000,10000] [--repeat 5] [--workdir /tmp/makeflow-history-bench]
where PATH is a makeflow executable (e.g. a virtualenv's bin/makeflow, or a script that
runs one). `--also` adds more installs to the turns (e.g. an older version of the
history); every row is compared with `before`.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from generate import Pipeline, write_tool_dir


def run(argv: list[str], cwd: Path) -> tuple[float, float]:
    """Wall and CPU seconds of one build (CPU: the process and all it waited for)."""
    started = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=cwd, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(argv)} failed in {cwd}")
    return wall, usage.ru_utime + usage.ru_stime


def fresh(folder: Path, template: Path) -> None:
    """Back to before the first build: the generated files only."""
    shutil.rmtree(folder, ignore_errors=True)
    shutil.copytree(template, folder)


def measure(size: int, kind: str, installs: dict[str, str], repeat: int,
            workdir: Path) -> dict[str, dict[str, list[tuple[float, float]]]]:
    template = workdir / f"{kind}-{size}-template"
    shutil.rmtree(template, ignore_errors=True)
    write_tool_dir(kind, Pipeline("wide", size), template)
    times: dict[str, dict[str, list[tuple[float, float]]]] = {
        name: {"scratch": [], "no-op": []} for name in installs}
    for turn in range(repeat):
        order = list(installs) if turn % 2 == 0 else list(reversed(installs))
        for name in order:
            folder = workdir / f"{kind}-{size}-{name}"
            fresh(folder, template)
            exe = installs[name]
            times[name]["scratch"].append(run([exe, "build", "-j", "2", "-q"], folder))
            noops = [run([exe, "build", "-j", "2", "-q"], folder) for _ in range(3)]
            times[name]["no-op"].append((statistics.median(w for w, _ in noops),
                                         statistics.median(c for _, c in noops)))
        print(f"  {kind} N={size}: turn {turn + 1}/{repeat} done", file=sys.stderr)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", required=True, help="makeflow without the run history")
    parser.add_argument("--after", required=True, help="makeflow with the run history")
    parser.add_argument("--also", action="append", default=[], metavar="NAME=PATH",
                        help="another install to take turns with (compared with before)")
    parser.add_argument("--sizes", default="1000,10000")
    parser.add_argument("--kinds", default="makeflow,makeflow-py")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/makeflow-history-bench"))
    args = parser.parse_args()
    installs = {"before": args.before, "after": args.after}
    installs.update(item.split("=", 1) for item in args.also)
    print("| pipeline | phase | install | wall | wall change | CPU | CPU change | "
          "paired CPU change |")
    print("|---|---|---|---:|---:|---:|---:|---:|")
    for size in (int(s) for s in args.sizes.split(",")):
        for kind in args.kinds.split(","):
            times = measure(size, kind, installs, args.repeat, args.workdir)
            for phase in ("scratch", "no-op"):
                for name in installs:
                    print(f"| {kind}, wide, N = {size:,} | {phase} | {name} | "
                          + row(times["before"][phase], times[name][phase]), flush=True)


def row(base: list[tuple[float, float]], got: list[tuple[float, float]]) -> str:
    """Medians and their change from `before`; the paired change is the median of each
    turn's ratio, which cancels the load that both installs met in the same turn."""
    wb, cb = (statistics.median(x[i] for x in base) for i in (0, 1))
    wall, cpu = (statistics.median(x[i] for x in got) for i in (0, 1))
    if got is base:
        return f"{wall:.3f} s |  | {cpu:.3f} s |  |  |"
    paired = statistics.median(g[1] / b[1] for b, g in zip(base, got, strict=True))
    return (f"{wall:.3f} s | {(wall / wb - 1) * 100:+.1f} % | {cpu:.3f} s | "
            f"{(cpu / cb - 1) * 100:+.1f} % | {(paired - 1) * 100:+.1f} % |")

if __name__ == "__main__":
    main()
