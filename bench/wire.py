"""A staff session that speaks Streamlit's own WebSocket protocol and draws nothing: the load
one colleague's browser puts on the server, without this machine's CPU drawing that
colleague's pages (bench.browser --desks).

It asks for what a browser asks for, in the same messages: the page and its static files on a
first visit (and a component's, the first time one is shown), a run of the script for each
click with the widget states the browser would send, and the session-cookie exchange after
signing in. A step's time is from sending the click to the server's "script finished" (the
last element sent); a rerun the script asks for itself (st.rerun, st.switch_page) is part of
the same step, as it is for the browser.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass, field

import websockets
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.Element_pb2 import Element
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from streamlit.proto.WidgetStates_pb2 import WidgetState

FINISHED = {
    ForwardMsg.FINISHED_SUCCESSFULLY,
    ForwardMsg.FINISHED_FRAGMENT_RUN_SUCCESSFULLY,
    ForwardMsg.FINISHED_WITH_COMPILE_ERROR,
}
ASSET = re.compile(r"""(?:src|href)="([^"]+\.(?:js|css|woff2?))\"""")
HANDOFF = re.compile(r"code=([A-Za-z0-9_\-]+)")
TIMEOUT_S = 120


class WireError(Exception):
    """The session could not go on: a timeout, a closed socket or a page without the widget
    the script needs."""


@dataclass
class Shown:
    """The elements one run left on the page (by place, the last one sent at each place) and
    how long the run took, in ms."""

    elements: dict[tuple[int, ...], tuple[Element, str]] = field(default_factory=dict)
    ms: float = 0.0

    def widget(self, kind: str, key: str) -> Element:
        """The widget of this kind whose user key matches `key` (a regular expression matched
        against the key's end); WireError if there is none."""
        pattern = re.compile(f"-{key}$")
        for element, _ in self.elements.values():
            if element.WhichOneof("type") == kind:
                proto = getattr(element, kind)
                if pattern.search(getattr(proto, "id", "")):
                    return proto
        raise WireError(f"no {kind} with key …{key} on the page")

    def submit_button(self, label: str) -> Element:
        for element, _ in self.elements.values():
            if element.WhichOneof("type") == "button" and element.button.label == label:
                return element.button
        raise WireError(f"no button {label!r} on the page")

    def texts(self) -> list[str]:
        out = []
        for element, _ in self.elements.values():
            kind = element.WhichOneof("type")
            if kind in ("markdown", "alert", "heading", "text", "toast", "html"):
                out.append(getattr(element, kind).body)
        return out

    def text(self) -> str:
        return "\n".join(self.texts())

    def failed(self) -> str | None:
        """What went wrong on the page: an exception box or the app's own error line."""
        for element, _ in self.elements.values():
            if element.WhichOneof("type") == "exception":
                return f"{element.exception.type}: {element.exception.message}"[:200]
        text = self.text()
        return "Something went wrong" if "Something went wrong" in text else None


def state(widget, **value) -> WidgetState:
    """A widget's state as the browser sends it: state(box, string_value="x")."""
    out = WidgetState(id=widget.id)
    for name, v in value.items():
        if name == "string_array_value":
            out.string_array_value.data[:] = v
        else:
            setattr(out, name, v)
    return out


class WireSession:
    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")
        self.pages: dict[str, str] = {}  # url path → page script hash
        self.page_hash = ""
        self._socket = None
        self._inbox: asyncio.Queue[ForwardMsg | Exception] = asyncio.Queue()
        self._reader: asyncio.Task | None = None
        self._fetched: set[str] = set()
        self.cookies: dict[str, str] = {}

    async def open(self) -> Shown:
        """A first visit: the page and its static files, then the socket and the first run."""
        await asyncio.to_thread(self._fetch_page, "/")
        for path in ("/_stcore/health", "/_stcore/host-config"):
            await asyncio.to_thread(self._get, path)
        ws_url = "ws" + self.url.removeprefix("http") + "/_stcore/stream"
        self._socket = await websockets.connect(
            ws_url,
            subprotocols=["streamlit"],
            origin=self.url,
            max_size=None,
            open_timeout=TIMEOUT_S,
            ping_interval=None,
        )
        self._reader = asyncio.create_task(self._read())
        return await self.run()

    async def close(self) -> None:
        if self._socket is not None:
            await self._socket.close()
        if self._reader is not None:
            self._reader.cancel()

    async def run(
        self, page: str | None = None, widgets: list[WidgetState] = (), fragment: str = ""
    ) -> Shown:
        """One click: a run of the script on `page` (a url path; the current page if None)."""
        if page is not None:
            self.page_hash = self.pages[page]
        message = BackMsg()
        client = message.rerun_script
        client.page_script_hash = self.page_hash
        client.fragment_id = fragment
        client.widget_states.widgets.extend(widgets)
        started = time.perf_counter()
        await self._socket.send(message.SerializeToString())
        shown = Shown()
        while True:
            try:
                msg = await asyncio.wait_for(self._inbox.get(), TIMEOUT_S)
            except TimeoutError:
                raise WireError(f"no end of the run after {TIMEOUT_S} s") from None
            if isinstance(msg, Exception):
                raise WireError(f"the socket closed: {msg}") from msg
            kind = msg.WhichOneof("type")
            if kind == "new_session":
                shown.elements.clear()  # a run begins (again, after st.rerun or a page switch)
                self.page_hash = msg.new_session.page_script_hash or self.page_hash
            elif kind == "navigation":
                self.pages = {p.url_pathname: p.page_script_hash for p in msg.navigation.app_pages}
                self.page_hash = msg.navigation.page_script_hash or self.page_hash
            elif kind == "delta" and msg.delta.WhichOneof("type") == "new_element":
                element = msg.delta.new_element
                shown.elements[tuple(msg.metadata.delta_path)] = (element, msg.delta.fragment_id)
                if element.WhichOneof("type") == "component_instance":
                    instance = element.component_instance
                    page = instance.url or f"/component/{instance.component_name}/index.html"
                    await asyncio.to_thread(self._fetch_page, page)
            elif kind == "page_not_found":
                raise WireError(f"page not found: {msg.page_not_found.page_name}")
            elif kind == "script_finished" and msg.script_finished in FINISHED:
                break
        shown.ms = (time.perf_counter() - started) * 1000
        return shown

    async def hand_off(self, shown: Shown) -> None:
        """After signing in, the page swaps a one-time code for the HttpOnly cookie (a fetch
        from the page's script in a browser)."""
        for text in shown.texts():
            if "/_clinicdesk/session" in text and (found := HANDOFF.search(text)):
                body = urllib.parse.urlencode({"code": found.group(1)}).encode()
                await asyncio.to_thread(self._get, "/_clinicdesk/session", body)

    async def _read(self) -> None:
        try:
            async for frame in self._socket:
                msg = ForwardMsg()
                msg.ParseFromString(frame)
                await self._inbox.put(msg)
        except Exception as error:  # closed or broken: the run waiting for it is told
            await self._inbox.put(error)
        else:
            await self._inbox.put(ConnectionError("closed by the server"))

    def _get(self, path: str, body: bytes | None = None) -> bytes:
        headers = {"Accept-Encoding": "gzip, deflate, br"}
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        request = urllib.request.Request(self.url + path, data=body, headers=headers)
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:  # noqa: S310 (loopback)
            for header in response.headers.get_all("Set-Cookie") or []:
                name, _, rest = header.partition("=")
                self.cookies[name.strip()] = rest.split(";", 1)[0]
            return response.read()

    def _fetch_page(self, path: str) -> None:
        """A page and the scripts, styles and fonts it names, once per session (a browser's
        cache keeps them after the first visit)."""
        if path in self._fetched:
            return
        self._fetched.add(path)
        page = self._get(path).decode("utf-8", "replace")
        base = path.rsplit("/", 1)[0] + "/"
        for asset in dict.fromkeys(ASSET.findall(page)):
            if asset.startswith(("http:", "https:", "//")):
                continue
            target = asset if asset.startswith("/") else urllib.parse.urljoin(base, asset)
            if target not in self._fetched:
                self._fetched.add(target)
                self._get(target)


async def sign_in(url: str, user: str, password: str = "") -> tuple[WireSession, Shown]:
    """A session signed in as `user` (password `<user>-demo-pass` unless given), on the page
    it lands on; WireError if the form refuses it (the session is closed then)."""
    session = WireSession(url)
    shown = await session.open()
    form = [
        state(shown.widget("text_input", "sign_in_username"), string_value=user),
        state(
            shown.widget("text_input", "sign_in_password"),
            string_value=password or f"{user}-demo-pass",
        ),
        state(shown.submit_button("Sign in"), trigger_value=True),
    ]
    shown = await session.run(widgets=form)
    if "Signed in as" not in shown.text():
        await session.close()
        raise WireError(f"not signed in: {shown.text()[:200]}")
    await session.hand_off(shown)
    return session, shown


MOVED = "moved"  # the panel moved to another request before the decision, and said so


async def decline(
    session: WireSession, shown: Shown, index: int, kind: str = "requests"
) -> tuple[Shown, str]:
    """On the queue as `shown`: click row `index % 8` of the table, choose Decline, give a
    reason, go. Returns the last run and what the page said: "Declined.", a refusal, or MOVED
    when another session decided the request first and the panel says so."""
    try:
        table = shown.widget("dataframe", f"queue_table_{kind}")
        picked = json.dumps({"selection": {"rows": [index % 8], "columns": [], "cells": []}})
        clicks = [state(table, string_value=picked)]
        shown = await session.run(widgets=clicks)
        choice = shown.widget("radio", f"queue_{kind}_[0-9]+_choice")
        clicks.append(state(choice, string_value="Decline"))
        shown = await session.run(widgets=clicks)
        reason = shown.widget("text_input", f"queue_{kind}_[0-9]+_reason")
        go = shown.widget("button", f"queue_{kind}_[0-9]+_go")
        clicks += [
            state(reason, string_value=f"Bench session {index}"),
            state(go, trigger_value=True),
        ]
        shown = await session.run(widgets=clicks)
    except WireError:
        if "is no longer waiting" in shown.text():
            return shown, MOVED
        raise
    if "Declined." in shown.text():
        return shown, "Declined."
    if "is no longer waiting" in shown.text():  # it left the queue just as "Decline" was sent
        return shown, MOVED
    return shown, _error_alert(shown)


def _error_alert(shown: Shown) -> str:
    """The page's refusal (an error box), or what it said instead."""
    for element, _ in shown.elements.values():
        if element.WhichOneof("type") == "alert" and element.alert.format == 1:  # ERROR
            return element.alert.body[:160]
    said = " · ".join(t for t in shown.texts() if "<script" not in t)
    return f"no outcome shown; the page said: {said[:300]}"
