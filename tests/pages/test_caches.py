"""Cached reads by domain (ui.caches): an action clears only what its service can change."""

from __future__ import annotations

import ast
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


SOURCE = (
    "from ui import caches\n"
    "@caches.cached('users', ttl=600, max_entries=5)\n"
    "def read(key):\n"
    "    seen.append(key)\n"
    "    return key * 2\n"
)
PAGE = compile(SOURCE, "page.py", "exec")


def test_a_page_rerun_keeps_its_cached_reads_wrapper_and_their_values():
    """A page script defines its cached reads again on every run from the same compiled code:
    the wrapper and its cache are the first run's."""
    seen: list[int] = []
    first, second = {"seen": seen}, {"seen": []}
    exec(PAGE, first)  # noqa: S102  (a page run)
    exec(PAGE, second)  # noqa: S102  (the next run)
    assert second["read"] is first["read"]
    first["read"].clear()
    assert (second["read"](2), second["read"](2), first["read"](3)) == (4, 4, 6)
    assert seen == [2, 3]  # computed once per argument, by whichever run asked first
    assert second["read"] in caches._REGISTRY["users"].values()  # noqa: SLF001
    caches.clear("users")
    assert second["read"](2) == 4 and seen == [2, 3, 2]


def test_a_closure_or_other_settings_get_a_wrapper_of_their_own():
    def made(limit: int):
        @caches.cached("users", ttl=600, max_entries=5)
        def read(key: int) -> int:
            return min(key, limit)

        return read

    assert made(1) is not made(1)  # a closure: never reused
    page = {"seen": []}
    exec(PAGE, page)  # noqa: S102
    function = page["read"].__wrapped__
    assert caches.cached("users", ttl=60, max_entries=5)(function) is not page["read"]


def test_a_pages_cached_reads_use_only_arguments_imports_and_constants():
    """The first run's function object answers for every later run (cached() keeps its
    wrapper), so a page's cached read may not read a name the page assigns on each run, unless
    it is a constant (UPPER_CASE, the same every run)."""
    for path in sorted((ROOT / "app_pages").glob("*.py")):
        tree = ast.parse(path.read_text())
        assigned = {
            name.id
            for node in tree.body
            if not isinstance(node, (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.ClassDef))
            for name in ast.walk(node)
            if isinstance(name, ast.Name) and isinstance(name.ctx, ast.Store)
        }
        for node in tree.body:
            if isinstance(node, ast.FunctionDef) and any(
                "cached" in ast.unparse(d) for d in node.decorator_list
            ):
                args = node.args
                own = {a.arg for a in args.posonlyargs + args.args + args.kwonlyargs}
                own |= {
                    n.id
                    for n in ast.walk(node)
                    if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)
                }
                read = {n.id for n in ast.walk(node) if isinstance(n, ast.Name)} - own
                per_run = {name for name in read & assigned if not name.isupper()}
                assert not per_run, f"{path.name}: {node.name} reads {per_run}"


def test_two_pages_reads_of_one_name_are_both_cleared():
    """Every page script's module is __main__: two pages' `_rows` are told apart by file."""
    pages = {}
    for body, name in (("key * 2", "page_a.py"), ("-key", "page_b.py")):  # one name, two reads
        pages[name] = {"seen": []}
        exec(compile(SOURCE.replace("key * 2", body), name, "exec"), pages[name])  # noqa: S102
    a, b = pages["page_a.py"], pages["page_b.py"]
    a["read"](5), b["read"](5)
    a["read"](5), b["read"](5)
    assert (a["seen"], b["seen"]) == ([5], [5])
    caches.clear("users")
    a["read"](5), b["read"](5)
    assert (a["seen"], b["seen"]) == ([5, 5], [5, 5])
