"""The invitations funnel's figures in the clinic's locale: counts, the rate and the median
days (a Brazilian clinic reads 2,5 days, not 2.5); no enrolment yet shows the missing-value
dash used on every page."""

from streamlit.testing.v1 import AppTest

from core.kernel.money import NO_VALUE


def _panel(median_days):
    from core.kernel.money import ClinicFormat
    from core.patients.enrolment import Funnel
    from ui.portal import funnel_panel

    brazil = ClinicFormat(timezone="America/Sao_Paulo", locale="pt-BR", currency="BRL")
    funnel_panel(Funnel(1234, 617, 12, median_days), "t", brazil)


def _figures(median_days) -> dict[str, str]:
    at = AppTest.from_function(_panel, args=(median_days,)).run()
    assert not at.exception
    return {m.label: m.value for m in at.metric}


def test_the_funnel_figures_follow_the_clinics_locale():
    shown = _figures(2.5)
    assert shown["Median days to enrol"] == "2,5"
    assert shown["Enrolment rate"] == "50%"
    assert shown["Pending invitations"] == "12"


def test_no_enrolment_yet_shows_the_missing_value_dash():
    assert _figures(None)["Median days to enrol"] == NO_VALUE
