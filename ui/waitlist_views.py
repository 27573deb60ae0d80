"""Waitlist and risk pieces shared by the calendar, the appointment detail and the waitlist
page: high-risk marks on calendar events, overbooking suggestions, offering a slot by hand,
adding a patient to the waitlist."""

from __future__ import annotations

from datetime import datetime, timedelta

import pandas as pd
import streamlit as st

from core.analytics import risk_scores
from core.kernel.authz import Permission
from core.kernel.clock import local_today, to_local
from core.kernel.money import NO_VALUE, weekday_name
from core.scheduling.availability import time_of_day_labels
from core.waitlist import entries, offers, rules
from ui.appointment_views import FLASH, FLASH_WARNING
from ui.booking_form import patient_picker
from ui.caches import cached
from ui.context import read, run_action, settings
from ui.folds import fold
from ui.locale import clinic_pickers, date_picker, display_format
from ui.risk import ICONS, formats, probabilities, shown
from ui.text import escape, show_table


def with_risk(me, events: list[dict]) -> list[dict]:
    """Prefix medium/high-risk appointments' titles with the risk icon and probability."""
    ids = [int(e["id"]) for e in events if str(e.get("id", "")).isdigit()]
    found = probabilities(me, ids) if ids else {}
    fmt = formats(found.values())  # once for each clinic
    marked = []
    for event in events:
        risk = found.get(int(event["id"])) if str(event.get("id", "")).isdigit() else None
        p = risk.probability if risk else None
        level = risk_scores.level(p)
        if level in ("medium", "high"):
            mark = f"{ICONS[level]} {shown(p, fmt[risk.clinic_id])}"
            event = {**event, "title": f"{mark} · {event['title']}"}
        marked.append(event)
    return marked


@cached("analytics", "appointments", ttl=300, max_entries=20)
def _overbooking(me, clinic_id: int, start: datetime, end: datetime):
    return read(risk_scores.overbooking_suggestions, me, clinic_id=clinic_id, start=start, end=end)


SHOWN = 8  # overbooking suggestions listed at once; the rest are counted


def overbooking(me, clinic_id: int, start: datetime, end: datetime) -> None:
    """Where expected no-shows exceed one per provider-day: a time for one extra booking (the
    start of that day's highest-risk visit, double booked on purpose) and, to whoever may book,
    a button opening New appointment filled in with that provider, day and time and double
    booking ticked, for staff to finish and confirm. Nothing is booked automatically."""
    rows = _overbooking(me, clinic_id, start, end)
    if not rows:
        return
    fmt = display_format(clinic_id)
    st.caption(
        ":material/lightbulb: Expected no-shows exceed one: consider one extra booking beside "
        "the day's highest-risk visit, at its start, double booked on purpose (if that patient "
        "comes, both are seen). A suggestion only; nothing is booked automatically."
    )
    can_book = me.can(Permission.APPOINTMENTS_BOOK)
    for r in rows[:SHOWN]:
        at = fmt.clock(to_local(r.start_at, fmt.timezone))
        said, button = st.columns([5, 1], vertical_alignment="center")
        # the n the sum stands on: the scored visits still to come, and any left out unscored
        more = f"; {fmt.number(r.not_scored)} more not scored yet" if r.not_scored else ""
        said.caption(
            escape(
                f"{r.provider}, {fmt.day(r.day)} at {at}: one extra patient beside the visit "
                f"then ({shown(r.highest, fmt)} no-show risk; "
                f"{fmt.number(r.expected_no_shows, 1)} expected no-shows among "
                f"{fmt.number(r.visits)} scored visits still to come that day{more})"
            )
        )
        if can_book and button.button(
            "Book extra",
            key=f"overbooking_book_{r.provider_id}_{r.day.isoformat()}",
            icon=":material/event_upcoming:",
            help="Opens New appointment with this provider, day and time and double booking "
            "ticked: choose the patient and the service, then book.",
        ):
            st.session_state["book_prefill"] = {
                "clinic_id": clinic_id,
                "provider_id": r.provider_id,
                "start_at": r.start_at,
                "double_booking": True,
            }
            st.switch_page("app_pages/book.py")
    if len(rows) > SHOWN:
        st.caption(
            f"…and {fmt.number(len(rows) - SHOWN)} more provider-days with the same suggestion "
            "in these dates: show fewer days or providers to see them."
        )


