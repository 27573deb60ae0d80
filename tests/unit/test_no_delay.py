"""serve.no_delay: Streamlit binds its listening socket with protocol 0, so asyncio leaves
Nagle's algorithm on for every connection it accepts there, and a script run's second burst of
messages waits for the peer's delayed ACK (40 ms through nginx). serve.py turns Nagle off on the
listener as uvicorn starts; the connections it accepts inherit that."""

from __future__ import annotations

import asyncio
import socket
from concurrent.futures import ThreadPoolExecutor

import uvicorn
from streamlit.web.server.starlette.starlette_server import _bind_socket

import serve


def _in_thread(coroutine):
    with ThreadPoolExecutor(1) as thread:  # a loop of its own: Playwright's may be running here
        return thread.submit(asyncio.run, coroutine).result()


def _streamlits_listener() -> socket.socket:
    return _bind_socket("127.0.0.1", 0, 8)  # as `streamlit run` binds it


async def _accepted_no_delay(listener: socket.socket) -> int:
    """TCP_NODELAY of a connection that an asyncio server on `listener` accepts."""
    loop = asyncio.get_running_loop()
    seen = loop.create_future()

    class Probe(asyncio.Protocol):
        def connection_made(self, transport):
            sock = transport.get_extra_info("socket")
            seen.set_result(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            transport.close()

    server = await loop.create_server(Probe, sock=listener)
    _, writer = await asyncio.open_connection(*listener.getsockname()[:2])
    try:
        return await asyncio.wait_for(seen, 10)
    finally:
        writer.close()
        server.close()


def test_without_it_accepted_connections_keep_nagle_on():
    listener = _streamlits_listener()
    assert listener.proto == 0
    assert _in_thread(_accepted_no_delay(listener)) == 0


def test_accepted_connections_inherit_no_delay():
    listener = _streamlits_listener()
    serve.no_delay([listener])
    assert _in_thread(_accepted_no_delay(listener)) == 1


def test_uvicorn_turns_it_on_before_serving():
    """Importing serve (as Streamlit's runner does before uvicorn's startup) is enough."""

    async def app(scope, receive, send):  # never called: no request is made
        raise AssertionError(scope)

    listener = _streamlits_listener()
    server = uvicorn.Server(uvicorn.Config(app, lifespan="off", log_level="warning"))

    async def serve_briefly() -> int:
        serving = asyncio.create_task(server.serve(sockets=[listener]))
        while not server.started:
            await asyncio.sleep(0.01)
        option = listener.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        server.should_exit = True
        await serving
        return option

    assert _in_thread(serve_briefly()) == 1
