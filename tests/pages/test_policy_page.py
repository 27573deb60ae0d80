"""The cancellation-policy page: shows the version in force, saves new versions, refuses
invalid values with their message, and creates service overrides."""

from sqlalchemy import select

from core.kernel.config import load_settings
from core.startup import open_database
from db.models import CancellationPolicy
from tests.pages.conftest import told_to_show

PAGE = "app_pages/policy.py"


def _versions(url: str) -> list[CancellationPolicy]:
    database = open_database(load_settings({"DATABASE_URL": url}))
    with database.read() as session:
        rows = list(session.scalars(select(CancellationPolicy).order_by(CancellationPolicy.id)))
    database.dispose()
    return rows


def _save(at, confirm: bool = True):
    """Submit the form; with `confirm`, answer "Save the new version anyway" when the page asks
    (a version that makes visits booked ahead dearer, as the demo's are)."""
    at = at.button(key="FormSubmitter:policy_form-Save as a new version").click().run()
    anyway = [b for b in at.button if b.label == "Save the new version anyway"]
    return anyway[0].click().run() if confirm and anyway else at


def test_a_version_that_makes_booked_visits_dearer_says_so_before_it_is_saved(app_as, app_db):
    """Before, a higher fee was saved at once and charged on the next cancellation of every
    visit booked under the old one, the owner told only 'it applies from now on'."""
    at = app_as("owner", PAGE)
    before = len(_versions(app_db))
    at.number_input(key="policy_late_fee").set_value(40.0)
    at = _save(at, confirm=False)
    assert not at.exception and not at.error
    [said] = [w.value.replace("\\", "") for w in at.warning]
    assert said.startswith("The new version applies to the ")
    assert "visits booked ahead at Harbour Street Clinic from their next cancellation" in said
    assert (
        "From now on a late cancellation of any of them costs £40.00 and 20 points (was £25.00 "
        "and 20 points). To spare"
    ) in said
    assert "waive the fee when they cancel" in said
    assert len(_versions(app_db)) == before  # nothing saved yet
    at = next(b for b in at.button if b.label == "Back to the form").click().run()
    assert not at.warning and at.number_input(key="policy_late_fee").value == 40.0
    assert len(_versions(app_db)) == before
    at = _save(at)
    assert not at.error, at.error[0].value
    assert _versions(app_db)[-1].late_cancel_fee_cents == 4000
    [note] = [s.value for s in at.success]
    assert note.startswith("Policy saved; it applies from now on. The new version applies to ")
    at.number_input(key="policy_window").set_value(12)  # kinder to every visit: saved at once
    at = _save(at, confirm=False)
    assert not at.warning and not at.error
    assert _versions(app_db)[-1].window_hours == 12


def test_owner_sees_the_policy_in_force_and_saves_a_new_version(app_as, app_db):
    at = app_as("owner", PAGE)
    assert not at.exception and not at.error
    assert at.number_input(key="policy_window").value == 24
    assert "24 hours' notice" in at.text_area(key="policy_text").value
    before = len(_versions(app_db))
    at.number_input(key="policy_window").set_value(12)
    at.number_input(key="policy_late_fee").set_value(30.0)
    at.text_area(key="policy_text").input("Please give us 12 hours' notice.")
    at = _save(at)
    assert not at.exception and not at.error
    rows = _versions(app_db)
    assert len(rows) == before + 1
    newest = rows[-1]
    assert (newest.window_hours, newest.late_cancel_fee_cents, newest.version) == (12, 3000, 2)
    assert newest.policy_text == "Please give us 12 hours' notice."
    assert at.number_input(key="policy_window").value == 12
    assert any("Version 2 since" in c.value for c in at.caption)


def test_invalid_values_show_their_message_and_save_nothing(app_as, app_db):
    at = app_as("owner", PAGE)
    before = len(_versions(app_db))
    at.number_input(key="policy_window").set_value(-3)
    at.number_input(key="policy_no_show_fee").set_value(-10.0)
    at.text_area(key="policy_text").input("   ")
    at = _save(at)
    assert not at.exception
    message = at.error[0].value
    assert "window must be zero or more whole hours" in message
    assert "no-show fee cannot be negative" in message
    assert "policy text" in message
    assert len(_versions(app_db)) == before


def test_a_service_override_is_its_own_version(app_as, app_db):
    at = app_as("owner", PAGE)
    services = at.selectbox(key="policy_service").options
    botox = next(i for i, o in enumerate(services) if "Botox" in o)
    at.selectbox(key="policy_service").select_index(botox).run()
    assert "follows the clinic policy" in at.caption[0].value
    at.number_input(key="policy_window").set_value(48)
    at = _save(at)
    assert not at.error
    newest = _versions(app_db)[-1]
    assert newest.service_id is not None and newest.window_hours == 48 and newest.version == 1
    assert "follows the clinic policy" not in " ".join(c.value for c in at.caption)


def test_a_yen_fee_with_decimals_is_refused_and_whole_yen_are_saved(app_as, app_db):
    """JPY has no decimals: 3000.5 typed is refused with a message saying so (before, the form
    showed two decimals and saved ￥3,001); ￥3,000 is saved as 3000."""
    from sqlalchemy import update

    from db.models import Clinic

    database = open_database(load_settings({"DATABASE_URL": app_db}))
    with database.write() as session:
        session.execute(update(Clinic).values(currency="JPY", locale="ja-JP"))
    database.dispose()
    at = app_as("owner", PAGE)
    before = len(_versions(app_db))
    at.number_input(key="policy_late_fee").set_value(3000.5)
    at = _save(at)
    assert not at.exception
    assert "JPY amounts have no decimals" in at.error[0].value
    assert len(_versions(app_db)) == before
    at.number_input(key="policy_late_fee").set_value(3000.0)
    at = _save(at)
    assert not at.error, at.error[0].value
    assert _versions(app_db)[-1].late_cancel_fee_cents == 3000


