"""A new patient pressed twice, on PostgreSQL (two presses at once included)."""

from tests.unit.test_new_patient_twice import *  # noqa: F403