def offer_slot_button(me, clinic_id: int, slot: dict, prefix: str) -> None:
    """Offer a selected free time (or a cancelled appointment's) to the waitlist."""
    if not me.can(Permission.WAITLIST_OFFER) or not slot.get("provider_id"):
        return
    if st.button("Offer to the waitlist", key=f"{prefix}_offer_waitlist"):
        done = run_action(
            offers.offer_slot,
            clinic_id=clinic_id,
            provider_id=slot["provider_id"],
            start_at=slot["start_at"],
            end_at=slot["end_at"],
            base_url=settings().base_url,
        )
        if done:
            _offered(done.value)


def offer_freed_button(me, appointment_id: int, prefix: str) -> None:
    if not me.can(Permission.WAITLIST_OFFER):
        return
    if st.button("Offer this freed time to the waitlist", key=f"{prefix}_offer_freed"):
        done = run_action(offers.offer_freed, appointment_id, base_url=settings().base_url)
        if done:
            _offered(done.value)


def _offered(result: offers.Offered) -> None:
    """What was done: sent now, or held by quiet hours until they end."""
    (st.success if result.sent else st.info)(escape(result.message()))


PAGE = "waitlist_page"  # the page of entries shown, 0 the first
DONE = "waitlist_done"  # what the last action did, said once after the rerun that shows it
ADDED = "waitlist_add_saved"  # an entry was added: the form starts empty for the next patient
EMPTIED = {"waitlist_add_search": "", "waitlist_add_patient": None, "waitlist_add_note": ""}


def _turn(page: int) -> None:
    st.session_state[PAGE] = page


def entries_pager(clinic_id: int, page: int, pages: int, shown: int, total: int) -> None:
    """Previous and Next under a waitlist longer than a page, and which entries are shown
    ('Entries 51–55 of 55 shown'), like the audit log's Newer and Older."""
    if pages <= 1:
        return
    number = display_format(clinic_id).number
    first = page * entries.PAGE_SIZE + 1
    earlier, info, later = st.columns([1, 3, 1])
    earlier.button(
        "Previous", disabled=page == 0, key="waitlist_prev", on_click=_turn, args=(page - 1,)
    )
    info.caption(
        f"Entries {number(first)}–{number(first + shown - 1)} of {number(total)} shown, "
        "longest waiting first"
    )
    later.button(
        "Next", disabled=page >= pages - 1, key="waitlist_next", on_click=_turn, args=(page + 1,)
    )


# the entries table within the about 820 px the main column has at 1280 px beside the sidebar
# (eleven columns came to 960 px: Waiting, Note and Source past the edge, and past it at 1400
# px too). What a manager offers by comes before the wish's details, and what reads together
# shares a cell: how many free times fit and the first ("20 (first Mon, 7 Dec 2026, 09:00)", or
# why none will, "None: …"); when the patient can come, their days, weekdays and times of day
# ("30 Nov – 28 Dec 2026; MTWTFSS; Early morning (before 9:00), Afternoon (12:00–17:00),
# Evening (after 17:00)": the days on a line of their own, then a time of day with its hours a
# line, en-GB and en-US); how long they have waited and how they came ("12 days, added by
# staff"). Cells wrap in rows of four lines (the grid wraps only in rows taller than 64 px);
# Service holds a package's name with its services ("Consultation and blood test (Consultation
# + Blood test)": its longest word on one line), names wrap to two lines. Widths in px
ENTRY_WIDTHS = {
    "Patient": 90,
    "Service": 115,
    "Provider": 75,
    "Matches (first)": 120,
    "When they can come": 230,
    "Waiting": 75,
    "Note": 110,
}
ENTRY_ROW_HEIGHT = 80  # four lines of text
ENTRIES_SHOWN = 8  # rows the table shows before it scrolls (at the default height, four and a half)


