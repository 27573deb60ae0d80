"""The life-cycle and availability tests (races included) again, on a real PostgreSQL."""

from tests.unit.test_availability import *  # noqa: F403
from tests.unit.test_lifecycle import *  # noqa: F403
from tests.unit.test_queue import *  # noqa: F403
