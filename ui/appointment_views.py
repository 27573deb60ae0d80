"""Reusable appointment widgets: the detail panel (facts, history, actions) and the queue's
per-row actions. The calendar and today board show the same panel with `appointment_panel`.

Every action goes through `run_action` (one transaction, domain errors shown as they are);
after a success the outcome (who was told, which channels were skipped and why) is kept as a
flash message and the page reruns with fresh data."""

from __future__ import annotations

from datetime import datetime, time, timedelta

import pandas as pd
import streamlit as st

from core.kernel.clock import local_to_utc, to_local, zone_words
from core.kernel.errors import DomainError
from core.kernel.money import clinic_money, format_moment
from core.patients import merge
from core.practice import choices
from core.requests import changes, decisions, flags, queue
from core.requests.queue import QueueKind, QueueRow
from core.scheduling import lifecycle, moves, notes, visits
from core.scheduling.appointments import AppointmentDetail, get_appointment_detail
from core.scheduling.availability import Slot
from core.scheduling.calendar import STATUS_LABELS
from core.scheduling.states import Action
from ui.booking_form import clock_change_notice
from ui.caches import cached
from ui.context import (
    forget_if_saved,
    mark_saved,
    read,
    refresh,
    require_actor,
    run_action,
    show_error,
)
from ui.locale import display_format, pickers
from ui.patient_merge import show_preview
from ui.picks import gone_choice
from ui.text import escape, plain, show_table

FLASH = "appointment_views_flash"
FLASH_WARNING = "appointment_views_flash_warning"  # done, but something needs doing still
KEPT = "Proposal withdrawn and the patient's change request declined: their booking stays."
OTHER = "other"


# ---------------------------------------------------------------- cached reads


@cached("appointments", "setup", ttl=15, max_entries=200)
def _suggestions(me, appointment_id: int, change_id: int | None, provider_id: int | None):
    return read(queue.suggest_for, me, appointment_id, change_id=change_id, provider_id=provider_id)


@cached("setup", ttl=60, max_entries=20)
def _providers(me, clinic_id: int):
    """Active providers who work at the clinic, by name."""
    return {p.id: p.name for p in read(choices.list_choices, me).providers_at(clinic_id)}


@cached(
    "appointments", "patients", "policy", "feedback", ttl=10, max_entries=100, show_spinner=False
)
def load_detail(me, appointment_id: int) -> AppointmentDetail:
    return read(get_appointment_detail, me, appointment_id)


@cached("appointments", "patients", ttl=10, max_entries=100, show_spinner=False)
def _flag_choices(me, appointment_id: int) -> tuple[flags.FlagChoice, ...]:
    return read(flags.offered_on, me, appointment_id)


# ---------------------------------------------------------------- small pieces


def show_flash() -> bool:
    """The last action's outcome, shown once after the rerun (addresses escaped); whether
    there was one."""
    text = st.session_state.pop(FLASH, None)
    if text:
        st.success(escape(text), icon=":material/check_circle:")
    warning = st.session_state.pop(FLASH_WARNING, None)
    if warning:
        st.warning(escape(warning), icon=":material/phone_in_talk:")
    return bool(text or warning)


def _kept(done) -> bool:
    """Core's word on a decline: a proposal answering the patient's change request was
    withdrawn, and the booking they had stays (decisions.decline_request)."""
    return bool(done) and getattr(done.value, "kept_booking", False)


def _finish(done, headline: str, form: str | None = None) -> None:
    """After an action: its outcome kept for the next run, which reads the data afresh; the
    open `form` (its prefix) is done with, so the version it was filled against is let go."""
    if not done:
        return
    if form:
        st.session_state.pop(f"{form}_seen", None)
    value = done.value
    if isinstance(value, decisions.Proposed) and not value.outcome.notified:
        st.session_state[FLASH_WARNING] = (  # the patient answers only through the link sent
            f"Proposal saved, but the patient was not told "
            f"({'; '.join(value.outcome.skipped) or 'no way to reach them'}): they cannot "
            "answer it until they hear of it. Call them with the time and, if they agree, record "
            "it in the queue under Waiting for the patient: The patient accepted (by phone)."
        )
        refresh()
        return
    if isinstance(value, decisions.Proposed):
        headline = value.outcome.after(headline)
    elif isinstance(value, lifecycle.Outcome):
        headline = value.after(headline)
    elif isinstance(value, list):  # bulk results are shown by the caller
        return
    st.session_state[FLASH] = headline
    refresh()


