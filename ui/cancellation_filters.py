"""The cancellation dashboard's filters: clinic-local days, clinic, provider and service."""

from __future__ import annotations

from datetime import date, timedelta

import streamlit as st

from core.analytics import cancellation_parts as parts
from core.practice.choices import Choices
from ui import cancellation_view as view
from ui.locale import date_picker


def _named(items, label):
    names = {item.id: item.name for item in items}
    return [None, *names], lambda i: label if i is None else names[i]


def filters_form(choices: Choices, today: date, locale: str) -> parts.AnalyticsFilters:
    """The filter form (applied together); the last 90 days and everything by default; days
    picked in `locale`'s order (the practice's)."""
    with st.form("cancel_filters"):
        c1, c2, c3, c4 = st.columns([1.4, 1, 1, 1])  # room for a date range
        # imported history goes back years: not Streamlit's default of ten years back
        days = c1.date_input(
            "Clinic-local days",
            (today - timedelta(days=90), today),
            min_value=date(2000, 1, 1),
            key="cancel_days",
            format=date_picker(locale),
        )
        options, label = _named(choices.clinics, "All clinics")
        clinic = c2.selectbox("Clinic", options, format_func=label, key="cancel_clinic")
        options, label = _named(choices.providers, "All providers")
        provider = c3.selectbox("Provider", options, format_func=label, key="cancel_provider")
        options, label = _named(choices.services, "All services")
        service = c4.selectbox("Service", options, format_func=label, key="cancel_service")
        st.form_submit_button("Apply", type="primary")
    start, end = (days[0], days[-1]) if days else (today, today)
    return parts.AnalyticsFilters(start, end, clinic, provider, service, None, view.DASHBOARD_PARTS)
