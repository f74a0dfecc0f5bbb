"""Python steps go to their workers in batches: each still fails, times out and logs alone."""

from __future__ import annotations

import pytest

from makeflow.run.slots import JobSlots

# Forty trivial steps: after the first few, a worker gets several per batch.
MANY = """
import os, signal, sys, time
from makeflow import expand, rule

@rule(inputs="in.txt", outputs="out/{i}.txt")
def copy(step):
    i = int(step.wildcards.i)
    print(f"stdout of {i}")
    print(f"stderr of {i}", file=sys.stderr)
    if i == BAD:
        TROUBLE
    step.outputs[0].write_text(str(i))

rule("all", inputs=expand("out/{i}.txt", i=range(40)), default=True)
"""


def many(project, bad: int = -1, trouble: str = "pass", timeout: str = "None") -> None:
    project.write("in.txt", "x")
    text = MANY.replace("BAD", str(bad)).replace("TROUBLE", trouble)
    project.rules(text.replace('outputs="out/{i}.txt")', f'outputs="out/{{i}}.txt", '
                                                        f"timeout={timeout})"))


def test_a_step_that_crashes_its_worker_mid_batch_fails_alone(project):
    many(project, bad=20, trouble="os.kill(os.getpid(), signal.SIGSEGV)")
    result = project.build(jobs=1, keep_going=True)
    assert set(result.failed) == {"copy[i=20]"}
    assert "SIGSEGV" in result.failed["copy[i=20]"]
    assert len(result.ran) == 39
    for i in range(40):
        assert project.exists(f"out/{i}.txt") is (i != 20)


def test_a_step_that_times_out_mid_batch_fails_alone(project):
    many(project, bad=20, trouble="time.sleep(30)", timeout="2")
    result = project.build(jobs=1, keep_going=True)
    assert result.failed == {"copy[i=20]": "timed out after 2s"}
    assert len(result.ran) == 39


def test_each_batched_step_keeps_its_own_log(project):
    many(project)
    assert project.run("build", "-j", "2").code == 0
    for i in (0, 17, 39):
        log = project.run("logs", f"out/{i}.txt").out
        assert log.splitlines() == [f"stdout of {i}", f"stderr of {i}"]


def test_a_failed_step_mid_batch_names_its_error_and_keeps_its_log(project):
    many(project, bad=5, trouble="raise ValueError('bad input')")
    result = project.build(jobs=1, keep_going=True)
    assert result.failed == {"copy[i=5]": "ValueError: bad input"}
    log = project.run("logs", "out/5.txt").out
    assert "stdout of 5" in log and "ValueError: bad input" in log
    assert "stdout of 6" not in log


@pytest.mark.parametrize("jobs", [1, 2, 4])
def test_no_more_steps_run_at_once_than_jobs(jobs):
    slots = JobSlots(jobs, depth=8)
    shell = 0
    while slots.free(python=False):  # shell steps: one slot each
        slots.take(python=False)
        shell += 1
    assert shell == jobs and not slots.free(python=True)
    slots.give_back(python=False)
    slots.take(python=True)  # a Python step in the freed slot
    assert not slots.free(python=False)
    # more Python steps may queue behind it only where they cannot run beside a shell step
    assert slots.free(python=True) is (jobs == 1)


def test_python_steps_queue_up_to_depth_per_slot_and_hold_at_most_jobs_slots():
    slots = JobSlots(2, depth=8)
    queued = 0
    while slots.free(python=True):
        slots.take(python=True)
        queued += 1
    assert queued == 16
    assert not slots.free(python=False)
    for _ in range(15):
        slots.give_back(python=True)
    assert slots.free(python=False)  # one Python step in flight holds one slot