def time_picker(
    me,
    prefix: str,
    *,
    appointment_id: int,
    clinic_id: int,
    tz: str,
    change_id: int | None = None,
    default_provider: int | None = None,
) -> tuple[int | None, datetime | None]:
    """Provider and start: the earliest suggested free slots, or any time typed in."""
    try:
        slots: list[Slot] = _suggestions(me, appointment_id, change_id, None)
    except DomainError:  # e.g. a request whose service was retired: type a time instead
        slots = []
    options = [*slots, OTHER]
    locale = display_format(clinic_id).locale

    def label(slot) -> str:
        if slot == OTHER:
            return "Another time…"
        return f"{format_moment(slot.start_at, tz, locale)} · {slot.provider_name}"

    # the slot chosen is taken meanwhile (another desk booked it) or past: the box would fall
    # back to the first slot, and a press in this run would use a time nobody chose
    gone = gone_choice(f"{prefix}_slot", options, label)
    st.session_state[f"{prefix}_slot_gone"] = gone is not None
    if gone:
        st.warning(
            escape(
                f"{gone} is no longer free (booked meanwhile, or past), so nothing was "
                "done. The earliest free time is chosen now: check it, then press again."
            ),
            icon=":material/event_busy:",
        )
    picked = st.selectbox(
        "Time",
        options,
        key=f"{prefix}_slot",
        format_func=label,
        help="The earliest free slots that fit the service, working hours, bookings and the "
        "patient's time-of-day preference.",
    )
    if not slots:
        st.caption("No free slot in the next two weeks fits; enter a time.")
    if picked != OTHER:
        return picked.provider_id, picked.start_at
    providers = _providers(me, clinic_id)  # only when typing a time
    ids = list(providers)
    provider = st.selectbox(
        "Provider",
        ids,
        format_func=providers.get,
        key=f"{prefix}_provider",
        index=ids.index(default_provider) if default_provider in ids else 0,
    )
    c1, c2 = st.columns(2)
    today = to_local(datetime.now().astimezone(), tz).date()
    pick = pickers(locale)
    day = c1.date_input(
        f"Day ({zone_words(tz)})", today + timedelta(days=1), key=f"{prefix}_day", format=pick.date
    )
    at = c2.time_input(
        f"Start ({zone_words(tz)})", time(9), step=900, key=f"{prefix}_time", format=pick.clock
    )
    if day and at:
        clock_change_notice(day, at, tz, locale)
    return provider, local_to_utc(day, at, tz) if day and at else None


def slot_gone(prefix: str) -> bool:
    """The time_picker's chosen slot was taken since it was drawn: a press in this run is
    not acted on (the picker said so). Asked once a run, after the picker."""
    return bool(st.session_state.pop(f"{prefix}_slot_gone", False))


def _message(prefix: str) -> str:
    return st.text_area("Message to the patient (optional)", key=f"{prefix}_message", height=80)


def _reason(prefix: str, label: str = "Reason (required; the patient is told)") -> str:
    return st.text_input(label, key=f"{prefix}_reason")


def _flags(prefix: str) -> dict[str, bool]:
    # one under the other: side by side, the queue's panel beside its table cut them short
    return {
        "allow_double_booking": st.checkbox("Allow double booking", key=f"{prefix}_double"),
        "outside_hours_override": st.checkbox("Outside working hours", key=f"{prefix}_outside"),
    }


# ---------------------------------------------------------------- the queue's per-row actions

