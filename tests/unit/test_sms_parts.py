"""What a text message costs: its parts counted by 3GPP TS 23.038 (GSM 03.38), and texts kept
within three of them. Before, the guard counted characters (459), so one character outside the
GSM alphabet ("…" of the cut itself, a curly quote, "ł" of a name) sent the text as seven parts."""

import functools
import os
import re
from datetime import UTC, datetime, timedelta

import pytest

from core.feedback import surveys
from core.forms import after_booking
from core.kernel import tokens
from core.kernel.money import ClinicFormat
from core.kernel.times_of_day import time_of_day_label
from core.messaging import notify, sms_parts
from core.portal import sign_in
from db.models import TimeOfDay

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


# names a practice meets: Greek, Chinese, emoji (a surrogate pair each, one a ZWJ sequence),
# all outside the GSM alphabet, so the whole text goes in UCS-2 (67 characters a part)
LONG_NAMES = {
    "greek": ("Αικατερίνη-Παναγιώτα", "Παπαδοπούλου-Κωνσταντινίδου"),
    "chinese": ("欧阳诸葛慕容司马上官东方", "欧阳诸葛慕容司马上官东方西门"),
    "emoji": ("Zoë \U0001f469\u200d\U0001f469\u200d\U0001f467\U0001f338\U0001f338", "Ng"),
}
LONG_CLINIC = "Κλινική Αισθητικής και Δερματολογίας Βορείων Προαστίων Αθηνών"
LONG_ADDRESS = "Λεωφόρος Κηφισίας 123, Μαρούσι 151 24, Αθήνα"
LINKS = ("link", "confirm_link", "cancel_link", "reschedule_link")


def _long_context(first: str, last: str) -> dict[str, str]:
    return (
        notify.SAMPLE_CONTEXT
        | dict.fromkeys(LINKS, LINK)
        | {
            "first_name": first,
            "patient_name": f"{first} {last}",
            "clinic_name": LONG_CLINIC,
            "where": f"{LONG_CLINIC}, {LONG_ADDRESS}",
            "provider_name": "Dr Αλεξάνδρα Κωνσταντινοπούλου-Παπαναστασίου",
            "service_name": "Ανάλυση δέρματος και θεραπεία προσώπου με λέιζερ",
        }
    )


def _links_whole(template: notify.Template, text: str, context: dict[str, str]) -> None:
    """Every link the text form fills in is in the text whole, a word of its own."""
    wanted = [
        url
        for key, value in context.items()
        if f"{{{key}}}" in (template.sms or template.body)
        for url in re.findall(r"https?://\S+", value)
    ]
    assert wanted and all(url in text.split() for url in wanted), text


def _bare(template: notify.Template, context: dict[str, str]) -> str:
    """The text with every name and place one letter outside the GSM alphabet: the fewest
    parts its wording and links allow in UCS-2."""
    return notify.render_sms(template, context | dict.fromkeys(notify.SHORTENED, "Κ"))


@pytest.mark.parametrize("names", LONG_NAMES.values(), ids=LONG_NAMES)
@pytest.mark.parametrize("key", [k for k, t in notify.TEMPLATES.items() if t.sms])
def test_a_text_of_long_names_outside_the_gsm_alphabet_keeps_three_parts_and_its_links(names, key):
    """Before, the names before a link were never cut: the invitation went in four parts,
    the proposal in five, the waitlist offer in six, the reminder in eight. A text whose own
    wording and links need more than three UCS-2 parts goes in as few as they need."""
    template, context = notify.TEMPLATES[key], _long_context(*names)
    text = notify.render_sms(template, context)
    assert sms_parts.parts(text).count <= max(3, sms_parts.parts(_bare(template, context)).count)
    if re.search(r"\{(\w*link|forms|next_step)\}", template.sms):
        _links_whole(template, text, context)


# public addresses (settings base_url): the default, a real clinic's, a long one
ADDRESSES = (
    "http://localhost:8501",
    "https://booking.example-clinic.co.uk",
    "https://appointments.harbour-streetclinic.com",
)
TOKEN = "Zq7" * 14 + "x"  # a real token's length (tokens.issue: 32 bytes, 43 characters)
# the purpose of each text form's {link}: its length is the link's
PURPOSES = {
    "appointment_scheduled": "change",
    "appointment_proposed": "proposal",
    "portal_invitation": "enroll",
    "feedback_request": "survey",
    "waitlist_offer": "waitlist_offer",
}


