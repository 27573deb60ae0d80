"""Time-zone arithmetic: times are stored in UTC and shown in the clinic's IANA zone (formatted
for people, in the clinic's locale, by core.kernel.money: clinic_time, clinic_time_range).

Which clock counts, on the days clocks change (the practice's rule, everywhere):
- what the clinic's clock bounds is wall time: working hours, quiet hours, a time-of-day window,
  a day (23 or 25 hours long then), Today, the calendar's days, analytics by local day, week,
  weekday and hour. A bound the spring change skips is the change (local_edge_to_utc); a time
  the autumn change repeats is its first occurrence, and a period through it lasts the hour
  more.
- a length the practice sets is real elapsed time: the cancellation-policy window ("late if
  less than 24 h before": 24 real hours, core.policy.cancellation.inside_window), the waitlist
  hold and minimum notice, the 2-hour text, the survey delay, a reminder's lateness.
- the one mix: a reminder whole days before goes at the visit's clock time on that day (09:00
  the day before a 09:00 visit, 23 or 25 real hours on a change weekend), the rest of its offset
  in real time (core.messaging.reminders)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from babel.dates import get_timezone_location

from core.kernel.errors import ValidationError
from db.types import utcnow

__all__ = [
    "utcnow",
    "zone",
    "to_local",
    "local_today",
    "local_to_utc",
    "local_edge_to_utc",
    "clock_change",
    "local_day_bounds",
]


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValidationError(f"{name!r} is not an IANA time zone (e.g. Europe/London).") from None


def is_time_zone(name: str) -> bool:
    return name in available_timezones()


def to_local(moment: datetime, tz: str) -> datetime:
    return moment.astimezone(zone(tz))


def local_today(tz: str, now: datetime | None = None) -> date:
    """The clinic-local date at `now` (default: now): a clinic's today, never the server's."""
    return to_local(now or utcnow(), tz).date()


def local_to_utc(day: date, at: time, tz: str) -> datetime:
    """A clinic-local wall time as UTC. A time skipped by a DST change moves forward by the gap;
    an ambiguous one (clocks going back) means its first occurrence."""
    # fold=0 does both: a skipped wall time takes the offset before the change
    return datetime.combine(day, at).replace(tzinfo=zone(tz), fold=0).astimezone(UTC)


def clock_change(day: date, at: time, tz: str) -> str | None:
    """Whether the clocks' change makes a typed clinic-local time odd that day: "skipped" (the
    spring change jumps over it; local_to_utc moves it on by the gap), "repeated" (the autumn
    change shows it twice; local_to_utc means the first), or None."""
    wall = datetime.combine(day, at)
    first = wall.replace(tzinfo=zone(tz), fold=0)
    if to_local(first.astimezone(UTC), tz).replace(tzinfo=None) != wall:
        return "skipped"
    if first.utcoffset() != wall.replace(tzinfo=zone(tz), fold=1).utcoffset():
        return "repeated"
    return None


def local_edge_to_utc(day: date, at: time, tz: str) -> datetime:
    """A clinic-local wall time that bounds a period (working hours, quiet hours, a time-of-day
    window) as UTC. A bound the spring change skips is the change itself: in London on
    29 March 2026 hours from 01:30 begin, and hours to 01:30 end, when the clocks jump from
    01:00 GMT to 02:00 BST, so a period never reaches a wall time outside it (local_to_utc would
    move the bound an hour on, to 02:30 BST). Any other time is local_to_utc's (an ambiguous
    one is its first occurrence)."""
    moment = local_to_utc(day, at, tz)
    wall = datetime.combine(day, at)
    if to_local(moment, tz).replace(tzinfo=None) == wall:
        return moment
    # skipped: read with the offset after the change it is earlier than the change, with the
    # one before later; the change is the first second between them with the later offset
    place = zone(tz)
    low = int(wall.replace(tzinfo=place, fold=1).timestamp())
    high = int(moment.timestamp())
    after = datetime.fromtimestamp(high, place).utcoffset()
    while high - low > 1:
        middle = (low + high) // 2
        if datetime.fromtimestamp(middle, place).utcoffset() == after:
            high = middle
        else:
            low = middle
    return datetime.fromtimestamp(high, UTC)


def parse_utc(value: str, tz_if_naive: str = "UTC") -> datetime:
    """An ISO-8601 string (as the calendar sends) as an aware UTC datetime."""
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValidationError(f"{value!r} is not a date and time.") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=zone(tz_if_naive))
    return parsed.astimezone(UTC)


def local_day_bounds(day: date, tz: str) -> tuple[datetime, datetime]:
    """UTC start and end of a clinic-local day (23 or 25 hours long on DST days)."""
    return local_days_bounds(day, day, tz)


def local_days_bounds(first: date, last: date, tz: str) -> tuple[datetime, datetime]:
    """UTC [start, end) of the clinic-local days first..last, both included."""
    return local_to_utc(first, time(0), tz), local_to_utc(last + timedelta(days=1), time(0), tz)


def in_quiet(local: time, start: time, end: time) -> bool:
    """Whether a clinic-local wall time falls in quiet hours [start, end): overnight when
    start > end, none when start == end."""
    if start == end:
        return False
    if start < end:
        return start <= local < end
    return local >= start or local < end


def quiet_ends(moment: datetime, start: time, end: time, tz: str) -> datetime | None:
    """When the quiet hours `moment` falls in end (UTC; an end the spring change skips is the
    change, local_edge_to_utc); None outside them."""
    local = to_local(moment, tz)
    at = local.time().replace(tzinfo=None)
    if not in_quiet(at, start, end):
        return None
    overnight_evening = start > end and at >= start  # they end tomorrow morning
    day = local.date() + timedelta(days=overnight_evening)
    for _ in range(2):
        until = local_edge_to_utc(day, end, tz)
        if not in_quiet(to_local(until, tz).time().replace(tzinfo=None), start, end):
            return until
        day += timedelta(days=1)  # the spring change skipped all the hours between: a day on
    return until


def zone_words(tz: str, *moments: datetime) -> str:
    """A clinic's zone as a desk in another reads it, at these moments: "New York time
    (EST)"; "London time (GMT/BST)" over a week in which the clocks change."""
    try:
        place = get_timezone_location(tz, locale="en", return_city=True)
    except LookupError:  # a zone Babel does not know: its own name
        place = tz.rsplit("/", 1)[-1].replace("_", " ")
    names = dict.fromkeys(to_local(moment, tz).tzname() for moment in moments)
    return f"{place} time ({'/'.join(names)})" if names else f"{place} time"
