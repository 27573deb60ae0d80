"""The forms tests again on PostgreSQL."""

from tests.unit.test_forms import *  # noqa: F403
