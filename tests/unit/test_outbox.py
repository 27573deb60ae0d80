"""The sender under faults: claims and their renewal, two senders at once, Message-ID, permanent
and temporary failures on real (faulty) SMTP servers, no transport, draining, redacted links."""

import http.server
import json
import shlex
import socket
import ssl
import subprocess
import threading
import time
from collections import Counter
from datetime import time as time_of_day
from datetime import timedelta

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select

from core.kernel import tokens
from core.kernel.config import Settings, SmsSettings, SmtpSettings
from core.kernel.errors import ValidationError
from core.messaging import delivery, notify
from db.models import Channel, DeliveryStatus, Notification, NotificationAttachment
from db.types import utcnow
from tests.support.smtp import LoopbackSMTP, text_of


class Recording:
    """An SMS transport that keeps what it was asked to send (thread-safe)."""

    def __init__(self, pause: float = 0) -> None:
        self.sent: list[int] = []
        self.pause = pause
        self.lock = threading.Lock()

    def send(self, notification: Notification) -> None:
        time.sleep(self.pause)
        with self.lock:
            self.sent.append(notification.id)


def _queue(db, n: int = 1, channel: Channel = Channel.EMAIL, body: str = "Hello") -> list[int]:
    with db.write() as session:
        rows = [
            Notification(
                channel=channel,
                template="feedback_request",
                to_address="alex@example.org" if channel == Channel.EMAIL else "+447700900123",
                subject=f"Message {i}",
                body=body,
            )
            for i in range(n)
        ]
        session.add_all(rows)
        session.flush()
        return [r.id for r in rows]


def _row(db, id_: int) -> Notification:
    with db.read() as session:
        return session.get(Notification, id_)


def _smtp(server: LoopbackSMTP, timeout: float = 5) -> dict:
    settings = SmtpSettings(host=server.host, port=server.port, sender="Clinic <desk@clinic.org>")
    return {Channel.EMAIL: delivery.SmtpTransport(settings, timeout=timeout)}


def test_a_dropped_connection_is_retried_with_the_same_message_id(db):
    (id_,) = _queue(db)
    now = utcnow()
    with LoopbackSMTP("drop") as server:
        first = delivery.send_due(db.write, _smtp(server), now=now)
        assert (first.sent, first.retrying) == (0, 1)
        row = _row(db, id_)
        assert row.status == DeliveryStatus.FAILED and "SMTPServerDisconnected" in row.last_error
        server.behaviour = "accept"
        assert delivery.send_due(db.write, _smtp(server), now=now).sent == 0  # backing off
        assert delivery.send_due(db.write, _smtp(server), now=now + timedelta(hours=1)).sent == 1
        ids = [m["Message-ID"] for m in server.messages]
    assert len(ids) == 2 and ids[0] == ids[1]
    assert ids[0] == f"<notification-{id_}.{row.created_at:%Y%m%d%H%M%S}@clinic.org>"
    assert (_row(db, id_).status, _row(db, id_).attempts) == (DeliveryStatus.SENT, 2)


def test_a_4xx_answer_is_retried_later(db):
    (id_,) = _queue(db)
    now = utcnow()
    with LoopbackSMTP("temporary") as server:
        report = delivery.send_due(db.write, _smtp(server), now=now)
    row = _row(db, id_)
    assert (report.retrying, report.failed) == (1, 0)
    assert "451" in row.last_error and not row.permanent_failure
    assert row.next_attempt_at - now == delivery.BACKOFF[0]


def test_a_5xx_answer_or_an_invalid_address_fails_for_good_and_says_so(db, world):
    refused, broken = _queue(db, 2)
    with db.write() as session:
        session.get(Notification, broken).to_address = "alex at example dot org"
    now = utcnow()
    with LoopbackSMTP("permanent") as server:
        report = delivery.send_due(db.write, _smtp(server), now=now)
        assert (report.failed, report.retrying) == (2, 0)
        later = delivery.send_due(db.write, _smtp(server), now=now + timedelta(days=3))
        assert (later.sent, later.failed, later.retrying) == (0, 0, 0)
    for id_, words in ((refused, "550"), (broken, "is not an email address")):
        row = _row(db, id_)
        assert (
            row.last_error.startswith("Permanent failure, not retried") and words in row.last_error
        )
        assert (row.attempts, row.permanent_failure) == (1, True)
    with db.read() as session:
        listed = {r.id: r for r in notify.list_outbox(session, world.manager)}
    assert listed[refused].next_attempt_at is None
    with db.write() as session:  # a person fixes the address and retries
        session.get(Notification, broken).to_address = "alex@example.org"
        notify.retry(session, world.manager, broken)
    with LoopbackSMTP() as server:
        assert delivery.send_due(db.write, _smtp(server)).sent == 1


