"""Cached reads by domain (ui.caches): an action clears only what its service can change."""

from __future__ import annotations

import re

from core.kernel import accounts
from core.messaging import notify
from core.scheduling import checkin, schedules
from tests.pages.conftest import ROOT
from ui import caches

calls: dict[str, int] = {"users": 0, "appointments": 0}


@caches.cached("users", ttl=600, max_entries=5)
def _users_read(key: int) -> int:
    calls["users"] += 1
    return key


@caches.cached("appointments", "setup", ttl=600, max_entries=5)
def _appointments_read(key: int) -> int:
    calls["appointments"] += 1
    return key


def test_an_action_clears_its_domains_and_keeps_every_other_cached_read():
    _users_read(1), _appointments_read(1)
    _users_read(1), _appointments_read(1)
    assert calls == {"users": 1, "appointments": 1}
    caches.clear_for(checkin.check_in_by_code)  # a check-in changes appointments
    _users_read(1), _appointments_read(1)
    assert calls == {"users": 1, "appointments": 2}
    caches.clear_for(accounts.create_user)  # a new colleague changes the users
    _users_read(1), _appointments_read(1)
    assert calls == {"users": 2, "appointments": 2}
    caches.clear_for(schedules.set_weekly_hours)  # working hours: the set-up and availability
    _users_read(1), _appointments_read(1)
    assert calls == {"users": 2, "appointments": 3}


def test_domains_follow_the_longest_module_prefix_and_unknown_services_clear_everything():
    assert caches.domains_changed_by(notify.retry) == {"outbox", "audit"}
    assert "setup" in caches.domains_changed_by(schedules.set_weekly_hours)
    assert "setup" not in caches.domains_changed_by(checkin.check_in_by_code)
    assert caches.domains_changed_by(len) == set(caches.DOMAINS)


def test_every_cached_read_of_the_app_is_registered_with_its_domains():
    bare = [
        f"{path.relative_to(ROOT)}:{number}"
        for folder in ("app_pages", "ui")
        for path in sorted((ROOT / folder).rglob("*.py"))
        if path.name != "caches.py"
        for number, line in enumerate(path.read_text().splitlines(), start=1)
        if re.search(r"st\.cache_data\b", line)
    ]
    assert bare == []
