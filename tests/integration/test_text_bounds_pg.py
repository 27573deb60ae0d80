"""The typed-text rule on a real PostgreSQL (which refuses NUL and over-long values itself)."""

from tests.unit.test_text_bounds import *  # noqa: F403
