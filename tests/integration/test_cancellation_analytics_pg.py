"""The cancellation_analytics tests again on PostgreSQL."""

from tests.unit.test_cancellation_analytics import *  # noqa: F403
