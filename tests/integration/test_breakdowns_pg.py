"""The breakdown and drill-down tests again on PostgreSQL."""

from tests.unit.test_breakdowns import *  # noqa: F403
