"""Inbound text messages: who may post them, and what a reply means.

Two ways in, both on `/_clinicdesk/sms/inbound` (serve.py):
- the HTTP adapter's own format: JSON `{"from", "text", "id"}` with the shared secret in the
  `X-ClinicDesk-Secret` header (SMS_INBOUND_SECRET);
- Twilio's webhook (form fields `From`, `Body`, `MessageSid`) signed in `X-Twilio-Signature`
  with the account's auth token (TWILIO_AUTH_TOKEN): base64 of HMAC-SHA1 over the full URL
  followed by each POST field's name and value, sorted by name.
Both comparisons are constant-time. What a reply means is `parse_reply`.

Opting out: the carriers' standard opt-out words (CTIA's STOP, STOPALL, UNSUBSCRIBE, END, QUIT,
Twilio's OPTOUT and REVOKE, and STOPP, German's and the Nordic languages' STOP), in any case and
with a full stop or "!" ("Stop.", "stopp!"), withdraw the patient's consent to texts, and START
or UNSTOP gives it back (core.portal.replies); HELP or INFO is answered with who is texting
and how to reach and stop them (every number gets it: it names only the practice) — except
CANCEL, a standard opt-out word that here means "cancel my appointment" (the reminders say so),
and YES, a standard opt-in word that here confirms. A provider that applies the standard list
itself (Twilio's Advanced Opt-Out) may still block texts to a number that sent CANCEL; its own
list is set in the provider's console.
"""

from __future__ import annotations

import base64
import enum
import hashlib
import hmac
import re
from collections.abc import Mapping

CONFIRM_WORDS = frozenset({"C", "YES", "Y", "CONFIRM"})
CANCEL_WORDS = frozenset({"X", "CANCEL"})
STOP_WORDS = frozenset(
    {"STOP", "STOPALL", "UNSUBSCRIBE", "END", "QUIT", "OPTOUT", "REVOKE", "STOPP"}
)
START_WORDS = frozenset({"START", "UNSTOP"})
HELP_WORDS = frozenset({"HELP", "INFO"})


class Intent(enum.StrEnum):
    CONFIRM = "confirm"
    CANCEL = "cancel"
    STOP = "stop"  # no more text messages
    START = "start"  # text messages again
    HELP = "help"  # who is texting, and how to stop it (the carriers expect an answer)
    OTHER = "other"


def parse_reply(text: str) -> Intent:
    """ "C"/"YES" confirm and "X"/"CANCEL" cancel (any case, surrounding punctuation and spaces
    ignored); the opt-out and opt-in words (see the module) stop and restart texts, also
    written in two ("STOP ALL", "OPT OUT"); any other text, including a longer sentence, is for
    a person to read."""
    word = re.sub(r"[^A-Za-z]", "", (text or "").strip()).upper()
    if word in STOP_WORDS and len((text or "").split()) <= 2:
        return Intent.STOP
    if word in START_WORDS and len((text or "").split()) <= 2:
        return Intent.START
    if word in HELP_WORDS and len((text or "").split()) == 1:
        return Intent.HELP
    if len((text or "").split()) > 1:
        return Intent.OTHER
    if word in CONFIRM_WORDS:
        return Intent.CONFIRM
    if word in CANCEL_WORDS:
        return Intent.CANCEL
    return Intent.OTHER


def shared_secret_ok(given: str | None, expected: str) -> bool:
    if not expected or not given:
        return False
    return hmac.compare_digest(given.encode(), expected.encode())


def twilio_signature(url: str, params: Mapping[str, str], auth_token: str) -> str:
    payload = url + "".join(f"{k}{params[k]}" for k in sorted(params))
    digest = hmac.new(auth_token.encode(), payload.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def twilio_signature_ok(
    url: str, params: Mapping[str, str], signature: str | None, auth_token: str
) -> bool:
    if not auth_token or not signature:
        return False
    expected = twilio_signature(url, params, auth_token)
    return hmac.compare_digest(expected.encode(), signature.encode())


def twiml(answer: str) -> str:
    """Twilio's reply document: one message back, or none."""
    if not answer:
        return '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'
    escaped = answer.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return (
        f'<?xml version="1.0" encoding="UTF-8"?><Response><Message>{escaped}</Message></Response>'
    )
