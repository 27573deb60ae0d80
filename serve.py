"""The ASGI app that `streamlit run serve.py` serves: app.py, small routes that set and clear
the HttpOnly session cookies (a script cannot set HttpOnly cookies itself) — the staff session
and, separately, the patient portal's — the inbound SMS route (ui.webhooks), the payment
provider's webhook, and the background loop that runs core.jobs (delivering the notification
outbox, reminders and forms among them)."""

import asyncio
import functools
import gc
import hashlib
import html
import logging
import socket
from contextlib import asynccontextmanager
from urllib.parse import urlsplit

import streamlit as st
import uvicorn
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from core import jobs
from core.kernel import accounts
from core.kernel.config import load_settings
from core.kernel.errors import DomainError, LinkInvalid
from core.payments import providers, webhooks
from core.portal import sign_in as portal_sign_in
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


def cross_site(headers) -> bool:
    """Whether a browser sent this request from another site. A page elsewhere must not post a
    sign-in code or link of its author's to these routes (login CSRF: the visitor would work
    signed in as someone else); SameSite only governs when a cookie is sent, not whether it may
    be set. Browsers send Sec-Fetch-Site with every request, older ones at least Origin with a
    POST; a request with neither is no browser's cross-site form."""
    site = headers.get("sec-fetch-site")
    if site is not None:
        return site not in ("same-origin", "none")
    origin = headers.get("origin")
    if origin is None:
        return False
    # the host alone: a proxy may pass on Host without the port (nginx's $host)
    return urlsplit(origin).hostname != urlsplit(f"//{headers.get('host', '')}").hostname


def same_site_only(route):
    """The route, refusing a request `cross_site` finds came from another site."""

    @functools.wraps(route)
    async def guarded(request: Request) -> Response:
        if cross_site(request.headers):
            return Response("refused: this request came from another site", status_code=403)
        return await route(request)

    return guarded


def cookie_secure(request: Request) -> bool:
    """Whether a session cookie is sent over HTTPS only: when this request came over HTTPS, or
    when the practice's public address (CLINICDESK_BASE_URL) is https. Behind a proxy that
    ends TLS and passes on plain HTTP (X-Forwarded-Proto http, or none), the request alone
    looks like http: the cookie went without Secure, and a browser would send it in clear
    to any http:// address of the same host."""
    return request.url.scheme == "https" or load_settings().base_url.startswith("https://")


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
        secure=cookie_secure(request),
        max_age=30 * 24 * 3600,
    )
    return response


async def end_session(request: Request) -> Response:
    await run_in_threadpool(_end, request.cookies.get(COOKIE))
    response = Response(status_code=204)
    response.delete_cookie(COOKIE, path="/")
    return response


# ---------------------------------------------------------------- patient portal