def test_without_smtp_email_stays_queued_saying_why_then_goes_out_once_configured(db):
    (id_,) = _queue(db)
    unconfigured = delivery.transports(Settings("sqlite://", "k" * 40, data_dir=None))
    assert Channel.EMAIL not in unconfigured
    for _ in range(delivery.MAX_ATTEMPTS + 2):
        report = delivery.send_due(db.write, unconfigured, now=utcnow() + timedelta(days=1))
        assert (report.waiting, report.sent, report.failed, report.retrying) == (1, 0, 0, 0)
    row = _row(db, id_)
    assert (row.status, row.attempts) == (DeliveryStatus.QUEUED, 0)
    assert row.last_error == delivery.WAITING[Channel.EMAIL]
    with LoopbackSMTP() as server:
        assert delivery.send_due(db.write, _smtp(server)).sent == 1
        assert len(server.messages) == 1
    assert (_row(db, id_).status, _row(db, id_).last_error) == (DeliveryStatus.SENT, None)


def test_one_run_drains_everything_due_in_batches(db):
    ids = _queue(db, 230, Channel.SMS)
    sms = Recording()
    report = delivery.send_due(db.write, {Channel.SMS: sms}, limit=50)
    assert report.sent == 230 and sorted(sms.sent) == ids


def test_a_claim_taken_over_after_its_lease_lets_its_first_holder_write_nothing(db):
    (id_,) = _queue(db, 1, Channel.SMS)
    now = utcnow()
    first = delivery.claim(db.write, "a" * 32, [Channel.SMS], now)
    assert delivery.claim(db.write, "b" * 32, [Channel.SMS], now) == []  # lease still live
    second = delivery.claim(db.write, "b" * 32, [Channel.SMS], now + delivery.LEASE)
    assert [r.id for r in first] == [r.id for r in second] == [id_]
    assert delivery.record(db.write, "a" * 32, first[0], None, now) == "lost"
    assert _row(db, id_).status == DeliveryStatus.QUEUED
    assert delivery.record(db.write, "b" * 32, second[0], None, now) == "sent"
    assert (_row(db, id_).attempts, _row(db, id_).claim_token) == (1, None)


