"""The calendar the product rules use: Beijing time (Asia/Shanghai), whatever
the server's zone. Pure."""

__layer__ = "pure"  # no framework, no I/O: tests/unit/test_layering.py

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

__all__ = ["BEIJING", "beijing_day", "next_beijing_midnight", "beijing_day_start"]

BEIJING = ZoneInfo("Asia/Shanghai")


def beijing_day(now):
    """The calendar day in Beijing for an aware ``now``."""
    return now.astimezone(BEIJING).date()


def next_beijing_midnight(now):
    """The next 00:00 in Asia/Shanghai (when daily quotas reset)."""
    return datetime.combine(
        beijing_day(now) + timedelta(days=1), time(0, 0), tzinfo=BEIJING
    )


def beijing_day_start(now):
    """00:00 Beijing time of ``now``'s Beijing day, for per-day counters."""
    return datetime.combine(beijing_day(now), time(0, 0), tzinfo=BEIJING)
