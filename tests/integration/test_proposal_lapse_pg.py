"""Lapsed proposals on PostgreSQL (two servers at once included)."""

from tests.unit.test_proposal_lapse import *  # noqa: F403