def _links_of(key: str, base: str) -> dict[str, str]:
    """The links (and the lines carrying one) the callers fill in under `base`, worded as they
    word them (the thank-you's survey line, the unmatched payment's next step)."""

    def link(purpose: str) -> str:
        return tokens.link(base, purpose, TOKEN)

    return {
        "link": sign_in.sign_in_link(base, TOKEN)
        if key == "portal_sign_in"
        else link(PURPOSES.get(key, "confirm")),
        "confirm_link": link("confirm"),
        "cancel_link": link("change") + "&k=cancel",
        "reschedule_link": link("change") + "&k=reschedule",
        "survey": surveys.SURVEY_LINE.format(link=link("survey")),
        "forms": f"Consent to treatment: {link('form')}",
        "next_step": "Please pay again at the desk when you come, or in your patient portal: "
        f"{base}/portal",
    }


@pytest.mark.parametrize("base", ADDRESSES, ids=lambda base: f"{len(base)}-characters")
@pytest.mark.parametrize("names", LONG_NAMES.values(), ids=LONG_NAMES)
def test_no_built_in_text_form_goes_past_three_ucs2_parts(names, base):
    """Names outside the GSM alphabet, the links of a public address up to 45 characters.
    Before, the reminder went in seven parts with its three links (its text carries one now),
    the unmatched payment's and one form's in four; and under a real clinic's address (36
    characters) the survey request, the thank-you with its survey link and the waitlist offer
    went in four, at 45 the booking confirmation and one form's too."""
    texts = {
        key: notify.render_sms(template, _long_context(*names) | _links_of(key, base))
        for key, template in notify.TEMPLATES.items()
        if template.sms
    }
    over = {key: sms_parts.parts(text).count for key, text in texts.items()}
    assert {key: count for key, count in over.items() if count > 3} == {}
    linked = [
        k
        for k in texts
        if re.search(r"\{(\w*link|forms|survey|next_step)\}", notify.TEMPLATES[k].sms)
    ]
    assert len(linked) == 10 and all(f"{base}/" in texts[key] for key in linked)
    dated = [k for k in texts if "{when}" in notify.TEMPLATES[k].sms]  # a time is never cut
    assert "appointment_completed" in dated
    assert all(notify.SAMPLE_CONTEXT["when"] in texts[key] for key in dated)


@pytest.mark.parametrize("base", ADDRESSES, ids=lambda base: f"{len(base)}-characters")
def test_the_forms_text_in_ucs2_fits_three_parts_with_one_two_or_three_forms(base):
    """One form to complete at a Polish clinic goes in three UCS-2 parts (before, four); two or
    three forms go behind one link to the visit's list of them (core.forms.after_booking), as
    the text is filled in for them. Before, a link for each form went in as few parts as those
    links needed: five to seven."""
    titles = ["Health questionnaire", "Consent to treatment", "Before your visit"]
    polish = notify.SAMPLE_CONTEXT | {
        "clinic_name": "Łódzkie Centrum Dermatologii i Medycyny Estetycznej Śródmieście",
        "service_name": "Oczyszczanie wodorowe skóry twarzy",
        "when": "śr., 2 gru 2026, 10:30 (CET)",
    }
    template = notify.TEMPLATES["forms_to_complete"]
    for many in (1, 2, 3):
        lines = [(title, tokens.link(base, "form", TOKEN)) for title in titles[:many]]
        forms = after_booking.text_listing(lines, lambda: tokens.link(base, "visit_forms", TOKEN))
        context = polish | {"forms": forms, "forms_titles": ", ".join(titles[:many])}
        text = notify.render_sms(template, context)
        counted = sms_parts.parts(text)
        assert not counted.gsm and counted.count <= 3, (many, counted, text)
        links = re.findall(r"https?://\S+", text)
        assert text.endswith(forms) and len(links) == 1, text
        assert f"p={'form' if many == 1 else 'visit_forms'}&" in links[0]


