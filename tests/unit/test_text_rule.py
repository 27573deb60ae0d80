"""The one display rule (ui.text): typed text rendered through Markdown or HTML stays text."""

from __future__ import annotations

import ast
import html
import re
from pathlib import Path

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


def test_a_table_shows_every_text_plain_and_a_missing_value_empty():
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_function(_table).run()
    shown = at.dataframe[0].value
    assert shown["Patient"].tolist() == ["Ana[U+202E]Silva", "", "Bo"]
    assert shown["Note"].tolist() == ["ok", "bell", ""]
    assert shown["Mixed"].tolist() == ["1", "tab", ""]  # Arrow sends a mixed column as text
    assert shown["Clean"].tolist() == ["a", "b", "c"]
    assert shown["Waited"].tolist()[::2] == [5, 7]  # numbers stay numbers
    proto = at.dataframe[0].proto  # and a missing one is an empty cell, not the grid's "None"
    assert proto.HasField("placeholder") and proto.placeholder == ""


# Streamlit calls whose text (first argument, label, help) is rendered as Markdown
MARKDOWN_CALLS = {
    "markdown", "caption", "info", "warning", "success", "error", "toast", "title", "header",
    "subheader", "button", "form_submit_button", "download_button", "link_button", "page_link",
    "expander", "popover", "radio", "checkbox", "toggle", "selectbox", "multiselect",
    "text_input", "text_area", "number_input", "date_input", "time_input", "slider",
    "select_slider", "metric", "pills", "segmented_control", "fold", "key_figure",
}  # fmt: skip
# what a person typed, by the name a page gives it: names, titles, reasons, notes, phones
TYPED = re.compile(
    r"(^|_)(name|title|clinic|provider|patient|service|services|package|room|resource|reason"
    r"|notes|phone|question|questions|created_by|cancelled_by)$"
)
# texts the code itself writes, under a name that reads like a typed one
WRITTEN_HERE = {
    ("app_pages/practice.py", "step.title"),  # core.practice.checklist's own step titles
    ("ui/survey_view.py", "title"),  # the section titles of the trends loop
}


def _built_text(node: ast.AST) -> bool:
    """A value that builds a text: an f-string, a concatenation, a join."""
    join = isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "join"
    return isinstance(node, (ast.JoinedStr, ast.BinOp, ast.IfExp)) or join


def _typed_values(node: ast.AST, assigned: dict[str, list[ast.AST]], seen: set[str]):
    """Formatted values in f-strings under `node` (following the names it uses to the texts
    built for them) that read a typed text and are not inside escape(...)."""
    if isinstance(node, ast.Lambda) or (
        isinstance(node, ast.Call) and getattr(node.func, "id", "") == "escape"
    ):
        return
    built = [v for v in assigned.get(getattr(node, "id", ""), []) if _built_text(v)]
    if isinstance(node, ast.Name) and built:
        if node.id not in seen:
            seen.add(node.id)
            for value in built:
                yield from _typed_values(value, assigned, seen)
        return
    if isinstance(node, ast.FormattedValue):
        value = node.value
        leaf = value.attr if isinstance(value, ast.Attribute) else getattr(value, "id", "")
        if TYPED.search(leaf) and not built_name(value, assigned):
            yield ast.unparse(value)
    for child in ast.iter_child_nodes(node):
        yield from _typed_values(child, assigned, seen)


def built_name(value: ast.AST, assigned: dict[str, list[ast.AST]]) -> bool:
    return isinstance(value, ast.Name) and any(map(_built_text, assigned.get(value.id, [])))


def test_no_page_hands_a_typed_name_to_markdown_unescaped():
    """Static half of the rule (the AppTest walk in tests/pages/test_hostile_names.py is the
    other): a clinic, provider, service, package or document name, a reason or a note put into
    a caption, alert, heading or widget label goes through ui.text.escape."""
    root = Path(__file__).resolve().parents[2]
    found = []
    files = [*(root / "app_pages").glob("*.py"), *(root / "ui").rglob("*.py")]
    for path in files:
        tree = ast.parse(path.read_text())
        assigned: dict[str, list[ast.AST]] = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.Assign):
                for target in node.targets:
                    if isinstance(target, ast.Name):
                        assigned.setdefault(target.id, []).append(node.value)
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            called = getattr(node.func, "attr", getattr(node.func, "id", ""))
            if called not in MARKDOWN_CALLS:
                continue
            shown = [
                *node.args[:1],
                *(k.value for k in node.keywords if k.arg in ("label", "help")),
            ]
            for arg in shown:
                for value in _typed_values(arg, assigned, set()):
                    if (str(path.relative_to(root)), value) in WRITTEN_HERE:
                        continue
                    found.append(f"{path.relative_to(root)}:{node.lineno} {called}: {value}")
    assert not found, "\n".join(found)