def test_two_senders_at_once_send_every_message_exactly_once(db):
    ids = _queue(db, 60, Channel.SMS)
    sms = Recording(pause=0.005)
    reports = []

    def sender():
        reports.append(delivery.send_due(db.write, {Channel.SMS: sms}, limit=7))

    threads = [threading.Thread(target=sender) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(sms.sent) == ids and max(Counter(sms.sent).values()) == 1
    assert sum(r.sent for r in reports) == 60 and sum(r.lost for r in reports) == 0
    with db.read() as session:
        states = session.execute(select(Notification.status, Notification.attempts)).all()
    assert set(states) == {(DeliveryStatus.SENT, 1)}


def test_a_server_slower_than_the_lease_still_gets_the_message_once(db):
    (id_,) = _queue(db)
    lease = timedelta(seconds=1.5)
    reports: dict[str, delivery.DeliveryReport] = {}
    with LoopbackSMTP() as server:
        server.hold()

        def sender(name):
            # slower than the lease, never than the client's timeout (held 4.5 s and more)
            reports[name] = delivery.send_due(db.write, _smtp(server, timeout=60), lease=lease)

        first = threading.Thread(target=sender, args=("first",))
        first.start()
        assert server.data_started.wait(10)
        time.sleep(3 * lease.total_seconds())  # the first claim's lease would have run out
        second = threading.Thread(target=sender, args=("second",))
        second.start()
        second.join(10)
        server.release()
        first.join(10)
        second.join(10)
        received = server.messages
    assert reports["second"] == delivery.DeliveryReport(0, 0, 0)
    assert reports["first"].sent == 1 and len(received) == 1
    assert (_row(db, id_).status, _row(db, id_).attempts) == (DeliveryStatus.SENT, 1)


@pytest.mark.parametrize("channel", [Channel.EMAIL, Channel.SMS])
def test_a_delivered_message_keeps_no_usable_link(db, channel):
    with db.write() as session:
        issued = tokens.issue(session, "survey", 1, timedelta(days=7))
    link = tokens.link("https://clinic.example.org", "survey", issued.raw)
    (id_,) = _queue(db, 1, channel, body=f"Tell us how it went: {link}\n")
    with db.write() as session:
        session.add(
            NotificationAttachment(
                notification_id=id_,
                position=0,
                name="check-in-1.png",
                content_type="image/png",
                content=b"\x89PNG check-in code",
            )
        )
    with LoopbackSMTP() as server:
        channels = {**_smtp(server), Channel.SMS: Recording()}
        assert delivery.send_due(db.write, channels).sent == 1
        if channel == Channel.EMAIL:
            assert issued.raw in text_of(server.messages[0])  # the patient got the link
    row = _row(db, id_)
    assert issued.raw not in row.body
    with db.read() as session:  # the file's bytes are dropped, its name kept
        kept = session.execute(select(NotificationAttachment.name, NotificationAttachment.content))
        assert kept.all() == [("check-in-1.png", None)]
    assert f"t=redacted-sha256-{tokens.hash_token(issued.raw)}" in row.body


def test_the_default_sms_transport_logs_no_usable_link(db, caplog):
    """With no SMS provider configured (the default), each text is written to the server log:
    a portal sign-in link there let whoever reads the log sign in as the patient (or answer
    their proposal, cancel their visit) until it was used. The log shows the link's hash."""
    with db.write() as session:
        issued = tokens.issue(session, "portal", 1, timedelta(minutes=15))
    link = f"https://clinic.example.org/_clinicdesk/portal/sign-in?t={issued.raw}"
    (id_,) = _queue(db, 1, Channel.SMS, body=f"Sign in: {link}")
    caplog.set_level("INFO", logger="clinicdesk")
    channels = {Channel.SMS: delivery.LoggingSmsTransport()}
    assert delivery.send_due(db.write, channels).sent == 1
    assert "Sign in: https://clinic.example.org/" in caplog.text
    assert issued.raw not in caplog.text
    assert f"t=redacted-sha256-{tokens.hash_token(issued.raw)}" in caplog.text


class SilentServer:
    """Takes SMTP connections (the kernel's backlog) and never says a word, so a client waits
    for the greeting until its timeout; counts the connections made so far."""

    def __init__(self) -> None:
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(8)
        self.listener.setblocking(False)
        self.port = self.listener.getsockname()[1]
        self.held: list[socket.socket] = []

    def connections(self) -> int:
        """Every connection a client has made is waiting in the backlog: take them all."""
        while True:
            try:
                self.held.append(self.listener.accept()[0])
            except BlockingIOError:
                return len(self.held)

    def close(self) -> None:
        self.listener.close()
        for held in self.held:
            held.close()


def test_a_server_that_never_answers_holds_the_round_for_one_message_only(db):
    emails = _queue(db, 4)
    (text,) = _queue(db, 1, Channel.SMS)
    silent = SilentServer()
    settings = SmtpSettings(host="127.0.0.1", port=silent.port)
    sms = Recording()
    channels = {Channel.EMAIL: delivery.SmtpTransport(settings, timeout=0.5), Channel.SMS: sms}
    now = utcnow()
    try:
        report = delivery.send_due(db.write, channels, now=now)
        assert silent.connections() == 1  # one timeout, not four
        assert (report.sent, report.retrying) == (1, 1) and sms.sent == [text]
        first, *rest = (_row(db, i) for i in emails)
        assert first.status == DeliveryStatus.FAILED and first.attempts == 1
        for row in rest:  # left for the next round, not counted as an attempt
            assert (row.status, row.attempts, row.claim_token) == (DeliveryStatus.QUEUED, 0, None)
            assert row.next_attempt_at <= now
        # the next round tries again, once
        again = delivery.send_due(db.write, channels, now=now + timedelta(seconds=30))
        assert silent.connections() == 2 and again.retrying == 1
        assert sum(_row(db, i).attempts for i in emails) == 2
    finally:
        silent.close()


def test_a_test_message_is_sent_once_though_a_jobs_round_runs_meanwhile(db, world):
    """The set-up's "send a test message" sends at once; before, the row it stored waited in
    the outbox as queued and due, unclaimed, while it was being sent, so a jobs round running
    meanwhile (every 15 s, in every process) sent it too: the owner received it twice."""
    from core.messaging import test_message

    with LoopbackSMTP() as slow, LoopbackSMTP() as other:
        slow.hold()  # the test message's server takes its time to accept it
        settings = Settings(
            "sqlite://",
            "k" * 40,
            data_dir=None,
            smtp=SmtpSettings(host=slow.host, port=slow.port),
        )
        results = []
        sending = threading.Thread(
            target=lambda: results.append(
                test_message.send_test_message(
                    db.write, world.owner, settings, Channel.EMAIL, "owner@example.org"
                )
            )
        )
        sending.start()
        assert slow.data_started.wait(10)
        round_meanwhile = {
            Channel.EMAIL: delivery.SmtpTransport(SmtpSettings(other.host, other.port))
        }
        report = delivery.send_due(db.write, round_meanwhile)
        slow.release()
        sending.join(10)
        assert results and results[0].sent
        assert (report.sent, other.messages) == (0, [])
        assert len(slow.messages) == 1
    with db.read() as session:
        row = session.scalars(select(Notification)).one()
        assert (row.status, row.attempts, row.claim_token) == (DeliveryStatus.SENT, 1, None)


def test_a_test_sms_to_a_number_no_phone_can_dial_is_refused_saying_what_to_fix(db, world):
    """The test SMS's number is checked as a patient's is, in the practice's clinics'
    countries; before, any text was "sent" (the log transport accepts anything) and a typo'd
    number failed only at the provider, or never."""
    from core.kernel.errors import ValidationError
    from core.messaging import test_message
    from db.models import Clinic

    settings = Settings("sqlite://", "k" * 40, data_dir=None)
    with db.write() as session:  # a second clinic, in the United States (read there only)
        session.add(Clinic(name="Uptown", timezone="America/New_York", locale="en-US"))
    with pytest.raises(ValidationError) as refused:
        test_message.send_test_message(db.write, world.owner, settings, "sms", "07700 9001234")
    assert str(refused.value) == (
        "'07700 9001234' is not a phone number: it is too long. Type it with its area code, "
        "like 07400 123456, or with + and the country code."
    )
    sent = test_message.send_test_message(db.write, world.owner, settings, "sms", "1 212 555 0182")
    assert sent.sent
    with db.read() as session:
        assert session.scalars(select(Notification.to_address)).all() == ["1 212 555 0182"]


class _MovedProvider(http.server.BaseHTTPRequestHandler):
    """An SMS provider whose address moved (http to https, a new path): a POST to the old one
    is answered 301, and the new one takes a POST, and answers a GET with its home page."""

    posted: list = []

    def do_POST(self):  # noqa: N802 (http.server's name)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.path == "/old":
            self.send_response(301)
            self.send_header("Location", "/new")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.posted.append(json.loads(body))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self):  # noqa: N802
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


