"""The calendar, schedules, check-in and booking tests again, on PostgreSQL."""

from tests.unit.test_booking import *  # noqa: F403
from tests.unit.test_calendar import *  # noqa: F403
from tests.unit.test_checkin import *  # noqa: F403
from tests.unit.test_schedules import *  # noqa: F403
