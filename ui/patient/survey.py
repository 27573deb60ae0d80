"""The post-visit survey behind a signed link: recommend (0–10), overall rating (1–5), the
practice's 1–5 questions and a comment; then a thank-you page."""

from __future__ import annotations

import streamlit as st

from core.feedback import surveys
from core.kernel.errors import DomainError, LinkInvalid
from ui.patient import closed, mark_done, public_read, public_write, show_done
from ui.text import escape

THANKS = "Thank you for your feedback! It helps us improve the care we give."
SCALE = [1, 2, 3, 4, 5]
# the scale in words, here and in the portal's survey (ui.patient_portal.views)
RATING = "Overall, how would you rate your visit? (1 = poor, 5 = excellent)"
OPTIONAL = "Optional: rate each from 1 (poor) to 5 (excellent)."


def render(token: str) -> None:
    if show_done("survey", token):
        return
    try:
        form = public_read(surveys.open_survey, token)
    except LinkInvalid:
        raise
    except DomainError as error:  # answered already, or a newer link was sent: say so
        closed("This survey is closed", error)
        return
    st.title(f"How was your visit to {escape(form.clinic_name)}?")
    provider = f" with {escape(form.provider_name)}" if form.provider_name else ""
    st.markdown(f"Your visit on **{escape(form.visit)}**{provider}. It takes two minutes.")
    with st.form("survey_form"):
        nps = st.radio(
            "How likely are you to recommend us to friends and family? (0 = not at all, "
            "10 = extremely likely)",
            list(range(11)),
            index=None,
            horizontal=True,
            key="survey_nps",
        )
        rating = st.radio(
            RATING,
            SCALE,
            index=None,
            horizontal=True,
            key="survey_rating",
        )
        st.caption(OPTIONAL)
        answers = {
            key: st.radio(escape(label), SCALE, index=None, horizontal=True, key=f"survey_q_{key}")
            for key, label in form.questions
        }
        comment = st.text_area(
            "Anything you would like to tell us?",
            max_chars=surveys.COMMENT_MAX,
            key="survey_comment",
        )
        submitted = st.form_submit_button("Send my answers", type="primary")
    if submitted:
        answered = surveys.SurveyAnswers(nps, rating, answers, comment)
        if public_write(surveys.submit_survey, token, answered) is not None:
            mark_done("survey", token, THANKS)
            st.rerun()
