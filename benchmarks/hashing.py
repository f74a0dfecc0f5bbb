"""Hashing benchmarks: makeflow's digest against the read limit, and a no-op over 5 GiB.

1. Throughput of hashing one large file from the page cache, against `cat FILE >
   /dev/null` (the read limit) and `md5sum`; the median of several runs after a warm-up.
2. A pipeline with 10,000 input files totalling 5 GiB: the first build hashes every byte,
   the second (nothing changed) must hash none, because the stat cache settles each file.

Usage: python benchmarks/hashing.py [--size-gib 2] [--tree-gib 5] [--files 10000]
       [--workdir /tmp/makeflow-hash] [--repeat 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

CHUNK = 1 << 24


def make_file(path: Path, size: int) -> None:
    """A file of `size` pseudo-random bytes (random enough that nothing compresses it)."""
    if path.exists() and path.stat().st_size == size:
        return
    block = os.urandom(CHUNK)
    with open(path, "wb") as f:
        for offset in range(0, size, CHUNK):
            f.write(block[: min(CHUNK, size - offset)])


def timed(command: list[str] | str, repeat: int) -> float:
    """Median wall time of a shell command, after one warm-up run."""
    times = []
    for run in range(repeat + 1):
        started = time.perf_counter()
        subprocess.run(command, shell=isinstance(command, str), check=True,
                       stdout=subprocess.DEVNULL)
        if run:
            times.append(time.perf_counter() - started)
    return statistics.median(times)


HASH_ONE = """
import sys, time
from makeflow.store.hashing import hash_file
started = time.perf_counter()
hash_file(sys.argv[1])
print(time.perf_counter() - started)
"""


def makeflow_hash(path: Path, repeat: int) -> tuple[float, float]:
    """Median seconds of makeflow's hash_file: inside the process, and of the whole process."""
    inside, whole = [], []
    for run in range(repeat + 1):
        started = time.perf_counter()
        out = subprocess.run([sys.executable, "-c", HASH_ONE, str(path)], check=True,
                             capture_output=True, text=True).stdout
        if run:
            whole.append(time.perf_counter() - started)
            inside.append(float(out))
    return statistics.median(inside), statistics.median(whole)


def throughput_table(path: Path, repeat: int) -> list[str]:
    size = path.stat().st_size
    gib = size / 2**30
    cat = timed(f"cat {path} > /dev/null", repeat)
    md5 = timed(["md5sum", str(path)], repeat)
    inside, whole = makeflow_hash(path, repeat)
    rows = [("cat > /dev/null (read limit)", cat), ("md5sum", md5),
            ("makeflow hash_file (xxh3-128), whole process", whole),
            ("makeflow hash_file (xxh3-128), hashing only", inside)]
    lines = [f"Hashing one {gib:.1f} GiB file from the page cache, median of {repeat} runs:", "",
             "| reader | seconds | GiB/s | vs cat |", "|---|---:|---:|---:|"]
    for name, seconds in rows:
        lines.append(f"| {name} | {seconds:.3f} | {gib / seconds:.2f} | {cat / seconds:.2f}x |")
    return lines


TREE_RULES = """
from makeflow import rule, glob_wildcards
names = glob_wildcards("in/{n}.bin").n
rule("count", inputs=[f"in/{n}.bin" for n in names], outputs="count.txt",
     shell="ls in | wc -l > {outputs}")
"""

BUILD_AND_COUNT = """
import io, json, sys, time
from makeflow import BuildOptions, build, load
from makeflow.store import hashing
from makeflow.ui.plain import PlainReporter
started = time.perf_counter()
result = build(load(sys.argv[1]), [], BuildOptions(jobs=2), PlainReporter(io.StringIO()))
print(json.dumps({"seconds": time.perf_counter() - started, "ran": len(result.ran),
                  "bytes_hashed": hashing.bytes_hashed}))
"""


def make_tree(root: Path, files: int, total: int) -> None:
    (root / "in").mkdir(parents=True, exist_ok=True)
    each = total // files
    block = os.urandom(each)
    for i in range(files):
        path = root / "in" / f"{i}.bin"
        if not path.exists() or path.stat().st_size != each:
            # a distinct first word per file, so no two files hash the same
            path.write_bytes(i.to_bytes(8, "little") + block[8:])
    (root / "Makeflow.py").write_text(TREE_RULES)


def build_once(root: Path) -> dict:
    out = subprocess.run([sys.executable, "-c", BUILD_AND_COUNT, str(root / "Makeflow.py")],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def tree_table(root: Path, files: int, total: int) -> list[str]:
    make_tree(root, files, total)
    for stale in (root / ".makeflow", root / "count.txt"):
        subprocess.run(["rm", "-rf", str(stale)], check=True)
    time.sleep(1.1)  # a file hashed within a second of its mtime is hashed again next time
    first = build_once(root)
    time.sleep(1.1)
    second = build_once(root)  # hashes once more the output the first build had just written
    third = build_once(root)
    gib = total / 2**30
    return [f"A build over {files:,} input files totalling {gib:.1f} GiB:", "",
            "| build | seconds | steps run | bytes hashed |", "|---|---:|---:|---:|",
            f"| first (from scratch) | {first['seconds']:.2f} | {first['ran']} | "
            f"{first['bytes_hashed']:,} |",
            f"| second (nothing changed) | {second['seconds']:.2f} | {second['ran']} | "
            f"{second['bytes_hashed']:,} |",
            f"| third (nothing changed) | {third['seconds']:.2f} | {third['ran']} | "
            f"{third['bytes_hashed']:,} |"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-gib", type=float, default=2.0)
    parser.add_argument("--tree-gib", type=float, default=5.0)
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/makeflow-hash"))
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    big = args.workdir / "big.bin"
    make_file(big, int(args.size_gib * 2**30))
    lines = throughput_table(big, args.repeat)
    lines += ["", *tree_table(args.workdir / "tree", args.files, int(args.tree_gib * 2**30))]
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
