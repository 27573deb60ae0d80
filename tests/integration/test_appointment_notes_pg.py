"""Appointment notes on a real PostgreSQL: two staff adding one at once keep both."""

from tests.unit.test_appointment_notes import (  # noqa: F401
    test_a_note_added_keeps_the_earlier_ones_and_is_the_latest_text,
    test_an_imported_note_is_cleaned_as_typed_text_is,
    test_two_staff_adding_a_note_at_once_both_keep_theirs,
)
