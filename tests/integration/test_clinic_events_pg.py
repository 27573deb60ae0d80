"""The clinic notification tests again on PostgreSQL."""

from tests.unit.test_clinic_events import *  # noqa: F403
