"""The notification outbox: delivery status, retry, and message templates with a preview."""

import pandas as pd
import streamlit as st

from core.kernel.authz import Permission
from core.kernel.errors import Conflict, DomainError
from core.messaging import delivery, notify, sms_parts
from ui import actor, refresh, run_action, settings, show_error
from ui.caches import cached
from ui.context import forget, read, run_in_steps, start
from ui.locale import display_format
from ui.paging import pager
from ui.picks import gone_choice
from ui.text import escape, show_table

STATUSES = ["", "queued", "sent", "failed"]


@cached("outbox", ttl=10, max_entries=20)
def _outbox(current, status, template, search, page):
    rows = read(notify.list_outbox, current, status or None, page, template=template, search=search)
    return rows, read(notify.outbox_counts, current, template=template, search=search)


def _template_words(key: str) -> str:
    return f"{notify.template_title(key)} — {notify.TEMPLATES[key].description}"


st.title("Notifications")
me = actor()
with st.form("notifications_filters"):
    a, b, c = st.columns([1, 2, 2])
    status = a.selectbox(
        "Status",
        STATUSES,
        key="notifications_status",
        format_func=lambda s: s.capitalize() or "All",
    )
    template = b.selectbox(
        "Template",
        [None, *notify.TEMPLATES],
        key="notifications_template_filter",
        format_func=lambda k: _template_words(k) if k else "All templates",
    )
    search = c.text_input(
        "Search", placeholder="Patient's name, email or number", key="notifications_search"
    )
    if st.form_submit_button("Apply"):
        st.session_state["notifications_page"] = 0
page = st.session_state.get("notifications_page", 0)
rows, counts = _outbox(me, status, template, search, page)
practice = display_format()  # the practice's locale and local time, never UTC
c1, c2, c3 = st.columns(3)
c1.metric("Queued", practice.number(counts["queued"]))
c2.metric("Sent", practice.number(counts["sent"]))
c3.metric("Failed", practice.number(counts["failed"]))
when = practice.moment
frame = pd.DataFrame(
    [
        {
            "#": r.id,
            "Created": when(r.created_at),
            "Channel": notify.channel_title(r.channel),
            "To": r.to_address,
            "Patient": r.patient,
            "Template": notify.template_title(r.template),
            "Subject": r.subject,
            "Status": r.status.capitalize(),
            "Attempts": r.attempts,
            "Last error": r.last_error,
            "Next attempt": when(r.next_attempt_at),
            "Sent": when(r.sent_at),
        }
        for r in rows
    ]
)
show_table(frame, hide_index=True, width="stretch")  # typed text as plain cells
# the whole list under the filters: the one status chosen, else every status's count
total = counts[status] if status else sum(counts.values())
pager("notifications", len(rows), total, notify.OUTBOX_PAGE, "messages", practice.number)

