"""What a text message costs: its parts counted by 3GPP TS 23.038 (GSM 03.38), and texts kept
within three of them. Before, the guard counted characters (459), so one character outside the
GSM alphabet ("…" of the cut itself, a curly quote, "ł" of a name) sent the text as seven parts."""

import re
from datetime import UTC, datetime

import pytest

from core.kernel.money import ClinicFormat
from core.messaging import notify, sms_parts

LINK = "https://clinic.example.org/patient?p=confirm&t=" + "Zq7" * 14 + "x"  # a real one's length


@pytest.mark.parametrize(
    ("text", "count", "gsm", "units"),
    [
        ("a" * 160, 1, True, 160),
        ("a" * 161, 2, True, 161),
        ("é" * 306, 2, True, 306),  # é, ñ, ü, Ç are in the GSM alphabet
        ("a" * 307, 3, True, 307),
        ("a" * 459, 3, True, 459),
        ("€" * 80, 1, True, 160),  # the extension table's characters count two
        ("€" * 81, 2, True, 162),
        ("a" * 152 + "€" + "a" * 152, 3, True, 306),  # 306 septets, yet an escape is not split
        ("ł" * 70, 1, False, 70),
        ("a" * 100 + "ł", 2, False, 101),  # one "ł" makes every part 67 characters
        ("a" * 200 + "\u2026", 3, False, 201),
        ("\U0001f600" * 35, 1, False, 70),  # an emoji is a surrogate pair: two units
        ("\U0001f600" * 36, 2, False, 72),
        ("a" * 66 + "\U0001f600" + "a" * 66, 3, False, 134),  # a pair is not split
    ],
)
def test_a_texts_parts_are_counted_by_its_alphabet(text, count, gsm, units):
    counted = sms_parts.parts(text)
    assert (counted.count, counted.gsm, counted.units) == (count, gsm, units)


def test_a_long_text_with_a_name_outside_the_gsm_alphabet_fits_three_parts_link_whole():
    text = f"Dear Łucja Wróbel, please read this first: {LINK}" + " Thank you, see you." * 20
    fitted = notify.fit_text(text)
    counted = sms_parts.parts(fitted)
    assert counted.count == 3 and counted.outside == ("Ł", "ó")  # the name's letters kept
    assert LINK in fitted.split() and fitted.endswith(" ...")
    assert notify.fit_text("ł" * 300) == "ł" * 197 + " ..."  # 201 units, the cut's GSM "..."


def test_the_practices_wording_goes_in_gsm_equivalents_but_a_name_keeps_its_letters():
    template = notify.Template(
        "Your visit", "", "", "{clinic_name}: don\u2019t forget \u2013 \u201c{when}\u201d\u2026"
    )
    when = ClinicFormat(locale="en-US").moment(datetime(2026, 12, 1, 14, 30, tzinfo=UTC))
    assert "\u202f" in when  # "2:30 PM" with a narrow no-break space
    text = notify.render_sms(template, {"clinic_name": "Zdrowie Łódź", "when": when})
    assert text == f'Zdrowie Łódź: don\'t forget - "{when.replace(chr(0x202F), " ")}"...'
    assert sms_parts.parts(text).outside == ("Ł", "ó", "ź")


@pytest.mark.parametrize("locale", ["en-GB", "en-US", "de-DE"])
def test_every_built_in_templates_sample_text_is_pure_gsm(locale):
    """The one exception: the clinic's daily digest, whose items carry "·" and which only ever
    goes to the clinic's inbox by email (core.messaging.clinic_events)."""
    fmt = ClinicFormat(locale=locale, currency="EUR")
    outside = {}
    for key, template in notify.TEMPLATES.items():
        text = notify.preview_typed_text(key, template, template.subject, template.body, fmt)
        counted = sms_parts.parts(text)
        assert counted.count <= 3, key
        if not counted.gsm:
            outside[key] = counted.outside
    assert outside == {"clinic_digest": ("·",)}


def test_the_editor_says_how_many_parts_and_why_a_text_costs_more():
    assert (
        sms_parts.describe("a" * 200) == "2 parts (200 characters in the GSM alphabet, 153 a part)"
    )
    assert re.fullmatch(
        r'1 part \(12 characters\): "ł", "\U0001f600" are outside the GSM alphabet, so the '
        r"whole text goes in UCS-2, 70 characters a part",
        sms_parts.describe("Paweł \U0001f600 hi!"),
    )


def test_a_text_cut_at_the_end_of_its_link_ends_there_when_the_cut_mark_would_cost_a_part():
    """Before, " ..." went after the link however little room was left: 199 units that fit
    three UCS-2 parts went as 203, four."""
    head = "ł" * (201 - len(LINK) - 3) + " " + LINK  # 199 units
    fitted = notify.fit_text(head + " and a sentence after the link")
    assert fitted == head and sms_parts.parts(fitted).count == 3
    roomy = "ł" * 50 + " " + LINK
    cut = notify.fit_text(roomy + " and a sentence" * 20)  # room left: the mark says so
    assert cut.startswith(roomy + " and a") and cut.endswith(" ...")
    assert sms_parts.parts(cut).count == 3
