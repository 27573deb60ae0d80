"""The policy tests again on PostgreSQL."""

from tests.unit.test_policy import *  # noqa: F403
