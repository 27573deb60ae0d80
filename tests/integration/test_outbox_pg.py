"""The sender's claims, two senders at once (FOR UPDATE SKIP LOCKED) and faults, on PostgreSQL."""

from tests.unit.test_notify import *  # noqa: F403
from tests.unit.test_outbox import *  # noqa: F403
