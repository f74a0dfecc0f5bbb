"""Steps that go stale with time: `always=True` and `max_age`, with an injected clock."""

from __future__ import annotations

import time

import pytest

from makeflow.define.options import parse_duration

TIMED = """
from makeflow import rule
rule("pull", outputs="latest.txt", always=True, shell="date +%s%N > {outputs}")
rule("daily", inputs="latest.txt", outputs="daily.txt", max_age="24h",
     shell="cp {inputs} {outputs}")
rule("all", inputs=["daily.txt"], default=True)
"""


def clock_at(offset: float):
    return lambda: time.time() + offset


def test_always_reruns_and_max_age_waits_for_its_age(project):
    project.rules(TIMED.replace('always=True', 'always=False'))
    assert set(project.build().ran) == {"pull", "daily"}
    assert set(project.build(clock=clock_at(3600)).ran) == set()
    assert set(project.build(clock=clock_at(25 * 3600)).ran) == {"daily"}
    later = project.build(clock=clock_at(50 * 3600))
    assert later.plan.stale["daily"] == ["older than 1d (last run 2.08d ago)"]


def test_always_step_reruns_every_build_and_its_users_follow_its_content(project):
    project.rules(TIMED)
    project.build()
    again = project.build()
    assert "pull" in again.ran and "daily" in again.ran  # new content each run
    assert again.plan.stale["pull"] == ["always runs"]


@pytest.mark.parametrize("text, seconds", [("90s", 90), ("10m", 600), ("24h", 86400),
                                           ("7d", 604800), ("1h30m", 5400), (5, 5)])
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["", "soon", "10x", "-5"])
def test_bad_durations_are_refused(bad):
    with pytest.raises(ValueError):
        parse_duration(bad)


def test_bad_max_age_is_a_user_error(project):
    project.rules('from makeflow import rule\nrule("a", outputs="a", max_age="soon", '
                  'shell="touch {outputs}")\n')
    done = project.run("build")
    assert done.code == 2 and "max_age='soon' is not a duration" in done.err
