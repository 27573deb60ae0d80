"""The date and time pickers' (and table columns') formats come from the locale's own short
date and time (Babel), and Streamlit accepts the date format of every locale Babel knows."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from babel.localedata import locale_identifiers
from streamlit.elements.widgets.time_widgets import ALLOWED_DATE_FORMATS

from ui.locale import clock_picker, date_picker, table_moment


@pytest.mark.parametrize(
    ("locale", "day", "clock"),
    [
        ("en-GB", "DD/MM/YYYY", "24h"),
        ("en-US", "MM/DD/YYYY", "12h"),
        ("de-DE", "DD.MM.YYYY", "24h"),
        ("nl-NL", "DD-MM-YYYY", "24h"),
        ("sv-SE", "YYYY-MM-DD", "24h"),
        ("ja-JP", "YYYY/MM/DD", "24h"),
        ("ko-KR", "YYYY.MM.DD", "12h"),
        ("en-AU", "DD/MM/YYYY", "12h"),
    ],
)
def test_a_locale_picks_days_in_its_own_order_and_on_its_own_clock(locale, day, clock):
    assert (date_picker(locale), clock_picker(locale)) == (day, clock)


def test_every_locale_gives_a_format_streamlit_accepts():
    formats = {name: date_picker(name) for name in locale_identifiers()}
    refused = {
        name: found for name, found in formats.items() if not ALLOWED_DATE_FORMATS.match(found)
    }
    assert not refused


def test_a_table_shows_moments_in_the_locales_order_and_on_its_clock():
    assert table_moment("en-GB") == "DD/MM/YYYY HH:mm"
    assert table_moment("en-US") == "MM/DD/YYYY h:mm A"
    assert table_moment("de-DE") == "DD.MM.YYYY HH:mm"


PICKERS = {"date_input", "time_input", "DatetimeColumn", "DateColumn", "TimeColumn"}


def test_every_date_and_time_picker_in_the_app_is_given_its_format():
    """Streamlit's defaults (YYYY/MM/DD, a 24-hour clock, ISO in tables) are no locale's: each
    picker and date or time column on a page names its format (ui.locale)."""
    root = Path(__file__).resolve().parents[2]
    unformatted = [
        f"{path.relative_to(root)}:{node.lineno} {node.func.attr}"
        for path in [*(root / "app_pages").glob("*.py"), *(root / "ui").rglob("*.py")]
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in PICKERS
        and not any(keyword.arg == "format" for keyword in node.keywords)
    ]
    assert not unformatted
