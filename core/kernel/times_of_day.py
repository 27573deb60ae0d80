"""Times of day: the windows a request or a waitlist wish may ask for (clinic-local wall times)
and their one label, in the clinic's locale. Here, below every domain package, so the queue,
the visit, the patient's record, the messages, the portal and the waitlist all say a time of
day the same way (core.scheduling.availability re-exports both for its callers)."""

from __future__ import annotations

from datetime import time

from babel.dates import format_time

from core.kernel.money import DEFAULT_LOCALE, babel_locale
from db.models import TimeOfDay

TIME_OF_DAY_WINDOWS: dict[TimeOfDay, tuple[time, time]] = {
    TimeOfDay.EARLY_MORNING: (time(7), time(9)),
    TimeOfDay.MORNING: (time(9), time(12)),
    TimeOfDay.AFTERNOON: (time(12), time(17)),
    TimeOfDay.EVENING: (time(17), time(21)),
}
# a time of day in words, its window's edges filled in by time_of_day_label in the clinic's
# locale: before its end, from its start to its end, after its start
_TIME_OF_DAY_WORDS = {
    TimeOfDay.EARLY_MORNING: ("Early morning", "before {last}"),
    TimeOfDay.MORNING: ("Morning", "{first}{to}{last}"),
    TimeOfDay.AFTERNOON: ("Afternoon", "{first}{to}{last}"),
    TimeOfDay.EVENING: ("Evening", "after {first}"),
}


def _hour(at: time, locale: str | None) -> str:
    """A window's edge in the locale's short time, its hour unpadded as a person writes it:
    en-GB '9:00' and '17:00', en-US '9:00 AM' and '5:00 PM'."""
    pattern = babel_locale(locale).time_formats["short"].pattern.replace("HH", "H")
    return format_time(at, pattern, locale=babel_locale(locale))


def time_of_day_label(
    time_of_day: TimeOfDay | str, locale: str | None = DEFAULT_LOCALE, *, in_text: bool = False
) -> str:
    """A time of day as a patient and the desk read it, from its window (TIME_OF_DAY_WINDOWS) in
    the clinic's locale: en-GB 'Early morning (before 9:00)', 'Morning (9:00–12:00)',
    'Evening (after 17:00)'; en-US 'Evening (after 5:00 PM)'. `in_text`: inside a sentence
    ('Mon, 7 Dec 2026, morning (9:00–12:00)'). The one label of a time of day: the forms that
    ask for one, the patient's messages and portal, the visit, the queue, time off's cover, the
    patient's record and the waitlist's table."""
    moment = TimeOfDay(time_of_day)
    name, edges = _TIME_OF_DAY_WORDS[moment]
    first, last = (_hour(edge, locale) for edge in TIME_OF_DAY_WINDOWS[moment])
    to = " – " if " " in first + last or "\u202f" in first + last else "–"
    label = f"{name} ({edges.format(first=first, last=last, to=to)})"
    return label[0].lower() + label[1:] if in_text else label


def time_of_day_labels(locale: str | None = DEFAULT_LOCALE) -> dict[TimeOfDay, str]:
    """Every time of day, in order, with its label in the locale (for a form's choices)."""
    return {moment: time_of_day_label(moment, locale) for moment in TimeOfDay}