def _entry_matches(row: entries.EntryRow, number) -> str:
    """'20 (first Mon, 7 Dec 2026, 09:00)', '0', why none will be offered ('None: …'), or ''
    for an entry no longer waiting."""
    if row.matches is None:
        return ""
    if row.matches and row.next_match:
        return f"{number(row.matches)} (first {row.next_match})"
    return row.next_match or number(row.matches)


def _entry_waiting(row: entries.EntryRow, number) -> str:
    """'12 days, added by staff': how long the entry waits (or waited, once it stopped) and how
    it came."""
    days = f"{number(row.waiting_days)} day{'' if row.waiting_days == 1 else 's'}"
    return f"{days}, {entries.SOURCE_WORDS.get(row.source, row.source)}"


def entries_table(rows: list[entries.EntryRow], clinic_id: int) -> None:
    """A page of waitlist entries, typed notes shown as plain text (a DataFrame)."""
    number = display_format(clinic_id).number
    cells = {
        "Patient": [r.patient for r in rows],
        "Service": [r.service for r in rows],
        "Provider": [r.provider for r in rows],
        "Matches (first)": [_entry_matches(r, number) for r in rows],
        "When they can come": [f"{r.days}; {r.weekdays}; {r.windows}" for r in rows],
        "Waiting": [_entry_waiting(r, number) for r in rows],
        "Note": [r.note for r in rows],
    }
    _wrapped(cells, ENTRY_WIDTHS, ENTRY_ROW_HEIGHT, ENTRIES_SHOWN, key="waitlist_table")


def _wrapped(cells: dict, widths: dict[str, int], row_height: int, shown: int, *, key: str) -> None:
    """A table of set column widths whose cells wrap in rows `row_height` px tall, as tall as
    its heading and `shown` whole rows (then it scrolls); typed text shown as plain text."""
    rows = len(next(iter(cells.values())))
    show_table(
        pd.DataFrame(cells),
        hide_index=True,
        width="stretch",
        column_config={h: st.column_config.Column(h, width=w) for h, w in widths.items()},
        key=key,
        row_height=row_height,
        height=38 + min(rows, shown) * row_height,
    )


# the Offers table within the about 820 px the main column has at 1280 px beside the sidebar
# (eleven columns of automatic width came to about 1,520 px: the why, the mode and the times
# past the edge). What reads together shares a cell: the slot and what freed it, the offer's
# state and why, when it went out and how long it holds; cells wrap in rows of four lines (the
# grid wraps only in rows taller than 64 px), so a package's name ("Consultation and blood
# test (Consultation + Blood test)"), a why and "Several at once, first to accept wins" read
# whole. Widths in px, heading by heading
OFFER_WIDTHS = {
    "Slot (freed by)": 120,
    "Provider": 80,
    "Patient": 90,
    "Service": 105,  # "(Consultation" on one line
    "Rank": 45,
    "Offer": 150,  # "withdrawn: no message can reach the patient (consent or address)"
    "Sent (holds until)": 125,
    "Sent as": 90,
}
OFFER_ROW_HEIGHT = 80  # four lines of text
OFFERS_SHOWN = 8  # rows the table shows before it scrolls


def _offer_state(row: offers.OfferRow) -> str:
    return f"{row.status}: {row.why}" if row.why else row.status


def _offer_sent(row: offers.OfferRow) -> str:
    if not row.sent:
        return ""  # queued: not sent yet
    return f"{row.sent} (until {row.expires})" if row.expires else row.sent


