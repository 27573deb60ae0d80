"""The one rule for showing text that someone typed: it is never markup.

Streamlit renders headings, alerts, captions, toasts, Markdown and widget labels as Markdown
(with HTML, LaTeX, colour directives, icons and autolinked URLs). Typed text (patient fields,
staff-entered names, notes, reasons, error messages that quote them) goes through `escape`
before any of those. Tables, `st.text` and charts (ECharts draws labels as plain text;
Streamlit escapes what it puts in a tooltip) show text as it is: `plain` is enough there.

Both functions also make invisible direction overrides visible (U+202E would otherwise reverse
what follows it on screen) and drop NUL and other control characters.
"""

from __future__ import annotations

import re

import pandas as pd
import streamlit as st

# Typed text is flattened to one line, so only inline syntax can act anywhere in it: code (`),
# emphasis (* ~, and _ unless inside a word like SOME_NAME), links, images and :directives[...]
# ([ ]), HTML and autolinks (< >), entities (&), maths ($), :emoji: and :material/icons: (a colon
# before a word) and the escape character itself. Block syntax can act only at the very start
# (# heading, - + * list, "1." list, > quote). Everything else (. , ! ( ) # inside a sentence,
# "Note: x") stays as typed, so a sentence reads the same in the source, in AppTest and on screen.
_INLINE = re.compile(r"([\\`*~\[\]<>&$|]|:(?=[\w\[/])|(?<![^\W_])_|_(?![^\W_]))")
_BLOCK_START = re.compile(r"^(\d+(?=[.)])|(?=[#+\-=]))")
# direction overrides and isolates, and the marks: shown as their code point instead
_BIDI = re.compile("[\u200e\u200f\u202a-\u202e\u2066-\u2069]")
# Streamlit's Markdown also turns bare "https://…", "www.…" and "name@host" in plain text into
# links after escapes are resolved: an invisible word joiner keeps them apart
_AUTOLINK = re.compile(r"(?i)(https?(?=:)|www(?=\.)|(?=@))")
_JOINER = "\u2060"
# C0 and C1 control characters except tab and newline (NUL included)
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_UNSEEN = re.compile(f"{_CONTROL.pattern}|{_BIDI.pattern}")  # either: `_visible` changes it


def _visible(text: object) -> str:
    value = _CONTROL.sub("", "" if text is None else str(text))
    return _BIDI.sub(lambda m: f"[U+{ord(m.group()):04X}]", value)


def plain(text: object) -> str:
    """Text for places that show it as it is (tables, select options): only the invisible
    characters are dealt with (controls dropped, direction overrides shown as [U+202E])."""
    return _visible(text)


def escape(text: object) -> str:
    """Text that a Markdown-rendering Streamlit element shows literally, character for
    character (newlines become spaces: no typed text starts a block of its own)."""
    flat = _visible(text).replace("\r", " ").replace("\n", " ").replace("\t", " ").strip()
    inline = _INLINE.sub(r"\\\1", _AUTOLINK.sub(lambda m: m.group() + _JOINER, flat))
    return _BLOCK_START.sub(lambda m: m.group() + "\\", inline)


def _plain_column(column: pd.Series) -> pd.Series | None:
    """The column with every text `plain` and a missing text empty; None when it has neither.
    One scan of the column's joined texts finds whether any cell needs `plain` (almost never),
    instead of a call per cell."""
    texts = [v for v in column.tolist() if isinstance(v, str)]
    if _UNSEEN.search("\n".join(texts)):  # newline is neither a control nor a mark: a seam
        column = column.map(lambda v: plain(v) if isinstance(v, str) else v)
    elif len(texts) == len(column):
        return None
    return column.fillna("")


def show_table(data, **kwargs):
    """st.dataframe with every text cell `plain`: a table shows text as it is, but an old or
    imported row can still carry a direction override or a control character (and the grid's
    hidden accessible copy is real page text). A missing value, text or number, is an empty
    cell, not the grid's "None". Returns what st.dataframe returns."""
    if isinstance(data, pd.DataFrame):
        texts = data.select_dtypes(include=["object", "string"]).columns
        fixed = {name: _plain_column(data[name]) for name in texts}
        if changed := {name: column for name, column in fixed.items() if column is not None}:
            data = data.assign(**changed)
    return st.dataframe(data, **{"placeholder": "", **kwargs})