def test_an_unmatched_card_payments_text_in_ucs2_keeps_its_facts_within_three_parts():
    """A Polish patient at a Polish clinic (its name, the złoty): the text says what was taken,
    what was due, that it is refunded to the card and what to do now, with the portal's link
    of a long address; before, its wording with the next step went in four UCS-2 parts."""
    portal = "https://bookings.harbourstreetclinic.co.uk/portal"
    next_step = f"Please pay again at the desk when you come, or in your patient portal: {portal}"
    context = notify.SAMPLE_CONTEXT | {
        "patient_name": "Łucja Żółkiewska-Brzęczyszczykiewicz",
        "clinic_name": "Łódzkie Centrum Dermatologii i Medycyny Estetycznej Śródmieście",
        "service_name": "Oczyszczanie wodorowe skóry twarzy",
        "when": "śr., 2 gru 2026, 10:30 (CET)",
        "amount": "1,00\xa0zł",
        "due": "60,00\xa0zł",
        "next_step": next_step,
    }
    text = notify.render_sms(notify.TEMPLATES["payment_not_matched"], context)
    counted = sms_parts.parts(text)
    assert not counted.gsm and counted.count <= 3, (counted, text)
    assert "1,00 zł" in text and "60,00 zł" in text and "refunded to your card" in text
    assert text.endswith(f" {next_step}") and text.startswith("Łó")


def test_the_invitation_shortens_the_clinics_name_and_the_patients_by_one_rule():
    template = notify.TEMPLATES["portal_invitation"]
    text = notify.render_sms(template, _long_context(*LONG_NAMES["greek"]))
    assert sms_parts.parts(text).count == 3 and text.endswith(f": {LINK}")
    clinic, rest = text.split(": ", 1)
    first = rest.split(",", 1)[0]
    # the longest values are cut first, to one length, each marked with "."
    assert clinic.endswith(".") and LONG_CLINIC.startswith(clinic[:-1].rstrip())
    assert first == LONG_NAMES["greek"][0]  # 20 characters: shorter than the cut
    assert len(clinic) < len(LONG_CLINIC)


def test_an_emoji_name_is_never_cut_inside_its_sequence():
    family = "\U0001f469\u200d\U0001f469\u200d\U0001f467"
    assert notify.shorten(f"Zoë {family}{family}", 6) in {f"Zoë {family}.", "Zoë."}
    assert notify.shorten("Αικατερίνη-Παναγιώτα", 10) == "Αικατερίνη."
    assert notify.shorten("Dr Αλεξάνδρα Κωνσταντινοπούλου", 20) == "Dr Αλεξάνδρα."
    assert notify.shorten("Short", 10) == "Short"
    assert notify.shorten(f"{family} Ng", 2) == f"{family}."  # one sign longer than the cut
    assert notify.shorten("\U0001f1ec\U0001f1f7\U0001f1e9\U0001f1ea", 3) == "\U0001f1ec\U0001f1f7."


def test_an_edited_template_without_its_own_text_form_also_shortens_its_names():
    edited = notify.Template(
        "Invitation to the {clinic_name} portal",
        "Dear {patient_name}, you are invited to the {clinic_name} patient portal. Enrol "
        "here: {link}",
        "",
    )
    text = notify.render_sms(edited, _long_context(*LONG_NAMES["chinese"]))
    assert sms_parts.parts(text).count <= 3 and text.endswith(LINK)


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


def test_a_name_typed_with_a_separate_accent_goes_in_the_gsm_alphabet_as_the_same_letter():
    """'José' pasted from a file name or a Mac's clipboard is 'Jose' and a combining acute
    (NFD), outside the GSM alphabet: the whole text went in UCS-2, 67 characters a part. Its
    composed form (NFC, the same letters) is 'é', in the GSM alphabet."""
    template = notify.Template("", "", "", "{clinic_name}: {first_name}, your portal: {link}")
    text = notify.render_sms(
        template, {"clinic_name": "Clinic", "first_name": "Jose\u0301 Mun\u0303oz", "link": LINK}
    )
    assert text == f"Clinic: Jos\u00e9 Mu\u00f1oz, your portal: {LINK}"
    assert sms_parts.parts(text).gsm


