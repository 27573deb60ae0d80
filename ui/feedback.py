"""Feedback widgets: an appointment's feedback state with the "Collect feedback" action, and the
owner's survey settings form."""

from __future__ import annotations

import streamlit as st

from core.feedback import surveys
from core.kernel.authz import Permission
from ui.caches import cached
from ui.context import actor, read, refresh, run_action, settings
from ui.text import escape

ICONS = {
    "none": ":material/chat_bubble_outline:",
    "pending": ":material/schedule_send:",
    "collected": ":material/reviews:",
}


@cached("feedback", "appointments", ttl=10, max_entries=200)
def _feedback(current, appointment_id: int) -> surveys.FeedbackInfo:
    return read(surveys.get_feedback, current, appointment_id)


def feedback_panel(appointment_id: int) -> None:
    """Feedback none / pending / collected for one visit, the requests sent, and the action."""
    me = actor()
    info = _feedback(me, appointment_id)
    if not info.completed and info.status == "none":
        return  # feedback belongs to completed visits only
    st.markdown(f"{ICONS[info.status]} **{info.said}**")
    if flash := st.session_state.pop("feedback_flash", None):
        st.success(escape(flash), icon=":material/check_circle:")
    if info.nps is not None:
        st.caption(f"Recommend {info.nps}/10 · overall {info.rating}/5")
    for sent, answered in info.requests:
        st.caption(f"Request sent {sent}{' · answered' if answered else ''}")
    if not info.completed or info.status == "collected" or not me.can(Permission.FEEDBACK_REQUEST):
        return
    if info.sent_today:
        st.caption("A request went out today; you can send another tomorrow.")
    key = f"feedback_collect_{appointment_id}"
    if st.button(
        "Collect feedback", key=key, disabled=not info.can_request, icon=":material/rate_review:"
    ):
        done = run_action(surveys.request_feedback, appointment_id, base_url=settings().base_url)
        if done:
            st.session_state["feedback_flash"] = done.value.said
            refresh()


def survey_settings_form(prefix: str) -> None:
    """Automatic requests on/off, the delay after a completed visit, and the 1–5 questions."""
    current = read(surveys.survey_settings)
    with st.form(f"{prefix}_survey_settings"):
        auto = st.toggle(
            "Send feedback requests automatically", value=current.auto, key=f"{prefix}_auto"
        )
        delay = st.number_input(
            "Hours after the visit is completed",
            0,
            336,
            value=current.delay_hours,
            key=f"{prefix}_delay",
        )
        questions = st.text_area(
            "Questions rated 1–5 (one per line)",
            "\n".join(label for _, label in current.questions),
            key=f"{prefix}_questions",
        )
        saved = st.form_submit_button("Save survey settings")
    if saved and run_action(
        surveys.save_survey_settings,
        auto=auto,
        delay_hours=int(delay),
        questions=questions.splitlines(),
        success="Survey settings saved.",
    ):
        refresh()
