"""Cached reads by domain: an action clears only the reads it can have changed.

Every cached read is declared with `@cached("domain", …)` (st.cache_data underneath, shared by
every session of the process). After an action, `clear_for(service)` clears the domains that the
service's core package changes (CHANGES, longest module prefix wins; a service it does not know
clears everything, which is always correct). So a check-in does not throw away every colleague's
cached user list, audit choices or analytics set-up.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from types import CodeType
from typing import Any

import streamlit as st

from core.kernel.authz import Actor

DOMAINS = (
    "setup",  # clinics, services, providers, their hours
    "appointments",  # calendar, today, queue, appointment detail, availability, fees
    "patients",  # patient search and records, portal invitations
    "users",  # staff accounts
    "outbox",  # notifications
    "policy",  # cancellation policies
    "feedback",  # surveys and survey analytics
    "analytics",  # cancellation analytics
    "audit",  # the audit log (every action writes to it)
)

CHANGES: dict[str, frozenset[str]] = {
    "core.kernel.accounts": frozenset({"users"}),
    "core.scheduling.schedules": frozenset({"setup", "appointments"}),
    "core.scheduling": frozenset({"appointments", "patients", "outbox", "analytics", "feedback"}),
    "core.requests": frozenset({"appointments", "patients", "outbox", "analytics"}),
    "core.patients": frozenset({"patients", "appointments", "outbox"}),
    "core.policy": frozenset({"policy", "appointments", "patients", "analytics"}),
    "core.messaging": frozenset({"outbox"}),
    "core.feedback": frozenset({"feedback", "appointments", "outbox"}),
    "core.portal": frozenset({"appointments", "patients", "outbox", "analytics", "feedback"}),
    "core.practice": frozenset({"setup", "appointments", "policy", "outbox"}),
    "core.payments": frozenset({"appointments", "patients", "policy", "outbox", "analytics"}),
    "core.waitlist": frozenset({"appointments", "patients", "outbox", "analytics"}),
    "core.forms": frozenset({"appointments", "patients", "outbox"}),
    "core.messaging.preferences": frozenset({"setup", "outbox"}),
    "core.analytics": frozenset({"analytics"}),
}

# who asks, hashed by its repr (every field, as the dataclass declares them): Streamlit's own
# hashing goes through dataclasses.asdict, about 80 µs a call, and nearly every read takes it
_HASH_FUNCS = {Actor: repr}

# domain → {function's file and name: its cached wrapper}; keyed, because a page script re-runs
# (and re-decorates) on every interaction while st.cache_data keeps one cache per function
_REGISTRY: dict[str, dict[str, Any]] = defaultdict(dict)
_MADE: dict[CodeType, tuple[tuple, Any]] = {}  # compiled function → (its settings, its wrapper)


def cached(*domains: str, ttl: int, max_entries: int, show_spinner: bool | str = False):
    """st.cache_data, registered under the domains whose changes make it stale."""
    unknown = set(domains) - set(DOMAINS)
    if not domains or unknown:
        raise ValueError(f"Cached reads name their domains from {DOMAINS}; got {domains}.")

    def register(function: Callable) -> Callable:
        code, settings = function.__code__, (domains, ttl, max_entries, show_spinner)
        # a page script defines its cached reads again on every run, from the same compiled
        # code: the wrapper made the first time is kept (Streamlit would read and hash the
        # function's source anew each time). A cached read depends on its arguments, imports
        # and constants only (tests/pages/test_caches.py checks every page), so the first
        # run's function object answers as any later one would.
        made = _MADE.get(code) if function.__closure__ is None else None
        if made and made[0] == settings:
            return made[1]
        wrapped = st.cache_data(
            ttl=ttl, max_entries=max_entries, show_spinner=show_spinner, hash_funcs=_HASH_FUNCS
        )(function)
        _MADE[code] = settings, wrapped
        for domain in domains:  # by file: every page script's module is __main__
            _REGISTRY[domain][f"{code.co_filename}:{function.__qualname__}"] = wrapped
        return wrapped

    return register


def domains_changed_by(service: Callable) -> frozenset[str]:
    module = getattr(service, "__module__", "") or ""
    matches = [prefix for prefix in CHANGES if module == prefix or module.startswith(prefix + ".")]
    if not matches:
        return frozenset(DOMAINS)
    return CHANGES[max(matches, key=len)] | {"audit"}


def clear(*domains: str) -> None:
    for domain in domains:
        for function in list(_REGISTRY.get(domain, {}).values()):
            function.clear()


def clear_for(service: Callable) -> None:
    """After `service` ran (or failed half-way): clear what it may have changed."""
    clear(*domains_changed_by(service))