def test_an_sms_provider_answering_with_a_redirect_is_a_failure_naming_the_new_address():
    """Before, urllib followed a 301 to a POST as a GET without the message: the provider's
    page answered 200 and the text was recorded as sent, though it never left."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _MovedProvider)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        transport = delivery.HttpSmsTransport(
            SmsSettings(provider="http", http_url=f"{base}/old", http_token="t"), timeout=5
        )
        text = Notification(channel=Channel.SMS, to_address="+447700900123", body="Hello")
        with pytest.raises(Exception, match=r"HTTP 301.*/new.*SMS_HTTP_URL") as failed:
            transport.send(text)
        assert not isinstance(failed.value, delivery.PermanentFailure)  # fixed, it goes
        assert not delivery.connection_failed(failed.value)
        delivery.HttpSmsTransport(
            SmsSettings(provider="http", http_url=f"{base}/new", http_token="t"), timeout=5
        ).send(text)
        assert _MovedProvider.posted == [{"to": "+447700900123", "text": "Hello"}]
    finally:
        server.shutdown()
        server.server_close()


def test_an_smtp_server_whose_certificate_is_nobodys_is_refused_not_sent_to(tmp_path):
    """Before, smtplib's own default checked no certificate (Python 3.11: an unverified
    context), so anyone between the practice and its mail server could read the password and
    every patient's message and link. A server with a self-signed certificate now fails the
    send, as unreachable, and gets nothing."""
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    self_signed = shlex.split(
        "openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=127.0.0.1"
    )
    subprocess.run([*self_signed, "-keyout", key, "-out", cert], check=True, capture_output=True)
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert, key)
    received = []

    class Keep:
        async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's name)
            received.append(envelope.content)
            return "250 OK"

    port = socket.socket()
    port.bind(("127.0.0.1", 0))
    number = port.getsockname()[1]
    port.close()
    controller = Controller(Keep(), hostname="127.0.0.1", port=number, ssl_context=server_tls)
    controller.start()
    try:
        transport = delivery.SmtpTransport(
            SmtpSettings(host="127.0.0.1", port=number, security="ssl"), timeout=5
        )
        mail = Notification(
            id=1, channel=Channel.EMAIL, to_address="pat@example.org", subject="Hi", body="x"
        )
        mail.created_at = utcnow()
        with pytest.raises(ssl.SSLCertVerificationError) as failed:
            transport.send(mail)
        assert delivery.connection_failed(failed.value) and received == []
    finally:
        controller.stop()


class _Provider(http.server.BaseHTTPRequestHandler):
    """An HTTP SMS provider on loopback that keeps what is posted to it and answers 200."""

    posted: list = []

    def do_POST(self):  # noqa: N802 (http.server's name)
        self.posted.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def provider():
    """The loopback provider's settings; what it received is `_Provider.posted`."""
    _Provider.posted = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Provider)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/sms"
    try:
        yield SmsSettings(provider="http", http_url=url, http_token="t")
    finally:
        server.shutdown()
        server.server_close()


def _visit_text(session, patient, clinic_id: int | None) -> int:
    """A text to `patient` about a visit of theirs at `clinic_id` (or about none), its id."""
    from core.kernel.clock import local_to_utc
    from db.models import Appointment, AppointmentStatus

    visit = None
    if clinic_id is not None:
        start = local_to_utc(utcnow().date() + timedelta(days=9), time_of_day(10), "UTC")
        visit = Appointment(
            clinic_id=clinic_id,
            patient_id=patient.id,
            status=AppointmentStatus.CANCELLED,
            start_at=start,
            end_at=start + timedelta(minutes=30),
        )
        session.add(visit)
        session.flush()
    queued = notify.queue_for_patient(
        session,
        patient,
        "appointment_cancelled",
        {"when": "Tue 15 Dec 2026, 10:00", "reason": "Ill"},
        appointment_id=visit and visit.id,
        channels=[Channel.SMS],
    )
    (row,) = queued.notifications
    session.flush()
    return row.id


