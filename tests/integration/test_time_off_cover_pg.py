"""The time-off cover tests (visits and requests handled each in a savepoint, under row
locks) again, on a real PostgreSQL."""

from tests.unit.test_time_off_cover import *  # noqa: F403
