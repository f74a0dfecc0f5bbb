"""A no-op build by two makeflow installs in turns, each in its own built folder: medians.

    python benchmarks/noop_ab.py --before OLD/bin/makeflow --after NEW/bin/makeflow \
        --runs 15 OLD-COPY/layered-10000/makeflow NEW-COPY/layered-10000/makeflow

Folders come in pairs, the first for `--before`, the second for `--after`: copies of one
generated pipeline (from `run.py`), each built by its install. Each has its own folder
because the no-op shortcuts' caches are keyed by what each version computes: two versions
sharing a folder could each undo the other's and plan in full every time. Every run must
be a no-op (the script checks that the build says "ran 0"); the first run of each is not
counted. The installs take turns, before then after, then after then before, so the load
of a shared machine falls on both alike. Each run is the whole process (`makeflow build`,
its start-up and imports included): wall seconds from a monotonic clock and CPU seconds
from the kernel's accounting of the child. Printed per pair: the median wall and CPU of
each install, and the median of each turn's ratio of wall times (after / before).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import time
from pathlib import Path


def run(exe: str, folder: Path) -> tuple[float, float]:
    """Wall and CPU seconds of one `makeflow build` in `folder`, which must run nothing."""
    started = time.perf_counter()
    proc = subprocess.Popen([exe, "build"], cwd=folder, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    out = proc.stdout.read() if proc.stdout else b""
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0 or b"ran 0," not in out:
        raise SystemExit(f"{exe} build in {folder} was not a no-op:\n{out.decode()}")
    return wall, usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", required=True, help="the makeflow executable to compare with")
    parser.add_argument("--after", required=True, help="the makeflow executable measured")
    parser.add_argument("--runs", type=int, default=15, help="no-op builds of each install")
    parser.add_argument("folders", nargs="+", type=Path, help="BEFORE_DIR AFTER_DIR, ...")
    args = parser.parse_args()
    if len(args.folders) % 2:
        parser.error("give the folders in pairs: one built by --before, one by --after")
    print("| folder | before wall | after wall | paired wall ratio | before CPU | after CPU |")
    print("|---|---:|---:|---:|---:|---:|")
    for old, new in zip(args.folders[::2], args.folders[1::2], strict=True):
        folder = {"before": old, "after": new}
        run(args.before, old), run(args.after, new)  # warm the page cache
        pairs = []
        for turn in range(args.runs):
            order = ("before", "after") if turn % 2 == 0 else ("after", "before")
            got = {name: run(getattr(args, name), folder[name]) for name in order}
            pairs.append((got["before"], got["after"]))
        med = {name: [statistics.median(p[i][k] for p in pairs) for k in (0, 1)]
               for i, name in enumerate(("before", "after"))}
        ratio = statistics.median(a[0] / b[0] for b, a in pairs)
        print(f"| {new} | {med['before'][0]:.3f} s | {med['after'][0]:.3f} s | "
              f"{ratio:.2f} | {med['before'][1]:.3f} s | {med['after'][1]:.3f} s |",
              flush=True)


if __name__ == "__main__":
    main()