def test_a_text_goes_in_international_form_read_in_the_country_of_its_clinic(
    db, world, provider, caplog
):
    """Before, the provider got the number as typed ('07700 900123', no country code), which
    Twilio-style APIs refuse and which, in a London-and-Berlin practice, may be a number of
    either country. Now it gets E.164 read in the country of the clinic the text is about (a
    German mobile of a Berlin patient is +49 though London is the first clinic), else of the
    clinics the patient booked at, else of the practice's first clinic; the log transport shows
    the same; the numbers on file stay, and a reply from the number is matched to its
    patient."""
    from core.portal import replies
    from db.models import Clinic, Patient
    from tests.factories import make_patient

    with db.write() as session:
        berlin = Clinic(name="Berlin", timezone="Europe/Berlin", locale="de-DE")
        session.add(berlin)
        session.flush()
        alex = session.get(Patient, world.patient_id)  # 07700 900123: British, or +49 7700…
        jonas = make_patient(session, first_name="Jonas", phone="0170 1234567")
        jonas_id = jonas.id
        ids = [
            _visit_text(session, alex, world.clinic_id),
            _visit_text(session, jonas, berlin.id),
            _visit_text(session, alex, None),  # about no visit: where the patient booked
            _visit_text(session, jonas, None),  # Berlin, not the first clinic's London
        ]
    report = delivery.send_due(db.write, {Channel.SMS: delivery.HttpSmsTransport(provider)})
    assert report.sent == 4
    sent_to = [p["to"] for p in _Provider.posted]
    assert sent_to == ["+447700900123", "+491701234567", "+447700900123", "+491701234567"]
    with db.read() as session:
        phones = session.scalars(select(Patient.phone).order_by(Patient.id)).all()
        assert phones == ["07700 900123", "0170 1234567"]
        assert [session.get(Notification, i).status for i in ids] == [DeliveryStatus.SENT] * 4
        # a reply from the number a text went to is the patient's (core.portal.replies)
        found = [replies.find_patient_by_phone(session, number).id for number in sent_to[:2]]
        assert found == [world.patient_id, jonas_id]
    (logged,) = _queue(db, 1, Channel.SMS)
    with db.write() as session:
        session.get(Notification, logged).to_address = "0170 1234567"  # about no visit
    caplog.set_level("INFO", logger="clinicdesk")
    assert delivery.send_due(db.write, {Channel.SMS: delivery.LoggingSmsTransport()}).sent == 1
    assert "SMS to +441701234567:" in caplog.text  # read in the first clinic's country


def test_a_text_to_a_number_no_clinics_country_can_read_fails_for_good_saying_fix_it(db, world):
    """A number on file that no phone in the practice's countries can dial (an import's, from
    before the check) is not handed to the provider: the text fails for good, saying which
    number and what to do."""
    from db.models import Patient, StopKind

    with db.write() as session:
        patient = session.get(Patient, world.patient_id)
        patient.phone = "07700 9001234"  # a digit too many for Britain
        id_ = _visit_text(session, patient, world.clinic_id)
    sms = Recording()
    report = delivery.send_due(db.write, {Channel.SMS: sms})
    assert (report.sent, report.failed, sms.sent) == (0, 1, [])
    row = _row(db, id_)
    assert (row.status, row.permanent_failure, row.stop_kind) == (
        DeliveryStatus.FAILED,
        True,
        StopKind.REFUSED,
    )
    assert row.last_error == (
        "Permanent failure, not retried (correct the address, then retry): '07700 9001234' is "
        "no phone number in United Kingdom (it is too long): correct it on the patient's "
        "record, then retry."
    )


def test_a_test_text_goes_to_the_provider_in_international_form(db, world, provider):
    from core.messaging import test_message

    settings = Settings("sqlite://", "k" * 40, data_dir=None, sms=provider)
    sent = test_message.send_test_message(db.write, world.owner, settings, "sms", "07700 900123")
    assert sent.sent
    assert [p["to"] for p in _Provider.posted] == ["+447700900123"]


class _Addressed:
    """A transport that keeps the address each message was handed to it with."""

    def __init__(self) -> None:
        self.to: list[str] = []

    def send(self, notification: Notification) -> None:
        self.to.append(notification.to_address)


