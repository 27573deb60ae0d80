"""The payments tests again on PostgreSQL (webhook races included)."""

from tests.unit.test_payments import *  # noqa: F403
