"""The signed-in patient's home: upcoming appointments, the calendar (the staff calendar's
colours and legend), completed visits with their surveys, history, points, the request form
and the waitlist."""

from __future__ import annotations

from datetime import timedelta

import pandas as pd
import streamlit as st

from core.feedback.surveys import COMMENT_MAX, SurveyAnswers
from core.kernel.errors import DomainError
from core.kernel.money import weekday_name
from core.portal import home
from core.portal import waitlist as portal_waitlist
from core.portal.patient_links import time_of_day_labels
from core.scheduling.calendar import STATUS_COLOURS, STATUS_LABELS
from ui import calendar_widget
from ui.context import database, show_error
from ui.locale import date_picker
from ui.patient import escape
from ui.patient import survey as survey_words
from ui.patient_portal import act, flash
from ui.patient_portal.appointments import card
from ui.text import show_table

SURVEY_KEY = "portal_survey"
# the month as a list first: on a phone a month's day is some 50 px wide (its visits' times
# were cut to '08:0'); a list gives each visit a line, whatever the screen
CAL_VIEWS = {
    "List": "listMonth",
    "Month": "dayGridMonth",
    "Week": "timeGridWeek",
    "Day": "timeGridDay",
}
SCALE = [1, 2, 3, 4, 5]


def upcoming(view: home.Home) -> None:
    if not view.upcoming:
        st.caption("No upcoming appointments.")
    if todo := sum(item.forms_outstanding for item in view.upcoming):
        forms = "form" if todo == 1 else "forms"
        st.info(f"You have {todo} {forms} to complete before your visit.", icon=":material/edit:")
    for item in view.upcoming:
        card(item)


def calendar(view: home.Home) -> None:
    label = st.segmented_control(
        "View", list(CAL_VIEWS), default="List", key="portal_calendar_view"
    )
    opts = calendar_widget.options(
        CAL_VIEWS[label or "List"],
        view.today,
        view.timezone,
        resources=[],
        business_hours=None,  # the patient's own visits: no working hours to shade
        editable=False,
        locale=view.locale,
    )
    opts["height"] = 620
    # every visit of the patient's is in the events: FullCalendar's own buttons page through
    # them (the staff calendar, which reads one window at a time, hides them)
    opts["headerToolbar"] = {"left": "prev,next", "center": "title", "right": "today"}
    opts["buttonText"] = {"today": "Today"}
    opts["displayEventTime"] = False  # each title gives its time in its own clinic's locale
    calendar_widget.render(view.calendar_events(), opts, key=f"portal_calendar_{label}")
    # the colours on this calendar only: the states of the patient's own visits
    if shown := {a.status for a in view.upcoming + view.history if a.start_iso}:
        calendar_widget.legend(
            [(STATUS_LABELS[s], c) for s, c in STATUS_COLOURS.items() if s in shown]
        )
    if view.several_clinics:
        st.caption(
            "Each visit is shown at its clinic's local time; the highlighted day is today's "
            f"date at {escape(view.home_clinic)}, where you booked last."
        )


def visits(view: home.Home) -> None:
    if not view.completed:
        st.caption("No completed visits yet.")
    for item in view.completed:
        with st.container(border=True, key=f"portal_visit_{item.id}"):
            left, right = st.columns([3, 1])
            left.markdown(f"**{escape(item.service or 'Visit')}** · {escape(item.when)}")
            if item.survey_open:
                if right.button("Take survey", key=f"portal_take_survey_{item.id}"):
                    st.session_state[SURVEY_KEY] = item.id
            else:
                right.markdown(f":green-badge[{item.feedback}]")
            if st.session_state.get(SURVEY_KEY) == item.id:
                survey(view, item.id)


