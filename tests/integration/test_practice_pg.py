"""The practice set-up tests, the one-laser race included, again on a real PostgreSQL."""

from tests.unit.test_practice import *  # noqa: F403