def test_a_retry_after_the_number_was_corrected_goes_to_the_corrected_number(db, world):
    """A failure says to correct the number (or address) on the patient's record, then retry;
    before, the retry went to the number the message was queued with, and failed again."""
    from db.models import Patient

    with db.write() as session:
        patient = session.get(Patient, world.patient_id)
        patient.phone = "07700 9001234"  # a digit too many for Britain
        text = _visit_text(session, patient, world.clinic_id)
        email = notify.queue_for_patient(
            session, patient, "appointment_cancelled", {}, channels=[Channel.EMAIL]
        ).notifications[0]
        email.status, email.permanent_failure = DeliveryStatus.FAILED, True  # a 5xx answer
    sms = _Addressed()
    assert delivery.send_due(db.write, {Channel.SMS: sms}).failed == 1
    with db.write() as session:
        patient = session.get(Patient, world.patient_id)
        patient.phone, patient.email = "07700 900123", "alex.morgan@example.org"
        notify.retry(session, world.manager, text)
        notify.retry(session, world.manager, email.id)
    mail = _Addressed()
    assert delivery.send_due(db.write, {Channel.SMS: sms, Channel.EMAIL: mail}).sent == 2
    assert (sms.to, mail.to) == (["+447700900123"], ["alex.morgan@example.org"])
    with db.write() as session:
        patient = session.get(Patient, world.patient_id)
        again = session.get(Notification, _visit_text(session, patient, world.clinic_id))
        again.status, again.permanent_failure = DeliveryStatus.FAILED, True
        patient.phone = None  # taken off the record meanwhile
        with pytest.raises(ValidationError) as refused:
            notify.retry(session, world.manager, again.id)
    assert str(refused.value) == (
        "Alex Morgan has no phone number on their record now: add it there, then retry."
    )


def test_a_retry_of_a_text_to_a_number_on_file_as_a_landline_now_is_refused_saying_why(db, world):
    """A first send gives a landline no text (notify.channels_for); before, a retry after the
    number on file was changed to a landline queued the text to it, which no text reaches."""
    from db.models import Patient

    with db.write() as session:
        patient = session.get(Patient, world.patient_id)
        text = session.get(Notification, _visit_text(session, patient, world.clinic_id))
        text.status, text.permanent_failure = DeliveryStatus.FAILED, True
        patient.phone = "020 7946 0123"  # a London landline (patients.phone_landline)
        text_id = text.id
    with db.write() as session:
        assert session.get(Patient, world.patient_id).phone_landline
        with pytest.raises(ValidationError) as refused:
            notify.retry(session, world.manager, text_id)
    assert str(refused.value) == (
        "'020 7946 0123' is a landline: texts cannot reach it. Add Alex Morgan's mobile number "
        "to their record, then retry."
    )
    assert _row(db, text_id).status == DeliveryStatus.FAILED


def test_a_retry_of_a_message_to_a_record_merged_away_is_refused_naming_the_record_kept(db, world):
    """A first send gives a record merged into another nothing (notify.channels_for: nothing
    goes to a duplicate); before, a retry of its message queued it to the duplicate's address."""
    from tests.factories import make_patient

    with db.write() as session:
        duplicate = make_patient(session, first_name="Alexander", phone="07700 900456")
        text = session.get(Notification, _visit_text(session, duplicate, world.clinic_id))
        text.status, text.permanent_failure = DeliveryStatus.FAILED, True
        duplicate.merged_into_id = world.patient_id
        text_id = text.id
    with db.write() as session, pytest.raises(ValidationError) as refused:
        notify.retry(session, world.manager, text_id)
    assert str(refused.value) == (
        f"Alexander Morgan's record was merged into #{world.patient_id}: this message cannot be "
        "sent again from it. Send a new message from the record kept if they need one."
    )
    assert _row(db, text_id).status == DeliveryStatus.FAILED


@pytest.mark.parametrize("waited", ["queued", "retrying"])
def test_a_message_of_a_record_merged_since_it_was_queued_is_not_sent_naming_the_record_kept(
    db, world, waited
):
    """A first send gives a record merged into another nothing (notify.channels_for: nothing
    goes to a duplicate); before, the sender sent a message still on it (queued by a job that
    read the record while the merge committed), first try or retry, to the duplicate's number.
    Now it is stopped on purpose, naming the record kept, no attempt counted."""
    from db.models import Patient, StopKind
    from tests.factories import make_patient

    with db.write() as session:
        duplicate = make_patient(session, first_name="Alexander", phone="07700 900456")
        text_id = _visit_text(session, duplicate, world.clinic_id)
        if waited == "retrying":  # a temporary failure before the merge
            text = session.get(Notification, text_id)
            text.status, text.attempts, text.last_error = DeliveryStatus.FAILED, 1, "timed out"
        session.get(Patient, duplicate.id).merged_into_id = world.patient_id
    sms = Recording()
    report = delivery.send_due(db.write, {Channel.SMS: sms}, now=utcnow() + timedelta(hours=1))
    assert (report.sent, report.failed, sms.sent) == (0, 1, [])
    row = _row(db, text_id)
    assert (row.status, row.permanent_failure, row.stop_kind, row.claim_token) == (
        DeliveryStatus.FAILED,
        True,
        StopKind.PURPOSE,
        None,
    )
    assert row.attempts == (1 if waited == "retrying" else 0)
    assert row.last_error == (
        f"Not sent: the record was merged into #{world.patient_id}. Send a new message from the "
        "record kept if they need one."
    )