def survey(view: home.Home, appointment_id: int) -> None:
    try:
        with database().read() as session:
            form = home.survey_form(session, view.patient_id, appointment_id)
    except DomainError as error:  # answered meanwhile through the emailed link, say
        st.session_state[SURVEY_KEY] = None
        show_error(error)
        return
    if view.survey_points:
        st.caption(f"Answering earns you {view.survey_points} points.")
    with st.form(f"portal_survey_form_{appointment_id}"):
        nps = st.radio(
            "How likely are you to recommend us? (0 = not at all, 10 = extremely likely)",
            list(range(11)),
            index=None,
            horizontal=True,
            key="portal_survey_nps",
        )
        rating = st.radio(
            survey_words.RATING, SCALE, index=None, horizontal=True, key="portal_survey_rating"
        )
        if form.questions:
            st.caption(survey_words.OPTIONAL)
        answers = {
            key: st.radio(
                escape(label), SCALE, index=None, horizontal=True, key=f"portal_survey_{key}"
            )
            for key, label in form.questions
        }
        comment = st.text_area("Anything else?", max_chars=COMMENT_MAX, key="portal_survey_text")
        sent = st.form_submit_button("Send my answers", type="primary")
    if sent:
        answered = SurveyAnswers(nps, rating, answers, comment)
        if done := act(home.answer_survey, view.patient_id, appointment_id, answered):
            st.session_state[SURVEY_KEY] = None
            flash(done)


def points(view: home.Home) -> None:
    st.metric("Points balance", view.count(view.points_balance))
    worth = escape(view.point_value)
    if len({value for _, value in view.point_values}) > 1:  # in the currency of where you pay
        worth = " and ".join(f"{escape(v)} at {escape(c)}" for c, v in view.point_values)
    st.caption(f"One point is worth {worth} when you pay in advance.")
    if view.locked:
        st.warning(escape(view.locked_text), icon=":material/lock:")
    # what happened and its points first, in widths that fit a phone's screen together (390
    # px), the date after them: date first, a phone showed only it and half of 'What'. The
    # counts are written as the metric above writes the balance (the locale's "1,000")
    rows = [
        {
            "What": r.words,
            "Points": view.count(r.points, signed=True),
            "Balance": view.count(r.balance_after),
            "When": view.ledger_time(r),
            "Appointment": view.visit_names.get(r.appointment_id, ""),
        }
        for r in view.ledger
        if r.points
    ]
    if rows:
        show_table(
            pd.DataFrame(rows),
            hide_index=True,
            key="portal_ledger",
            column_config={
                "What": st.column_config.TextColumn(width="medium"),
                "Points": st.column_config.TextColumn(width="small", alignment="right"),
                "Balance": st.column_config.TextColumn(width="small", alignment="right"),
            },
        )


def history(view: home.Home) -> None:
    if not view.history:
        st.caption("Nothing here yet.")
    for item in view.history:
        card(item, actions=False)


def _clinic_and_treatment(form: home.RequestForm, key: str) -> tuple[int, tuple[str, int]]:
    """The clinic and the treatment: services, then packages (a package's services are booked
    together for one price), the latest appointment's chosen first."""
    treatments = {("service", i): name for i, name in form.services} | {
        ("package", i): name for i, name in form.packages
    }
    last = ("package", form.package_id) if form.package_id else ("service", form.service_id)
    options = list(treatments)
    clinics = dict(form.clinics)
    clinic = st.selectbox(
        "Clinic",
        list(clinics),
        index=list(clinics).index(form.clinic_id) if form.clinic_id in clinics else 0,
        format_func=clinics.get,
        key=f"{key}_clinic",
    )
    treatment = st.selectbox(
        "Treatment",
        options,
        index=options.index(last) if last in treatments else 0,
        format_func=treatments.get,
        key=f"{key}_service",
    )
    return clinic, treatment


