"""serve's cookie routes refuse a browser's request from another site (login CSRF): a page
elsewhere posting its author's sign-in code or portal link would sign the visitor in as them."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import pytest
from starlette.requests import Request

import serve

ROUTES = [serve.set_session, serve.end_session, serve.portal_open_session, serve.portal_sign_out]


def _post(route, headers: dict[str, str]) -> int:
    scope = {
        "type": "http",
        "method": "POST",
        "scheme": "http",
        "path": "/",
        "query_string": b"",
        "headers": [(k.encode(), v.encode()) for k, v in headers.items()],
    }

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def call():
        return await serve.same_site_only(route)(Request(scope, receive))

    with ThreadPoolExecutor(1) as thread:  # a loop of its own: Playwright's may be running here
        return thread.submit(asyncio.run, call()).result().status_code


@pytest.mark.parametrize(
    "headers, refused",
    [
        ({"sec-fetch-site": "cross-site", "origin": "https://evil.example"}, True),
        ({"sec-fetch-site": "same-site", "origin": "https://other.desk.example"}, True),
        ({"origin": "https://evil.example", "host": "desk.example:8501"}, True),
        ({"origin": "null", "host": "desk.example"}, True),
        ({"sec-fetch-site": "same-origin", "origin": "http://desk.example:8501"}, False),
        ({"origin": "https://desk.example:8080", "host": "desk.example"}, False),  # nginx $host
        ({"host": "desk.example"}, False),  # no browser's cross-site form: curl, a script
    ],
)
def test_a_request_from_another_site_is_told_apart(headers, refused):
    assert serve.cross_site(headers) is refused


@pytest.mark.parametrize("route", ROUTES, ids=lambda r: r.__name__)
def test_each_cookie_route_refuses_another_sites_request(route):
    assert _post(route, {"sec-fetch-site": "cross-site", "origin": "https://evil.example"}) == 403


def test_a_same_origin_sign_in_reaches_the_route():
    """An empty code from the app's own page gets the route's own answer, not the refusal."""
    assert _post(serve.set_session, {"sec-fetch-site": "same-origin"}) == 400


@pytest.mark.parametrize(
    "scheme, base_url, secure",
    [
        ("http", "https://desk.example", True),  # TLS ended by a proxy in front
        ("https", "http://localhost:8501", True),
        ("http", "http://localhost:8501", False),  # a desk trying it out on its own machine
    ],
)
def test_session_cookies_are_secure_when_the_public_address_is_https(
    monkeypatch, tmp_path, scheme, base_url, secure
):
    monkeypatch.setenv("CLINICDESK_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("CLINICDESK_BASE_URL", base_url)
    host = [(b"host", b"desk.example")]
    scope = {"type": "http", "method": "POST", "scheme": scheme, "path": "/", "headers": host}
    assert serve.cookie_secure(Request(scope)) is secure
