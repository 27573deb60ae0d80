"""Shared pieces of the practice set-up pages: the cached set-up read, "edit which one",
activate / deactivate, and prices in the clinics' currency.

An edit form's widgets are keyed by the row they show (`keys_for`): Streamlit keeps a keyed
widget's value across reruns and ignores a new `value=`, so one fixed key would show the
previous row's values for the next one picked (and save them over it). After a save the picker
shows the saved row and a confirmation above it (the toast would be lost in the rerun)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import streamlit as st

from core.kernel.authz import Actor, Permission
from core.kernel.errors import ValidationError
from core.kernel.money import (
    DEFAULT_CURRENCY,
    DEFAULT_LOCALE,
    format_money,
    minor_digits,
    to_major,
    typed_minor,
)
from core.practice import checklist, reads, setup, travel
from ui.caches import cached
from ui.context import actor, read, refresh, require_actor, run_action, show_error
from ui.navigation import PAGES
from ui.text import escape

NEW = None


@cached("setup", ttl=60, max_entries=20)
def overview(me: Actor) -> reads.Setup:
    return read(reads.overview, me)


# cleared by every write to what its steps read: set-up and hours, staff accounts, the
# policy, the test message
@cached("setup", "users", "policy", "outbox", ttl=60, max_entries=20)
def steps_of(me: Actor) -> checklist.Checklist:
    return read(checklist.checklist, me)


def step_link(me: Actor, step: checklist.Step, prefix: str = "", icon: str = "") -> None:
    """A checklist step as a link to the page that does it (plain text where the role may
    not open that page)."""
    icon = icon or (":material/check_circle:" if step.done else ":material/radio_button_unchecked:")
    label = escape(f"{prefix}{step.title}: {step.hint}")
    spec = next((p for p in PAGES if p.file == step.page), None)
    if spec is not None and me.can(spec.permission) and spec.path.exists():
        st.page_link(f"app_pages/{step.page}", label=label, icon=icon)
    else:
        st.markdown(f"{icon} {label}")


def next_step(me: Actor) -> None:
    """After a set-up save: the checklist's first step not done yet, as a link ("Next: Add
    the services you offer: …"); nothing once every step is done."""
    step = steps_of(me).next_step
    if step is not None:
        step_link(me, step, "Next: ", ":material/arrow_forward:")


NEXT_KEY = "setup_next_step"  # set by a save; the page shows the next step on its rerun


def show_next_step_after_save() -> None:
    """Where a page shows its save's confirmation: the next step, if a save asked for it."""
    if st.session_state.pop(NEXT_KEY, False) and (me := actor()) is not None:
        next_step(me)


def can_edit(me: Actor) -> bool:
    return me.can(Permission.PRACTICE_MANAGE)


def keys_for(prefix: str, row: reads.Row | None) -> Callable[[str], str]:
    """The keys of an edit form's widgets for this row: `keys_for("clinics", row)("name")` is
    "clinics_name_3" (or "clinics_name_new")."""
    suffix = "new" if row is None else row.id
    return lambda field: f"{prefix}_{field}_{suffix}"


def pick(
    rows: list[reads.Row], what: str, key: str, name: Callable[[reads.Row], str] | None = None
) -> reads.Row | None:
    """A select box of the rows plus "New …"; None means a new one. After a save it shows the
    saved row, with the confirmation above it. `name` tells rows apart where names repeat (the
    box knows its choice by its label: two "Laser" rows would both pick the first)."""
    shown = st.session_state.pop(_show_key(key), None)
    if shown is not None:
        st.session_state[key] = next((r for r in rows if r.id == shown), NEW)
    if flash := st.session_state.pop(_flash_key(key), None):
        st.success(flash, icon=":material/check_circle:")
        show_next_step_after_save()
    return st.selectbox(
        f"Edit a {what} or add one",
        [NEW, *rows],
        format_func=lambda r: f"New {what}" if r is None else _label(r, name),
        key=key,
    )


def _label(row: reads.Row, name: Callable[[reads.Row], str] | None) -> str:
    return (name or (lambda r: r.name))(row) + ("" if row.data.active else " (inactive)")


def _show_key(pick_key: str) -> str:
    return f"{pick_key}_show"


def _flash_key(pick_key: str) -> str:
    return f"{pick_key}_flash"


def _saved(pick_key: str, row_id: int, message: str) -> None:
    """Show the saved row in the picker, with `message`, after the rerun."""
    st.session_state[_show_key(pick_key)] = row_id
    st.session_state[_flash_key(pick_key)] = message
    st.session_state[NEXT_KEY] = True
    refresh()