def offers_table(rows: list[offers.OfferRow]) -> None:
    if not rows:
        st.caption("No slot has been offered yet.")
        return
    cells = {
        "Slot (freed by)": [f"{r.slot} ({offers.FREED_BY.get(r.reason, r.reason)})" for r in rows],
        "Provider": [r.provider for r in rows],
        "Patient": [r.patient for r in rows],
        "Service": [r.service for r in rows],
        "Rank": [r.rank for r in rows],
        "Offer": [_offer_state(r) for r in rows],
        "Sent (holds until)": [_offer_sent(r) for r in rows],
        "Sent as": [rules.MODE_LABELS.get(r.mode, "") for r in rows],
    }
    _wrapped(cells, OFFER_WIDTHS, OFFER_ROW_HEIGHT, OFFERS_SHOWN, key="waitlist_offers_table")


def rules_form(current: rules.Rules) -> None:
    """The practice's offer rules: mode, ranking, hold, batch, minimum notice, quiet hours."""
    if not (box := fold("Offer rules", "waitlist_rules_open")):
        return
    with box, st.form("waitlist_rules_form"):
        r1, r2 = st.columns(2)
        modes, rankings = list(rules.Mode), list(rules.Ranking)
        mode = r1.radio(
            "Mode",
            modes,
            format_func=rules.MODE_LABELS.get,
            index=modes.index(current.mode),
            key="waitlist_mode",
        )
        ranking = r2.radio(
            "Ranking",
            rankings,
            format_func=rules.RANKING_LABELS.get,
            index=rankings.index(current.ranking),
            key="waitlist_ranking",
        )
        hold = r1.number_input("Hold (minutes)", 5, 1440, current.hold_minutes, key="waitlist_hold")
        batch = r2.number_input("Patients at once", 1, 20, current.batch, key="waitlist_batch")
        notice = r1.number_input(
            "Minimum notice (minutes)", 0, 10080, current.min_notice_minutes, key="waitlist_notice"
        )
        clock = clinic_pickers().clock  # the rules are the practice's: its first clinic's clock
        start = r2.time_input(
            "Quiet from", current.quiet_start, key="waitlist_quiet_start", format=clock
        )
        end = r2.time_input(
            "Quiet until", current.quiet_end, key="waitlist_quiet_end", format=clock
        )
        if st.form_submit_button("Save rules"):
            new = rules.Rules(mode, ranking, int(hold), int(batch), int(notice), start, end)
            run_action(rules.set_rules, new, success="Waitlist rules saved.")


@cached("analytics", "appointments", ttl=60, max_entries=20)
def _refill(me, clinic_id, first, last, provider_id):
    # each clinic's own days (core): all clinics add up to the sum of the clinics
    return read(
        offers.refill_figures,
        me,
        clinic_id=clinic_id,
        first=first,
        last=last,
        provider_id=provider_id,
    )


def refill_metrics(me, clinic_id, first, last, provider_id=None) -> None:
    """The waitlist's part of the cancellation figures: freed slots refilled, time to fill
    (of the clinic and provider filtered on; a freed slot has no service of its own)."""
    f = _refill(me, clinic_id, first, last, provider_id)
    fmt = display_format(clinic_id)
    cols = st.columns(4)
    cols[0].metric(
        "Waitlist refill rate",
        fmt.percent(f.refill_rate),
        f"{fmt.number(f.filled)} of {fmt.number(f.opened)} freed",
        delta_color="off",
        delta_arrow="off",  # a count behind the rate, not a change
        help="Slots freed on these clinic-local days (cancellations, moves, declines) that "
        "the waitlist booked again; of every service, as a freed slot is not one service's.",
    )
    minutes = f.median_minutes_to_fill
    cols[1].metric(
        "Median time to fill",
        NO_VALUE
        if minutes is None
        else f"{fmt.number(minutes / 60, 1)} h"
        if minutes >= 90
        else f"{fmt.number(minutes)} min",
    )
    cols[2].metric("Freed slots offered", fmt.number(f.offered))


