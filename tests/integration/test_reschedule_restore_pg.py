"""A reschedule's original time put back in time off is told to the clinic, on PostgreSQL."""

from tests.unit.test_reschedule_restore import *  # noqa: F403