def request(view: home.Home) -> None:
    if view.locked:
        st.warning(escape(view.locked_text), icon=":material/lock:")
        return
    with database().read() as session:
        form = home.request_form(session, view.patient_id)
    with st.form("portal_request_form"):
        clinic, treatment = _clinic_and_treatment(form, "portal_request")
        day = st.date_input(
            "Preferred day",
            form.first_day + timedelta(days=1),
            form.first_day,
            key="portal_request_day",
            format=date_picker(form.locale),  # the prefilled clinic's order
        )
        # nothing chosen for the patient, as on the public form (ui.patient.booking)
        moment = st.selectbox(
            "Time of day",
            list(moments := time_of_day_labels(form.locale)),
            index=None,
            format_func=moments.get,
            placeholder="Choose a time of day",
            key="portal_request_time",
        )
        notes = st.text_area("Anything we should know?", key="portal_request_notes")
        sent = st.form_submit_button("Send my request", type="primary")
    if sent:
        kind, ident = treatment or ("service", None)
        wanted = {"clinic_id": clinic, f"{kind}_id": ident, "requested_day": day}
        if done := act(
            home.request_appointment, view.patient_id, **wanted, time_of_day=moment, notes=notes
        ):
            flash(done)


def waitlist(view: home.Home) -> None:
    """Join the waitlist for a service or a package; below, the patient's entries to withdraw."""
    if view.locked:
        st.warning(escape(view.locked_text), icon=":material/lock:")
    else:
        _join_waitlist(view)
    with database().read() as session:
        waiting = portal_waitlist.waitlist_entries(session, view.patient_id)
    st.subheader("Your waitlist entries")
    if not waiting:
        st.caption("You are not on the waitlist.")
    for entry in waiting:
        with st.container(border=True, key=f"portal_waitlist_entry_{entry.id}"):
            left, right = st.columns([3, 1])
            left.markdown(
                f"**{escape(entry.treatment)}** · {escape(entry.clinic)}  \n"
                f"{escape(entry.days)} · {escape(entry.weekdays)} · {escape(entry.times)}"
            )
            if entry.note:
                left.caption(escape(entry.note))
            if entry.stopped:
                st.warning(escape(entry.stopped), icon=":material/event_busy:")
            if entry.offer:
                right.markdown(":orange-badge[Time offered]")
                st.info(
                    f"We offered you {escape(entry.offer.when)}, until "
                    f"{escape(entry.offer.expires)}. Book it here or with the link in our "
                    f"message. {escape(entry.offer.terms)}",
                    icon=":material/event_available:",
                )
                if st.button(
                    "Book this time", type="primary", key=f"portal_offer_accept_{entry.offer.id}"
                ):
                    if done := act(portal_waitlist.accept_offer, view.patient_id, entry.offer.id):
                        flash(done)
            else:
                right.markdown(":blue-badge[Waiting]")
            if right.button("Withdraw", key=f"portal_waitlist_withdraw_{entry.id}"):
                if done := act(portal_waitlist.withdraw_from_waitlist, view.patient_id, entry.id):
                    flash(done)


def _join_waitlist(view: home.Home) -> None:
    with database().read() as session:
        form = home.request_form(session, view.patient_id)
    st.caption(
        "No time that suits you? Join the waitlist: when a matching time frees up, we offer it "
        "to you by email or text message."
    )
    today = form.first_day
    with st.form("portal_waitlist_form"):
        clinic, treatment = _clinic_and_treatment(form, "portal_waitlist")
        days = st.date_input(
            "Days you could come (first and last)",
            (today + timedelta(days=1), today + timedelta(days=28)),
            today,
            key="portal_waitlist_days",
            format=date_picker(form.locale),
        )
        weekdays = st.multiselect(
            "Weekdays",
            range(7),
            default=list(range(5)),
            format_func=lambda d: weekday_name(d, view.locale),
            key="portal_waitlist_weekdays",
        )
        windows = st.multiselect(
            "Times of day (none: any)",
            list(windows_said := time_of_day_labels(form.locale)),
            format_func=windows_said.get,
            key="portal_waitlist_times",
        )
        note = st.text_area("Anything we should know?", key="portal_waitlist_note")
        sent = st.form_submit_button("Join the waitlist", type="primary")
    if sent:
        kind, ident = treatment or ("service", None)
        first, last = (days[0], days[-1]) if days else (None, None)
        if done := act(
            portal_waitlist.join_waitlist,
            view.patient_id,
            clinic_id=clinic,
            **{f"{kind}_id": ident},
            earliest=first,
            latest=last,
            weekdays=tuple(weekdays),
            windows=tuple(windows),
            note=note,
        ):
            flash(done)