QUEUE_CHOICES = {
    QueueKind.REQUESTS: ["Approve", "Propose another time", "Decline"],
    QueueKind.RESCHEDULES: [
        "Approve the new time",
        "Propose a different time",
        "Deny, keep the original",
    ],
    QueueKind.CANCELLATIONS: [
        "Approve the cancellation",
        "Propose a reschedule instead",
        "Deny, keep the appointment",
    ],
    QueueKind.PROPOSALS: [
        "Propose another time",
        "The patient accepted (by phone)",
        "Decline the request",
    ],
}


def pick_row(
    rows: list[QueueRow],
    selected: list[int],
    memory: str,
    scope: tuple = (),
    decided_here: bool = False,
) -> QueueRow:
    """The queue row to decide on, remembered by its request, not its place: another manager's
    decision shifts the rows under this one. A click picks the row it landed on in the table as
    it was shown; with no new click the remembered request stays; once it is gone the row now
    at its place is next, and unless this session decided it or changed the filters (`scope`)
    the manager is told that it left."""
    state = st.session_state.get(memory) or {}
    keys = [(r.appointment_id, r.change_id) for r in rows]
    chosen = state.get("key")
    if selected and selected != state.get("clicked"):  # a new click on the rows then shown
        shown = state.get("shown", keys)
        chosen = shown[selected[0]] if selected[0] < len(shown) else chosen
    if chosen in keys:
        position = keys.index(chosen)
    else:
        position = max(0, min(int(state.get("position", 0)), len(rows) - 1))
        if chosen is not None and not decided_here and state.get("scope") == list(scope):
            st.info(
                f"#{chosen[0]} is no longer waiting: someone else handled it, or the patient "
                f"withdrew it, while it was open here. Next: #{rows[position].appointment_id}.",
                icon=":material/info:",
            )
    st.session_state[memory] = {
        "key": keys[position],
        "position": position,
        "clicked": list(selected),
        "shown": keys,
        "scope": list(scope),
    }
    return rows[position]


def _opened_on(row: QueueRow, p: str, choice: str | None) -> int:
    """The version of the request (or change request) the open form was chosen on: a decision
    another manager made meanwhile that leaves the row in the queue (a new proposal on a
    proposal) is not replaced unseen; core refuses the stale one, saying by whom and when.
    While it differs the form says so; a press lets it go (refused, or done)."""
    now = row.change_version if row.change_id else row.version
    key = f"{p}_seen"
    if choice is None:
        st.session_state.pop(key, None)
        return now
    seen = st.session_state.setdefault(key, now)
    if seen != now:
        st.warning(
            f"#{row.appointment_id} was changed while this form was open here (another "
            "manager acted on it, or the patient did): check it before you act. What you "
            "typed is kept; nothing is done until you press again.",
            icon=":material/sync_problem:",
        )
        if st.session_state.get(f"{p}_go"):  # this press: refused by core, then let go
            st.session_state[key] = now
    return seen


