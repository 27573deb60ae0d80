"""The one escaping rule: text a patient or user typed, shown inside Markdown-rendering elements
(headings, alerts, captions, st.markdown), appears as the literal characters typed.

Characters that are markup anywhere are always backslashed; those that are markup only at the
start of a line (headings, lists, quotes) are backslashed there; colons only where they would
open a directive (`:red[…]`, `:smile:`) or a bare URL (`https://`), and `www.` so it is not
turned into a link. Ordinary sentences ("Reason: late, at 10:30 - see note.") stay readable.
"""

from __future__ import annotations

import re

_ANYWHERE = re.compile(r"([\\`*_\[\]<>|~$])")
_LINE_START = re.compile(r"(?m)^(\s*)([#+\-=])")
_ORDERED = re.compile(r"(?m)^(\s*\d+)([.)])")
_COLON = re.compile(r":(?=[A-Za-z/])")
_WWW = re.compile(r"(?i)\b(www)\.")


def escape(text: object) -> str:
    """Text safe inside Markdown: no links, images, HTML, colours, maths or headings."""
    out = _ANYWHERE.sub(r"\\\1", str(text))
    out = _LINE_START.sub(lambda m: m.group(1) + "\\" + m.group(2), out)
    out = _ORDERED.sub(lambda m: m.group(1) + "\\" + m.group(2), out)
    out = _COLON.sub(r"\\:", out)
    return _WWW.sub(r"\1\\.", out)
