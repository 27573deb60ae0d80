"""The reminders tests again on PostgreSQL."""

from tests.unit.test_reminders import *  # noqa: F403