def queue_actions(me, row: QueueRow, prefix: str = "queue") -> None:
    """What a manager can do with one queue row, each with an optional message to the patient
    and a required reason for declines and cancellations."""
    p = f"{prefix}_{row.kind.value}_{row.appointment_id}"
    # nothing preselected: the free-slot search and the form are paid only once asked for
    # one per line: in the panel beside the table a row of buttons was cut off at 1400 px
    choice = st.radio("Action", QUEUE_CHOICES[row.kind], index=None, key=f"{p}_choice")
    if choice is None:
        st.caption("Choose an action to see the suggested times and the message to send.")
    if row.kind == QueueKind.CANCELLATIONS and row.inside_window:
        cost = f"a fee of {clinic_money(row, row.fee_cents)}" if row.fee_cents else "no fee"
        st.warning(
            f"This request falls inside the cancellation-policy window: approving it "
            f"applies {cost}" + (f" and deducts {row.points} points." if row.points else "."),
            icon=":material/warning:",
        )
    for notice in queue.notices(row):  # a passed day, a visit moved since, a lapsed link
        st.warning(escape(notice), icon=":material/schedule:")
    ids = dict(
        appointment_id=row.appointment_id,
        clinic_id=row.clinic_id,
        tz=row.timezone,
        change_id=row.change_id,
        default_provider=row.provider_id,
    )
    version = dict(expected_version=_opened_on(row, p, choice))
    if choice in (
        "Approve",
        "Propose another time",
        "Propose a different time",
        "Propose a reschedule instead",
    ):
        provider_id, start_at = time_picker(me, p, **ids)
        message, flags = _message(p), _flags(p)
        proposing = choice != "Approve"
        gone = slot_gone(p)
        if (
            st.button(choice if proposing else "Approve", key=f"{p}_go", type="primary")
            and not gone
        ):
            if row.change_id:
                done = run_action(
                    changes.propose_for_change,
                    row.change_id,
                    provider_id=provider_id,
                    start_at=start_at,
                    message=message,
                    **version,
                    **flags,
                )
            else:
                service = decisions.propose_time if proposing else decisions.approve_request
                done = run_action(
                    service,
                    row.appointment_id,
                    provider_id=provider_id,
                    start_at=start_at,
                    message=message,
                    **version,
                    **flags,
                )
            _finish(done, "Proposal sent to the patient." if proposing else "Approved.", p)
    elif choice == "Approve the new time":
        st.caption(
            f"Moves the appointment from "
            f"{format_moment(row.start_at, row.timezone, row.locale)} to "
            + (
                format_moment(row.requested_start_at, row.timezone, row.locale)
                if row.requested_start_at
                else "a time you choose"
            )
            + "."
        )
        provider_id, start_at = (None, None)
        if row.requested_start_at is None:
            provider_id, start_at = time_picker(me, p, **ids)
        message, flags = _message(p), _flags(p)
        gone = slot_gone(p)
        if st.button("Approve the new time", key=f"{p}_go", type="primary") and not gone:
            _finish(
                run_action(
                    changes.approve_change,
                    row.change_id,
                    start_at=start_at,
                    provider_id=provider_id,
                    message=message,
                    **version,
                    **flags,
                ),
                "Rescheduled.",
                p,
            )
    elif choice == "The patient accepted (by phone)":
        st.caption(
            f"Confirms {format_moment(row.start_at, row.timezone, row.locale)} with "
            f"{row.provider_name or 'the provider proposed'} as if the patient had accepted "
            "through their link; they are sent the confirmation."
        )
        if st.button("Confirm the proposed time", key=f"{p}_go", type="primary"):
            _finish(
                run_action(
                    decisions.respond_to_proposal, row.appointment_id, accept=True, **version
                ),
                "Confirmed: the patient accepted.",
                p,
            )
    elif choice == "Approve the cancellation":
        reason = _reason(p, "Reason (optional; the patient's own is used otherwise)")
        message = _message(p)
        if st.button("Approve the cancellation", key=f"{p}_go", type="primary"):
            _finish(
                run_action(
                    changes.approve_change, row.change_id, reason=reason, message=message, **version
                ),
                "Cancelled.",
                p,
            )
    elif choice and choice.startswith("Deny"):
        reason, message = _reason(p), _message(p)
        if st.button("Deny", key=f"{p}_go"):
            _finish(
                run_action(
                    changes.deny_change, row.change_id, reason=reason, message=message, **version
                ),
                "Denied; the original stays.",
                p,
            )
    elif choice in ("Decline", "Decline the request"):
        reason, message = _reason(p), _message(p)
        if st.button("Decline", key=f"{p}_go"):
            done = run_action(
                decisions.decline_request,
                row.appointment_id,
                reason=reason,
                message=message,
                **version,
            )
            _finish(done, KEPT if _kept(done) else "Declined.", p)


