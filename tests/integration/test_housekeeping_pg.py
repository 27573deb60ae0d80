"""Housekeeping on PostgreSQL: the same tests, two servers sweeping at once among them."""

from tests.unit.test_housekeeping import *  # noqa: F403
