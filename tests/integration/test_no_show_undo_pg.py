"""Undoing a no-show again, on a real PostgreSQL (the race included)."""

from tests.unit.test_no_show_undo import *  # noqa: F403
