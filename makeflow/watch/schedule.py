"""Scheduled builds: a cron expression, the next time it fires, and whether a build is due.

The only module that imports croniter. Time comes from an injected clock (a function
returning seconds since the epoch), so tests move time forward instead of waiting for it.
Cron fields are read in local wall-clock time, as crontab does, unless a zone is given.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, tzinfo

from croniter import CroniterBadDateError, CroniterError, croniter

from makeflow.errors import UserError

ALIASES = {"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"}
CRON_HINT = (
    'A cron expression has five fields, minute hour day-of-month month day-of-week, e.g. '
    '"0 23 * * SUN" (Sundays at 23:00) or "*/15 * * * *"; @hourly, @daily and @weekly '
    "also work."
)


def next_time(expression: str, after: float, tz: tzinfo | None = None) -> float:
    """The first time strictly after `after` (epoch seconds) at which `expression` fires.

    The search runs on naive wall-clock time, then converts back with the zone's rules, so
    "23:00 every Sunday" stays 23:00 across a daylight-saving change.
    """
    wall = datetime.fromtimestamp(after, tz).replace(tzinfo=None)
    try:
        found = croniter(expression, wall).get_next(datetime)
    except CroniterBadDateError:
        raise _invalid(expression, "it never fires") from None
    except (CroniterError, ValueError, KeyError) as exc:
        raise _invalid(expression, str(exc)) from None
    return found.replace(tzinfo=tz).timestamp()


def check(expression: str) -> str:
    """The expression, stripped, once it is known to be a five-field cron or an @ alias."""
    text = " ".join(expression.split())
    if text.startswith("@"):
        if text.lower() not in ALIASES:
            raise _invalid(expression, f"unknown alias {text}")
        return text.lower()
    fields = len(text.split())
    if fields != 5:
        raise _invalid(expression, f"{fields} field{'s' if fields != 1 else ''}, not 5"
                       if fields else "")
    return text


def _invalid(expression: str, why: str) -> UserError:
    detail = f" ({why})" if why else ""
    return UserError(f"--schedule {expression!r} is not a valid cron expression{detail}",
                     hint=CRON_HINT)


class Schedule:
    """When the next scheduled build is due; `fire()` moves on to the one after.

    Runs missed while a build ran long or the machine slept collapse into one build, so
    waking up late never starts a pile of builds.
    """

    def __init__(self, expression: str, clock: Callable[[], float] = time.time,
                 tz: tzinfo | None = None):
        self.expression = check(expression)
        self.clock = clock
        self.tz = tz
        self.next_run = next_time(self.expression, clock(), tz)

    def seconds_left(self) -> float:
        return max(0.0, self.next_run - self.clock())

    def due(self) -> bool:
        return self.clock() >= self.next_run

    def fire(self) -> bool:
        """Whether a build is due now; if so, the next run is set after the present."""
        now = self.clock()
        if now < self.next_run:
            return False
        self.next_run = next_time(self.expression, now, self.tz)
        return True

    def describe_next(self) -> str:
        """The next run as people read it, e.g. "Sun 22 Nov 23:00"."""
        return datetime.fromtimestamp(self.next_run, self.tz).strftime("%a %d %b %H:%M")
