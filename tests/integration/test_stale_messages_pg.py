"""Stale forms and survey messages stopped before they go, on PostgreSQL."""

from tests.unit.test_stale_messages import *  # noqa: F403
