"""Services: duration, buffers, price, who performs them, the rooms or equipment they need,
and their documents (questionnaire, consent, instructions), versioned and previewed as the
patient will read them. Owners and managers edit; staff read."""

import pandas as pd
import streamlit as st

from core.practice import documents, setup
from ui import actor, refresh, run_action
from ui.caches import cached
from ui.context import forget_if_saved, mark_saved, read
from ui.setup_forms import (
    can_edit,
    confirm_change,
    keys_for,
    overview,
    pick,
    price_input,
    price_note,
    prices,
    save_asking,
    toggle_active,
)
from ui.text import escape, show_table


@cached("setup", ttl=60, max_entries=50)
def _documents(me, service_id):
    return read(documents.list_documents, me, service_id, all_versions=True)


st.title("Services")
me = actor()
current = overview(me)
editable = can_edit(me)
providers = {p.id: p.name for p in current.providers}
resources = {r.id: f"{r.name} ({current.clinic_name(r.data.clinic_id)})" for r in current.resources}
price = prices(current)  # in the clinics' currency
show_table(
    pd.DataFrame(
        [
            {
                "Service": s.name,
                "Category": s.data.category,
                "Minutes": s.data.duration_minutes,
                "Price": price(s.data.price_cents),
                "Virtual": s.data.virtual_allowed,
                "Online": s.data.online_allowed,
                "Needs": ", ".join(resources[r] for r in s.data.resource_ids),
                "Active": s.data.active,
            }
            for s in current.services
        ]
    ),
    hide_index=True,
    width="stretch",
)
price_note(current)
row = pick(current.services, "service", "services_pick")
old = row.data if row else setup.ServiceData("", 30)
key = keys_for("services", row)
if editable:
    with st.form(f"services_form_{row.id if row else 'new'}"):
        a, b = st.columns(2)
        name = a.text_input("Name", old.name, key=key("name"))
        category = b.text_input("Category", old.category, key=key("category"))
        a, b, c, d = st.columns(4)
        minutes = a.number_input("Minutes", 5, 720, old.duration_minutes, 5, key=key("min"))
        before = b.number_input(
            "Buffer before", 0, 240, old.buffer_before_minutes, 5, key=key("before")
        )
        after = c.number_input(
            "Buffer after", 0, 240, old.buffer_after_minutes, 5, key=key("after")
        )
        cost = price_input(d, current, old.price_cents, key("price"))
        a, b = st.columns(2)
        virtual = a.checkbox("Can be virtual", old.virtual_allowed, key=key("virtual"))
        online = b.checkbox("Patients may request it online", old.online_allowed, key=key("online"))
        who = st.multiselect(
            "Providers who perform it",
            list(providers),
            list(old.provider_ids),
            format_func=providers.get,
            key=key("providers"),
        )
        needs = st.multiselect(
            "Rooms and equipment it needs",
            list(resources),
            list(old.resource_ids),
            format_func=resources.get,
            key=key("needs"),
        )
        if st.form_submit_button("Save service", type="primary") and cost is not None:
            data = setup.ServiceData(
                name,
                int(minutes),
                category,
                int(before),
                int(after),
                cost,
                virtual,
                online,
                tuple(who),
                tuple(needs),
                old.active,
            )
            save_asking("services", data, row)  # a new price, length or rooms asks first
    fields = ("name", "category", "min", "before", "after", "price", "virtual", "online")
    confirm_change("services", row, [key(f) for f in (*fields, "providers", "needs")])
    toggle_active("service", row, "services_toggle", "services_pick")

if row is not None:
    st.subheader(f"Documents of {escape(row.name)}")
    docs = _documents(me, row.id)
    for doc in [d for d in docs if d.active]:
        with st.expander(escape(f"{doc.kind.value.title()}: {doc.title} (version {doc.version})")):
            st.text(documents.preview(doc))
    if not docs:
        st.caption("No questionnaire, consent or instructions yet.")
    if editable:
        kinds = ["questionnaire", "consent", "instructions"]
        forget_if_saved(
            "services_doc", {"kind": kinds[0], "title": "", "body": "", "questions": ""}
        )
        with st.form(f"services_doc_form_{row.id}"):  # kept as typed when refused
            kind = st.selectbox("Kind", kinds, key="services_doc_kind")
            title = st.text_input("Title", key="services_doc_title")
            body = st.text_area("Text (consent and instructions)", key="services_doc_body")
            questions = st.text_area(
                "Questions (questionnaire only): one per line as  key | question | type | "
                "options separated by ; | required",
                key="services_doc_questions",
                placeholder="allergies | Any allergies? | yes_no | | required",
            )
            if st.form_submit_button("Save a new version"):
                parsed = documents.parse_question_lines(questions)
                if run_action(
                    documents.save_document,
                    row.id,
                    kind,
                    title,
                    body,
                    parsed,
                    success="Document saved as a new version.",
                ):
                    mark_saved("services_doc")
                    refresh()
