"""The waitlist tests (the accept race included) and the risk tests again, on PostgreSQL."""

from tests.unit.test_risk import *  # noqa: F403
from tests.unit.test_waitlist import *  # noqa: F403
