"""Merging duplicate patient records again, on PostgreSQL (row locks, the race, the migration)."""

from tests.unit.test_patient_merge import *  # noqa: F403
