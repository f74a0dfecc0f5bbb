"""The Dask executor's overhead per step, against the local executor.

Two pipelines of N independent trivial steps each: N shell steps (`touch` of the output,
no shell) and N Python steps (write the output). Each is built from scratch (after a
clean) with the local executor at -j2 and with the Dask executor on a LocalCluster of two
single-threaded worker processes on 127.0.0.1, --runs times, through the library's
build(), so both measure the same thing: plan, run, land and record every step.

The cluster is started once per pipeline before the timed builds (its start-up, about a
second, is reported apart: a user pays it once per build with --executor dask, never with
--scheduler). The overhead per step is (Dask median - local median) / N.

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


def timed_build(rules: Path, choice) -> float:
    """Seconds for one build from scratch; outputs and state removed first."""
    shutil.rmtree(rules.parent / "out", ignore_errors=True)
    shutil.rmtree(rules.parent / ".makeflow", ignore_errors=True)
    pipeline = load(rules)
    started = time.perf_counter()
    result = build(pipeline, [], BuildOptions(jobs=2), PlainReporter(io.StringIO(), True),
                   choice)
    took = time.perf_counter() - started
    if not result.ok or len(result.ran) != len(pipeline.rules) - 1:
        sys.exit(f"benchmark build failed: {result.failed or result.not_run}")
    return took


def measure(rules: Path, runs: int) -> dict[str, object]:
    local = [timed_build(rules, Choice("local")) for _ in range(runs)]
    print(f"  local: {[round(t, 2) for t in local]}", file=sys.stderr)
    started = time.perf_counter()
    cluster = start_local_cluster(2)
    startup = time.perf_counter() - started
    try:
        choice = Choice("dask", cluster.scheduler_address)
        dask = [timed_build(rules, choice) for _ in range(runs)]
    finally:
        cluster.close()
    print(f"  dask:  {[round(t, 2) for t in dask]} (cluster start {startup:.2f}s)",
          file=sys.stderr)
    return {"local": statistics.median(local), "dask": statistics.median(dask),
            "startup": startup}


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
        over = (got["dask"] - got["local"]) / args.steps * 1000
        rows.append(f"| {kind} | {args.steps:,} | {got['local']:.2f} | {got['dask']:.2f} | "
                    f"{over:+.2f} ms | {got['startup']:.2f} |")
    print(f"{platform.python_version()}, {os.cpu_count()} CPUs, median of {args.runs} "
          "builds from scratch, -j2 / 2 single-threaded workers\n")
    print("| steps | N | local -j2 (s) | Dask LocalCluster (s) | overhead per step | "
          "cluster start (s) |")
    print("|---|---:|---:|---:|---:|---:|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
