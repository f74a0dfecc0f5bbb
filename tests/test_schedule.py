"""Scheduled builds: when a cron expression fires next, and when a build is due, on a clock
the tests move by hand."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from makeflow import UserError
from makeflow.watch.schedule import Schedule, next_time

SATURDAY_NOON = datetime(2026, 11, 21, 12, 0, tzinfo=UTC).timestamp()


def at(*args: int, tz=UTC) -> float:
    return datetime(*args, tzinfo=tz).timestamp()


class Clock:
    """A clock that stands still until a test moves it."""

    def __init__(self, now: float):
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_sunday_night_is_next_from_saturday():
    assert next_time("0 23 * * SUN", SATURDAY_NOON, UTC) == at(2026, 11, 22, 23, 0)


def test_the_next_run_is_strictly_after_the_given_time():
    sunday_23 = at(2026, 11, 22, 23, 0)
    assert next_time("0 23 * * SUN", sunday_23, UTC) == at(2026, 11, 29, 23, 0)


def test_local_time_holds_across_a_daylight_saving_change():
    new_york = ZoneInfo("America/New_York")
    before = at(2026, 3, 1, 23, 0, tz=new_york)  # clocks go forward on March 8
    after = next_time("0 23 * * SUN", next_time("0 23 * * SUN", before, new_york), new_york)
    assert datetime.fromtimestamp(after, new_york).hour == 23
    assert after - before == 14 * 86400 - 3600


@pytest.mark.parametrize("expression, expected", [
    ("*/15 * * * *", at(2026, 11, 21, 12, 15)),
    ("@daily", at(2026, 11, 22, 0, 0)),
    ("@HOURLY", at(2026, 11, 21, 13, 0)),
    ("0  9 1 *   *", at(2026, 12, 1, 9, 0)),
])
def test_other_expressions(expression, expected):
    assert Schedule(expression, Clock(SATURDAY_NOON), UTC).next_run == expected


def test_a_build_is_due_once_the_time_comes_and_then_not_again():
    clock = Clock(SATURDAY_NOON)
    schedule = Schedule("0 23 * * SUN", clock, UTC)
    assert not schedule.fire()
    assert schedule.seconds_left() == 35 * 3600

    clock.now = at(2026, 11, 22, 22, 59, 59)
    assert not schedule.due() and not schedule.fire()
    clock.now = at(2026, 11, 22, 23, 0)
    assert schedule.due()
    assert schedule.fire()
    assert not schedule.fire()
    assert schedule.next_run == at(2026, 11, 29, 23, 0)
    assert schedule.describe_next() == "Sun 29 Nov 23:00"


def test_runs_missed_while_asleep_make_one_build():
    clock = Clock(SATURDAY_NOON)
    schedule = Schedule("0 23 * * SUN", clock, UTC)
    clock.now = at(2026, 12, 15, 8, 0)  # three Sundays later

    assert schedule.fire()
    assert not schedule.fire()
    assert schedule.next_run == at(2026, 12, 20, 23, 0)


@pytest.mark.parametrize("expression, why", [
    ("", ""),
    ("sunday", "1 field, not 5"),
    ("0 23 * *", "4 fields, not 5"),
    ("0 0 23 * * SUN", "6 fields, not 5"),
    ("61 * * * *", "out of range"),
    ("0 25 * * *", "out of range"),
    ("0 23 * * FUNDAY", "not acceptable"),
    ("0 0 31 2 *", "it never fires"),
    ("@reboot", "unknown alias @reboot"),
])
def test_invalid_expressions_are_user_errors(expression, why):
    with pytest.raises(UserError) as caught:
        Schedule(expression, Clock(SATURDAY_NOON), UTC)
    assert caught.value.exit_code == 2
    assert f"--schedule {expression!r} is not a valid cron expression" in caught.value.message
    assert why in caught.value.message
    assert "minute hour day-of-month month day-of-week" in caught.value.hint
