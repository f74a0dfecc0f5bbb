"""A one-change build and a no-op build at 10,000 steps, paired, for two makeflow sources.

Two copies of the same generated pipeline (generate.py, wide shape) are built from scratch,
one with the makeflow in `--before` (a source checkout, e.g. a `git worktree` of an older
commit) and one with this checkout's. Then, round after round, each copy gets the same
change of one source and is built again; the two builds of a round run one right after
the other, in alternating order, so that a loaded machine slows both alike. After every
round the two `makeflow.lock` files must be byte-identical (the older code writes the
whole file each time). Last, in this checkout's copy, no-op builds with the run cache on
and with `--no-cache` alternate the same way.

Prints one markdown table per comparison: medians of wall-clock and CPU seconds (user +
system, of the whole `python -m makeflow build -q -j 2` process and its steps), their
ratios, and every run's wall-clock time. CPU time is less disturbed by other load.

Usage: python benchmarks/lock_update.py --before DIR [--size 10000] [--runs 9]
       [--workdir /tmp/makeflow-lock-bench] [--no-op-only]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from generate import Pipeline, source_content, write_tool_dir

HERE = Path(__file__).resolve().parent
CHANGED = "in/0.txt"


def build(source: Path, project: Path, *extra: str) -> tuple[float, float]:
    """Wall-clock and CPU (user + system) seconds of one `makeflow build` of `project` with
    the makeflow of `source`, its steps' processes included."""
    env = {**os.environ, "PYTHONPATH": str(source)}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "makeflow", "build", "-q", "-j", "2", *extra],
                          cwd=project, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"build failed in {project}:\n{done.stdout}{done.stderr}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return seconds, cpu


def paired(first: tuple[str, callable], second: tuple[str, callable], runs: int,
           check=None) -> dict[str, list[tuple[float, float]]]:
    """Run both, alternating which goes first, `runs` times; `check` after each round."""
    times: dict[str, list[tuple[float, float]]] = {first[0]: [], second[0]: []}
    for i in range(runs):
        order = (first, second) if i % 2 == 0 else (second, first)
        for name, work in order:
            times[name].append(work(i))
        if check is not None:
            check(i)
    return times


def no_op(name: str, source: Path, project: Path) -> tuple[str, callable]:
    return name, lambda i: build(source, project)


def table(title: str, times: dict[str, list[tuple[float, float]]]) -> str:
    """Medians of wall-clock and CPU seconds, their ratios, and every wall-clock time."""
    (a, ta), (b, tb) = times.items()
    wall = {n: statistics.median(w for w, _ in t) for n, t in times.items()}
    cpu = {n: statistics.median(c for _, c in t) for n, t in times.items()}
    lines = [f"{title}", "", "| makeflow | wall (median) | CPU (median) | wall, every run |",
             "|---|---:|---:|---|"]
    for name, values in ((a, ta), (b, tb)):
        runs = ", ".join(f"{w:.2f}" for w, _ in values)
        lines.append(f"| {name} | {wall[name]:.2f} s | {cpu[name]:.2f} s | {runs} |")
    lines += ["", f"ratio {b} / {a}: wall {wall[b] / wall[a]:.2f}, CPU {cpu[b] / cpu[a]:.2f} "
              "(of the medians)", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", type=Path, required=True,
                        help="source checkout of the makeflow to compare with")
    parser.add_argument("--size", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/makeflow-lock-bench"))
    parser.add_argument("--no-op-only", action="store_true",
                        help="only no-op builds of both sources, paired (e.g. against a "
                        "makeflow from before the run cache, which writes no lock)")
    args = parser.parse_args(argv)
    sources = {"before": args.before.resolve(), "after": HERE.parent}
    shutil.rmtree(args.workdir, ignore_errors=True)
    pipeline = Pipeline("wide", args.size)
    projects = {name: args.workdir / name for name in sources}
    for name, project in projects.items():
        write_tool_dir("makeflow", pipeline, project)
        print(f"scratch build ({name}): {build(sources[name], project)[0]:.1f} s", flush=True)
    if args.no_op_only:
        for name, project in projects.items():
            build(sources[name], project)  # the no-op snapshot saved
        noop = paired(*(no_op(name, sources[name], project) for name, project in projects.items()),
                      args.runs)
        print(table(f"No-op at {args.size:,} steps, cache on in both", noop))
        return

    def one_change(name: str):
        def work(i: int) -> float:
            (projects[name] / CHANGED).write_bytes(source_content(CHANGED, i + 1))
            return build(sources[name], projects[name])
        return name, work

    def same_lock(i: int) -> None:
        locks = {n: (p / "makeflow.lock").read_bytes() for n, p in projects.items()}
        if locks["before"] != locks["after"]:
            raise SystemExit(f"round {i}: the two makeflow.lock files differ")

    changes = paired(one_change("before"), one_change("after"), args.runs, same_lock)
    print(table(f"One change at {args.size:,} steps (in/0.txt edited; "
                "makeflow.lock byte-identical after every round)", changes))
    after = projects["after"]
    build(sources["after"], after)  # fresh, and the no-op snapshot saved
    noop = paired(("--no-cache", lambda i: build(sources["after"], after, "--no-cache")),
                  ("cache on", lambda i: build(sources["after"], after)), args.runs)
    print(table(f"No-op at {args.size:,} steps", noop))


if __name__ == "__main__":
    main()
