"""Widgets for portal invitations shared by the Patients and Invitations pages."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from core.kernel.money import NO_VALUE, ClinicFormat
from core.patients import enrolment, invitations
from core.patients import records as patients
from core.patients.invitations import PortalStatus
from core.portal import patient_links
from core.scheduling.codes import qr_png
from ui.context import forget_if_saved, mark_saved, read, refresh, run_action, settings, start
from ui.folds import fold
from ui.locale import date_picker, display_format
from ui.text import escape, plain, show_table

STATUS_ICONS = {
    PortalStatus.NO_CONTACT: ":material/mail_off:",
    PortalStatus.OPTED_OUT: ":material/block:",
    PortalStatus.NOT_INVITED: ":material/person_add:",
    PortalStatus.INVITED: ":material/schedule_send:",
    PortalStatus.ENROLLED: ":material/verified:",
    PortalStatus.EXPIRED: ":material/timer_off:",
    PortalStatus.REVOKED: ":material/cancel:",
}
QR_KEY = "portal_qr_link"


def send_label(status: PortalStatus) -> str:
    return {
        PortalStatus.INVITED: "Resend invitation",
        PortalStatus.EXPIRED: "Renew invitation",
        PortalStatus.REVOKED: "Send a new invitation",
    }.get(status, "Send portal invitation")


def status_box(state: invitations.PortalState) -> None:
    """The portal status and what it means / what to do next."""
    icon = STATUS_ICONS[state.status]
    if state.status in (PortalStatus.NO_CONTACT, PortalStatus.OPTED_OUT):
        st.warning(f"**Portal: {escape(state.label)}.** {escape(state.advice)}", icon=icon)
    elif state.status == PortalStatus.ENROLLED:
        st.success(f"**Portal: {escape(state.label)}.** {escape(state.advice)}", icon=icon)
    else:
        st.info(f"**Portal: {escape(state.label)}.** {escape(state.advice)}", icon=icon)


def history_table(rows: list[enrolment.HistoryRow], key: str) -> None:
    if not rows:
        st.caption("No invitations yet.")
        return
    when = display_format().moment  # the practice's local time, never UTC
    frame = pd.DataFrame(
        [
            {
                "#": r.invitation_id,
                "Sent": when(r.sent_at),
                "Channel": r.channel,
                "To": r.email,
                "Status": r.said,
                "Expires": when(r.expires_at),
                "Enrolled": when(r.enrolled_at),
                "Revoked": when(r.revoked_at),
                "Why revoked": r.revoked_reason,
                "Sent by": r.sent_by,
            }
            for r in rows
        ]
    )
    show_table(frame, hide_index=True, width="stretch", key=key)


def qr_panel(key: str) -> None:
    """The desk QR code of the last enrolment link made for printing (kept in session state)."""
    made = st.session_state.get(QR_KEY)
    if not made:
        return
    name, link = made
    with st.container(border=True):
        st.markdown("**Enrolment QR code for the desk**")
        st.text(plain(f"{name} — scan with a phone camera to enrol (works once)."))
        png = qr_png(link)
        st.image(png, width=220)
        st.download_button(
            "Download for printing",
            png,
            file_name="portal-enrolment.png",
            mime="image/png",
            key=f"{key}_qr_download",
        )
        if st.button("Done", key=f"{key}_qr_done"):
            st.session_state.pop(QR_KEY, None)
            st.rerun()


def remember_qr(sent: invitations.InvitationSent) -> None:
    st.session_state[QR_KEY] = (sent.patient_name, sent.link)


def send_many(patient_ids: list[int], key: str) -> None:
    """Invite each patient (core: one savepoint each, a refusal kept as that row's reason),
    with a progress bar; the rows are kept for results_table."""
    bar = st.progress(0.0, text="Sending invitations…")

    def progress(number: int, total: int) -> None:
        bar.progress(number / total, text=f"Sent {number} of {total}")

    done = run_action(
        invitations.send_many, patient_ids, base_url=settings().base_url, progress=progress
    )
    if done:
        st.session_state[f"{key}_results"] = ("sent", done.value)


def revoke_many(invitation_ids: list[int], key: str) -> None:
    done = run_action(invitations.revoke_many, invitation_ids, "Revoked from the list")
    if done:
        st.session_state[f"{key}_results"] = ("revoked", done.value)


def results_table(key: str) -> None:
    verb, results = st.session_state.get(f"{key}_results") or ("", [])
    if not results:
        return
    done = sum(r.done for r in results)
    st.success(f"Invitations {verb}: {done}; skipped: {len(results) - done}.")
    show_table(
        pd.DataFrame(
            [
                {
                    "Patient": plain(r.patient),
                    "Outcome": verb if r.done else "skipped",
                    "Detail": r.detail,
                }
                for r in results
            ]
        ),
        hide_index=True,
        width="stretch",
        key=f"{key}_results_table",
    )


def _born_format() -> str:
    """A patient has no clinic of their own here: the practice's day order."""
    return date_picker(display_format().locale)


def _born_bounds() -> dict:
    earliest, latest = patients.birth_bounds()
    return {"min_value": earliest, "max_value": latest}


NEW_PATIENT = {  # the add form's fields, empty
    **dict.fromkeys(("first", "last", "email", "phone", "addr1", "addr2", "city"), ""),
    **{"postcode": "", "country": "", "dob": None},
    **dict.fromkeys(("consent_email", "consent_sms", "invite", "different"), False),
}


def new_patient_form(expanded: bool) -> None:
    """Add a patient, with their postal address if given (optional; its country, left as —,
    the practice's), optionally sending the portal invitation at once."""
    if not (box := fold("Add a patient", "patients_new_open", expanded=expanded)):
        return
    forget_if_saved("patients_new", NEW_PATIENT)
    with box, st.form("patients_new"):  # kept as typed when refused, to correct
        a, b = st.columns(2)
        first, last = (
            a.text_input("First name", key="patients_new_first"),
            b.text_input("Last name", key="patients_new_last"),
        )
        born = a.date_input(
            "Date of birth",
            value=None,
            format=_born_format(),
            key="patients_new_dob",
            **_born_bounds(),
        )
        email, phone = (
            b.text_input("Email", key="patients_new_email"),
            a.text_input("Phone", key="patients_new_phone"),
        )
        address = _address_inputs("patients_new")
        c_email = st.checkbox("Consents to email", key="patients_new_consent_email")
        c_sms = st.checkbox("Consents to text messages", key="patients_new_consent_sms")
        invite = st.checkbox("Send portal invitation", key="patients_new_invite")
        different = st.checkbox(
            "A different person",
            key="patients_new_different",
            help="Add this patient although one with the same name (and date of birth) exists.",
        )
        if st.form_submit_button("Add patient", type="primary"):
            made = run_action(
                patients.create_patient,
                first_name=first,
                last_name=last,
                date_of_birth=born,
                email=email,
                phone=phone,
                consent_email=c_email,
                consent_sms=c_sms,
                different_person=different,
                address=address,
                success="Patient added.",
            )
            if made:
                st.session_state["patients_selected"] = made.value.id
                mark_saved("patients_new")
                invited = not invite or run_action(
                    invitations.send_invitation,
                    made.value.id,
                    base_url=settings().base_url,
                    success="Invitation sent.",
                )
                if invited:  # a refused invitation keeps its error on the screen: no rerun
                    refresh()


EDITED = {  # the edit form's fields: session-state key suffix → the record's value as shown
    "first_name": ("first", lambda r: r.first_name),
    "last_name": ("last", lambda r: r.last_name),
    "date_of_birth": ("dob", lambda r: r.date_of_birth),
    "email": ("email", lambda r: r.email or ""),
    "phone": ("phone", lambda r: r.phone or ""),
    "address_line1": ("addr1", lambda r: r.address_line1 or ""),
    "address_line2": ("addr2", lambda r: r.address_line2 or ""),
    "city": ("city", lambda r: r.city or ""),
    "postcode": ("postcode", lambda r: r.postcode or ""),
    "country": ("country", lambda r: r.country or ""),
    "consent_email": ("c_email", lambda r: r.consent_email),
    "consent_sms": ("c_sms", lambda r: r.consent_sms),
    "consent_marketing": ("c_mkt", lambda r: r.consent_marketing),
    "reminders_enabled": ("reminders", lambda r: r.reminders_enabled),
}


def edit_form(record) -> None:
    """Edit details and consent; the outcome (and an offer of a new invitation) is kept in
    session state for the page to show after the refresh. Only what was changed on the form is
    saved: a change another desk made meanwhile to another field (an email, a consent withdrawn)
    stays, and one to the same field is not overwritten unseen."""
    patient_id = record.id
    if not (box := fold("Edit details, address and consent", f"patients_edit_{patient_id}_open")):
        return
    k = f"patients_edit_{patient_id}"
    # saved: drawn afresh from the saved record, others' changes included
    saved = {f: v(record) for f, (_, v) in EDITED.items()}
    forget_if_saved(k, {**{suffix: saved[f] for f, (suffix, _) in EDITED.items()}, "base": saved})
    if f"{k}_first" not in st.session_state:  # not on the screen just before: start afresh
        st.session_state.pop(f"{k}_base", None)
    # the record as the form was first drawn with it (its fields keep what is typed after)
    base = st.session_state.setdefault(f"{k}_base", {f: v(record) for f, (_, v) in EDITED.items()})
    # its fields start from it, set in the state: drawn with it as their default too (value=),
    # a field set after a save (forget_if_saved) was a default set twice
    start(k, {suffix: base[f] for f, (suffix, _) in EDITED.items()})
    with box, st.form(k):
        a, b = st.columns(2)
        typed = dict(
            first_name=a.text_input("First name", key=f"{k}_first"),
            last_name=b.text_input("Last name", key=f"{k}_last"),
            date_of_birth=a.date_input(
                "Date of birth", format=_born_format(), key=f"{k}_dob", **_born_bounds()
            ),
            email=b.text_input("Email", key=f"{k}_email"),
            phone=a.text_input("Phone", key=f"{k}_phone"),
            **_address_inputs(k, base["country"]),
            consent_email=st.checkbox("Consents to email", key=f"{k}_c_email"),
            consent_sms=st.checkbox("Consents to text messages", key=f"{k}_c_sms"),
            consent_marketing=st.checkbox("Consents to marketing", key=f"{k}_c_mkt"),
            reminders_enabled=st.checkbox(
                "Sends appointment reminders (by the channels consented to)",
                key=f"{k}_reminders",
            ),
        )
        if st.form_submit_button("Save changes"):
            _save(record, k, base, typed)


def _address_inputs(k: str, country: str = "") -> dict:
    """The postal address's boxes, empty or as the session state holds them (ui.context.start);
    a country left blank is the practice's once an address is saved. `country`: the record's,
    offered even when no longer listed."""
    a, b = st.columns(2)
    names = patients.country_names(display_format().locale)
    options = ["", *names]
    if country and country not in names:
        options.append(country)  # an import's code no longer listed: shown as it is
    return dict(
        address_line1=a.text_input("Address line 1", key=f"{k}_addr1"),
        address_line2=b.text_input("Address line 2", key=f"{k}_addr2"),
        city=a.text_input("Town or city", key=f"{k}_city"),
        postcode=b.text_input("Postcode", key=f"{k}_postcode"),
        country=a.selectbox(
            "Country",
            options,
            format_func=lambda code: plain(names.get(code, code)) if code else "—",
            key=f"{k}_country",
            help="Left as — with an address typed: the practice's own country.",
        ),
    )


def _save(record, k: str, base: dict, typed: dict) -> None:
    changes = {f: v for f, v in typed.items() if v != base[f]}

    def show_theirs(error) -> None:  # changed here and by someone else: theirs is shown
        if isinstance(error, patients.ChangedMeanwhile):
            st.session_state[f"{k}_base"] = {**base, **error.now}

    saved = run_action(
        patients.update_patient,
        record.id,
        shown={f: base[f] for f in changes},
        refused=show_theirs,
        **changes,
    )
    if saved:
        st.session_state["patients_saved_message"] = saved.value.message
        st.session_state["patients_offer_invite"] = (
            record.id if saved.value.offer_new_invitation else None
        )
        mark_saved(k)
        refresh()


def funnel_panel(funnel: enrolment.Funnel, key: str, fmt: ClinicFormat) -> None:
    """Invited → enrolled as a funnel chart, with the rate, median days and open invitations."""
    left, right = st.columns([2, 1])
    left.echarts_chart(
        {
            "animation": False,
            "tooltip": {"trigger": "item"},
            "series": [
                {
                    "type": "funnel",
                    "left": 8,
                    "right": 8,
                    "top": 8,
                    "bottom": 8,
                    "sort": "none",
                    "min": 0,
                    "max": max(funnel.invited, funnel.enrolled, 1),  # widths in proportion
                    "label": {"position": "inside", "formatter": "{b}: {c}"},
                    "data": [
                        {"name": "Invited", "value": funnel.invited},
                        {"name": "Enrolled", "value": funnel.enrolled},
                    ],
                }
            ],
        },
        key=f"{key}_funnel",
        height=220,
    )
    right.metric("Enrolment rate", fmt.percent(funnel.rate, 0))
    days = funnel.median_days
    right.metric("Median days to enrol", NO_VALUE if days is None else fmt.number(days, 1))
    right.metric("Pending invitations", fmt.number(funnel.pending))


def settings_panel(clinics: dict[int, str], key: str) -> None:
    """Invitation expiry and the clinics' public booking-request links (managers and owners)."""
    # behind a toggle: nothing of it is read or drawn until a manager opens it
    if st.toggle("Settings and public booking link", key=f"{key}_settings_open"):
        with st.form(f"{key}_settings"):
            days = st.number_input(
                "Invitations expire after (days)",
                1,
                invitations.MAX_EXPIRY_DAYS,
                read(invitations.get_expiry_days),
                key=f"{key}_expiry",
            )
            if st.form_submit_button("Save"):
                run_action(invitations.set_expiry_days, int(days), success="Expiry saved.")
        target = st.selectbox(
            "Clinic for a booking link",
            list(clinics),
            format_func=clinics.get,
            key=f"{key}_booking_clinic",
        )
        if st.button("Create a public booking-request link", key=f"{key}_booking_link"):
            made = run_action(
                patient_links.issue_booking_link, target, base_url=settings().base_url
            )
            if made:
                st.code(made.value, language=None)
