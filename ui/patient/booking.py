"""Public booking request: treatment, preferred day, time of day and contact details."""

from __future__ import annotations

import hashlib
from datetime import date

import streamlit as st

from core.kernel.money import format_day
from core.patients.records import birth_bounds
from core.portal import patient_links
from ui.context import settings
from ui.locale import date_picker
from ui.patient import mark_done, public_read, public_write, show_done
from ui.patient_portal import ANSWER_SECONDS, paced
from ui.text import escape


def _ip() -> str | None:
    try:
        value = st.context.ip_address
    except Exception:  # no browser behind this run (tests)
        return None
    return value if isinstance(value, str) and value else None


def _asked_key(token: str) -> str:
    return f"patient_booking_asked_{hashlib.sha256(token.encode()).hexdigest()[:16]}"


def _show_asked(token: str) -> None:
    """What the request asked for, as the patient sent it, and what happens next: every value
    typed (name, address, number, note) escaped, never markup."""
    asked = st.session_state.get(_asked_key(token))
    if not asked:
        return
    lines, phone = asked
    with st.container(border=True, key="patient_booking_asked"):
        for label, value in lines:
            st.markdown(f"**{label}:** {escape(value)}")
        st.markdown(
            "**What happens next:** nothing is booked yet. The practice will offer you a time "
            f"and contact you to confirm it. To change or withdraw this request, call "
            f"{escape(phone)}."
        )


def _asked(
    view: patient_links.BookingView, treatment: str, day: date, moment: str, typed: dict[str, str]
) -> list[tuple[str, str]]:
    """The summary's lines: (label, value) for each part given."""
    reply = " · ".join(v.strip() for v in (typed["email"], typed["phone"]) if v.strip())
    lines = [
        ("Treatment", treatment),
        ("Clinic", view.clinic_name),
        ("Day", format_day(day, view.locale)),
        ("Time of day", patient_links.time_of_day_labels(view.locale)[moment]),
        ("Name", " ".join(n.strip() for n in (typed["first"], typed["last"]) if n.strip())),
        ("We will reply to", reply),
        ("Your note", typed["notes"].strip()),
    ]
    return [(label, value) for label, value in lines if value]


def render(token: str) -> None:
    if show_done("booking", token, then=lambda: _show_asked(token)):
        return
    view = public_read(patient_links.booking_view, token)
    st.title(f"Request an appointment at {escape(view.clinic_name)}")
    # services, then packages (a package's services are booked together for one price)
    treatments = {("service", i): name for i, name in view.services} | {
        ("package", i): name for i, name in view.packages
    }
    with st.form("patient_booking_form"):
        # nothing chosen for the patient: a first treatment or time of day standing chosen
        # went out as asked ('Blood test, early morning') from a form skimmed on a phone
        treatment = st.selectbox(
            "Treatment",
            list(treatments),
            index=None,
            format_func=treatments.get,
            placeholder="Choose a treatment",
            key="patient_booking_service",
        )
        day = st.date_input(
            "Preferred day",
            value=None,
            min_value=view.first_day,
            max_value=view.last_day,
            format=date_picker(view.locale),
            key="patient_booking_day",
        )
        moment = st.selectbox(
            "Time of day",
            list(moments := patient_links.time_of_day_labels(view.locale)),
            index=None,
            format_func=moments.get,
            placeholder="Choose a time of day",
            key="patient_booking_time",
        )
        first, last = st.columns(2)
        first_name = first.text_input("First name", max_chars=80, key="patient_booking_first")
        last_name = last.text_input(
            "Last name",
            max_chars=80,
            help="If you have only one name, type it in either box and leave the other empty.",
            key="patient_booking_last",
        )
        born = st.date_input(
            "Date of birth (optional)",
            value=None,
            **dict(zip(("min_value", "max_value"), birth_bounds(), strict=True)),
            format=date_picker(view.locale),
            help="If you have been to us before, it helps the practice find your records.",
            key="patient_booking_dob",
        )
        email = st.text_input("Email", max_chars=254, key="patient_booking_email")
        phone = st.text_input("Phone", max_chars=40, key="patient_booking_phone")
        notes = st.text_area(
            "Anything we should know? (optional)", max_chars=2000, key="patient_booking_notes"
        )
        # each channel its own consent, as the staff form asks it (ui.booking_form)
        by_email, by_text = st.columns(2)
        consent_email = by_email.checkbox(
            "You may email me about my appointments", key="patient_booking_consent_email"
        )
        consent_sms = by_text.checkbox(
            "You may text me about my appointments", key="patient_booking_consent_sms"
        )
        submitted = st.form_submit_button("Send request", type="primary")
    if submitted and day is None:
        st.error("Please choose the day you would prefer.")
    elif submitted:
        kind, ident = treatment or ("service", None)
        # a known contact's work differs from a new one's (no record, a name check): the
        # answer comes no sooner than the sign-in's, so its timing tells neither
        message = paced(
            ANSWER_SECONDS,
            lambda: public_write(
                patient_links.submit_booking,
                token,
                **{f"{kind}_id": ident},
                requested_day=day,
                time_of_day=moment,
                first_name=first_name,
                last_name=last_name,
                email=email,
                phone=phone,
                notes=notes,
                consent_email=consent_email,
                consent_sms=consent_sms,
                date_of_birth=born,
                ip=_ip(),
                limits=settings().booking_limits,
            ),
        )
        if message:
            typed = dict(first=first_name, last=last_name, email=email, phone=phone, notes=notes)
            st.session_state[_asked_key(token)] = (
                _asked(view, treatments[treatment], day, moment, typed),
                view.clinic_phone,
            )
            mark_done("booking", token, message)
            st.rerun()
    st.caption(f"Questions? Call {escape(view.clinic_phone)}.")