def bulk_results(results: list[lifecycle.RowResult]) -> None:
    done = sum(r.ok for r in results)
    st.info(f"{done} done, {len(results) - done} refused.")
    show_table(
        pd.DataFrame(
            [{"#": r.id, "Done": "✓" if r.ok else "✗", "What happened": r.message} for r in results]
        ),
        hide_index=True,
        width="stretch",
    )


def _history_table(detail: AppointmentDetail) -> None:
    """Every recorded change: when, who, what, from and to which status, reason, message."""
    history = pd.DataFrame([h.__dict__ for h in detail.history])
    for column in ("from_status", "to_status"):  # "Checked in", not checked_in
        if column in history:
            history[column] = history[column].map(lambda v: STATUS_LABELS.get(v, v))
    show_table(
        history.rename(
            columns={
                "at": "When",
                "who": "Who",
                "action": "Action",
                "from_status": "From",
                "to_status": "To",
                "reason": "Reason",
                "message": "Message",
            }
        ),
        hide_index=True,
        width="stretch",
    )


# ---------------------------------------------------------------- the detail panel


def appointment_panel(me, detail: AppointmentDetail, prefix: str) -> None:
    """Facts, history and the actions the status allows for this actor."""
    st.subheader(escape(f"#{detail.id} · {detail.patient_name or 'Out of office'}"))
    st.caption(  # the standard's word only for whoever maps an export, not the desk's
        escape(f"Status: {detail.status_words} · {detail.created_by}"),
        help=f"FHIR R4 Appointment.status: {detail.fhir_status}",
    )
    mode = detail.mode.replace("_", " ")
    facts = {
        "Patient": detail.patient_name,
        "Contact": " · ".join(filter(None, [detail.patient_email, detail.patient_phone])),
        ("Package" if detail.package else "Service"): (
            f"{detail.services} ({detail.duration_minutes} min, {mode})"
        ),
        "Provider": detail.provider_name,
        "Clinic": detail.clinic_name,
        "When": detail.when or f"Requested: {detail.requested or 'no day given'}",
        "Confirmed": detail.confirmed,
        "Declined because": detail.decline_reason,
        "Cancelled": (
            f"by {detail.cancelled_by}: {detail.cancel_reason}"
            + (" (late)" if detail.late_cancellation else "")
        )
        if detail.cancel_reason
        else "",
        "Double booking": "allowed" if detail.double_booked else "",
    }
    show_table(
        pd.DataFrame([{"": k, "Value": v} for k, v in facts.items() if v]),
        hide_index=True,
        width="stretch",
    )
    notes_section(detail, prefix)
    st.markdown("**History**")
    if detail.history:
        _history_table(detail)
    else:  # not an empty grid reading 'empty'
        st.caption("No change recorded for this appointment yet (one imported starts with none).")
    if detail.check:
        st.warning(escape(detail.check), icon=":material/person_alert:")
        flag_actions(_flag_choices(me, detail.id), detail.id, f"{prefix}_{detail.id}_flag")
    if detail.open_change:
        change = detail.open_change
        st.info(escape(f"Open {change.kind} request: {change.requested} {change.reason}".strip()))
    _detail_actions(me, detail, prefix)


def flag_actions(offered: tuple[flags.FlagChoice, ...], appointment_id: int, key: str) -> None:
    """What the desk found about the visit's flag, in one click (core.requests.flags), where
    its notice is shown: a request decided without acting on its flag has left the queue, and
    its notice stayed here with nothing to clear it. The choices are core's (none for a role
    that may not decide requests), their labels ids and dates only, shown escaped all the
    same. `key`: the widgets' key prefix (the queue's row, the appointment panel)."""
    if not offered:
        return
    p = key
    by_index = dict(enumerate(offered))
    pick = st.radio(
        "What did you find?",
        list(by_index),
        index=None,
        key=f"{p}_choice",
        format_func=lambda i: escape(by_index[i].label),
    )
    if pick is None:
        return
    chosen = by_index[pick]
    if chosen.action == flags.FlagAction.MERGE:
        _merge_preview(chosen, p)
    overlap = chosen.action == flags.FlagAction.MERGE and st.checkbox(
        "Merge even if both records have visits at the same time", key=f"{p}_overlap"
    )
    if st.button("Done: clear the flag", key=f"{p}_go", type="primary"):
        done = run_action(
            flags.handle_flag,
            appointment_id,
            chosen.action,
            keep_id=chosen.keep_id,
            allow_overlap=bool(overlap),
        )
        if done:
            st.session_state[FLASH] = done.value  # shown escaped after the rerun
            refresh()


