"""The portal tests again on PostgreSQL."""

from tests.unit.test_portal import *  # noqa: F403
