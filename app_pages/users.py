"""Owner: staff accounts (create, deactivate, reset password, change role) and the role matrix."""

import pandas as pd
import streamlit as st

from core.kernel import accounts
from core.kernel.authz import Role, matrix_markdown
from ui import actor, refresh, run_action
from ui.caches import cached
from ui.context import forget_if_saved, mark_saved, read
from ui.locale import display_format
from ui.setup_forms import NEXT_KEY, show_next_step_after_save
from ui.text import escape, show_table


@cached("users", ttl=30, max_entries=20)
def _users(current):
    return read(accounts.list_users, current)


st.title("Users")
me = actor()
when = display_format().moment  # the practice's local time, never UTC
users = _users(me)
show_table(
    pd.DataFrame(
        [
            {
                "Username": u.username,
                "Name": u.display_name,
                "Email": u.email,
                "Role": u.role.value,
                "Active": u.active,
                "Locked until": when(u.locked_until),
                "Last sign-in": when(u.last_login_at),
            }
            for u in users
        ]
    ),
    hide_index=True,
    width="stretch",
)

NEW_USER = {"username": "", "name": "", "email": "", "role": Role.STAFF.value, "password": ""}
forget_if_saved("users_new", NEW_USER)
# the role's default in the state, not the widget: forget_if_saved sets it back (set_value)
st.session_state.setdefault("users_new_role", NEW_USER["role"])
left, right = st.columns(2)
with left, st.form("users_create"):  # kept as typed when refused, to correct
    st.subheader("Add a user")
    username = st.text_input("Username", key="users_new_username")
    name = st.text_input("Name", key="users_new_name")
    email = st.text_input("Email (for single sign-on, optional)", key="users_new_email")
    role = st.selectbox("Role", [r.value for r in Role], key="users_new_role")
    password = st.text_input("First password", type="password", key="users_new_password")
    if st.form_submit_button("Create user", type="primary"):
        if run_action(
            accounts.create_user,
            username,
            name,
            role,
            password,
            email,
            success=f"User {username} created. Give them their first password: at their first "
            "sign-in they choose their own, before anything else.",
        ):
            mark_saved("users_new")
            st.session_state[NEXT_KEY] = True
            refresh()
show_next_step_after_save()  # after a new account: what the set-up still needs

with right:
    st.subheader("Change a user")
    # picked by id, drawn from this run's rows: after a change the person's role and state
    # (Deactivate or Reactivate) are the ones just saved, never those the box held before
    by_id = {u.id: u for u in users}
    chosen = by_id.get(
        st.selectbox(
            "User",
            list(by_id),
            format_func=lambda i: f"{by_id[i].display_name} ({by_id[i].username})",
            key="users_chosen",
        )
    )
    if said := st.session_state.pop("users_toggle_done", None):
        st.success(escape(said[0]), icon=":material/check_circle:")
        for note in said[1]:  # what still goes on in their name, and where to change it
            st.warning(escape(note), icon=":material/warning:")
    if chosen:
        roles = [r.value for r in Role]
        new_role = st.selectbox(  # one per person: it opens on the role they have
            "Role", roles, index=roles.index(chosen.role), key=f"users_role_{chosen.id}"
        )
        if st.button("Change role", key="users_change_role"):
            if run_action(accounts.change_role, chosen.id, new_role, success="Role changed."):
                refresh()
        if chosen.locked_until:  # only while the lock holds (core leaves out one that is over)
            st.warning(
                f"{escape(chosen.display_name)} is locked out until "
                f"{escape(when(chosen.locked_until))} after too many wrong passwords. If it was "
                "them, unlock it: their password stays theirs. If they forgot it, reset it.",
                icon=":material/lock:",
            )
            if st.button("Unlock", key="users_unlock", icon=":material/lock_open:"):
                if run_action(
                    accounts.unlock,
                    chosen.id,
                    success=f"{chosen.display_name} can sign in again with their own password.",
                ):
                    refresh()
        forget_if_saved("users_reset", {"password": ""})  # not left in the box after a reset
        new_password = st.text_input("New password", type="password", key="users_reset_password")
        if st.button("Reset password", key="users_reset"):
            if run_action(accounts.reset_password, chosen.id, new_password):
                st.session_state["users_reset_done"] = (
                    f"The password of {chosen.display_name} is reset and their sessions are "
                    "ended. Tell them the new one: at their next sign-in they choose their own, "
                    "before anything else."
                )
                mark_saved("users_reset")
                st.rerun()
        if said := st.session_state.pop("users_reset_done", None):
            st.success(escape(said), icon=":material/check_circle:")
        label = "Deactivate" if chosen.active else "Reactivate"
        if st.button(label, key="users_toggle_active"):
            if done := run_action(accounts.set_active, chosen.id, not chosen.active):
                st.session_state["users_toggle_done"] = (
                    f"{chosen.display_name} is reactivated: they can sign in again."
                    if not chosen.active
                    else f"{chosen.display_name} is deactivated: signed out everywhere, and "
                    "they can no longer sign in, with a password or their organisation account.",
                    done.value,
                )
                refresh()

with st.expander("What each role may do"):
    st.markdown(matrix_markdown())