@pytest.mark.parametrize("locale", ["en-GB", "en-US"])
@pytest.mark.parametrize("key", ["request_received", "appointment_declined"])
def test_a_text_with_a_time_of_day_filled_in_goes_in_the_gsm_alphabet(key, locale):
    """A request's time of day is written with its hours, 'morning (9:00\u201312:00)': the en
    dash filled in sent the whole text in UCS-2, 70 characters a part instead of 160 (the
    values' no-break spaces were made plain, their dashes not). A value's dash goes as a hyphen
    in a text; the email keeps it."""
    fmt = ClinicFormat(locale=locale)
    moment = time_of_day_label(TimeOfDay.MORNING, locale, in_text=True)
    when = f"{fmt.day(datetime(2026, 12, 7).date())}, {moment}"
    assert "\u2013" in when
    context = {
        "clinic_name": "Harbour Street",
        "patient_name": "Alex Morgan",
        "service_name": "Consultation",
        "when": when,
        "reason": "Fully booked",
    }
    template = notify.TEMPLATES[key]
    text = notify.render_sms(template, context)
    assert sms_parts.parts(text).gsm, text
    assert sms_parts.gsm_wording(when).replace("\u202f", " ") in text  # 9:00-12:00
    assert when in notify.render(template, context)[1]  # the email as written


# clinics whose times, as the callers write them (with the zone), run long: the longest of a
# year of days and times in each, for the clinic's zone
LONG_TIME_LOCALES = {
    "el-GR": "Europe/Athens",
    "pt-BR": "America/Sao_Paulo",
    "de-DE": "Europe/Berlin",
    "en-US": "America/New_York",
    "en-GB": "Europe/London",
}


@functools.cache
def _longest_times(locale: str) -> tuple[str, str, str]:
    """The longest visit time, day and clock time a clinic in `locale` writes in 2026."""
    fmt = ClinicFormat(timezone=LONG_TIME_LOCALES[locale], locale=locale)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    moments = [start + timedelta(days=d, hours=h) for d in range(365) for h in (8, 20)]
    when = max((fmt.moment(m, zone=True) for m in moments), key=len)
    day = max((fmt.day(m.date()) for m in moments[::2]), key=len)
    clock = max((fmt.clock(m) for m in moments[:2]), key=len)
    return when, day, clock


@pytest.mark.parametrize("names", LONG_NAMES.values(), ids=LONG_NAMES)
@pytest.mark.parametrize("locale", LONG_TIME_LOCALES)
def test_every_text_form_fits_three_parts_with_a_long_locales_time_and_a_45_character_address(
    locale, names
):
    """Names outside the GSM alphabet, a 45-character public address, and the time as a
    clinic in el-GR ('Τετ 10 Ιουν 2026, 3:30 μ.μ. (EEST)', 34 characters) or pt-BR ('sáb., 10
    de jan. de 2026 09:30 (-03)', 36) writes it, the longest of a year (en-GB's too: 'Thu, 10
    Sept 2026, 09:00 (BST)'). Before, the reminder, the thank-you with its survey link and one
    form's text went in four parts in every one of these locales (their wording, time and link
    alone needed more than three, so nothing was cut), in pt-BR the proposal too. Each still
    names the clinic (its first letters at least), the time and its link whole (a shorter text
    form where the first leaves no room, notify.Template.sms_short)."""
    when, day, clock = _longest_times(locale)
    base = ADDRESSES[-1]
    assert len(base) == 45
    for key, template in notify.TEMPLATES.items():
        if not template.sms:
            continue
        context = (
            _long_context(*names)
            | _links_of(key, base)
            | {"when": when, "proposed_when": when, "expires": day}
        )
        if key == "waitlist_offer":  # its deadline: the clock time on the day it is sent
            context["expires"] = clock
        text = notify.render_sms(template, context)
        assert sms_parts.parts(text).count <= 3, (key, sms_parts.parts(text), text)
        if "{when}" in template.sms or "{proposed_when}" in template.sms:
            assert when.replace("\u202f", " ") in text, (key, text)  # its spaces plain
        if re.search(r"\{(\w*link|forms|survey|next_step)\}", template.sms):
            urls = re.findall(r"https?://\S+", " ".join(_links_of(key, base).values()))
            assert any(url in text.split() for url in urls), (key, text)
        if "{clinic_name}" in template.sms:  # first, whole or shortened (marked with ".")
            named = os.path.commonprefix([text, LONG_CLINIC])
            assert named and text[len(named)] in ".:", (key, text)