def _merge_preview(chosen: flags.FlagChoice, key: str) -> None:
    """The flag's merge previewed as the Patients page previews one: the request's new record
    (`merge_id`) into `keep_id`, what moves, each contact detail that differs and what the
    merge does with it. A refusal (the merge's own) is shown instead."""
    me = require_actor()
    try:
        plan = read(merge.preview_merge, me, chosen.keep_id, chosen.merge_id)
    except DomainError as error:
        show_error(error)
        return
    show_preview(plan, f"{key}_merge")


def notes_section(detail: AppointmentDetail, prefix: str) -> None:
    """The notes, newest first, each with who wrote it and when (clinic-local), as typed (never
    markup), and a box to add one: earlier notes stay as they are."""
    st.markdown("**Notes**")
    if not detail.notes_written:
        st.caption("No notes yet.")
    for note in detail.notes_written:
        st.caption(escape(" · ".join(filter(None, [note.at, note.who]))))
        st.text(plain(note.text))
    if not detail.may_add_note:
        return
    form = f"{prefix}_{detail.id}_note"
    forget_if_saved(form, {"text": ""})  # added: an empty box for the next one
    text = st.text_area("New note", key=f"{form}_text", height=80, max_chars=notes.NOTE_LIMIT)
    if st.button("Add note", key=f"{form}_add"):
        done = run_action(notes.add_note, detail.id, text)
        if done:
            mark_saved(form)
        _finish(done, "Note added.", f"{prefix}_{detail.id}")


LABELS = {
    Action.APPROVE: "Approve",
    Action.PROPOSE: "Propose a time",
    Action.DECLINE: "Decline",
    Action.RESCHEDULE: "Reschedule",
    Action.UPDATE: "Update without asking",
    Action.CANCEL: "Cancel",
    Action.CHECK_IN: "Check in",
    Action.UNDO_CHECK_IN: "Undo check-in",
    Action.COMPLETE: "Complete",
    Action.NO_SHOW: "No-show",
    Action.UNDO_NO_SHOW: "Undo no-show",
}
# offered only when core says so: check-in on the visit's day, completion and a no-show once
# the visit has started, an undo on the no-show's day
OFFERED = {
    Action.CHECK_IN: lambda d: d.check_in_open,
    Action.COMPLETE: lambda d: d.started,
    Action.NO_SHOW: lambda d: d.started,
    Action.UNDO_NO_SHOW: lambda d: d.undo_no_show_open,
}


def _changed_meanwhile(d: AppointmentDetail, p: str, acting: bool) -> int:
    """The version of the appointment the open form was filled against: an action acts on
    what its user saw, not on what another desk made of it meanwhile (core refuses a stale
    version, saying who did what and when). Kept from the run the action was chosen until it
    is done or refused; while it differs from the version now shown, the panel says what
    changed and keeps what was typed. `acting`: Go was pressed in this run (core says it)."""
    key = f"{p}_seen"
    seen = st.session_state.setdefault(key, d.version)
    if seen != d.version:
        if not acting:
            last = d.history[-1] if d.history else None
            by = f" by {last.who} at {last.at} ({last.action})" if last else ""
            st.warning(
                escape(
                    f"Appointment #{d.id} was changed{by} while this form was open here; it is "
                    f"now {d.status_words}. Check it above: what you typed is kept, and nothing "
                    "is done until you press the button again."
                ),
                icon=":material/sync_problem:",
            )
        st.session_state[key] = d.version  # told once; the next press acts on what is shown
    return seen


