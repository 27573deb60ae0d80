"""Check-in at the desk: a handheld scanner types the code into the field, the camera reads
the QR code, or the patient is marked arrived by hand. A code works once."""

import streamlit as st

from core.practice import choices
from core.scheduling import checkin, today, visits
from ui import actor, run_action, shown
from ui.caches import cached
from ui.context import read
from ui.front_desk import require
from ui.text import escape


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
expected = _expected(me, clinic_id)
if not expected:
    st.caption("Nobody else is expected today at this clinic.")
else:
    row = st.selectbox(
        "Appointment",
        expected,
        key="check_in_manual",
        format_func=lambda r: f"{r.time} · {r.patient} · {r.provider} · {r.service} · #{r.id}",
    )
    if st.button("Mark arrived", key="check_in_manual_go"):
        done = run_action(visits.check_in, row.id, expected_version=row.version)
        if done:
            st.session_state["check_in_last"] = read(checkin.arrival_text, me, row.id)
            st.rerun()
