"""Days far enough ahead to book, in the coming year, on both sides of its Europe/London DST
changes. Tests that book through the life cycle (which refuses a past time) take their days from
here: a fixed date passes into history and the test fails from that day on."""

from __future__ import annotations

from datetime import date, timedelta


def last_sunday(year: int, month: int) -> date:
    last = date(year + month // 12, month % 12 + 1, 1) - timedelta(days=1)
    return last - timedelta(days=(last.weekday() + 1) % 7)


YEAR = date.today().year + 1
SPRING_SUNDAY = last_sunday(YEAR, 3)  # clocks go forward at 01:00 UTC
AUTUMN_MONDAY = last_sunday(YEAR, 10) + timedelta(days=1)  # the day after they went back
# a Thursday in February: standard time in London, Los Angeles and Tokyo alike
PLAIN_THURSDAY = date(YEAR, 2, 10) + timedelta(days=(3 - date(YEAR, 2, 10).weekday()) % 7)