def test_a_dollar_clinics_fees_are_not_typeset_as_maths(app_as, app_db):
    """'late fee $25.00, no-show fee $40.00': two dollar signs in one caption made Streamlit
    typeset what lay between them as LaTeX. The money is escaped now, so it reads as written."""
    from sqlalchemy import update

    from db.models import Clinic

    database = open_database(load_settings({"DATABASE_URL": app_db}))
    with database.write() as session:
        session.execute(update(Clinic).values(currency="USD", locale="en-US"))
    database.dispose()
    at = app_as("owner", PAGE)
    assert not at.exception
    newest = _versions(app_db)[-1]
    late, no_show = (
        f"\\${cents / 100:,.2f}"
        for cents in (newest.late_cancel_fee_cents, newest.no_show_fee_cents)
    )
    assert any(f"late fee {late}, no-show fee {no_show}," in c.value for c in at.caption), [
        c.value for c in at.caption
    ]


def test_choosing_another_clinic_fills_the_form_with_that_clinics_policy(app_as, app_db, set_twice):
    """The form shows the chosen clinic's version in force, and saving keeps it that clinic's.
    Before, the form's fields kept the first clinic's values once drawn (a keyed widget keeps its
    value), so Lakeside's form showed Harbour Street's window and pound text, and saving wrote
    them into Lakeside's policy."""
    from sqlalchemy import update

    database = open_database(load_settings({"DATABASE_URL": app_db}))
    with database.write() as session:
        session.execute(
            update(CancellationPolicy)
            .where(CancellationPolicy.clinic_id == 2)
            .values(window_hours=48, no_show_fee_cents=6000)
        )
    database.dispose()
    at = app_as("owner", PAGE)
    assert at.number_input(key="policy_window").value == 24
    at = at.selectbox(key="policy_clinic").set_value(2).run()
    assert not at.exception and not at.error
    # the fields' values are set in the state only: before, each was also the widget's value=
    # (index= for a fee's basis), which Streamlit logged as a default set twice
    assert set_twice == []
    # the browser is told to show them too: a key dropped from the session was not, and its
    # boxes kept Harbour Street's window and fee, which the next save wrote into Lakeside's
    told_to_show(at.number_input(key="policy_window"), 48)
    told_to_show(at.number_input(key="policy_no_show_fee"), 60.0)
    assert at.text_area(key="policy_text").proto.set_value
    assert "$40.00" in at.text_area(key="policy_text").value
    assert "£" not in at.text_area(key="policy_text").value
    at.number_input(key="policy_points").set_value(5)
    at = _save(at)
    assert not at.error
    assert set_twice == []
    newest = _versions(app_db)[-1]
    assert (newest.clinic_id, newest.window_hours, newest.no_show_fee_cents) == (2, 48, 6000)
    assert (newest.points_deducted, newest.version) == (5, 2)
    assert "$40.00" in newest.policy_text
    at = at.selectbox(key="policy_clinic").set_value(1).run()  # and back: Harbour's own again
    assert at.number_input(key="policy_window").value == 24
    assert at.number_input(key="policy_points").value == 20
    assert "£40.00" in at.text_area(key="policy_text").value


def test_a_fee_as_a_share_of_the_visits_price_is_saved_and_shown_as_such(app_as, app_db):
    """The owner chooses '% of the visit's price' for the late fee: the version keeps 50%, and
    the page describes it as a share of the price, not as an amount."""
    at = app_as("owner", PAGE)
    before = len(_versions(app_db))
    at.radio(key="policy_late_basis").set_value("percent")
    at.number_input(key="policy_late_percent").set_value(50)
    at = _save(at)
    assert not at.exception and not at.error, at.error and at.error[0].value
    rows = _versions(app_db)
    assert len(rows) == before + 1
    newest = rows[-1]
    assert (newest.late_cancel_fee_basis, newest.late_cancel_fee_percent) == ("percent", 50)
    assert newest.no_show_fee_basis == "fixed"
    caption = next(c.value for c in at.caption if "Version 2 since" in c.value)
    assert "late fee 50% of the visit's price, no-show fee £40.00," in caption
    table = next(d for d in at.dataframe if "Late fee" in d.value.columns).value
    assert list(table["Late fee"][:2]) == ["50% of the visit's price", "£25.00"]
    assert at.radio(key="policy_late_basis").value == "percent"  # the form shows the version
    assert at.number_input(key="policy_late_percent").value == 50


def test_a_percentage_over_100_is_refused_with_its_message(app_as, app_db):
    at = app_as("owner", PAGE)
    before = len(_versions(app_db))
    at.radio(key="policy_no_show_basis").set_value("percent")
    at.number_input(key="policy_no_show_percent").set_value(150)
    at = _save(at)
    assert not at.exception
    assert (
        "The no-show fee as a percentage of the visit's price must be a whole number from 0 to "
        "100 (50 for half the price), not 150." in at.error[0].value
    )
    assert len(_versions(app_db)) == before


def test_the_policys_switches_have_the_forms_width_for_their_words(app_as, app_db):
    """In the third of the form beside the fees, at 1280 px, two switches read 'Late requests
    need a manager's ap…' and 'Accept requests outside the windo…' (Chromium cuts a checkbox's
    label to one line): they stand under the columns, across the form, whole."""
    at = app_as("owner", PAGE)
    switches = {"policy_approval", "policy_auto", "policy_online"}
    assert switches <= {c.key for c in at.checkbox}
    in_columns = {c.key for column in at.columns for c in column.checkbox}
    assert not switches & in_columns, switches & in_columns
