"""The risk model's tests again, on PostgreSQL (the fitting child, its claim and the scoring
runs' leases included)."""

from tests.unit.test_risk import *  # noqa: F403
