"""A visit's calendar file, attached and offered, on PostgreSQL."""

from tests.unit.test_visit_calendar import *  # noqa: F403