_PORTAL_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>Patient portal</title>
<style>body{{font-family:system-ui,sans-serif;max-width:32rem;margin:4rem auto;padding:0 1rem}}
button{{font-size:1.1rem;padding:.6rem 1.2rem;border-radius:.4rem;border:0;background:#2e7d32;
color:#fff;cursor:pointer}}</style></head><body><h1>Patient portal</h1>{body}</body></html>"""


def _portal_page(body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(_PORTAL_PAGE.format(body=body), status_code=status)


async def portal_sign_in_form(request: Request) -> Response:
    """The emailed link opens this page; only its button (a POST) uses the one-time token, so a
    mail scanner that follows links cannot spend it."""
    token = html.escape(request.query_params.get("t", ""), quote=True)
    return _portal_page(
        f'<form method="post"><input type="hidden" name="t" value="{token}">'
        "<p>Sign in to see your appointments, pay, answer surveys and more.</p>"
        '<button type="submit">Sign in to my portal</button></form>'
    )


def _portal_start(raw: str, signed_in: str | None) -> str | None:
    """The cookie of a new portal session for a live link, or of the browser's own session for
    its patient's spent link tapped again (`signed_in_already`); None for a dead link."""
    try:
        with _db().write() as session:
            return portal_sign_in.start_session(session, raw)
    except LinkInvalid:
        pass
    idle = load_settings().portal_idle_minutes
    with _db().write() as session:
        again = portal_sign_in.signed_in_already(session, raw, signed_in, idle)
    return signed_in if again else None


async def portal_open_session(request: Request) -> Response:
    raw = str((await request.form()).get("t", ""))
    signed_in = request.cookies.get(portal_sign_in.COOKIE)
    cookie = await run_in_threadpool(_portal_start, raw, signed_in) if raw else None
    if cookie is None:
        return _portal_page(
            "<p>This sign-in link is not valid any more (each works once, for "
            f"{portal_sign_in.SIGN_IN_MINUTES} minutes).</p>"
            '<p><a href="/portal">Ask for a new sign-in link</a></p>',
            status=400,
        )
    response = RedirectResponse("/portal", status_code=303)
    response.set_cookie(
        portal_sign_in.COOKIE,
        cookie,
        httponly=True,
        samesite="strict",
        path="/",
        secure=cookie_secure(request),
    )  # a browser-session cookie; the server ends it after the idle limit
    return response


def _portal_end(cookie: str | None) -> None:
    with _db().write() as session:
        portal_sign_in.end_session(session, portal_sign_in.session_id_for(session, cookie))


async def portal_sign_out(request: Request) -> Response:
    await run_in_threadpool(_portal_end, request.cookies.get(portal_sign_in.COOKIE))
    response = Response(status_code=204)
    response.delete_cookie(portal_sign_in.COOKIE, path="/")
    return response


def _apply_webhook(payload: bytes, signature: str | None) -> str:
    provider = providers.provider_for(load_settings().stripe)
    with _db().write() as session:
        return webhooks.handle(session, provider, payload, signature)


async def stripe_webhook(request: Request) -> Response:
    """Stripe's events: verified with the endpoint secret, each applied once."""
    if load_settings().stripe is None:
        return Response("no payment provider configured", status_code=404)
    payload = await request.body()
    try:
        outcome = await run_in_threadpool(
            _apply_webhook, payload, request.headers.get("stripe-signature")
        )
    except DomainError as error:
        return Response(str(error), status_code=400)
    return Response(outcome, status_code=200)


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


# ---------------------------------------------------------------- static files


class StaticFilesInMemory:
    """Streamlit's static files (content-hashed names under /static/, unchanged while the
    server runs) kept in memory after their first answer. A browser with a cold cache asks for
    about sixty at sign-in; each otherwise goes through the whole middleware stack, a stat, an
    open and threaded reads on the event loop that also sends every session its pages. Only a
    plain GET answered 200 is kept, with its headers; a conditional or ranged request, and
    anything else, goes through as before."""

    PREFIX = "/static/"
    LIMIT = 64 * 1024 * 1024  # bytes kept in all (Streamlit's own files are about 15 MB)
    PASS = (b"range", b"if-none-match", b"if-modified-since")

    def __init__(self, app) -> None:
        self.app = app
        self.files: dict[str, tuple[int, list, bytes]] = {}
        self.size = 0

    async def __call__(self, scope, receive, send) -> None:
        path = scope.get("path", "")
        if (
            scope["type"] != "http"
            or scope["method"] != "GET"
            or not path.startswith(self.PREFIX)
            or any(name in self.PASS for name, _ in scope["headers"])
        ):
            await self.app(scope, receive, send)
            return
        if kept := self.files.get(path):
            status, headers, body = kept
            await send({"type": "http.response.start", "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return
        start, chunks = {}, []

        async def keep(message) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
                if not message.get("more_body"):
                    self._keep(path, start, b"".join(chunks))
            await send(message)

        await self.app(scope, receive, keep)

    def _keep(self, path: str, start: dict, body: bytes) -> None:
        headers = list(start.get("headers", []))
        varies = any(name in (b"vary", b"content-encoding") for name, _ in headers)
        too_big = self.size + len(body) > self.LIMIT
        # two first requests for one file can both end here: the second is not counted again
        if start.get("status") != 200 or varies or too_big or path in self.files:
            return
        self.files[path] = (200, headers, body)
        self.size += len(body)


class ComponentFilesCached:
    """A component's files (the calendar's: 870 kB of script, 200 kB of CSS) made cacheable.
    Streamlit answers them "public" with no lifetime and no validator, so the browser fetched
    every byte again on each visit to the calendar and could keep no compiled code. A file of
    the build's `static/` folder has its content's hash in its name: kept a year, immutable.
    Any other file (not the HTML) gets an ETag of its bytes, and a request that already holds
    them is answered 304 without them. (Streamlit's own /static/ files: StaticFilesInMemory.)"""

    PART = "/component/"
    YEAR = b"public, max-age=31536000, immutable"

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or scope["method"] != "GET" or self.PART not in path:
            await self.app(scope, receive, send)
            return
        hashed = "/static/" in path.split(self.PART, 1)[1]
        held = dict(scope["headers"]).get(b"if-none-match")
        start = None

        async def cacheable(message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
                return
            if start is None:  # already sent (a body in several parts is passed on as it comes)
                await send(message)
                return
            first, start = start, None
            html = any(
                k == b"content-type" and v.startswith(b"text/html") for k, v in first["headers"]
            )
            if first["status"] != 200 or html or message.get("more_body"):
                await send(first)
                await send(message)
                return
            body, status = message.get("body", b""), 200
            replaced = (b"content-length", b"cache-control", b"etag")
            headers = [(k, v) for k, v in first["headers"] if k not in replaced]
            if hashed:  # never asked for again while cached: no ETag to compute
                headers.append((b"cache-control", self.YEAR))
            else:
                etag = b'"' + hashlib.sha256(body).hexdigest()[:32].encode() + b'"'
                headers += [(b"cache-control", b"no-cache"), (b"etag", etag)]
                if held == etag:
                    status, body = 304, b""
            if status == 200:
                headers.append((b"content-length", str(len(body)).encode()))
            await send({"type": "http.response.start", "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": body})

        await self.app(scope, receive, cacheable)


MIDDLEWARE = [Middleware(StaticFilesInMemory), Middleware(ComponentFilesCached)]


def no_delay(sockets) -> None:
    """Nagle's algorithm off (TCP_NODELAY) on the listening TCP sockets; accepted sockets
    inherit it. Streamlit binds its listener as `socket.socket(family)`, protocol 0, and
    asyncio turns Nagle off only on accepted sockets whose protocol reads IPPROTO_TCP (uvicorn
    #3149 is the same bug): so a run's second burst of messages waited for the peer's delayed
    ACK, 40 ms on every click through nginx."""
    for sock in sockets or ():
        if sock.family in (socket.AF_INET, socket.AF_INET6) and sock.type == socket.SOCK_STREAM:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _no_delay_first(startup):
    @functools.wraps(startup)
    async def started(server, sockets=None):
        no_delay(sockets)
        await startup(server, sockets=sockets)

    return started


# Streamlit's runner imports this module (the app) after binding, before uvicorn's startup
uvicorn.Server.startup = _no_delay_first(uvicorn.Server.startup)


@asynccontextmanager
async def lifespan(_app):
    gc.freeze()  # modules and settings live as long as the process: no collection rescans them
    seconds = _job_seconds()
    task = asyncio.create_task(_background_jobs(seconds)) if seconds > 0 else None
    yield
    if task:
        task.cancel()


app = st.App(
    "app.py",
    lifespan=lifespan,
    middleware=MIDDLEWARE,
    routes=[
        Route("/_clinicdesk/session", same_site_only(set_session), methods=["POST"]),
        Route("/_clinicdesk/signout", same_site_only(end_session), methods=["POST"]),
        sms_route(_db, load_settings),  # text replies to reminders
        Route(portal_sign_in.ROUTE, portal_sign_in_form, methods=["GET"]),
        Route(portal_sign_in.ROUTE, same_site_only(portal_open_session), methods=["POST"]),
        Route("/_clinicdesk/portal/signout", same_site_only(portal_sign_out), methods=["POST"]),
        Route("/_clinicdesk/payments/stripe", stripe_webhook, methods=["POST"]),
    ],
)
