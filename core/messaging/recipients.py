"""Whom a message to a patient reaches, and on which channel: the one rule a first send
(notify.channels_for, when a message is queued) and every send of the outbox (the sender, each
attempt, core.messaging.delivery) apply, so a message that waited goes only where one queued
now would go.

Nothing goes to a record merged into another (core.patients.merge); a channel needs an address
on the record and the patient's consent to it; a text needs a number that is no landline for
the practice (core.kernel.phones.landline): none would arrive. A message goes to the address
or number on its patient's record now (`address`). The sender reads, with each message's claim,
only the patient's fields these rules read (delivery._READ_OF_PATIENT): a rule reading another
one names it there too.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import object_session

from core.kernel import phones
from db.models import Channel, Patient, StopKind


@dataclass(frozen=True)
class Unreachable:
    """Why a patient cannot be reached on a channel now: `why` in words for the screen ("no
    consent to email"), `kind` what a retry of a message stopped for it may do
    (db.models.StopKind), `fix` what a person does about it ("" when nothing), `again` the
    words a person's retry of such a message is refused with (core.messaging.notify.retry)."""

    why: str
    kind: StopKind
    fix: str = ""
    again: str = ""

    @property
    def reason(self) -> str:
        """A message stopped for it: 'Not sent: no consent to email. Record …'."""
        return f"Not sent: {self.why}." + (f" {self.fix}" if self.fix else "")


def _regions(patient: Patient) -> tuple[str, ...]:
    """Where the patient's national number can belong (core.kernel.phones), read once per
    transaction: a reminders round asks for every visit's patient."""
    session = object_session(patient)
    if session is None:
        return (phones.phone_region(None),)
    if "phone_regions" not in session.info:
        session.info["phone_regions"] = phones.practice_regions(session)
    return session.info["phone_regions"]


def address(patient: Patient, channel: Channel) -> str | None:
    """The address or number on `patient`'s record for `channel`."""
    return patient.email if channel == Channel.EMAIL else patient.phone


def merged(patient: Patient) -> Unreachable | None:
    """Nothing goes to a record merged into another (core.patients.merge), on any channel."""
    if (kept := patient.merged_into_id) is None:
        return None
    fix = "Send a new message from the record kept if they need one."
    return Unreachable(
        f"the record was merged into #{kept}",
        StopKind.PURPOSE,
        fix,
        f"{patient.full_name}'s record was merged into #{kept}: this message cannot be sent again "
        f"from it. {fix}",
    )


def unreachable(
    patient: Patient,
    channel: Channel,
    *,
    needs_consent: bool = True,
    regions: tuple[str, ...] | None = None,
) -> Unreachable | None:
    """Why a message to `patient` cannot go on `channel` now, or None when it can. `regions`:
    the practice's (core.kernel.phones.practice_regions) when the caller read them already."""
    if (refused := merged(patient)) is not None:
        return refused
    name, to = patient.full_name, address(patient, channel)
    if not to:
        what = "email address" if channel == Channel.EMAIL else "phone number"
        return Unreachable(
            f"no {what}",
            StopKind.REFUSED,
            f"Add one to {name}'s record, then retry.",
            f"{name} has no {what} on their record now: add it there, then retry.",
        )
    consent = patient.consent_email if channel == Channel.EMAIL else patient.consent_sms
    if needs_consent and not consent:
        what = "email" if channel == Channel.EMAIL else "text messages"
        return Unreachable(
            f"no consent to {what}",
            StopKind.CONSENT,
            f"Record {name}'s consent on their record if they give it back, then retry.",
            # withdrawn since it was queued (a STOP reply, say)
            f"{name} has withdrawn consent to {what}; this message cannot be sent again. Record "
            "their consent on the patient's page first if they gave it back.",
        )
    if channel == Channel.SMS and phones.landline(to, regions or _regions(patient)):
        why, fix = (
            phones.not_for_texts(to),
            f"Add {name}'s mobile number to their record, then retry.",
        )
        return Unreachable(why, StopKind.REFUSED, fix, f"{why}. {fix}")
    return None


def channels_for(
    patient: Patient, *, needs_consent: bool = True
) -> tuple[list[Channel], list[str]]:
    """The channels a message to `patient` can go on, and why each other one is skipped. A
    landline kept on file with text consent (from before the check, or imported) gets no text:
    none would arrive."""
    if (refused := merged(patient)) is not None:
        return [], [refused.why]
    usable, skipped = [], []
    for channel in (Channel.EMAIL, Channel.SMS):
        refused = unreachable(patient, channel, needs_consent=needs_consent)
        if refused is None:
            usable.append(channel)
        else:
            skipped.append(refused.why)
    return usable, skipped
