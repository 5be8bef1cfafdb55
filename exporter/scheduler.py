"""Repeated syncs: every N seconds, or on a cron schedule (croniter).

Overlap is prevented where it matters, per target, by the sync lock in the database (a
second scheduler, a cron job and a manual `skyrelay sync` all respect it); this loop only
decides when to start the next run. Runs never pile up: a run that takes longer than the
interval is followed by the next one at once, not by several.
"""

import threading
import time
from datetime import datetime, timezone
from typing import Callable, Iterator

from croniter import croniter


class ScheduleError(ValueError):
    """The cron expression is not valid; the message says so."""


def check_cron(expression: str) -> str:
    if not croniter.is_valid(expression):
        raise ScheduleError(f"exporter.schedule {expression!r} is not a cron expression "
                            "(five fields, e.g. '*/5 * * * *')")
    return expression


def every(seconds: float, start: float | None = None) -> Iterator[float]:
    """Wall-clock start times: start, start + seconds, … (a late run skips missed slots)."""
    due = time.time() if start is None else start
    while True:
        yield due
        due = max(due + seconds, time.time())


def cron_times(expression: str, start: float | None = None) -> Iterator[float]:
    """The times the cron expression names, after `start` (UTC)."""
    base = datetime.fromtimestamp(time.time() if start is None else start, timezone.utc)
    schedule = croniter(check_cron(expression), base)
    while True:
        yield schedule.get_next(float)


def run_repeatedly(times: Iterator[float], run_once: Callable[[], object],
                   stop: threading.Event, max_runs: int | None = None) -> int:
    """Call `run_once` at each time until `stop` is set; returns how many runs were made."""
    runs = 0
    for due in times:
        if max_runs is not None and runs >= max_runs:
            break
        if stop.wait(max(0.0, due - time.time())):
            break
        run_once()
        runs += 1
    return runs
