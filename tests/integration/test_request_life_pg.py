"""The request queue's life cases on PostgreSQL (two presses at once wait for each other)."""

from tests.unit.test_request_life import *  # noqa: F403
