"""Pieces of the booking form: the patient picker (search with suggestions or a new patient
inline), the services and visit mode, the provider free at the time, the rooms and equipment
taken then, and the confirmation editor (preview, edit, choose channels)."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

import streamlit as st

from core.kernel.clock import clock_change, local_to_utc, to_local
from core.kernel.money import format_day, format_moment, format_money
from core.patients import records as patients
from core.practice.choices import ClinicChoice, PackageChoice, ServiceChoice
from core.practice.timing import Timing, timing_of
from core.scheduling import booking
from ui.caches import cached
from ui.context import read
from ui.text import escape

NEW = "new"
FIND = "Find a patient"


@cached("patients", ttl=30, max_entries=100)
def _search(me, text: str):
    return read(patients.search_patients, me, text, 15)


def patient_picker(
    me, prefix: str, date_format: str, *, new: bool = True
) -> tuple[int | None, booking.NewPatient | None, bool, str]:
    """(patient id, new patient, invite to portal, name for the preview); a new patient's date
    of birth is picked in `date_format` (st.date_input's: the clinic's day order). Without
    `new`, only a patient on file can be found."""
    mode = FIND
    if new:
        # its default in the state, not the widget: clear_booked sets it back (set_value)
        st.session_state.setdefault(f"{prefix}_who", FIND)
        mode = st.segmented_control("Patient", [FIND, "New patient"], key=f"{prefix}_who")
    if mode != "New patient":
        text = st.text_input(
            "Search by name, phone or email",
            key=f"{prefix}_search",
            placeholder="e.g. Morgan, 07700 900123, alex@ or a date of birth",
        )
        found = _search(me, text) if len(text.strip()) >= 2 else []
        if text.strip() and not found:
            st.caption(
                "No patient matches. Check the spelling, or search by phone, email or date "
                "of birth; or add a new patient."
            )
        _keep_chosen(f"{prefix}_patient", found)
        picked = st.selectbox(
            "Patient",
            found,
            format_func=lambda p: p.label,
            index=None,
            key=f"{prefix}_patient",
            placeholder="Choose from the matches",
        )
        if found and found.more:
            st.caption(found.note)
        return (picked.id if picked else None), None, False, (picked.name if picked else "")
    c1, c2, c3 = st.columns(3)
    first = c1.text_input("First name", key=f"{prefix}_first")
    last = c2.text_input("Last name", key=f"{prefix}_last")
    born = c3.date_input(
        "Date of birth",
        value=None,
        min_value=patients.birth_bounds()[0],
        max_value=patients.birth_bounds()[1],
        key=f"{prefix}_dob",
        format=date_format,
    )
    c1, c2 = st.columns(2)
    email = c1.text_input("Email", key=f"{prefix}_email")
    phone = c2.text_input("Mobile phone", key=f"{prefix}_phone")
    consent_email = c1.checkbox("Agrees to email", key=f"{prefix}_consent_email")
    consent_sms = c2.checkbox("Agrees to text messages", key=f"{prefix}_consent_sms")
    invite = st.checkbox(
        "Send a patient-portal invitation (needs email and consent)", key=f"{prefix}_invite"
    )
    different = st.checkbox(
        "A different person",
        key=f"{prefix}_different",
        help="Add this patient although one with the same name (and date of birth) exists.",
    )
    new = booking.NewPatient(
        first, last, born, email or None, phone or None, consent_email, consent_sms, different
    )
    return None, new, invite, f"{first} {last}".strip()


def message_editor(prefix: str, preview: tuple[str, str], version: str):
    """Channels and the editable confirmation; `version` changes when the booking does, so
    the text follows the form until staff edit it."""
    choice = st.radio(
        "Notify the patient", list(booking.NOTIFY_CHOICES), horizontal=True, key=f"{prefix}_notify"
    )
    channels = booking.NOTIFY_CHOICES[choice]
    if not channels:
        return [], None, None
    with st.expander("Message (preview and edit before sending)", expanded=False):
        subject = st.text_input("Subject", value=preview[0], key=f"{prefix}_subject_{version}")
        body = st.text_area("Text", value=preview[1], height=220, key=f"{prefix}_body_{version}")
        st.caption(
            "The check-in QR code is attached. The unedited text carries the patient's "
            "personal link to cancel or reschedule."
        )
    edited = (subject, body) != preview
    return channels, (subject if edited else None), (body if edited else None)


@cached("appointments", "policy", "patients", "setup", ttl=60, max_entries=100)
def _preview(me, clinic_id, provider, services, start_at, patient, package, mode):
    return read(
        booking.preview_confirmation,
        me,
        clinic_id=clinic_id,
        provider_name=provider,
        service_names=list(services),
        start_at=start_at,
        patient_name=patient,
        package_name=package,
        mode=mode,
    )


def confirmation_editor(
    me,
    prefix: str,
    clinic_id,
    provider_name,
    service_names,
    start_at,
    patient,
    package=None,
    mode: str = "in_person",
):
    """The confirmation the booking will send, previewed and editable (where to come: the
    clinic's address for a visit in person); (channels, subject, body)."""
    name = package.name if package else None
    preview = _preview(me, clinic_id, provider_name, service_names, start_at, patient, name, mode)
    return message_editor(prefix, preview, f"{hash((preview, patient)) & 0xFFFF}")


# what one booking was for, and the form's empty value of each: set so once it is booked
# (the clinic, day and time stay)
BOOKED = {
    **{"who": FIND, "search": "", "patient": None, "services": [], "mode": "in_person"},
    **{"first": "", "last": "", "dob": None, "email": "", "phone": "", "notes": ""},
    **dict.fromkeys(("consent_email", "consent_sms", "invite", "different"), False),
    **dict.fromkeys(("double", "outside", "card", "all"), False),
    "notify": next(iter(booking.NOTIFY_CHOICES)),
}
CHOSEN_AGAIN = ("provider", "provider_wanted")  # the provider picker chooses afresh


def clear_booked(prefix: str) -> None:
    """Forget the booked patient, services, notes and overrides, so that pressing the button
    again cannot book the same patient again (the provider picker would have moved on to the
    next free provider). The form is emptied at the top of the next run (empty_booked), as
    its widgets are drawn here already."""
    st.session_state[f"{prefix}_booked"] = True


def empty_booked(prefix: str) -> None:
    """Before the form's widgets are drawn, after a booking: each is set to its empty value,
    not dropped from the state, so the browser empties it too (a widget set through the state
    is sent with set_value). Dropped, the browser kept the booked patient, services and
    overrides on screen and sent them back with the next change, ready to book them again."""
    if not st.session_state.pop(f"{prefix}_booked", False):
        return
    for name, empty in BOOKED.items():
        st.session_state[f"{prefix}_{name}"] = empty
    for name in CHOSEN_AGAIN:
        st.session_state.pop(f"{prefix}_{name}", None)


def keep_length(prefix: str = "book") -> None:
    """A new start (its time box's on_change) moves an out-of-office block's Until with it, so
    the block keeps its length (until 23:45 at most); `{prefix}_time_was` is the start the page
    drew last."""
    state = st.session_state
    was, start = state.get(f"{prefix}_time_was"), state.get(f"{prefix}_time")
    until = state.get(f"{prefix}_until")
    if not (was and start and until):
        return
    day = date(2000, 1, 1)
    length = datetime.combine(day, until) - datetime.combine(day, was)
    if length > timedelta(0):
        moved = datetime.combine(day, start) + length
        state[f"{prefix}_until"] = moved.time() if moved.date() == day else time(23, 45)


def apply_prefill(prefix: str, zones: dict[int, str]) -> None:
    """Fill the form from `{prefix}_prefill` (clinic, start and end, provider, and double
    booking for the calendar's overbooking suggestion), set by the calendar when a free time was
    selected; used once."""
    prefill = st.session_state.pop(f"{prefix}_prefill", None)
    if not prefill:
        return
    st.session_state[f"{prefix}_clinic"] = prefill["clinic_id"]
    if prefill.get("start_at"):
        moment = to_local(prefill["start_at"], zones[prefill["clinic_id"]])
        st.session_state[f"{prefix}_day"] = moment.date()
        st.session_state[f"{prefix}_time"] = moment.time()
        # the end selected on the calendar: an out-of-office block's Until
        ends = to_local(prefill.get("end_at") or prefill["start_at"], zones[prefill["clinic_id"]])
        if ends.date() == moment.date() and ends.time() > moment.time():
            st.session_state[f"{prefix}_until"] = ends.time()
    st.session_state[f"{prefix}_provider_wanted"] = prefill.get("provider_id")
    if prefill.get("double_booking"):  # the provider is busy then: offer and allow it
        st.session_state[f"{prefix}_double"] = st.session_state[f"{prefix}_all"] = True


def services_picker(
    services: list[ServiceChoice],
    prefix: str,
    packages: list[PackageChoice] = (),
    clinic: ClinicChoice | None = None,
) -> tuple[list[ServiceChoice], PackageChoice | None, str]:
    """The treatments of the visit — services, then packages (booked on their own, one price)
    — and whether it is virtual (only when every service allows it); shows the length.
    Returns (the services booked, the package or None, the visit mode)."""
    by_id = {s.id: s for s in services}
    offered = [
        p
        for p in packages
        if p.service_ids and p.performed and all(i in by_id for i in p.service_ids)
    ]

    def price(package: PackageChoice) -> str:
        return format_money(package.price_cents, clinic.currency, clinic.locale) if clinic else ""

    def label(item: ServiceChoice | PackageChoice) -> str:
        if isinstance(item, ServiceChoice):
            return item.label
        members = [by_id[i] for i in item.service_ids]
        minutes = timing_of(members).minutes
        names = " + ".join(s.name for s in members)
        return f"Package: {item.name} ({names}; {minutes} min" + (
            f", {price(item)})" if clinic else ")"
        )

    picked = st.multiselect(
        "Services and packages", [*services, *offered], format_func=label, key=f"{prefix}_services"
    )
    package = next((p for p in picked if isinstance(p, PackageChoice)), None)
    chosen = [s for s in picked if isinstance(s, ServiceChoice)]
    if package is not None:
        if len(picked) > 1:
            st.warning(
                f"The package {escape(package.name)} is booked on its own; book other "
                "services as a separate appointment.",
                icon=":material/inventory_2:",
            )
        chosen = [by_id[i] for i in package.service_ids] + chosen
    timing = timing_of(chosen)
    can_virtual = bool(chosen) and all(s.virtual_allowed for s in chosen)
    mode = st.radio(
        "Visit",
        ["in_person", "virtual"] if can_virtual else ["in_person"],
        horizontal=True,
        format_func=lambda m: m.replace("_", " ").capitalize(),
        key=f"{prefix}_mode",
    )
    if not chosen:  # not 'Length: 0 minutes'
        st.caption("Choose the services or a package: the visit's length follows from them.")
        return chosen, package, mode
    st.caption(
        f"Length: {timing.minutes} minutes"
        + (f" ({timing.words()})" if timing.words() else "")
        + (f" · one price: {price(package)}" if package and clinic else "")
        + ("" if can_virtual else " · virtual is offered only when every chosen service allows it")
    )
    return chosen, package, mode


@cached("appointments", "setup", ttl=15, max_entries=100)
def _choices(me, clinic_id, start_at, minutes, before, after, service_ids=(), virtual=False):
    return read(
        booking.provider_choices,
        me,
        clinic_id=clinic_id,
        start_at=start_at,
        minutes=minutes,
        before=before,
        after=after,
        service_ids=service_ids,
        virtual=virtual,
    )


@cached("appointments", "setup", ttl=15, max_entries=100)
def _next_free(me, clinic_id, start_at, service_ids, provider_id=None, virtual=False):
    return read(
        booking.next_free_times,
        me,
        clinic_id=clinic_id,
        start_at=start_at,
        service_ids=list(service_ids),
        provider_id=provider_id,
        virtual=virtual,
    )


def _virtual(prefix: str) -> bool:
    """Whether the form's visit is a video visit (services_picker's radio): no travel time
    between clinics is kept around one."""
    return st.session_state.get(f"{prefix}_mode") == "virtual"


def _take_time(prefix: str, free: booking.FreeTime) -> None:
    """A next free time pressed: the form's day, time and provider become it (before the
    widgets are drawn again)."""
    st.session_state[f"{prefix}_day"], st.session_state[f"{prefix}_time"] = free.day, free.at
    st.session_state[f"{prefix}_provider_wanted"] = free.provider_id
    st.session_state[f"{prefix}_provider"] = free.provider_id


def next_free_buttons(prefix: str, frees: list[booking.FreeTime], name: str = "free") -> None:
    """One button per next free time (keys `{prefix}_{name}_0`…); a press fills the form's
    time and provider."""
    for n, free in enumerate(frees):
        st.button(
            escape(free.label),
            key=f"{prefix}_{name}_{n}",
            icon=":material/event_available:",
            on_click=_take_time,
            args=(prefix, free),
        )


def free_times_after_refusal(me, prefix: str, clinic_id: int, start_at, service_ids) -> None:
    """Under a booking refused at the last moment (another desk took the time, or a room,
    since the form was drawn): the next free times from then, a press filling them in."""
    ids = tuple(service_ids)
    frees = _next_free(me, clinic_id, start_at, ids, virtual=_virtual(prefix)) if ids else []
    if frees:
        st.caption("The next free times (a press fills them in):")
        next_free_buttons(prefix, frees, "refused")


def _keep_chosen(key: str, found: list) -> None:
    """Before the patient box is drawn: the patient chosen stays chosen when another desk
    changed their details (the box matches its label, which then changed); one merged into
    another record or no longer found is said, instead of an empty box asking to find them."""
    was = st.session_state.get(key)
    if was is None or not hasattr(was, "id"):
        return
    same = next((p for p in found if p.id == was.id), None)
    if same is None:
        st.warning(
            escape(
                f"{was.name} (#{was.id}) is no longer found: the record was merged into another "
                "or changed meanwhile, so nothing was booked. Search again; the patient's page "
                "says where a merged record went."
            ),
            icon=":material/sync_problem:",
        )
    elif same.label != was.label:
        st.session_state[key] = same


def provider_picker(
    me,
    prefix: str,
    clinic_id: int,
    start_at,
    minutes: int,
    timing: Timing | None = None,
    services: list[ServiceChoice] = (),
) -> booking.ProviderChoice | None:
    """The providers free at that time who perform every chosen service, the visit's buffers
    kept free too (busy ones on request, with why; never one who does not perform a service),
    keeping the one the calendar asked for while the time changes."""
    before, after = (timing.before, timing.after) if timing else (0, 0)
    ids = tuple(s.id for s in services)
    virtual = _virtual(prefix)
    choices = _choices(me, clinic_id, start_at, minutes, before, after, ids, virtual)
    show_all = st.checkbox(
        "Also offer busy providers (double booking or outside hours)", key=f"{prefix}_all"
    )
    able = [c for c in choices if c.performs]
    offered = able if show_all else [c for c in able if c.free]
    labels = {c.id: c.name + ("" if c.free else f" — {c.why}") for c in offered}
    key, wanted = f"{prefix}_provider", st.session_state.get(f"{prefix}_provider_wanted")
    # what was asked: when the person changes it, the providers offered follow without a word;
    # when it is the same and the chosen one is gone, someone else took that time meanwhile
    asked = (clinic_id, start_at, minutes, before, after, ids, virtual, show_all)
    same_ask = st.session_state.get(f"{prefix}_provider_asked") == asked
    st.session_state[f"{prefix}_provider_asked"] = asked
    st.session_state[f"{prefix}_provider_moved"] = False
    chosen = st.session_state.get(key)
    if chosen not in labels:  # options changed with the time, or under it
        st.session_state[key] = wanted if wanted in labels else next(iter(labels), None)
        gone = next((c for c in choices if c.id == chosen), None)
        if same_ask and gone is not None:
            st.session_state[f"{prefix}_provider_moved"] = True
            instead = next((c.name for c in offered if c.id == st.session_state[key]), None)
            st.warning(
                escape(
                    f"{gone.name} is no longer free then ({gone.why or 'taken meanwhile'}), "
                    "so nothing was booked. "
                    + (
                        f"{instead} is offered instead: check, then press Book again."
                        if instead
                        else "Choose another time, or offer busy providers."
                    )
                ),
                icon=":material/event_busy:",
            )
    asked_for = next((c for c in choices if c.id == wanted), None)
    if asked_for is not None and wanted not in labels and not provider_moved(prefix):
        _not_the_one_asked_for(me, prefix, asked_for, offered, clinic_id, start_at, ids)
    # no empty, disabled select when nobody is offered: its faded label fails contrast (axe),
    # and the warning below says what to do; a provider chosen here is the one asked for now
    provider_id = (
        st.selectbox(
            "Provider",
            list(labels),
            format_func=labels.get,
            key=key,
            on_change=st.session_state.pop,
            args=(f"{prefix}_provider_wanted", None),
        )
        if labels
        else None
    )
    busy = [f"{c.name}: {c.why}" for c in choices if not c.free]
    if busy:
        st.caption(escape("Not free then: " + " · ".join(busy)))
    if services and not able:
        st.warning(
            escape(
                f"No provider at this clinic performs {' + '.join(s.name for s in services)}. "
                "Add it to a provider's services on the Providers page, or book another clinic."
            )
        )
    elif not offered:
        frees = _next_free(me, clinic_id, start_at, ids, virtual=virtual) if ids else []
        st.warning(
            "No provider is free at that time. "
            + (
                "The next free times are below (a press fills them in); or choose another "
                "time, or offer busy providers."
                if frees
                else "Choose another time, or offer busy providers."
            )
        )
        next_free_buttons(prefix, frees)
    return next((c for c in offered if c.id == provider_id), None)


def _not_the_one_asked_for(me, prefix, asked_for, offered, clinic_id, start_at, ids) -> None:
    """The provider the calendar (or a next free time) chose cannot take the visit as it now
    is (a longer service runs past their closing, one they do not perform, …): say so, and
    who is offered instead, rather than swap them in silence; offer their next free times."""
    instead = next(
        (c.name for c in offered if c.id == st.session_state.get(f"{prefix}_provider")), None
    )
    frees = (
        _next_free(me, clinic_id, start_at, ids, asked_for.id, _virtual(prefix))
        if ids and asked_for.performs
        else []
    )
    said = [
        f"The visit was to be with {asked_for.name}, who cannot take it then ({asked_for.why})."
    ]
    if instead:
        said.append(f"{instead} is offered instead: check with the patient before booking.")
    if frees:
        said.append(f"{asked_for.name}'s next free times are below (a press fills one in).")
    elif not instead:
        said.append("Choose another time, or offer busy providers.")
    st.warning(escape(" ".join(said)), icon=":material/person_off:")
    next_free_buttons(prefix, frees, "wanted_free")


@cached("appointments", "setup", ttl=15, max_entries=100)
def _taken(me, clinic_id, service_ids, start_at):
    return read(
        booking.taken_resources,
        me,
        clinic_id=clinic_id,
        service_ids=list(service_ids),
        start_at=start_at,
    )


def provider_moved(prefix: str) -> bool:
    """The provider chosen was taken by someone else since the form was drawn
    (provider_picker said so): a press in this run books nothing."""
    return bool(st.session_state.get(f"{prefix}_provider_moved"))


def resources_taken(
    me, clinic_id: int, services: list[ServiceChoice], start_at
) -> list[booking.TakenResource]:
    """The rooms and equipment the services need that are fully taken at that time (the
    check that refuses the booking)."""
    return _taken(me, clinic_id, tuple(s.id for s in services), start_at) if services else []


def resource_notice(taken: list[booking.TakenResource], double: bool) -> None:
    """Say which needed room or equipment is taken: the time is not bookable unless double
    booking is allowed (which the audit records)."""
    if not taken:
        return
    names = "; ".join(t.text() for t in taken)
    if double:
        st.warning(
            escape(f"{names}. Double booking is allowed: it is booked anyway and audited."),
            icon=":material/warning:",
        )
    else:
        st.error(
            escape(
                f"Not bookable at this time: {names}. Choose another time, or allow double booking."
            ),
            icon=":material/event_busy:",
        )


def clock_change_notice(day, at, tz: str, locale: str | None) -> None:
    """Under a typed clinic time: say when the clocks' change makes it odd that day, and when
    the visit will start (a skipped time would otherwise book an hour later in silence)."""
    change = clock_change(day, at, tz)
    if change is None:
        return
    start = format_moment(local_to_utc(day, at, tz), tz, locale, weekday=False, zone=True)
    typed = f"{at.strftime('%H:%M')} on {format_day(day, locale)}"
    if change == "skipped":
        st.warning(
            f"{typed} does not exist at this clinic: the clocks go forward that night. "
            f"It would start at {start}; choose another time if that is not meant."
        )
    else:
        st.info(
            f"{typed} comes twice at this clinic (the clocks go back): this is the first, {start}."
        )
