"""Check-in at the desk: a handheld scanner types the code into the field, the camera reads
the QR code, or the patient is marked arrived by hand. A code works once."""

import streamlit as st

from core.practice import choices
from core.scheduling import checkin, today, visits
from core.scheduling.appointments import get_appointment_detail
from ui import actor, run_action, shown
from ui.caches import cached
from ui.context import read
from ui.front_desk import require
from ui.text import escape

CHOSEN = "check_in_manual_chosen"  # the appointment chosen by hand, by its number


@cached("setup", ttl=300, max_entries=10)
def _clinics(me):
    return {c.id: c.name for c in read(choices.list_choices, me).clinics}


@cached("appointments", "patients", ttl=15, max_entries=20)
def _expected(me, clinic_id):
    return [r for r in read(today.list_today, me, clinic_id) if r.can_check_in]


def _check_in(code: str) -> None:
    done = run_action(checkin.check_in_by_code, code, clinic_id=clinic_id)
    if done:
        st.session_state["check_in_last"] = read(
            checkin.arrival_text, me, done.value.appointment_id
        )
        if st.session_state.get(CHOSEN) == (clinic_id, done.value.appointment_id):  # it leaves
            st.session_state.pop(CHOSEN)


def _picture(upload, seen_key: str) -> None:
    """Decode a picture once (the widget keeps returning it on every rerun)."""
    if upload is None or st.session_state.get(seen_key) == upload.file_id:
        return
    st.session_state[seen_key] = upload.file_id
    _check_in(shown(checkin.decode_qr, upload.getvalue()))


st.title("Check-in")
me = actor()
clinics = _clinics(me)
require(clinics)
clinic_id = st.selectbox("Clinic", list(clinics), format_func=clinics.get, key="check_in_clinic")

with st.form("check_in_scan", clear_on_submit=True):
    code = st.text_input(
        "Scan the QR code (or type the code under it)",
        key="check_in_code",
        placeholder="Click here, then scan",
    )
    if st.form_submit_button("Check in", type="primary") and code.strip():
        _check_in(code)

scan, upload = st.tabs(["Camera", "Picture file"])
with scan:
    if st.toggle("Use the camera", key="check_in_use_camera"):
        _picture(
            st.camera_input("Show the QR code to the camera", key="check_in_camera"),
            "check_in_camera_seen",
        )
with upload:
    _picture(
        st.file_uploader(
            "A photo or screenshot of the QR code", type=["png", "jpg", "jpeg"], key="check_in_file"
        ),
        "check_in_file_seen",
    )
last = st.session_state.pop("check_in_last", None)
if last:
    st.success(escape(last), icon=":material/how_to_reg:")
    _expected.clear()

st.subheader("Mark arrived by hand")
expected = {r.id: r for r in _expected(me, clinic_id)}
# the one chosen, kept by its number: when it leaves the list (checked in at another desk,
# cancelled) the choice empties and says so, instead of landing on whoever is listed first
clinic_before, before = st.session_state.pop(CHOSEN, None) or (None, None)
if clinic_before == clinic_id and before not in expected:
    gone = shown(read, get_appointment_detail, me, before)
    latest = gone.history[-1] if gone.history else None
    st.warning(
        escape(
            f"#{gone.id} {gone.patient_name} left the list while it was chosen here: now "
            f"{gone.status_words}"
            + (f" ({latest.action} by {latest.who} at {latest.at})" if latest else "")
            + ". Nothing was done; choose again."
        ),
        icon=":material/sync_problem:",
    )
if not expected:
    st.caption("Nobody is waiting to be marked arrived today at this clinic.")
    st.stop()
picked = st.selectbox(
    "Appointment",
    list(expected),
    index=None,
    placeholder="Choose who arrived",
    key="check_in_manual",
    format_func=lambda i: (
        f"{expected[i].time} · {expected[i].patient} · {expected[i].provider} · "
        f"{expected[i].service} · #{i}"
    ),
)
if picked is not None:
    st.session_state[CHOSEN] = (clinic_id, picked)
if st.button("Mark arrived", key="check_in_manual_go", disabled=picked is None) and picked:
    row = expected[picked]
    if run_action(visits.check_in, row.id, expected_version=row.version):
        st.session_state.pop(CHOSEN, None)  # it leaves the list: nothing to say about that
        st.session_state["check_in_last"] = read(checkin.arrival_text, me, row.id)
        st.rerun()
