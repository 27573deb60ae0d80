"""The sender's quiet-hours tests (migration 0010, the batch's decisions) again on PostgreSQL."""

from tests.unit.test_quiet import *  # noqa: F403
