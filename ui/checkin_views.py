"""The check-in QR code of an appointment: shown on screen and offered as a PNG to print."""

from __future__ import annotations

import streamlit as st

from core.scheduling import checkin
from ui.context import run_action


def qr_panel(appointment_id: int, prefix: str) -> None:
    """A button that issues a fresh check-in code (the emailed one stays valid) and shows it."""
    key = f"{prefix}_qr_{appointment_id}"
    if st.button("Show check-in QR code", key=f"{key}_show", icon=":material/qr_code_2:"):
        done = run_action(checkin.issue_code_for, appointment_id)
        if done:
            st.session_state[key] = done.value
    issued = st.session_state.get(key)
    if issued:
        code, png = issued
        st.image(png, caption="Scan at the desk to check in (works once)", width=220)
        st.text(code)
        st.download_button(
            "Download to print (PNG)",
            png,
            file_name=f"check-in-{appointment_id}.png",
            mime="image/png",
            key=f"{key}_download",
        )
