"""The audit log read again on PostgreSQL."""

from tests.unit.test_audit_log import *  # noqa: F403
