"""The two-way SMS tests again on PostgreSQL."""

from tests.unit.test_sms_replies import *  # noqa: F403
