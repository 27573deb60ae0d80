"""The one escaping rule (ui.text.escape): typed text shows as typed, never as markup."""

import re

import pytest

from ui.text import escape

HOSTILE = [
    "![img](https://evil.example/i.png)",
    "[link](https://evil.example)",
    ":red[red] and :material/home: and :smile:",
    "<img src=x onerror=alert(1)> <b>bold</b>",
    "$\\frac{1}{2}$ and **bold** and _it_ and ~~gone~~ and `code`",
    "# heading\n> quote\n- item\n+ item\n1. item\n2) item",
    "https://evil.example and www.evil.example and <https://evil.example>",
    "pipe | table | row",
]


def unescape(text: str) -> str:
    """What a Markdown renderer shows for backslash escapes of ASCII punctuation."""
    return re.sub(r"\\([!-/:-@\[-`{-~])", r"\1", text)


@pytest.mark.parametrize("typed", HOSTILE)
def test_hostile_text_reads_back_as_typed(typed):
    assert unescape(escape(typed)) == typed


@pytest.mark.parametrize(
    ("typed", "shown"),
    [
        ("![img](u)", "!\\[img\\](u)"),
        (":red[x]", "\\:red\\[x\\]"),
        ("<b>", "\\<b\\>"),
        ("$x$", "\\$x\\$"),
        ("**b**", "\\*\\*b\\*\\*"),
        ("https://e.example", "https\\://e.example"),
        ("www.e.example", "www\\.e.example"),
        ("# h", "\\# h"),
        ("1. item", "1\\. item"),
    ],
)
def test_markup_characters_are_escaped(typed, shown):
    assert escape(typed) == shown


def test_ordinary_sentences_stay_readable():
    sentence = "Already handled by Sam Lee at 10:30 - see the check-in note."
    assert escape(sentence) == sentence
