"""The ASGI app that `streamlit run serve.py` serves: app.py, two small routes that set and clear
the HttpOnly session cookie (a script cannot set HttpOnly cookies itself), the inbound SMS route
(ui.webhooks), and the background loop that runs core.jobs (delivering the notification outbox,
reminders and forms among them)."""

import asyncio
import logging
from contextlib import asynccontextmanager

import streamlit as st
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from core import jobs
from core.kernel import accounts
from core.kernel.config import load_settings
from core.kernel.errors import DomainError
from core.startup import open_database
from ui.auth import COOKIE
from ui.webhooks import sms_route

log = logging.getLogger("clinicdesk.serve")
_database = None


def _db():
    global _database
    if _database is None:
        _database = open_database(load_settings())
    return _database


def _exchange(code: str) -> str | None:
    with _db().write() as session:
        return accounts.exchange_handoff(session, code)


def _end(cookie: str | None) -> None:
    with _db().write() as session:
        resumed = accounts.resume_session(session, cookie, load_settings().idle_minutes)
        if resumed:
            accounts.end_session(session, resumed[1])


async def set_session(request: Request) -> Response:
    code = str((await request.form()).get("code", ""))
    cookie = await run_in_threadpool(_exchange, code) if code else None
    if cookie is None:
        return Response("invalid or expired sign-in code", status_code=400)
    response = Response(status_code=204)
    response.set_cookie(
        COOKIE,
        cookie,
        httponly=True,
        samesite="strict",
        path="/",
        secure=request.url.scheme == "https",
        max_age=30 * 24 * 3600,
    )
    return response


async def end_session(request: Request) -> Response:
    await run_in_threadpool(_end, request.cookies.get(COOKIE))
    response = Response(status_code=204)
    response.delete_cookie(COOKIE, path="/")
    return response


async def _background_jobs(seconds: float) -> None:
    while True:
        try:
            await run_in_threadpool(jobs.run_due, _db(), load_settings())
        except DomainError as error:  # database down or a bad setting: say it once a round
            log.error("background jobs paused: %s", error)
        await asyncio.sleep(seconds)


def _job_seconds() -> float:
    try:
        return load_settings().job_seconds
    except DomainError as error:  # the page says the same; the loop stays off
        log.error("background jobs off: %s", error)
        return 0


@asynccontextmanager
async def lifespan(_app):
    seconds = _job_seconds()
    task = asyncio.create_task(_background_jobs(seconds)) if seconds > 0 else None
    yield
    if task:
        task.cancel()


app = st.App(
    "app.py",
    lifespan=lifespan,
    routes=[
        Route("/_clinicdesk/session", set_session, methods=["POST"]),
        Route("/_clinicdesk/signout", end_session, methods=["POST"]),
        sms_route(_db, load_settings),  # text replies to reminders (issue 15)
    ],
)