def test_a_text_waiting_when_the_number_on_file_became_a_landline_is_not_sent_saying_why(db, world):
    """A first send gives a landline no text (notify.channels_for); before, a text queued to
    the patient's mobile went out after the number on file was changed to a landline (to the
    old mobile, no longer theirs). Now it is stopped saying to add a mobile, and a retry once
    one is added sends it there."""
    from db.models import Patient, StopKind

    with db.write() as session:
        patient = session.get(Patient, world.patient_id)
        text_id = _visit_text(session, patient, world.clinic_id)
    with db.write() as session:
        session.get(Patient, world.patient_id).phone = "020 7946 0123"  # a London landline
    sms = _Addressed()
    report = delivery.send_due(db.write, {Channel.SMS: sms})
    assert (report.sent, report.failed, sms.to) == (0, 1, [])
    row = _row(db, text_id)
    assert (row.status, row.permanent_failure, row.stop_kind) == (
        DeliveryStatus.FAILED,
        True,
        StopKind.REFUSED,
    )
    assert row.last_error == (
        "Not sent: '020 7946 0123' is a landline: texts cannot reach it. Add Alex Morgan's "
        "mobile number to their record, then retry."
    )
    with db.write() as session:
        session.get(Patient, world.patient_id).phone = "07700 900789"
        notify.retry(session, world.manager, text_id)
    assert delivery.send_due(db.write, {Channel.SMS: sms}).sent == 1
    assert sms.to == ["+447700900789"]


class _WithdrawingConsent:
    """A transport that records what it sends; the first send goes as the patient's consent to
    texts is withdrawn on their record (core.patients.records.update_patient)."""

    def __init__(self, db, actor, patient_id: int) -> None:
        self.db, self.actor, self.patient_id = db, actor, patient_id
        self.sent: list[int] = []

    def send(self, notification: Notification) -> None:
        from core.patients import records

        if not self.sent:
            with self.db.write() as session:
                records.update_patient(session, self.actor, self.patient_id, consent_sms=False)
        self.sent.append(notification.id)


def test_a_text_claimed_when_consent_is_withdrawn_is_not_sent(db, world):
    """A withdrawal stops the patient's texts still waiting (notify.withdraw_queued), but a
    sender holding them in its batch sent them anyway, and wrote them sent over the stop. Now
    each message is looked at again as it goes: one stopped meanwhile is not sent, keeping the
    withdrawal's reason."""
    from db.models import Patient, StopKind

    with db.write() as session:
        patient = session.get(Patient, world.patient_id)
        first, second = (_visit_text(session, patient, world.clinic_id) for _ in range(2))
    sms = _WithdrawingConsent(db, world.manager, world.patient_id)
    report = delivery.send_due(db.write, {Channel.SMS: sms})
    assert (report.sent, report.failed, sms.sent) == (1, 1, [first])
    row = _row(db, second)
    assert (row.status, row.permanent_failure, row.stop_kind, row.claim_token) == (
        DeliveryStatus.FAILED,
        True,
        StopKind.CONSENT,
        None,
    )
    assert (
        row.last_error
        == "Not sent: consent to text messages was withdrawn on the patient's record."
    )


def test_a_message_a_merge_moved_to_the_record_kept_goes_to_its_address_on_record(db, world):
    """A merge moves the duplicate's messages waiting to the record kept (core.patients.merge);
    before, the sender sent them to the duplicate's address and number, which the record kept
    does not hold. Now a message goes where a first send would: the address or number on its
    patient's record as it is sent (as a retry does), which the outbox then shows."""
    from core.patients import merge
    from tests.factories import make_patient

    with db.write() as session:
        duplicate = make_patient(
            session, first_name="Alexander", email="old.alex@example.org", phone="07700 900456"
        )
        queued = notify.queue_for_patient(
            session, duplicate, "appointment_cancelled", {"reason": "Ill"}
        ).notifications
        session.flush()
        ids = {row.channel: row.id for row in queued}
        merge.merge_patients(
            session, world.manager, world.patient_id, duplicate.id, "One person, two records"
        )
    sms, mail = _Addressed(), _Addressed()
    assert delivery.send_due(db.write, {Channel.SMS: sms, Channel.EMAIL: mail}).sent == 2
    assert (mail.to, sms.to) == (["alex@example.org"], ["+447700900123"])
    assert _row(db, ids[Channel.EMAIL]).to_address == "alex@example.org"
    assert _row(db, ids[Channel.SMS]).to_address == "07700 900123"


