"""A no-op build of a pipeline with a checkpoint, beside the same graph without one.

`checkpoint`: `split` (checkpoint=True) writes N files into `parts/`, one shell step per
part, and an aggregate whose inputs function globs `parts/`. `static`: the same N parts
are source files, listed with glob_wildcards when Makeflow.py loads, and the same steps
read them. Both are built once, then each no-op `makeflow build` is timed (the real
command line: wall clock, and the CPU seconds of the makeflow process, user and system,
which a loaded machine disturbs less), so the difference is what the checkpoint costs a
no-op build.

    python benchmarks/checkpoint_noop.py [--items 1000] [--runs 3]
"""

from __future__ import annotations

import argparse
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHECKPOINT = """
from makeflow import rule, expand, glob_wildcards
rule("split", inputs="n.txt", outputs="parts", checkpoint=True,
     shell="mkdir -p {outputs}; for i in $(seq 1 $(cat {inputs})); do "
           "echo $i > {outputs}/$i.txt; done")
rule("per", inputs="parts/{i}.txt", outputs="per/{i}.txt", shell="cp {inputs} {outputs}")
rule("total", inputs=lambda: expand("per/{i}.txt", i=glob_wildcards("parts/{i}.txt").i),
     outputs="total.txt", shell="cat {inputs} > {outputs}", default=True)
"""

STATIC = """
from makeflow import rule, expand, glob_wildcards
rule("per", inputs="parts/{i}.txt", outputs="per/{i}.txt", shell="cp {inputs} {outputs}")
rule("total", inputs=expand("per/{i}.txt", i=glob_wildcards("parts/{i}.txt").i),
     outputs="total.txt", shell="cat {inputs} > {outputs}", default=True)
"""


def makeflow(root: Path, *args: str) -> tuple[float, float]:
    """Run makeflow; its wall-clock seconds and CPU seconds (user + system)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "makeflow", *args], cwd=root,
                          capture_output=True, text=True)
    seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"makeflow {' '.join(args)} failed in {root}:\n{done.stderr}")
    return seconds, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def project(kind: str, items: int, base: Path) -> Path:
    root = base / kind
    root.mkdir()
    (root / "n.txt").write_text(f"{items}\n")
    if kind == "static":
        (root / "parts").mkdir()
        for i in range(1, items + 1):
            (root / "parts" / f"{i}.txt").write_text(f"{i}\n")
    (root / "Makeflow.py").write_text(CHECKPOINT if kind == "checkpoint" else STATIC)
    makeflow(root, "build", "-j", "2", "--no-cache")
    return root


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="makeflow-checkpoint-bench-"))
    try:
        print(f"| pipeline ({args.items} parts) | no-op build, median of {args.runs} | "
              "CPU, median |")
        print("|---|---|---|")
        for kind in ("static", "checkpoint"):
            root = project(kind, args.items, base)
            time.sleep(1.1)  # files older than a second: their stats are trusted
            makeflow(root, "build")  # warm-up: the no-op shortcuts are written here
            runs = [makeflow(root, "build") for _ in range(args.runs)]
            wall = statistics.median(r[0] for r in runs)
            cpu = statistics.median(r[1] for r in runs)
            print(f"| {kind} | {wall:.3f}s | {cpu:.3f}s |")
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
