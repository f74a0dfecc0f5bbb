"""Benchmark the run cache: what a restore costs against running the step again.

Two measurements, each printed as a table (run on demand, once per cell: they are big):

* big:   one step writing a 1 GiB file. Its scratch build (run + copy into the cache), then,
         after the output is deleted: a build that restores it from the local cache, a
         build that reruns the step (cache off), and plain `cp` of the file.
* remote: a 10,000-step pipeline (benchmarks/generate.py, wide shape). A project builds it
         with --push to a file:// remote; a second copy (sources only, its own .makeflow)
         then builds from the warm remote, and a third from scratch.

Usage: python benchmarks/cache.py [--big-mib 1024] [--steps 10000] [--makeflow PATH]
       [--workdir /tmp/makeflow-cache-bench] [--only big|remote]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from generate import Pipeline, write_tool_dir

BIG_RULES = """
from makeflow import rule
rule("big", inputs="seed.txt", outputs="big.bin",
     shell="head -c {mib}M /dev/urandom > {{outputs[0]}}")
"""


def timed(cmd: list[str], cwd: Path, env: dict | None = None) -> float:
    started = time.perf_counter()
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed in {cwd}:\n{done.stdout}\n{done.stderr}")
    return seconds


def table(title: str, rows: list[tuple[str, float]]) -> None:
    print(f"\n{title}\n")
    print("| what | seconds |")
    print("|---|---:|")
    for what, seconds in rows:
        print(f"| {what} | {seconds:.2f} |")


def bench_big(work: Path, makeflow: str, mib: int) -> None:
    root = work / "big"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    (root / "Makeflow.py").write_text(BIG_RULES.format(mib=mib))
    (root / "seed.txt").write_text("1\n")
    build = [makeflow, "build", "-q"]
    rows = [("scratch build: run the step, copy its output into the cache",
             timed(build, root))]
    os.unlink(root / "big.bin")
    rows.append(("build after deleting the output: restore from the local cache",
                 timed(build, root)))
    os.unlink(root / "big.bin")
    (root / "makeflow.toml").write_text("[makeflow]\ncache = false\n")
    rows.append(("build after deleting the output, cache off: rerun the step",
                 timed(build, root)))
    rows.append((f"cp of the {mib} MiB file", timed(["cp", "big.bin", "copy.bin"], root)))
    table(f"Restoring a {mib} MiB output", rows)
    shutil.rmtree(root, ignore_errors=True)


def bench_remote(work: Path, makeflow: str, steps: int) -> None:
    pipeline = Pipeline("wide", steps)
    base = work / "remote"
    shutil.rmtree(base, ignore_errors=True)
    base.mkdir(parents=True)
    shared = base / "shared"
    shared.mkdir()
    url = shared.as_uri()
    dirs = {}
    for name in ("first", "second", "third"):
        dirs[name] = base / name
        write_tool_dir("makeflow", pipeline, dirs[name])
    build = [makeflow, "build", "-q", "-j", "2"]
    rows = [("first project: scratch build with --push to the remote",
             timed([*build, "--remote", url, "--push"], dirs["first"]))]
    rows.append(("second project: build from the warm file:// remote",
                 timed([*build, "--remote", url], dirs["second"])))
    rows.append(("third project: scratch build, no remote",
                 timed(build, dirs["third"])))
    rows.append(("third project: no-op build after it",
                 timed(build, dirs["third"])))
    table(f"A {steps:,}-step pipeline (wide) from a warm file:// remote", rows)
    shutil.rmtree(base, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--big-mib", type=int, default=1024)
    parser.add_argument("--steps", type=int, default=10_000)
    parser.add_argument("--makeflow", default=shutil.which("makeflow") or "makeflow")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/makeflow-cache-bench"))
    parser.add_argument("--only", choices=["big", "remote"])
    args = parser.parse_args()
    if os.sep in args.makeflow:
        args.makeflow = os.path.abspath(args.makeflow)
    print(f"makeflow: {args.makeflow}; {os.cpu_count()} CPUs; "
          f"load average {os.getloadavg()[0]:.2f}")
    if args.only in (None, "big"):
        bench_big(args.workdir, args.makeflow, args.big_mib)
    if args.only in (None, "remote"):
        bench_remote(args.workdir, args.makeflow, args.steps)


if __name__ == "__main__":
    main()