def test_a_message_claimed_when_its_record_is_merged_goes_to_the_record_kept(db, world):
    """A merge made while a sender holds the duplicate's message (claimed, about to go) moves
    it to the record kept; the sender looks at it again as it goes by its patient now, not
    the one its claimed copy named: sent to the record kept's address, not stopped as the
    merged record's."""
    from core.patients import merge
    from tests.factories import make_patient

    with db.write() as session:
        duplicate = make_patient(
            session, first_name="Alexander", email="old.alex@example.org", phone=None
        )
        (queued,) = notify.queue_for_patient(
            session, duplicate, "appointment_cancelled", {"reason": "Ill"}
        ).notifications
    now = utcnow()
    (held,) = delivery.claim(db.write, "a" * 32, [Channel.EMAIL], now)
    with db.write() as session:
        merge.merge_patients(
            session, world.manager, world.patient_id, duplicate.id, "One person, two records"
        )
    assert delivery.take(db.write, "a" * 32, held, now + delivery.LEASE) == "go"
    assert (held.patient_id, held.to_address) == (world.patient_id, "alex@example.org")
    assert _row(db, queued.id).to_address == "alex@example.org"


@pytest.mark.parametrize(
    ("change", "kind", "reason"),
    [
        (
            {"phone": None},
            "refused",
            "Not sent: no phone number. Add one to Alex Morgan's record, then retry.",
        ),
        (
            {"consent_sms": False},
            "consent",
            "Not sent: no consent to text messages. Record Alex Morgan's consent on their record "
            "if they give it back, then retry.",
        ),
    ],
)
def test_a_text_waiting_when_its_number_or_consent_left_the_record_is_not_sent(
    db, world, change, kind, reason
):
    """A first send gives a patient without a number, or without consent to texts, no text
    (notify.channels_for); before, one queued when they had them went out all the same (a
    number taken off the record, a consent withdrawn as the text was being queued, which
    notify.withdraw_queued did not see yet). Now it is stopped, saying what to put right."""
    from db.models import Patient, StopKind

    with db.write() as session:
        patient = session.get(Patient, world.patient_id)
        text_id = _visit_text(session, patient, world.clinic_id)
    with db.write() as session:
        patient = session.get(Patient, world.patient_id)
        for field, value in change.items():
            setattr(patient, field, value)
    sms = Recording()
    report = delivery.send_due(db.write, {Channel.SMS: sms})
    assert (report.sent, report.failed, sms.sent) == (0, 1, [])
    row = _row(db, text_id)
    assert (row.permanent_failure, row.stop_kind, row.attempts) == (True, StopKind(kind), 0)
    assert row.last_error == reason


def test_the_sender_reads_no_more_statements_for_more_messages_to_patients(db, world):
    """Each message is looked at again by its patient as it goes (delivery.take); its patient
    is read in the statement that renews its claim, not by a read of its own: a round's reads
    (SELECTs) are as many for six messages to patients, by email and text, as for two. Before,
    each message read its patient once more. The messages go to the same addresses."""
    from sqlalchemy import event

    from db.models import Patient

    def round_of(n: int) -> list[str]:
        with db.write() as session:
            patient = session.get(Patient, world.patient_id)
            for _ in range(n):
                notify.queue_for_patient(session, patient, "appointment_cancelled", {})
        statements: list[str] = []

        def seen(conn, cursor, statement, parameters, context, executemany):
            statements.append(statement)

        sms, mail = _Addressed(), _Addressed()
        event.listen(db.engine, "before_cursor_execute", seen)
        try:
            report = delivery.send_due(db.write, {Channel.SMS: sms, Channel.EMAIL: mail})
        finally:
            event.remove(db.engine, "before_cursor_execute", seen)
        assert (report.sent, mail.to, sms.to) == (
            2 * n,
            ["alex@example.org"] * n,
            ["+447700900123"] * n,
        )
        return [s for s in statements if s.lstrip().upper().startswith("SELECT")]

    reads_of_two = round_of(2)
    assert len(round_of(6)) == len(reads_of_two), reads_of_two


def test_a_retry_refused_names_what_the_sender_stopped_the_message_for(db, world):
    """A text to a patient who has neither a number nor consent to texts any more is stopped
    by the sender for the missing number (core.messaging.recipients: an address is looked for
    first); a person's retry is refused in recipients' words for the same thing, not for
    the consent (before, notify kept its own checks in its own order)."""
    from db.models import Patient

    with db.write() as session:
        patient = session.get(Patient, world.patient_id)
        text_id = _visit_text(session, patient, world.clinic_id)
        patient.phone, patient.consent_sms = None, False
    assert delivery.send_due(db.write, {Channel.SMS: Recording()}).failed == 1
    assert _row(db, text_id).last_error == (
        "Not sent: no phone number. Add one to Alex Morgan's record, then retry."
    )
    with db.write() as session, pytest.raises(ValidationError) as refused:
        notify.retry(session, world.manager, text_id)
    assert str(refused.value) == (
        "Alex Morgan has no phone number on their record now: add it there, then retry."
    )