def toggle_active(entity: str, row: reads.Row | None, key: str, pick_key: str) -> None:
    """Deactivate (or activate again) the chosen row; history stays. When core has something
    to say about deactivating it (visits booked ahead, requests waiting, packages including a
    service: setup.deactivation_warning), it is shown and deactivating waits for a
    confirmation."""
    if row is None:
        return
    asked = f"{key}_asked"

    def warning(row_id: int) -> str:
        return read(setup.deactivation_warning, require_actor(), entity, row_id)

    if row.data.active and st.session_state.get(asked) == row.id:
        _confirm_deactivation(entity, row, key, pick_key, warning(row.id))
        return
    word = "Deactivate" if row.data.active else "Activate again"
    if st.button(f"{word} {escape(row.name)}", key=key):
        if row.data.active and warning(row.id):
            st.session_state[asked] = row.id
            st.rerun()
        if run_action(setup.set_active, entity, row.id, not row.data.active):
            _saved(pick_key, row.id, "Deactivated." if row.data.active else "Active again.")


def _confirm_deactivation(entity: str, row: reads.Row, key: str, pick_key: str, said: str):
    st.warning(escape(said), icon=":material/warning:")
    yes, no = st.columns(2)
    if yes.button("Deactivate anyway", key=f"{key}_anyway", type="primary"):
        st.session_state.pop(f"{key}_asked", None)
        if run_action(setup.set_active, entity, row.id, False, despite_bookings=True):
            _saved(pick_key, row.id, "Deactivated.")
    if no.button("Keep active", key=f"{key}_keep"):
        st.session_state.pop(f"{key}_asked", None)
        st.rerun()


ZONE_ASKED = "clinics_zone_asked"  # (clinic id, the form's ClinicData, what core said, keys)


def save_clinic(data: setup.ClinicData, row: reads.Row | None, *keys: str) -> None:
    """Save the clinic form. A new time zone or currency for a clinic with visits booked ahead
    (or money at stake) waits for a confirmation (`confirm_zone_change`) that says what happens
    to them; `keys`: the form's zone and currency fields, shown as saved again on "Keep"."""
    if row is not None:
        said = read(
            setup.clinic_change_warning,
            require_actor(),
            row.id,
            data.timezone,
            data.locale,
            data.currency,
        )
        if said:
            st.session_state[ZONE_ASKED] = (row.id, data, said, keys)
            st.rerun()
    save(setup.save_clinic, data, row, "Clinic", "clinics_pick")


def confirm_zone_change(row: reads.Row | None) -> None:
    """The question `save_clinic` left for this clinic: change the zone (and or the currency)
    anyway, or keep them."""
    asked = st.session_state.get(ZONE_ASKED)
    if row is None or not asked or asked[0] != row.id:
        return
    _, data, said, keys = asked
    new_zone = data.timezone != row.data.timezone
    new_currency = (data.currency or "").upper() != row.data.currency.upper()
    changes, kept, done = [], [], []
    if new_zone:
        changes.append(f"the time zone to {data.timezone}")
        kept.append(row.data.timezone)
        done.append(f"its time zone is {data.timezone}")
    if new_currency:
        changes.append(f"the currency to {data.currency.upper()}")
        kept.append(row.data.currency)
        done.append(f"it charges in {data.currency.upper()}")
    st.warning(escape(said), icon=":material/warning:")
    yes, no = st.columns(2)
    if yes.button(f"Change {' and '.join(changes)}", key="clinics_zone_anyway", type="primary"):
        st.session_state.pop(ZONE_ASKED, None)
        if run_action(setup.save_clinic, data, row.id, despite_bookings=True):
            _saved("clinics_pick", row.id, f"Clinic saved; {' and '.join(done)}.")
    if no.button(f"Keep {' and '.join(kept)}", key="clinics_zone_keep"):
        st.session_state.pop(ZONE_ASKED, None)
        for key in keys:  # the form shows the clinic's saved zone and currency again
            st.session_state.pop(key, None)
        st.rerun()


# what a change under visits booked ahead asks first: the page's prefix, its warning's read,
# the save, and the words of its question (a new price, length or rooms; a package's price)
ASKING = {
    "services": (setup.service_change_warning, setup.save_service, "Service"),
    "packages": (setup.package_change_warning, setup.save_package, "Package"),
    "clinics_resource": (
        setup.resource_change_warning,
        setup.save_resource,
        "Room or equipment",
    ),
}


def save_asking(prefix: str, data: Any, row: reads.Row | None) -> None:
    """Save a service's, package's or room's form (`prefix`: one of ASKING's). A change that
    alters visits booked ahead waits for a confirmation (`confirm_change`) that says how."""
    warning, service, what = ASKING[prefix]
    if row is not None:
        said = read(warning, require_actor(), row.id, data)
        if said:
            st.session_state[f"{prefix}_change_asked"] = (row.id, data, said)
            st.rerun()
    save(service, data, row, what, f"{prefix}_pick")


