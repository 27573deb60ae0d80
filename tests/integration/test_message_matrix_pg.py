"""Who hears of what (tests/unit/test_message_matrix.py) again, on PostgreSQL."""

from tests.unit.test_message_matrix import *  # noqa: F403
