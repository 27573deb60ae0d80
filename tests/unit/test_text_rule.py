"""The one display rule (ui.text): typed text rendered through Markdown or HTML stays text."""

from __future__ import annotations

import html
import re

import pytest
from markdown_it import MarkdownIt

from core.messaging import notify
from ui.text import escape, plain

HOSTILE = [
    "![x](https://evil.example/pixel.png)",
    "[click](https://evil.example)",
    ":red[colour] **bold** _it_ `code` ~~gone~~",
    "<b>HTML</b><img src=https://evil.example/i.png>",
    "$E=mc^2$ and $$x$$",
    "# heading\n---\n1. list\n> quote",
    "&#x202E;entity &amp; <https://evil.example>",
    "Name\n===",
]


@pytest.mark.parametrize("text", HOSTILE)
def test_escaped_markdown_renders_as_the_literal_text(text):
    rendered = MarkdownIt("commonmark").enable("strikethrough").render(escape(text))
    assert re.fullmatch(r"<p>.*</p>\n", rendered, re.S), rendered  # one paragraph, no blocks
    inner = rendered[3:-5]
    assert "<" not in inner.replace("&lt;", ""), inner  # no element at all
    shown = html.unescape(inner).replace("\u2060", "")
    assert shown == text.replace("\n", " ")


def test_bare_urls_and_emails_get_a_word_joiner_so_no_autolink_forms():
    shown = escape("see https://evil.example or www.evil.example or me@evil.example")
    assert "https://" not in shown.replace("\\", "") and "www." not in shown.replace("\\", "")
    assert "e@" not in shown.replace("\\", "")
    assert shown.replace("\\", "").replace("\u2060", "") == (
        "see https://evil.example or www.evil.example or me@evil.example"
    )


def test_direction_overrides_and_control_characters_are_made_visible_or_dropped():
    assert escape("abc\u202edef\x00") == "abc\\[U+202E\\]def"
    assert plain("<b>\u2066x</b>\x00") == "<b>[U+2066]x</b>"  # charts and tables: as typed


def test_emails_are_plain_text_and_a_typed_line_break_cannot_reach_a_header():
    subject, body = notify.render(
        notify.Template("Hello {first_name}", "Dear {first_name}, <b>see</b> {when}", ""),
        {"first_name": "Eve\r\nBcc: all@example.org\x00", "when": "<a href=x>now</a>"},
    )
    assert subject == "Hello Eve Bcc: all@example.org"
    assert body == "Dear Eve\nBcc: all@example.org, <b>see</b> <a href=x>now</a>"


def test_ordinary_sentences_read_as_typed():
    for sentence in (
        "CLINICDESK_IDLE_MINUTES must be a whole number.",
        "Cancel: done. Dr Rahman has appointment #541 (Wed).",
    ):
        assert escape(sentence) == sentence


def _table():
    import pandas as pd

    from ui.text import show_table

    show_table(
        pd.DataFrame(
            {
                "Patient": ["Ana\u202eSilva", None, "Bo"],
                "Note": ["ok", "bell\x07", None],
                "Mixed": [1, "tab\x00", None],
                "Clean": ["a", "b", "c"],
                "Waited": pd.array([5, None, 7], dtype="Int64"),
            }
        )
    )


def test_a_table_shows_every_text_plain_and_a_missing_text_empty():
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_function(_table).run()
    shown = at.dataframe[0].value
    assert shown["Patient"].tolist() == ["Ana[U+202E]Silva", "", "Bo"]
    assert shown["Note"].tolist() == ["ok", "bell", ""]
    assert shown["Mixed"].tolist() == ["1", "tab", ""]  # Arrow sends a mixed column as text
    assert shown["Clean"].tolist() == ["a", "b", "c"]
    assert shown["Waited"].tolist()[::2] == [5, 7]  # numbers stay numbers
