"""serve.StaticFilesInMemory: Streamlit's static files are answered from memory after their
first answer, with the same status, headers and bytes; anything it should not keep (a miss, a
ranged or conditional request, a POST, another path) goes through to the app every time.
serve.ComponentFilesCached: a component's files made cacheable by the browser."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

from serve import ComponentFilesCached, StaticFilesInMemory


def _scope(path: str, method: str = "GET", headers: dict | None = None) -> dict:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(k.encode(), v.encode()) for k, v in (headers or {}).items()],
        "server": ("127.0.0.1", 80),
        "client": ("127.0.0.1", 1234),
    }


def _receive():
    """The request, then a client that stays connected."""
    requests = [{"type": "http.request", "body": b"", "more_body": False}]

    async def receive():
        if requests:
            return requests.pop()
        await asyncio.sleep(3600)

    return receive


def _get(app, path: str, method: str = "GET", headers: dict | None = None):
    sent = []

    async def send(message):
        sent.append(message)

    with ThreadPoolExecutor(1) as thread:  # a loop of its own: Playwright's may be running here
        thread.submit(asyncio.run, app(_scope(path, method, headers), _receive(), send)).result()
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], dict(start["headers"]), body


def _app(folder):
    inner = Starlette(routes=[Mount("/static", StaticFiles(directory=folder))])
    return StaticFilesInMemory(inner)


def test_a_static_file_is_answered_from_memory_after_its_first_answer(tmp_path):
    (tmp_path / "index.abc123.js").write_text("console.log('ClinicDesk')")
    app = _app(tmp_path)
    first = _get(app, "/static/index.abc123.js")
    assert first[0] == 200 and first[2] == b"console.log('ClinicDesk')"
    (tmp_path / "index.abc123.js").unlink()  # only memory can answer now
    assert _get(app, "/static/index.abc123.js") == first
    assert _get(app, "/static/index.abc123.js", headers={"range": "bytes=0-3"})[0] == 404
    assert _get(app, "/static/index.abc123.js", method="HEAD")[0] == 404
    assert app.size == len(first[2])


def test_what_should_not_be_kept_goes_through_every_time(tmp_path):
    app = _app(tmp_path)
    assert _get(app, "/static/late.js")[0] == 404  # a miss is not kept
    (tmp_path / "late.js").write_text("1")
    assert _get(app, "/static/late.js")[:1] == (200,)
    (tmp_path / "other.js").write_text("2")
    etag = _get(app, "/static/other.js")[1][b"etag"].decode()
    assert _get(app, "/static/other.js", headers={"if-none-match": etag})[0] == 304
    assert set(app.files) == {"/static/late.js", "/static/other.js"}


def test_the_memory_is_bounded(tmp_path, monkeypatch):
    monkeypatch.setattr(StaticFilesInMemory, "LIMIT", 10)
    (tmp_path / "big.js").write_text("x" * 11)
    app = _app(tmp_path)
    assert _get(app, "/static/big.js")[0] == 200
    assert app.files == {} and app.size == 0


def test_two_first_requests_for_one_file_count_it_once(tmp_path):
    (tmp_path / "a.js").write_text("abc")
    app = _app(tmp_path)

    async def slow_client(message):  # both answers are in flight before either is kept
        await asyncio.sleep(0.01)

    async def both():
        await asyncio.gather(*(app(_scope("/static/a.js"), _receive(), slow_client) for _ in "ab"))

    with ThreadPoolExecutor(1) as thread:
        thread.submit(asyncio.run, both()).result()
    assert app.size == 3 and list(app.files) == ["/static/a.js"]


class _Components:
    """Streamlit's component registry as its file route asks it: where a component's files are."""

    def __init__(self, folder):
        self.folder = folder

    def get_component_path(self, name):
        return str(self.folder) if name == "calendar" else None


def _components(folder):
    from streamlit.web.server.starlette.starlette_routes import create_component_routes

    return ComponentFilesCached(Starlette(routes=create_component_routes(_Components(folder), "")))


def test_a_components_built_files_are_cacheable(tmp_path):
    """Streamlit's own component route behind the middleware: the build's hashed files are kept
    a year; another file is revalidated by its ETag (304 without its bytes); the HTML stays as
    Streamlit answers it."""
    (tmp_path / "static" / "js").mkdir(parents=True)
    (tmp_path / "static" / "js" / "main.a153ecd0.js").write_text("draw()")
    (tmp_path / "bootstrap.min.css").write_text("body{margin:0}")
    (tmp_path / "index.html").write_text("<div id=root></div>")
    app = _components(tmp_path)

    status, headers, body = _get(app, "/component/calendar/static/js/main.a153ecd0.js")
    assert (status, body) == (200, b"draw()")
    assert headers[b"cache-control"] == b"public, max-age=31536000, immutable"
    assert headers[b"content-length"] == b"6"

    status, headers, body = _get(app, "/component/calendar/bootstrap.min.css")
    assert (status, body, headers[b"cache-control"]) == (200, b"body{margin:0}", b"no-cache")
    etag = headers[b"etag"].decode()
    held = _get(app, "/component/calendar/bootstrap.min.css", headers={"if-none-match": etag})
    assert held[0] == 304 and held[2] == b"" and held[1][b"etag"] == etag.encode()
    (tmp_path / "bootstrap.min.css").write_text("body{margin:1px}")  # a new version of it
    changed = _get(app, "/component/calendar/bootstrap.min.css", headers={"if-none-match": etag})
    assert changed[0] == 200 and changed[2] == b"body{margin:1px}"

    status, headers, body = _get(app, "/component/calendar/index.html")
    assert (status, headers[b"cache-control"]) == (200, b"no-cache") and b"etag" not in headers
    assert _get(app, "/component/calendar/missing.js")[0] == 404
    assert _get(app, "/component/other/static/x.js")[0] == 404
