"""A database error names the statement, never the values bound to it: those are patient data,
a message's text with its live link, a password's hash. An unexpected error is logged whole
(ui.context.show_error, the jobs loop), so its message must not carry them."""

from __future__ import annotations

import pytest
from sqlalchemy.exc import IntegrityError

from db.models import Channel, Notification

SECRET = "https://clinic.example.org/patient?p=proposal&t=Zq7-live-token-of-the-patient"


def test_a_database_error_carries_no_bound_value(db):
    with pytest.raises(IntegrityError) as failed, db.write() as session:
        session.add(
            Notification(
                patient_id=10**6,  # no such patient: the foreign key refuses the row
                channel=Channel.EMAIL,
                template="appointment_proposed",
                to_address="alex.private@example.org",
                subject="Your proposed time",
                body=f"Answer here: {SECRET}",
            )
        )
        session.flush()
    said = str(failed.value)
    assert "INSERT INTO notifications" in said  # the statement is still named
    assert SECRET not in said and "alex.private@example.org" not in said