def _detail_actions(me, d: AppointmentDetail, prefix: str) -> None:
    p = f"{prefix}_{d.id}"
    actions = [a for a in d.actions if a in LABELS and (a not in OFFERED or OFFERED[a](d))]
    if not actions:
        if f"{p}_seen" in st.session_state:  # a form was open: say what became of it
            _changed_meanwhile(d, p, acting=False)
            st.session_state.pop(f"{p}_seen", None)
        st.caption("Nothing more can be done with this appointment.")
        return
    action = st.segmented_control("Action", actions, format_func=LABELS.get, key=f"{p}_action")
    if action is None:
        st.session_state.pop(f"{p}_seen", None)  # no form open: nothing typed to protect
        return
    ids = dict(
        appointment_id=d.id, clinic_id=d.clinic_id, tz=d.timezone, default_provider=d.provider_id
    )
    version = dict(expected_version=_changed_meanwhile(d, p, bool(st.session_state.get(f"{p}_go"))))
    label = LABELS[action]
    if action in (Action.APPROVE, Action.PROPOSE, Action.RESCHEDULE, Action.UPDATE):
        provider_id, start_at = time_picker(me, f"{p}_{action.value}", **ids)
        message, flags = _message(f"{p}_{action.value}"), _flags(f"{p}_{action.value}")
        gone = slot_gone(f"{p}_{action.value}")
        if st.button(label, key=f"{p}_go", type="primary") and not gone:
            service = {
                Action.APPROVE: decisions.approve_request,
                Action.PROPOSE: decisions.propose_time,
                Action.RESCHEDULE: moves.reschedule,
                Action.UPDATE: moves.update_appointment,
            }[action]
            _finish(
                run_action(
                    service,
                    d.id,
                    provider_id=provider_id,
                    start_at=start_at,
                    message=message,
                    **version,
                    **flags,
                ),
                f"{label}: done.",
                p,
            )
    elif action in (Action.DECLINE, Action.CANCEL):
        reason, message = _reason(f"{p}_{action.value}"), _message(f"{p}_{action.value}")
        by_patient = action == Action.CANCEL and st.checkbox(
            "The patient asked for it (the cancellation policy applies)", key=f"{p}_by_patient"
        )
        if st.button(label, key=f"{p}_go"):
            if action == Action.DECLINE:
                done = run_action(
                    decisions.decline_request, d.id, reason=reason, message=message, **version
                )
            else:
                done = run_action(
                    moves.cancel_appointment,
                    d.id,
                    reason=reason,
                    message=message,
                    by_patient=by_patient,
                    **version,
                )
            _finish(done, KEPT if _kept(done) else f"{label}: done.", p)
    else:
        service = {
            Action.CHECK_IN: visits.check_in,
            Action.UNDO_CHECK_IN: visits.undo_check_in,
            Action.COMPLETE: visits.complete,
            Action.NO_SHOW: visits.mark_no_show,
            Action.UNDO_NO_SHOW: visits.undo_no_show,
        }[action]
        if action == Action.NO_SHOW:  # say what it does before it is done: fee, the patient told
            st.warning(
                escape(read(visits.no_show_consequences, me, d.id)), icon=":material/warning:"
            )
            label = "Record the no-show"
        extra = {}
        if action == Action.UNDO_NO_SHOW:  # what it reverses: fee, points, the patient told
            try:
                preview = read(visits.undo_no_show_preview, me, d.id)
            except DomainError as error:
                show_error(error)
                return
            st.warning(escape(preview.text), icon=":material/undo:")
            if preview.clash:  # its time was booked meanwhile: only with the override
                extra["allow_double_booking"] = st.checkbox(
                    visits.DOUBLE_BOOKING_UNDO, key=f"{p}_undo_double"
                )
            label = "Undo the no-show"
        if st.button(label, key=f"{p}_go", type="primary"):
            _finish(run_action(service, d.id, **version, **extra), f"{label}: done.", p)
