"""The feedback-request and survey tests again on PostgreSQL (races included)."""

from tests.unit.test_surveys import *  # noqa: F403
