"""What recording the run history costs per step, measured directly rather than as the
small difference of two noisy builds.

It generates the `wide` pipeline of N trivial Python steps, resolves its graph, and replays
N finished steps through a real state store the way the scheduler records them: the step
record of each, and a flush before each wait for running steps (every J steps). Three
ways take turns, R times each, on a fresh store every time:

- `no history`: step records only;
- `own transaction`: the history's rows too, written in a transaction of their own after
  the step records' (how the history was first written);
- `shared transaction`: the history's rows written in the step records' transaction (now).

It also times what a no-op build spends on the history (its one row). It reports the
median CPU time (time.process_time) per step of each, and the time the
Python worker's meter (CPU and peak memory of a step) takes per step (median and least of
R timings, on a loaded machine the least is the closest to its own cost). A trivial Python
step costs about 1 to 2 ms of CPU in a whole build (history_overhead.py), so 20 µs is 1 to 2 %.

Usage: python benchmarks/history_cost.py [--steps 1000] [--wait-every 2] [--repeat 15]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
import timeit
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from generate import Pipeline, write_tool_dir

from makeflow import load
from makeflow.plan.graph import Step
from makeflow.plan.staleness import params_of, recipe_of
from makeflow.run.build import status
from makeflow.run.executors import JobResult
from makeflow.run.executors.jobs import Meter
from makeflow.run.outcome import BuildResult
from makeflow.run.recording import RunRecorder
from makeflow.store.state import StateStore, StepRecord

DIGEST = "0" * 32


def replay(root: Path, pipeline, steps: list[Step], every: int, mode: str) -> float:
    """CPU seconds to record `steps` as a build would, flushing every `every` steps."""
    shutil.rmtree(root / ".makeflow", ignore_errors=True)
    with StateStore(root) as state:
        recorder = RunRecorder(state.db, pipeline, []) if mode != "no history" else None
        started = time.process_time()
        for at in range(0, len(steps), every):
            for step in steps[at:at + every]:
                now = time.time()
                record = StepRecord(recipe_of(step), params_of(step),
                                    dict.fromkeys(step.inputs.paths, DIGEST),
                                    dict.fromkeys(step.outputs.paths, DIGEST),
                                    time.time_ns(), 0.001)
                state.record_step(step.id, record, {})
                if recorder is not None:
                    recorder.started(step, ["never ran"])
                    recorder.ran(step, JobResult(True, now, now + 0.001, 0, cpu=0.001,
                                                 peak_rss=30_000_000))
            if mode == "shared transaction":
                state.flush(recorder.rider())
            else:
                state.flush()
            if recorder is not None:
                recorder.flush()
        if recorder is not None:
            recorder.finish(BuildResult(), None, "ok")
        return time.process_time() - started


def noop_cost(root: Path, pipeline, steps: list[Step], repeat: int) -> float:
    """CPU seconds a no-op build spends on the history: opening it and its one row."""
    times = []
    with StateStore(root) as state:
        for _ in range(repeat):
            started = time.process_time()
            recorder = RunRecorder(state.db, pipeline, [])
            recorder.finish(BuildResult(fresh=[s.id for s in steps]), None, "ok")
            times.append(time.process_time() - started)
    return statistics.median(times)


def meter_cost(repeat: int, number: int = 2000) -> tuple[float, float]:
    """Seconds per step of the worker's meter (a start and a stop): median and least."""
    result = JobResult(True, 0.0, 0.001, 0)
    times = [t / number for t in timeit.repeat(lambda: Meter().stop(result), number=number,
                                               repeat=repeat)]
    return statistics.median(times), min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--wait-every", type=int, default=2,
                        help="steps recorded per wait of the scheduler (about -j)")
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "p"
        write_tool_dir("makeflow-py", Pipeline("wide", args.steps), root)
        pipeline = load(root / "Makeflow.py")
        steps = [s for s in status(pipeline, []).graph.steps.values() if not s.rule.is_alias]
        modes = ("no history", "own transaction", "shared transaction")
        times: dict[str, list[float]] = {m: [] for m in modes}
        for turn in range(args.repeat):
            for mode in (modes if turn % 2 == 0 else reversed(modes)):
                times[mode].append(replay(root, pipeline, steps, args.wait_every, mode)
                                   / len(steps))
        noop = noop_cost(root, pipeline, steps, args.repeat)
    base = statistics.median(times["no history"])
    print(f"{len(steps):,} steps, a flush every {args.wait_every}, median of {args.repeat}:\n")
    print("| recording | CPU per step | added by the history |")
    print("|---|---:|---:|")
    for mode in modes:
        cpu = statistics.median(times[mode])
        added = "" if mode == "no history" else f"{(cpu - base) * 1e6:.1f} µs"
        print(f"| {mode} | {cpu * 1e6:.1f} µs | {added} |")
    median, least = meter_cost(args.repeat)
    print(f"| the worker's meter (CPU and peak of a Python step) | {median * 1e6:.1f} µs "
          f"(least {least * 1e6:.1f} µs) | all of it |")
    print(f"| a no-op build's one row (per build, not per step) | {noop * 1e3:.2f} ms | "
          "all of it |")


if __name__ == "__main__":
    main()
