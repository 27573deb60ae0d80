"""The brute-force analytics checks again on PostgreSQL."""

from tests.unit.test_analytics_brute import *  # noqa: F403