if me.can(Permission.NOTIFICATIONS_MANAGE):
    left, right = st.columns(2)
    with left:
        st.subheader("Retry a message")
        retryable = [r for r in rows if r.retryable]  # not those stopped on purpose
        if not retryable:  # no greyed-out picker (its label failed axe's contrast check)
            st.caption(
                "Every message listed was sent or stopped on purpose (see its last error): "
                "there is nothing to retry."
            )
        else:

            def said(r) -> str:
                return f"#{r.id} {notify.channel_title(r.channel)} to {r.to_address}: {r.subject}"

            if gone := gone_choice("notifications_retry_pick", retryable, said):
                st.warning(  # sent meanwhile: the box falls back to the first message
                    escape(f"{gone} is no longer waiting (sent meanwhile); nothing was retried."),
                    icon=":material/sync_problem:",
                )
            chosen = st.selectbox(
                "Message", retryable, key="notifications_retry_pick", format_func=said
            )
            if st.button("Retry now", key="notifications_retry") and not gone:
                if run_action(notify.retry, chosen.id, success="Queued again."):
                    refresh()
        if st.button("Send due messages now", key="notifications_send_due"):
            # a toast outlives the rerun that shows the outbox's new state (a st.success did not)
            if report := run_in_steps(delivery.deliver_now, settings()):
                st.toast(
                    f"Sent {report.sent}; retrying later {report.retrying}; failed for good "
                    f"{report.failed}; waiting for a transport {report.waiting}; held for the "
                    f"clinic's quiet hours {report.held}.",
                    icon=":material/outbox:",
                )
                refresh()
    with right:
        st.subheader("Templates")
        key = st.selectbox(
            "Template",
            list(notify.TEMPLATES),
            key="notifications_template",
            format_func=_template_words,
        )
        current, sent = read(notify.template_to_edit, key)  # one session, one read of the row
        edited = current != notify.TEMPLATES[key]
        editors = [f"notifications_{w}_{key}" for w in ("subject", "body", "was")]
        stored = {f"subject_{key}": current.subject, f"body_{key}": current.body}
        if st.session_state.pop("notifications_fresh", None) == key:  # reset, or saved by another
            # set, not popped: the browser is told to show it (it kept the text it held, and
            # sent it back with the next save)
            forget("notifications", stored)
            st.session_state.pop(editors[2], None)
        start("notifications", stored)  # in the state only, not also the boxes' value=
        # the text this editor opened with: a save or reset refuses it once someone else saved
        was = st.session_state.setdefault(editors[2], (current.subject, current.body))

        def start_over(error) -> None:  # saved by someone else meanwhile: show theirs next
            if isinstance(error, Conflict):
                st.session_state["notifications_unsaved"] = (key, subject, body)
                st.session_state["notifications_fresh"] = key

        if current != sent:  # saved before placeholders and links were checked
            st.warning(
                "The saved text cannot be sent as it is, so messages use the built-in text "
                "until it is corrected and saved."
            )
        if edited and (left := notify.left_out(key, current)):
            st.info(
                escape(
                    "The built-in text also gives "
                    + "; ".join(f"{{{n}}} ({notify.MEANINGS[n]})" for n in left)
                    + ". The edited text leaves it out: add it where it reads well, or use "
                    "the built-in text."
                ),
                icon=":material/info:",
            )
        with st.expander("Placeholders this message can use"):
            needed = notify.needed_in(key)
            st.markdown(
                escape(
                    "\n".join(
                        f"- {{{n}}}: {notify.MEANINGS[n]}"
                        + (" (must stay in the text)" if n in needed else "")
                        for n in notify.placeholders_of(key)
                    )
                )
            )
        with st.form("notifications_template_form"):
            subject = st.text_input("Subject", key=editors[0])
            body = st.text_area("Text", height=220, key=editors[1])
            saved = st.form_submit_button("Save template")
        if saved and run_action(
            notify.save_template,
            key,
            subject,
            body,
            was=was,
            success="Template saved.",
            refused=start_over,
        ):
            st.session_state[editors[2]] = (subject, body)
            st.session_state.pop("notifications_unsaved", None)
            refresh()
        unsaved = st.session_state.get("notifications_unsaved")
        if unsaved and unsaved[0] == key:
            st.caption("What you typed, not saved (copy it before making your change again):")
            st.code(f"{unsaved[1]}\n\n{unsaved[2]}", language=None)
        if edited and st.button("Use the built-in text", key="notifications_reset"):
            if run_action(
                notify.reset_template,
                key,
                was=was,
                success="The template uses the built-in text again.",
                refused=start_over,
            ):
                st.session_state["notifications_fresh"] = key
                refresh()
        try:
            preview_subject, preview_body = notify.preview_typed(
                key, subject, body, display_format()
            )
        except DomainError as error:
            if not saved:  # a save said it already
                show_error(error)
            st.caption("No preview: correct the text first.")
        else:
            st.caption("Preview with sample values")
            st.markdown(f"**{escape(preview_subject)}**")
            st.text(preview_body)
            text = notify.preview_typed_text(key, sent, subject, body, display_format())
            st.caption(escape(f"As a text message: {sms_parts.describe(text)}"))
            st.text(text)
