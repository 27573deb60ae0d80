"""Owner: the cancellation policy per clinic, with optional overrides per service. Every save
is a new version; cancellations keep the version that applied."""

import pandas as pd
import streamlit as st

from core.kernel.authz import Permission
from core.policy import cancellation as policy
from core.practice import choices
from ui import actor
from ui.caches import cached
from ui.context import read
from ui.locale import display_format
from ui.policy_form import policy_form
from ui.text import escape, show_table


@cached("policy", "setup", ttl=30, max_entries=20)
def _load(current, clinic_id, service_id):
    scopes = read(
        choices.list_choices, current, include_inactive=True, permission=Permission.POLICY_MANAGE
    )
    versions = read(policy.list_policy_versions, current, clinic_id) if clinic_id else []
    mine = [v for v in versions if v.service_id == service_id]
    clinic_wide = [v for v in versions if v.service_id is None]
    return scopes, versions, (mine or clinic_wide or [None])[0]


st.title("Cancellation policy")
me = actor()
scopes, _, _ = _load(me, None, None)
if not scopes.clinics:
    st.info("Add a clinic first; a policy belongs to a clinic.")
    st.stop()
clinics = {c.id: c.name for c in scopes.clinics}
services = {s.id: s.name for s in scopes.services}
c1, c2 = st.columns(2)
clinic_id = c1.selectbox("Clinic", list(clinics), format_func=clinics.get, key="policy_clinic")
service_id = c2.selectbox(
    "Applies to",
    [None, *services],
    key="policy_service",
    format_func=lambda s: (
        "All services (clinic policy)" if s is None else f"Override for {services[s]}"
    ),
)
_, versions, base = _load(me, clinic_id, service_id)
fmt = display_format(clinic_id)
if base is None:
    st.info("No policy yet: nothing is charged and every cancellation counts as on time.")
elif service_id and base.service_id is None:
    st.caption(
        f"{escape(services[service_id])} follows the clinic policy; "
        "saving here creates an override."
    )

policy_form(base, fmt, clinic_id, service_id)

if base is not None:
    st.subheader("In force now")
    st.text(base.policy_text)
    st.caption(
        f"Version {base.version} since {fmt.moment(base.effective_at)}: "
        f"{base.window_hours} h window, late fee {escape(base.late_fee.terms(fmt))}, "
        f"no-show fee {escape(base.no_show_fee.terms(fmt))}, {base.points_deducted} points."
    )

st.subheader("Versions")
show_table(
    pd.DataFrame(
        [
            {
                "Applies to": v.service_name or "All services",
                "Version": v.version,
                "Effective": fmt.moment(v.effective_at),
                "Window (h)": v.window_hours,
                "Late fee": v.late_fee.terms(fmt),
                "No-show fee": v.no_show_fee.terms(fmt),
                "Points": v.points_deducted,
                "Approval inside window": v.inside_window_needs_approval,
                "Auto-accept outside": v.outside_window_auto_accept,
                "Online cancel": v.online_cancel_allowed,
                "Max reschedules": v.max_reschedules,
                "Text": v.policy_text,
            }
            for v in versions
        ]
    ),
    hide_index=True,
    width="stretch",
    key="policy_versions",
)
