"""bench.wire, the colleagues of `python -m bench.browser --desks`, against a real server: a
session that speaks Streamlit's protocol signs in, swaps its one-time code for the cookie,
declines a request on the queue and opens the calendar and Today, and each step does on the
server what a browser's would. Without this a bench run could measure sessions that never got
past the sign-in form."""

from __future__ import annotations

import asyncio
import sqlite3
from concurrent.futures import ThreadPoolExecutor

import pytest

from bench import wire


def _run(coroutine):
    """asyncio.run in a thread of its own: Playwright's sync API, which other tests in this
    worker use, keeps an event loop running in the main thread."""
    with ThreadPoolExecutor(1) as thread:
        return thread.submit(asyncio.run, coroutine).result()


def _declined(database: str, reason: str) -> list[tuple]:
    with sqlite3.connect(database) as db:
        return db.execute(
            "SELECT status FROM appointments WHERE decline_reason = ?", (reason,)
        ).fetchall()


def test_a_wire_session_works_the_queue_script_as_a_browser_would(app_server, tmp_path):
    async def script() -> dict:
        session, shown = await wire.sign_in(app_server.url, "manager")
        try:
            seen = {"cookie": "clinicdesk_session" in session.cookies, "landed": shown.ms}
            queue = await session.run(page="queue")
            _, said = await wire.decline(session, queue, 0)
            seen["said"] = said
            for page in ("calendar", "today"):
                seen[page] = (await session.run(page=page)).failed()
            seen["component"] = any(path.startswith("/component/") for path in session._fetched)  # noqa: SLF001
            return seen
        finally:
            await session.close()

    seen = _run(script())
    assert seen["cookie"], "the one-time code was not swapped for the session cookie"
    assert seen["said"] == "Declined."
    assert _declined(str(tmp_path / "app.db"), "Bench session 0") == [("declined",)]
    assert seen["calendar"] is None and seen["today"] is None
    assert seen["component"], "the calendar's component files were not fetched"


def test_a_wire_session_with_a_wrong_password_stays_out(app_server):
    with pytest.raises(wire.WireError, match="not signed in"):
        _run(wire.sign_in(app_server.url, "manager", "not-the-password"))
