"""The cash-up tests again on PostgreSQL (time zones and the date range in SQL)."""

from tests.unit.test_cashup import *  # noqa: F403
