"""Keeping outputs fresh: the watcher (the only watchdog importer) and cron schedules.

A shell over the run stage: it may import `run` and everything below, never `ui`; the
command line hands it a `Screen` to show itself on.
"""
