"""Resources on rules: checked when the rules load, admission in the job slots, and a step
no worker can ever hold reported before the build starts."""

from __future__ import annotations

import pytest

from makeflow.define.resources import DEFAULT, Resources
from makeflow.run.capacity import Capacity, machine
from makeflow.run.slots import JobSlots

TWO_CPUS = Resources(cpus=2, declared=("cpus",))
BIG_MEMORY = Resources(mem_mb=600, declared=("mem_mb",))


def test_a_two_cpu_step_takes_two_of_the_jobs_slots():
    slots = JobSlots(3, depth=8, memory_mb=None)
    slots.take(False, TWO_CPUS)
    assert slots.free(False) and not slots.free(False, TWO_CPUS)
    slots.take(False)
    assert not slots.free(False) and not slots.free(True)
    slots.give_back(False, TWO_CPUS)
    assert slots.free(False, TWO_CPUS)


def test_memory_is_admission_against_the_machine():
    slots = JobSlots(4, depth=1, memory_mb=1000)
    slots.take(False, BIG_MEMORY)
    assert not slots.free(False, BIG_MEMORY)  # 1,200 MB would not fit in 1,000
    assert slots.free(False)  # a step that asks for no memory still runs beside it
    slots.give_back(False, BIG_MEMORY)
    assert slots.free(False, BIG_MEMORY)


def test_a_step_alone_is_always_admitted():
    slots = JobSlots(1, depth=1, memory_mb=10, gpus=0)
    assert slots.free(False, Resources(cpus=4, mem_mb=100, gpus=1, declared=("cpus",)))


def test_queued_plain_steps_leave_room_for_a_two_cpu_step_only_when_they_drain():
    slots = JobSlots(2, depth=4, shell_depth=4)
    for _ in range(3):
        slots.take(False)
    assert not slots.free(False, TWO_CPUS)
    for _ in range(3):
        slots.give_back(False)
    assert slots.free(False, TWO_CPUS)


def test_a_place_holds_only_what_it_declares():
    worker = Capacity("tcp://w", cpus=4, mem_mb=None, gpus=None)
    assert worker.holds(TWO_CPUS) and worker.holds(DEFAULT)
    assert not worker.holds(BIG_MEMORY)
    assert machine(2).holds(TWO_CPUS) and not machine(1).holds(TWO_CPUS)


@pytest.mark.parametrize(("value", "message"), [
    ('{"cpu": 2}', "resources= has 'cpu', which makeflow does not know"),
    ('{"cpus": 1.5}', "resources= cpus=1.5 must be a whole number >= 0"),
    ('{"cpus": 0}', "asks for cpus=0; a step needs at least one"),
    ('{"mem_mb": -1}', "resources= mem_mb=-1 must be a number of megabytes >= 0"),
    ('"big"', "resources= must be a dict"),
])
def test_a_bad_resources_value_names_the_rule_and_exits_2(project, value, message):
    project.rules(f'from makeflow import rule\nrule("a", outputs="a", shell="touch a", '
                  f'resources={value})\n')
    done = project.run("build")
    assert done.code == 2 and message in done.err and "Makeflow.py:2" in done.err
    assert "Traceback" not in done.text


def test_a_step_no_worker_can_hold_is_an_error_before_anything_runs(project):
    project.rules('''
        from makeflow import rule
        rule("small", outputs="small.txt", shell="touch small.txt")
        rule("fit", outputs="fit.txt", shell="touch fit.txt", resources={"cpus": 4, "gpus": 1})
        rule("all", inputs=["small.txt", "fit.txt"], default=True)
    ''')
    done = project.run("build", "-j", "2")
    assert done.code == 2, done.text
    assert "step fit asks for cpus=4, gpus=1, which no worker can ever hold" in done.err
    assert "this machine (-j 2) offers cpus=2" in done.err and "Makeflow.py:4" in done.err
    assert not project.exists("small.txt")  # nothing ran
    assert "Traceback" not in done.text


def test_resources_do_not_make_a_step_stale(project):
    project.rules('from makeflow import rule\n'
                  'rule("a", outputs="a.txt", shell="touch {outputs}")\n')
    first = project.build(jobs=2)
    assert first.ran == ["a"], first.output
    project.rules('from makeflow import rule\n'
                  'rule("a", outputs="a.txt", shell="touch {outputs}", resources={"cpus": 2})\n')
    assert project.build(jobs=2).ran == []
