"""Where a full build's CPU goes: makeflow's own process against the steps it starts.

Generates one pipeline (generate.py), then times scratch builds (`makeflow build -j2 -q`,
outputs and `.makeflow/` gone before each) of every given makeflow in turns, so installs
are compared under the same load. Each build runs in a Python process of that install that
reports with getrusage: wall seconds, CPU of makeflow itself (every thread, user + system),
CPU of its children (the shell steps, or the Python workers), and its voluntary context
switches (thread hand-offs). Medians of --rounds; `make -j2` of the same pipeline in turn.

Usage: python benchmarks/step_cpu.py --python /venv-a/bin/python --python /venv-b/bin/python
       [--shape wide] [--size 1000] [--format makeflow|makeflow-py] [--rounds 5] [-- ARGS]

Arguments after `--` go to every makeflow build (e.g. `--no-cache`).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from generate import SHAPES, Pipeline, write_tool_dir

CHILD = """
import os, resource, sys, time
start = time.perf_counter()
from makeflow.ui.cli import cli
try:
    cli(["build", "-j2", "-q", *sys.argv[1:]], prog_name="makeflow", standalone_mode=False)
except SystemExit:
    pass
me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
print(time.perf_counter() - start, me.ru_utime + me.ru_stime, kids.ru_utime + kids.ru_stime,
      me.ru_nvcsw, file=sys.stderr)
"""


def fresh(src: Path, dest: Path) -> Path:
    shutil.rmtree(dest, ignore_errors=True)
    shutil.copytree(src, dest, symlinks=True)
    return dest


def build(python: str, src: Path, work: Path, extra: list[str]) -> tuple[float, ...]:
    """One scratch build; (wall, self CPU, children CPU, voluntary switches)."""
    here = fresh(src, work)
    done = subprocess.run([python, "-c", CHILD, *extra], cwd=here, capture_output=True,
                          text=True, check=True)
    return tuple(float(x) for x in done.stderr.strip().splitlines()[-1].split())


def make(src: Path, work: Path) -> tuple[float, ...]:
    """make -j2 of the same pipeline, timed the same way (its children are everything)."""
    here = fresh(src, work)
    code = ("import resource, subprocess, sys, time; s = time.perf_counter(); "
            "subprocess.run(['make', '-j2', '-s'], check=True); "
            "k = resource.getrusage(resource.RUSAGE_CHILDREN); "
            "print(time.perf_counter() - s, 0, k.ru_utime + k.ru_stime, 0, file=sys.stderr)")
    done = subprocess.run([sys.executable, "-c", code], cwd=here, capture_output=True,
                          text=True, check=True)
    return tuple(float(x) for x in done.stderr.strip().splitlines()[-1].split())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", action="append", required=True,
                        help="the Python of a makeflow install (repeat to compare)")
    parser.add_argument("--shape", choices=SHAPES, default="wide")
    parser.add_argument("--size", type=int, default=1000)
    parser.add_argument("--format", choices=("makeflow", "makeflow-py"), default="makeflow")
    parser.add_argument("--rounds", type=int, default=5)
    args, extra = parser.parse_known_args()
    extra = [a for a in extra if a != "--"]
    with tempfile.TemporaryDirectory(prefix="makeflow-step-cpu-") as tmp:
        root = Path(tmp)
        pipeline = Pipeline(args.shape, args.size)
        write_tool_dir(args.format, pipeline, root / "src")
        write_tool_dir("make", pipeline, root / "make-src")
        rows: dict[str, list[tuple[float, ...]]] = {p: [] for p in args.python}
        rows["make"] = []
        for _ in range(args.rounds):
            for python in args.python:
                rows[python].append(build(python, root / "src", root / "work", extra))
            rows["make"].append(make(root / "make-src", root / "work"))
        print(f"{args.format}, {args.shape}, N = {args.size}, {args.rounds} rounds, "
              f"load {os.getloadavg()[0]:.1f}; medians")
        print("| build | wall s | makeflow CPU s | children CPU s | context switches |")
        print("|---|---:|---:|---:|---:|")
        for name, runs in rows.items():
            wall, own, kids, switches = (statistics.median(col) for col in zip(*runs, strict=True))
            print(f"| {name} | {wall:.2f} | {own:.2f} | {kids:.2f} | {switches:.0f} |")


if __name__ == "__main__":
    main()
