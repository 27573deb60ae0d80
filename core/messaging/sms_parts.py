"""How many paid parts a text message goes as, by 3GPP TS 23.038 (formerly GSM 03.38).

A text goes in the GSM 7-bit default alphabet only when every character is in it: 160 a
single part, 153 a part when concatenated, a character of the extension table ({, }, [, ], ~,
\\, |, ^, €, form feed) counting two (an escape and the character). One character outside it
(ł, ő, ç, a curly quote, an en dash, "…", an emoji) sends the whole text in UCS-2: 70 UTF-16
code units a single part, 67 concatenated, a character beyond the Basic Multilingual Plane
(most emoji) counting two. A part never splits an escaped character or a surrogate pair.

Which characters the alphabet has is the gsm0338 codec's table (3GPP TS 23.038, the default
alphabet and its extension table; no national language shift tables, which senders rarely use).
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from functools import lru_cache

import gsm0338

MAX_PARTS = 3  # the most a ClinicDesk text is sent as (core.messaging.notify.fit_text)
GSM_SINGLE, GSM_PART = 160, 153
UCS2_SINGLE, UCS2_PART = 70, 67

_CODEC = gsm0338.Codec()

# The practice's own wording sent by text: punctuation with an equivalent in the GSM alphabet
# goes as that equivalent (a curly quote alone would send the whole text in 70-character parts).
# Letters are never changed: a name with "ł" keeps it, and the text goes in UCS-2.
SPACES = {"\xa0": " ", "\u2007": " ", "\u2009": " ", "\u202f": " "}  # dates and amounts use them
DASHES = dict.fromkeys("\u2010\u2011\u2012\u2013\u2014\u2015\u2212", "-")  # ranges: 14:00–14:30
GSM_EQUIVALENTS = str.maketrans(
    {
        **SPACES,
        **dict.fromkeys("\u2018\u2019\u201a\u201b\u2032", "'"),
        **dict.fromkeys("\u201c\u201d\u201e\u201f\u2033", '"'),
        **DASHES,
        "\u2026": "...",
    }
)
VALUE_EQUIVALENTS = str.maketrans({**SPACES, **DASHES})


@dataclass(frozen=True)
class Parts:
    count: int  # the parts the text is sent (and paid) as
    gsm: bool  # in the GSM 7-bit alphabet (else UCS-2)
    units: int  # septets (GSM) or UTF-16 code units (UCS-2)
    outside: tuple[str, ...] = ()  # the characters outside the GSM alphabet, each once


@lru_cache(maxsize=4096)
def _gsm_width(char: str) -> int | None:
    """Septets of `char` in the GSM alphabet (2 from the extension table), None outside it."""
    try:
        return len(_CODEC.encode(char)[0])
    except UnicodeEncodeError:
        return None


def parts(text: str) -> Parts:
    """The parts `text` is sent as, counted exactly (see the module's docstring)."""
    gsm_widths = [_gsm_width(c) for c in text]
    outside = tuple(dict.fromkeys(c for c, w in zip(text, gsm_widths, strict=True) if w is None))
    if outside:
        widths, single, part = [2 if ord(c) > 0xFFFF else 1 for c in text], UCS2_SINGLE, UCS2_PART
    else:
        widths, single, part = gsm_widths, GSM_SINGLE, GSM_PART
    units = sum(widths)
    if units <= single:
        return Parts(1, not outside, units, outside)
    count, used = 1, 0
    for width in widths:
        if used + width > part:  # an escaped character or a surrogate pair is never split
            count, used = count + 1, 0
        used += width
    return Parts(count, not outside, units, outside)


def gsm_wording(text: str) -> str:
    """The practice's wording with its curly quotes, dashes, "…" and no-break spaces as their
    GSM equivalents; every letter as it is, composed (`composed`)."""
    return composed(text).translate(GSM_EQUIVALENTS)


def gsm_value(text: str) -> str:
    """A value filled in: the no-break and narrow spaces dates and amounts are written with as
    plain spaces, and the dashes of a time's or a day's range ('morning (9:00–12:00)',
    '14:00–14:30', '3–10 Mar 2026') as hyphens; its letters composed, nothing else changed."""
    return composed(text).translate(VALUE_EQUIVALENTS)


def composed(text: str) -> str:
    """`text`'s letters in their composed form (Unicode NFC): "e" and a combining acute, as a
    name pasted from a file name or a Mac's clipboard has it, as "é", the same letter, which
    the GSM alphabet has where the combining accent alone is not in it."""
    return unicodedata.normalize("NFC", text)


def describe(text: str) -> str:
    """The parts of `text` in words, for the template editor's preview."""
    counted = parts(text)
    many = f"{counted.count} part{'s' if counted.count > 1 else ''}"
    if counted.gsm:
        size = GSM_SINGLE if counted.count == 1 else GSM_PART
        return f"{many} ({counted.units} characters in the GSM alphabet, {size} a part)"
    size = UCS2_SINGLE if counted.count == 1 else UCS2_PART
    chars = ", ".join(f'"{c}"' for c in counted.outside[:5])
    return (
        f"{many} ({counted.units} characters): {chars} "
        f"{'is' if len(counted.outside) == 1 else 'are'} outside the GSM alphabet, so the "
        f"whole text goes in UCS-2, {size} characters a part"
    )
