"""How a patient's email address is checked and stored (email-validator, lower-cased): by an
edit, a new record (core.patients.records) and a merge taking the duplicate's
(core.patients.merge), so each stores what the sender accepts."""

from __future__ import annotations

from email_validator import EmailNotValidError, validate_email

from core.kernel.errors import ValidationError
from core.kernel.text import clean


def email_address(typed: str | None) -> str | None:
    """An email address the sender can send to (the same check, email-validator's), lower-cased
    as stored, or None when blank."""
    email = (clean(typed, field="email address", limit=254) or "").strip().lower() or None
    if email:
        try:
            validate_email(
                email, check_deliverability=False, globally_deliverable=False, test_environment=True
            )
        except EmailNotValidError as error:
            raise ValidationError(
                f"{email!r} is not an email address: {error} Type it like name@example.org."
            ) from None
    return email
