"""The clock-change tests again, on PostgreSQL (the analytics' local day and hour are SQL
arithmetic on epoch seconds and UTC offsets)."""

from tests.unit.test_dst import *  # noqa: F403
