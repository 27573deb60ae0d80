"""AppTest: the payments and points page — the value of a point in each clinic's currency, and
the rules saved from it."""

from __future__ import annotations

from core.kernel.config import load_settings
from core.payments import rules
from core.startup import open_database

PAGE = "app_pages/payments.py"


def test_the_value_of_a_point_is_shown_in_each_clinics_currency_and_saved(app_as, app_db):
    at = app_as("owner", PAGE)
    assert not at.exception
    caption = at.caption[0].value
    assert "$0.10 at Lakeside Aesthetics" in caption and "£0.10 at Harbour Street Clinic" in caption
    value = at.number_input(key="payments_point_value")
    assert "minor units" in value.help and "$0.10 at a USD clinic" in value.help
    value.set_value(25)
    at.button(key="FormSubmitter:payments_rules_form-Save rules").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert "$0.25 at Lakeside Aesthetics" in at.caption[0].value
    database = open_database(
        load_settings({"DATABASE_URL": app_db, "CLINICDESK_SECRET_KEY": "k" * 40})
    )
    with database.read() as session:
        assert rules.get_settings(session).point_value_cents == 25
    database.dispose()
