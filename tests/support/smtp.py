"""A real SMTP server on loopback that keeps every message it receives, for tests that send email.

    with LoopbackSMTP() as smtp:
        ...  # point the app at smtp.host / smtp.port, then trigger a send
        message = smtp.wait_for(lambda m: "Invitation" in m["Subject"])
        assert "portal" in text_of(message)

Like aiosmtpd's own Message handler, each stored message gets `X-MailFrom` and `X-RcptTo`
headers with the envelope sender and recipients (Bcc recipients appear only there).

Faulty servers for the sender's tests: `LoopbackSMTP(behaviour=...)` with "drop" (keeps the
message, then closes the connection instead of answering DATA), "temporary" (451 to DATA),
"permanent" (550 to every recipient); `hold()` makes DATA wait until `release()` (a server slow
enough to outlive a claim), and `data_started` is set when a DATA command arrives.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import threading
import time
from collections.abc import Callable, Iterator
from email.message import EmailMessage
from typing import Self

import pytest
from aiosmtpd.controller import Controller

from .postgres import free_port

HOST = "127.0.0.1"


class _RecordingHandler:
    """aiosmtpd handler that parses and stores each message."""

    def __init__(self, behaviour: str = "accept") -> None:
        self.messages: list[EmailMessage] = []
        self.arrived = threading.Condition()
        self.behaviour = behaviour
        self.released = threading.Event()
        self.released.set()
        self.data_started = threading.Event()

    async def handle_RCPT(self, server, session, envelope, address, options) -> str:
        if self.behaviour == "permanent":
            return "550 5.1.1 No such mailbox here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope) -> str:
        self.data_started.set()
        while not self.released.is_set():
            await asyncio.sleep(0.02)
        if self.behaviour == "temporary":
            return "451 4.3.0 Try again later"
        # SMTP ends lines with CRLF; tests compare bodies with Python's "\n".
        raw = envelope.original_content.replace(b"\r\n", b"\n")
        message = email.message_from_bytes(raw, policy=email.policy.default)
        message["X-MailFrom"] = envelope.mail_from
        message["X-RcptTo"] = ", ".join(envelope.rcpt_tos)
        with self.arrived:
            self.messages.append(message)
            self.arrived.notify_all()
        if self.behaviour == "drop":
            server.transport.close()
        return "250 Message accepted for delivery"


class LoopbackSMTP:
    """SMTP server on 127.0.0.1 at a free port; use as a context manager (or start()/stop())."""

    def __init__(self, behaviour: str = "accept") -> None:
        if behaviour not in ("accept", "drop", "temporary", "permanent"):
            raise ValueError(f"unknown behaviour {behaviour!r}")
        self.host = HOST
        self.port = free_port()
        self._handler = _RecordingHandler(behaviour)
        self._controller = Controller(
            self._handler,
            hostname=self.host,
            port=self.port,
            server_hostname="clinicdesk-test-smtp",  # avoids a slow FQDN lookup
        )

    @property
    def messages(self) -> list[EmailMessage]:
        """A snapshot of the messages received so far, oldest first."""
        with self._handler.arrived:
            return list(self._handler.messages)

    @property
    def behaviour(self) -> str:
        return self._handler.behaviour

    @behaviour.setter
    def behaviour(self, value: str) -> None:
        self._handler.behaviour = value

    @property
    def data_started(self) -> threading.Event:
        return self._handler.data_started

    def hold(self) -> None:
        """Make every DATA command wait until release()."""
        self._handler.released.clear()

    def release(self) -> None:
        self._handler.released.set()

    def clear(self) -> None:
        with self._handler.arrived:
            self._handler.messages.clear()

    def wait_for(
        self,
        predicate: Callable[[EmailMessage], bool] | None = None,
        timeout: float = 10,
    ) -> EmailMessage:
        """Return the first message matching `predicate` (any if None), waiting up to
        `timeout` seconds for it; raise AssertionError listing what did arrive otherwise."""
        deadline = time.monotonic() + timeout
        with self._handler.arrived:
            while True:
                for message in self._handler.messages:
                    if predicate is None or predicate(message):
                        return message
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._handler.arrived.wait(remaining)
            seen = [f"{m['Subject']!r} to {m['X-RcptTo']}" for m in self._handler.messages]
        raise AssertionError(f"no matching email within {timeout} s; received {len(seen)}: {seen}")

    def start(self) -> Self:
        self._controller.start()
        return self

    def stop(self) -> None:
        self.release()
        self._controller.stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def text_of(message: EmailMessage) -> str:
    """The plain-text body of `message`: its text/plain parts that are not attachments, joined."""
    texts = [
        part.get_content()
        for part in message.walk()
        if part.get_content_type() == "text/plain" and not part.is_attachment()
    ]
    if not texts:
        types = [part.get_content_type() for part in message.walk()]
        raise AssertionError(f"email {message['Subject']!r} has no text/plain part: {types}")
    return "\n".join(texts)


@pytest.fixture(scope="session")
def loopback_smtp() -> Iterator[LoopbackSMTP]:
    """One loopback SMTP server per test session; .clear() empties its inbox for a test."""
    with LoopbackSMTP() as server:
        yield server
