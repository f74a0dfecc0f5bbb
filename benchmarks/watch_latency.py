"""Watch mode's latency and idle cost, measured on a running `makeflow watch`.

For each pipeline size N: N sources `in/{i}.txt`, a pattern rule copying each one to
`out/{i}.txt` (`cp`, no shell), and an alias `all` over the outputs, so changing one source
reruns exactly one step. `makeflow watch` runs as a subprocess, as a user would start it.

* latency:  from just before new content is written to `in/0.txt` until `out/0.txt` holds
            that content, polled every millisecond; the median (and min, max) of --runs
            edits, each started once the watcher has printed that it is waiting again.
            It includes the debounce, so it is given per --debounce value.
* idle CPU: user + system CPU time of the watch process (all its threads) over --idle
            seconds at rest, from /proc/PID/stat, after the latency runs.

Usage: python benchmarks/watch_latency.py [--sizes 1,1000] [--runs 7] [--idle 30]
       [--debounce 0.2,0] [--workdir /tmp/makeflow-watch-bench] [--poll]
Progress goes to stderr, the markdown table to stdout.
"""

from __future__ import annotations

import argparse
import os
import platform
import queue
import shutil
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

RULES = """\
from makeflow import expand, rule

N = {n}
rule("copy", inputs="in/{{i}}.txt", outputs="out/{{i}}.txt", shell="cp {{inputs}} {{outputs}}")
rule("all", inputs=expand("out/{{i}}.txt", i=range(N)), default=True)
"""

TICKS = os.sysconf("SC_CLK_TCK")


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def generate(root: Path, n: int) -> None:
    """A fresh pipeline folder with N sources and no outputs or state."""
    shutil.rmtree(root, ignore_errors=True)
    (root / "in").mkdir(parents=True)
    (root / "Makeflow.py").write_text(RULES.format(n=n))
    for i in range(n):
        (root / "in" / f"{i}.txt").write_text(f"source {i}\n")


class Watch:
    """`makeflow watch` in a folder, with its output lines read in a thread."""

    def __init__(self, root: Path, debounce: float, poll: bool):
        args = [sys.executable, "-m", "makeflow", "watch", "-j", "2", "--debounce", str(debounce)]
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen([*args, *(["--poll"] if poll else [])], cwd=root, env=env,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))

    def wait_for(self, text: str, timeout: float = 600) -> None:
        deadline = time.monotonic() + timeout
        while True:
            line = self.lines.get(timeout=max(0.01, deadline - time.monotonic()))
            if text in line:
                return

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def one_edit(root: Path, run: int, timeout: float = 60) -> float:
    """Seconds from writing new content to in/0.txt until out/0.txt holds it."""
    content = f"edit {run} {time.time_ns()}\n"
    source, output = root / "in" / "0.txt", root / "out" / "0.txt"
    started = time.perf_counter()
    source.write_text(content)
    deadline = started + timeout
    while True:
        try:
            if output.read_text() == content:
                return time.perf_counter() - started
        except FileNotFoundError:
            pass
        if time.perf_counter() > deadline:
            raise TimeoutError(f"{output} was not rebuilt within {timeout}s")
        time.sleep(0.001)


@dataclass
class Row:
    steps: int
    debounce: float
    latencies: list[float]
    idle_cpu: float | None = None  # CPU seconds over the idle window


def measure(root: Path, n: int, debounce: float, runs: int, idle: float | None,
            poll: bool) -> Row:
    generate(root, n)
    watch = Watch(root, debounce, poll)
    try:
        watch.wait_for("waiting for changes")
        latencies = []
        for run in range(runs):
            latencies.append(one_edit(root, run))
            watch.wait_for("waiting for changes")
            time.sleep(0.2)  # let the folder's own events of the last edit drain
        log(f"  N={n} debounce={debounce}: " + " ".join(f"{x * 1000:.0f}" for x in latencies)
            + " ms")
        row = Row(n, debounce, latencies)
        if idle:
            before = watch.cpu_seconds()
            time.sleep(idle)
            row.idle_cpu = watch.cpu_seconds() - before
            log(f"  N={n} idle: {row.idle_cpu:.3f} CPU s in {idle:g} s")
        return row
    finally:
        watch.stop()


def table(rows: list[Row], idle: float, poll: bool) -> str:
    events = "polling" if poll else "native events"
    lines = [
        f"makeflow watch ({events}); {platform.python_version()}, {machine()}",
        "",
        "| steps | debounce | latency median | min | max | runs | idle CPU time over "
        f"{idle:g} s |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        ms = [x * 1000 for x in row.latencies]
        cpu = "" if row.idle_cpu is None else \
            f"{row.idle_cpu * 1000:.0f} ms ({100 * row.idle_cpu / idle:.2f} % of a CPU)"
        lines.append(f"| {row.steps:,} | {row.debounce:g} s | {statistics.median(ms):.0f} ms "
                     f"| {min(ms):.0f} ms | {max(ms):.0f} ms | {len(ms)} | {cpu} |")
    lines.append(f"\nCPU time is counted in clock ticks of {1000 / TICKS:g} ms.")
    return "\n".join(lines)


def machine() -> str:
    model = ""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return f"{os.cpu_count()} CPUs {model}".strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1,1000")
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--idle", type=float, default=30.0)
    parser.add_argument("--debounce", default="0.2,0")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/makeflow-watch-bench"))
    parser.add_argument("--poll", action="store_true", help="watch with --poll")
    args = parser.parse_args()
    rows = []
    for n in (int(s) for s in args.sizes.split(",")):
        for k, debounce in enumerate(float(d) for d in args.debounce.split(",")):
            log(f"N={n}, debounce {debounce:g} s")
            idle = args.idle if k == 0 else None  # once per size, at the first debounce
            rows.append(measure(args.workdir / f"n{n}", n, debounce, args.runs, idle,
                                args.poll))
    print(table(rows, args.idle, args.poll))


if __name__ == "__main__":
    main()