def confirm_change(prefix: str, row: reads.Row | None, fields: list[str]) -> None:
    """The question `save_asking` left for this row: save anyway, or keep it as it is (the
    form's `fields`, by key, then show what is stored again)."""
    asked = st.session_state.get(f"{prefix}_change_asked")
    if row is None or not asked or asked[0] != row.id:
        return
    _, data, said = asked
    _, service, what = ASKING[prefix]
    st.warning(escape(said), icon=":material/warning:")
    yes, no = st.columns(2)
    if yes.button(f"Save the {what.lower()} anyway", key=f"{prefix}_change_anyway", type="primary"):
        st.session_state.pop(f"{prefix}_change_asked", None)
        if run_action(service, data, row.id, despite_bookings=True):
            _saved(f"{prefix}_pick", row.id, f"{what} saved.")
    if no.button(escape(f"Keep {row.name} as it is"), key=f"{prefix}_change_keep"):
        st.session_state.pop(f"{prefix}_change_asked", None)
        for key in fields:
            st.session_state.pop(key, None)
        st.rerun()


def save(service: Any, data: Any, row: reads.Row | None, what: str, pick_key: str) -> None:
    """Save the form's row (a new one when `row` is None); on success the picker shows it."""
    done = run_action(service, data, None if row is None else row.id)
    if done:
        _saved(pick_key, done.value, f"{what} saved.")


def currencies(current: reads.Setup) -> dict[str, str]:
    """The active clinics' currencies, each with the locale of the first clinic using it
    (core.kernel.money.currency_locales; GBP in en-GB before any clinic is open)."""
    return current.currencies or {DEFAULT_CURRENCY: DEFAULT_LOCALE}


def prices(current: reads.Setup) -> Callable[[int], str]:
    """Service and package prices are one amount for the practice, charged in each clinic's
    own currency (as the booking form shows it): in that currency when the active clinics
    share one, else in each of theirs ("£60.00 · $60.00")."""
    shown = currencies(current)
    return lambda cents: " · ".join(format_money(cents, c, loc) for c, loc in shown.items())


def price_label(current: reads.Setup) -> str:
    """The price input's label, naming the currency or currencies it is charged in."""
    return f"Price ({' or '.join(currencies(current))})"


def price_input(box: Any, current: reads.Setup, cents: int, key: str) -> int | None:
    """A price typed in the clinics' currency, as minor units: pence for GBP, whole yen for
    JPY (whose prices have no decimals). None, with the error shown, when it has more decimals
    than the currency (49.999 EUR is refused, not saved as 50.00): nothing is to be saved."""
    currency, locale = next(iter(currencies(current).items()))
    digits = minor_digits(currency)
    typed = box.number_input(
        price_label(current),
        min_value=0.0,
        max_value=float(to_major(10**9, currency)),
        value=float(to_major(cents, currency)),
        step=1.0,
        format=f"%.{digits}f",
        key=key,
    )
    try:
        return typed_minor(typed, currency, locale)
    except ValidationError as error:
        show_error(error)
        return None


def price_note(current: reads.Setup) -> None:
    """When the clinics charge in different currencies, say that a price is charged in each."""
    if len(currencies(current)) > 1:
        each = ", ".join(f"{c.name}: {c.data.currency}" for c in current.clinics if c.data.active)
        st.caption(escape(f"A price is the same amount in each clinic's own currency ({each})."))


@cached("setup", ttl=60, max_entries=20)
def travel_minutes(me: Actor) -> int:
    return read(travel.get_travel_minutes, me)


def travel_form(me: Actor) -> None:
    """The travel time between clinics: the owner sets it; the others read it."""
    st.subheader("Travel time between clinics")
    minutes = travel_minutes(me)
    st.caption(
        "A provider of several clinics is not booked at one within this many minutes before or "
        "after a booking at another; slot suggestions and the booking form keep it free too. "
        "0 lets one visit end and the next start at the same minute at two clinics."
    )
    if not me.can(Permission.TRAVEL_TIME_SET):
        st.write(f"{minutes} minutes. The practice owner sets it.")
        return
    with st.form("practice_travel"):
        typed = st.number_input(
            "Minutes between a booking at one clinic and one at another",
            min_value=0,
            max_value=travel.MAX_TRAVEL_MINUTES,
            value=minutes,
            step=5,
            key="practice_travel_minutes",
        )
        if st.form_submit_button("Save the travel time"):
            run_action(travel.set_travel_minutes, int(typed), success="Travel time saved.")
