"""Requests follow the booking rule (bulk approve, suggestions) on PostgreSQL."""

from tests.unit.test_request_booking_rule import *  # noqa: F403