def waitlist_request_button(me, appointment_id: int) -> None:
    """A request no time can be found for: decline it and wait-list the patient instead."""
    from core.waitlist import entries

    if me.can(Permission.WAITLIST_EDIT) and st.button(
        "No time free: put on the waitlist",
        key=f"queue_waitlist_{appointment_id}",
        help="Declines the request (the patient is told) and adds them to the waitlist for the "
        "same service, clinic, provider and time of day for four weeks.",
    ):
        if done := run_action(entries.add_from_request, appointment_id):
            # shown once after the rerun (escaped: a name); the queue then knows this session
            # decided it. A patient no offer can reach: the desk is warned, as on adding them
            st.session_state[FLASH] = done.value.said
            if done.value.warning:
                st.session_state[FLASH_WARNING] = done.value.warning
            st.rerun()


def add_entry_form(
    me,
    clinic_id: int,
    services: dict[int, str],
    providers: dict[int, str],
    packages: dict[int, str] | None = None,
    *,
    expanded: bool,
) -> None:
    """Add a patient to the clinic's waitlist: service or package, provider (or any), days,
    weekdays and times of day they can come."""
    packages = packages or {}
    clinic = display_format(clinic_id)
    locale = clinic.locale
    treatments = {("service", i): name for i, name in services.items()} | {
        ("package", i): f"Package: {name}" for i, name in packages.items()
    }
    if not (box := fold("Add a patient to the waitlist", "waitlist_add_open", expanded=expanded)):
        return
    with box:
        if st.session_state.pop(ADDED, False):
            # added: the next patient starts from an empty search and note (a second press of
            # the same form sent the same wish again). Set, not forgotten: a key popped from
            # the session leaves the browser showing, and sending back, what it last held
            st.session_state.update(EMPTIED)
        patient_id, _, _, _ = patient_picker(me, "waitlist_add", date_picker(locale), new=False)
        st.caption("A patient not on file yet: add them under Patients first.")
        if patient_id and (unreached := read(entries.reach_warning, me, patient_id)):
            st.warning(escape(unreached), icon=":material/warning:")  # names typed: escaped
        with st.form("waitlist_add_form"):
            a1, a2 = st.columns(2)
            picked = a1.selectbox(
                "Service or package",
                list(treatments),
                format_func=treatments.get,
                key="waitlist_add_svc",
            )
            kind, treatment = picked or (None, None)
            provider = a2.selectbox(
                "Provider",
                [None, *providers],
                format_func=lambda p: providers.get(p, "Any provider"),
                key="waitlist_add_pr",
            )
            today = local_today(clinic.timezone)  # the clinic's day, not the server's
            days = a1.date_input(
                "Days",
                (today, today + timedelta(days=28)),
                key="waitlist_add_days",
                format=date_picker(locale),
            )
            weekdays = a2.multiselect(
                "Weekdays",
                range(7),
                default=list(range(5)),
                format_func=lambda d: weekday_name(d, locale),
                key="waitlist_add_wd",
            )
            windows = st.multiselect(
                "Times of day (none: any)",
                list(moments := time_of_day_labels(locale)),
                format_func=moments.get,
                key="waitlist_add_tod",
            )
            note = st.text_input("Note", key="waitlist_add_note")
            if not st.form_submit_button("Add to the waitlist", type="primary"):
                return
            if not patient_id:
                st.error("Choose the patient first: search by name, phone or email above.")
            else:
                wish = entries.Wish(
                    patient_id,
                    clinic_id,
                    treatment if kind == "service" else None,
                    days[0],
                    days[-1],
                    provider,
                    tuple(weekdays),
                    tuple(windows),
                    note,
                    package_id=treatment if kind == "package" else None,
                )
                if run_action(entries.add_entry, wish):
                    st.session_state[ADDED] = True
                    st.session_state[DONE] = "Added to the waitlist."
                    st.rerun()  # the list above, drawn before the form, with the entry
