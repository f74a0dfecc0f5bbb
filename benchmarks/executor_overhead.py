"""The Dask executor's overhead per step, against the local executor.

Two pipelines of N independent trivial steps each: N shell steps (`touch` of the output,
no shell) and N Python steps (write the output). Each is built from scratch (after a
clean) with the local executor at -j2 and with the Dask executor on a LocalCluster of two
single-threaded worker processes on 127.0.0.1, --runs times, through the library's
build(), so both measure the same thing: plan, run, land and record every step.

The cluster is started once per pipeline before the timed builds (its start-up, about a
second, is reported apart: a user pays it once per build with --executor dask, never with
--scheduler). Each run builds with the local executor and then with Dask, so that both see
the same load on a shared machine. The overhead per step is (Dask median - local median)
/ N, also given as the median of each run's difference, and as CPU time of the makeflow
process (every thread: the coordinator, and Dask's scheduler, which a LocalCluster runs in
that process), which load disturbs far less than wall-clock time.

Usage: python benchmarks/executor_overhead.py [--steps 1000] [--runs 3]
       [--workdir /tmp/makeflow-executor-bench]
Progress goes to stderr, the markdown table to stdout.
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import shutil
import statistics
import sys
import time
from pathlib import Path

from makeflow import BuildOptions, build, load
from makeflow.run.executors.choose import Choice
from makeflow.run.executors.dask import DaskExecutor, start_local_cluster
from makeflow.ui.plain import PlainReporter

SHELL = '''
from makeflow import rule
for i in range({n}):
    rule(f"s{{i}}", outputs=f"out/{{i}}.txt", shell="touch {{outputs}}")
rule("all", inputs=[f"out/{{i}}.txt" for i in range({n})], default=True)
'''

PYTHON = '''
from makeflow import rule

def write(step):
    step.outputs[0].write_text("x")

for i in range({n}):
    rule(f"p{{i}}", outputs=f"out/{{i}}.txt")(write)
rule("all", inputs=[f"out/{{i}}.txt" for i in range({n})], default=True)
'''


def project(workdir: Path, kind: str, n: int) -> Path:
    root = workdir / kind
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    (root / "Makeflow.py").write_text((SHELL if kind == "shell" else PYTHON).format(n=n))
    return root / "Makeflow.py"


def timed_build(rules: Path, choice) -> tuple[float, float]:
    """Wall-clock and CPU seconds (this process, every thread: the coordinator, and for a
    LocalCluster Dask's scheduler too) for one build from scratch; outputs and state
    removed first."""
    shutil.rmtree(rules.parent / "out", ignore_errors=True)
    shutil.rmtree(rules.parent / ".makeflow", ignore_errors=True)
    pipeline = load(rules)
    started, cpu = time.perf_counter(), time.process_time()
    result = build(pipeline, [], BuildOptions(jobs=2), PlainReporter(io.StringIO(), True),
                   choice)
    took, cpu = time.perf_counter() - started, time.process_time() - cpu
    if not result.ok or len(result.ran) != len(pipeline.rules) - 1:
        sys.exit(f"benchmark build failed: {result.failed or result.not_run}")
    return took, cpu


def measure(rules: Path, runs: int) -> dict[str, float]:
    """Paired: each run builds with the local executor, then with Dask, so both see the
    same load on a shared machine; medians of each."""
    started = time.perf_counter()
    cluster = start_local_cluster(2)
    startup = time.perf_counter() - started
    local, dask = [], []
    try:
        choice = Choice("dask", cluster.scheduler_address)
        for _ in range(runs):
            local.append(timed_build(rules, Choice("local")))
            dask.append(timed_build(rules, choice))
            print(f"  local {local[-1][0]:.2f}s ({local[-1][1]:.2f}s CPU), "
                  f"dask {dask[-1][0]:.2f}s ({dask[-1][1]:.2f}s CPU)", file=sys.stderr)
    finally:
        cluster.close()

    def median(values: list[tuple[float, float]], i: int) -> float:
        return statistics.median(v[i] for v in values)

    return {"local": median(local, 0), "dask": median(dask, 0), "local_cpu": median(local, 1),
            "dask_cpu": median(dask, 1), "startup": startup,
            "paired": statistics.median(d[0] - o[0] for o, d in zip(local, dask, strict=True))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--workdir", default="/tmp/makeflow-executor-bench")
    args = parser.parse_args()
    assert DaskExecutor  # the extra must be installed: pip install 'makeflow[dask]'
    rows = []
    for kind in ("shell", "python"):
        print(f"{kind}: {args.steps} steps", file=sys.stderr)
        got = measure(project(Path(args.workdir), kind, args.steps), args.runs)
        ms = 1000 / args.steps
        rows.append(f"| {kind} | {args.steps:,} | {got['local']:.2f} | {got['dask']:.2f} | "
                    f"{(got['dask'] - got['local']) * ms:+.2f} ms | {got['paired'] * ms:+.2f} ms"
                    f" | {(got['dask_cpu'] - got['local_cpu']) * ms:+.2f} ms | "
                    f"{got['startup']:.2f} |")
    print(f"{platform.python_version()}, {os.cpu_count()} CPUs, median of {args.runs} "
          "builds from scratch, -j2 / 2 single-threaded workers, local and Dask in turn\n")
    print("| steps | N | local -j2 (s) | Dask LocalCluster (s) | overhead per step | "
          "median of paired differences | CPU of the makeflow process, per step | "
          "cluster start (s) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
