"""Delivering the outbox: transports (SMTP, SMS) and the sender's claim, send and result.

A sender claims due messages with a claim token of its own (FOR UPDATE SKIP LOCKED on
PostgreSQL; SQLite's write lock serialises claims) and a lease, renews the lease while it sends,
and writes a result only where the message still carries its token: a message is never sent by
two senders at once, and a sender whose claim was taken over writes nothing. Each email carries
a Message-ID derived from the notification, the same on every attempt, so a receiver can drop
a resend. A permanent failure (an SMTP 5xx answer, an address that is not one) is not retried.
A channel without a configured transport keeps its messages queued, saying why, until one is
configured. After delivery the stored text keeps no usable link: tokens are replaced by their
hash, and the attached files' bytes (check-in code, calendar file) are dropped; their names
stay (core.messaging.attachments). SMTP over TLS (SMTP_SECURITY ssl or starttls) checks the
server's certificate and name; a mail server whose certificate no authority signed is not sent
to (its error says so) unless SSL_CERT_FILE names its authority.

A text goes to its number in E.164 (+447700900123), as providers such as Twilio require: a
national number on file is read, when the text is sent, in the country of the clinic it is about
(its visit's), else of the clinics its patient booked at (where a reply from that number is
matched to them, core.portal.sign_in), then of the practice's clinics, first clinic first
(text_regions). Read when sent, not queued, so a retry after the number was corrected reads the
new one; the outbox keeps the number as it was queued (as typed). A number none of those
countries can read is not handed to the provider: the text fails for good, saying which number
to correct.

Each message is looked at again as it goes, first try or retry, as a first send would
(core.messaging.recipients, the rule notify.channels_for applies when it is queued): it goes to
the address or number on its patient's record now (one a merge moved goes to the record kept's,
one corrected since to the corrected one), and it is not sent, stopped with the reason and no
attempt counted, when its record was merged into another (on purpose: never retried; naming the
record kept), or the patient has no consent or no address on its channel, or a number now a
landline for a text (a person may retry once that is put right). One stopped while the sender
held it (a consent withdrawn, notify.withdraw_queued) is not sent either, keeping its reason.

A connection-level failure (refused, timed out, disconnected, unreachable) says the server is
down, not that the message is wrong: that message counts the attempt and backs off, and the rest
of the round's messages for that channel are handed back untried (no attempt counted, due at
once) for the next round — so a server that accepts connections but never answers holds the
jobs round for one timeout, not one per message.

A reminder still waiting (the server was down, say) whose appointment has changed since it was
queued is stopped before the round claims anything: cancelled, moved to another time (no
reminder was queued for its current start before this one), or no longer ahead of the patient
(its time has come, checked in, done, recorded as a no-show). It is marked failed for good with
the reason, as a withdrawn consent is; the job queues a reminder for a moved visit's new time.
So are forms to complete for a visit no longer scheduled or whose forms are all done, and a
survey request the patient has answered already (in the portal, say).

Quiet hours hold the patient's automatic messages here too, not only when they are queued
(core.messaging.quiet): a claimed reminder, automatic survey request or waitlist offer that
would leave inside its clinic's quiet hours (a retry, one that waited for SMTP to be set up) is
handed back, due when they end, without counting an attempt; one that would by then be useless
(too little notice, an offer whose hold has ended) is stopped with the reason. A claimed batch is
judged at once (a few reads for the whole batch, its holds written in one transaction), and each
message again, from what was read, at the moment it would go.
"""

from __future__ import annotations

import functools
import json
import logging
import re
import smtplib
import ssl
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import parseaddr
from typing import Protocol

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import and_, exists, func, or_, select, update
from sqlalchemy.orm.attributes import set_committed_value

from core.kernel import phones
from core.kernel.authz import Actor, Permission, ensure
from core.kernel.config import Settings, SmsSettings, SmtpSettings
from core.kernel.tokens import hash_token
from core.messaging import quiet, recipients, visit_calendar
from db.models import (
    Appointment,
    AppointmentStatus,
    Channel,
    Clinic,
    DeliveryStatus,
    FeedbackRequest,
    FormRequest,
    Notification,
    NotificationAttachment,
    Patient,
    ReminderSent,
    StopKind,
)
from db.types import utcnow

log = logging.getLogger("clinicdesk.notify")

MAX_ATTEMPTS = 6
BACKOFF = (
    timedelta(minutes=1),
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=2),
    timedelta(hours=12),
)
LEASE = timedelta(minutes=5)  # a claim not renewed for this long may be taken over
BATCH = 100
WAITING = {
    Channel.EMAIL: "Waiting: SMTP is not configured (set SMTP_HOST, see README, Configuration); "
    "it goes out once it is.",
    Channel.SMS: "Waiting: no SMS transport is configured; it goes out once one is.",
}
PERMANENT = "Permanent failure, not retried (correct the address, then retry): "
_TOKEN_IN_LINK = re.compile(r"([?&]t=)([A-Za-z0-9_\-]{16,128})")


class PermanentFailure(Exception):
    """A transport's answer that retrying cannot change (bad address, 5xx)."""


class Transport(Protocol):
    def send(self, notification: Notification) -> None: ...


def message_id(notification: Notification, sender: str) -> str:
    """The same Message-ID on every attempt at one notification."""
    domain = parseaddr(sender)[1].rpartition("@")[2] or "clinicdesk.local"
    return f"<notification-{notification.id}.{notification.created_at:%Y%m%d%H%M%S}@{domain}>"


def connection_failed(error: Exception) -> bool:
    """Whether `error` says the server cannot be reached at all (see the module)."""
    if isinstance(error, (smtplib.SMTPServerDisconnected, smtplib.SMTPConnectError)):
        return True
    if isinstance(error, (smtplib.SMTPException, urllib.error.HTTPError, PermanentFailure)):
        return False  # the server answered
    return isinstance(error, OSError)  # refused, reset, timed out, unreachable, TLS, URLError


class SmtpTransport:
    def __init__(self, settings: SmtpSettings, timeout: float = 20) -> None:
        self.settings, self.timeout = settings, timeout

    def send(self, notification: Notification) -> None:
        s = self.settings
        try:
            validate_email(
                notification.to_address,
                check_deliverability=False,
                globally_deliverable=False,
                test_environment=True,
            )
        except EmailNotValidError as exc:
            raise PermanentFailure(
                f"{notification.to_address!r} is not an email address: {exc}"
            ) from None
        message = EmailMessage()
        message["From"], message["To"] = s.sender, notification.to_address
        message["Subject"] = notification.subject
        message["Message-ID"] = message_id(notification, s.sender)
        message.set_content(notification.body)
        for file in notification.attachments:
            if file.content is None:  # sent already: its bytes were dropped
                continue
            maintype, _, subtype = file.content_type.partition("/")
            # a text file is UTF-8 (core.messaging.attachments), said: unsaid, a mail program
            # reads "ü" as US-ASCII, the MIME default (for a calendar: RFC 6047 2.4); a calendar
            # file's part says the file's own METHOD (RFC 6047 2.4: Outlook ignores a file
            # whose part says another), none for a file without one
            params = {"charset": "utf-8"} if maintype == "text" else None
            if subtype == "calendar" and (method := visit_calendar.method_of(file.content)):
                params = {"method": method, "charset": "utf-8"}
            message.add_attachment(
                file.content, maintype=maintype, subtype=subtype, filename=file.name, params=params
            )
        try:
            if s.security == "ssl":
                connection = smtplib.SMTP_SSL(s.host, s.port, timeout=self.timeout, context=_tls())
            else:
                connection = smtplib.SMTP(s.host, s.port, timeout=self.timeout)
            with connection as client:
                if s.security == "starttls":
                    client.starttls(context=_tls())
                if s.username:
                    client.login(s.username, s.password)
                client.send_message(message)
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            if codes and all(code >= 500 for code in codes):
                raise PermanentFailure(_smtp_answer(*exc.recipients.popitem()[1])) from None
            raise
        except smtplib.SMTPDataError as exc:
            if exc.smtp_code >= 500:
                raise PermanentFailure(_smtp_answer(exc.smtp_code, exc.smtp_error)) from None
            raise


@functools.cache
def _tls() -> ssl.SSLContext:
    """The server's certificate and name checked against the system's authorities (or
    SSL_CERT_FILE's, for a relay with a CA of its own): smtplib's default checks neither. Built
    once a process: reading the authorities took 30 ms of CPU, which every message paid, also
    over plain SMTP (the e2e servers' jobs loops: about a third of their CPU)."""
    return ssl.create_default_context()


def _smtp_answer(code: int, text: bytes | str) -> str:
    words = text.decode(errors="replace") if isinstance(text, bytes) else text
    return f"the mail server answered {code} {words}"


class LoggingSmsTransport:
    """The default SMS transport: writes the message to the log (no provider configured),
    its links' tokens redacted: whoever reads the log must not be able to use them."""

    def send(self, notification: Notification) -> None:
        log.info("SMS to %s: %s", notification.to_address, redact(notification.body))


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Follows no redirect: urllib follows one to a POST as a GET without the message, so a
    provider's page answering 200 would have it recorded as sent."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None  # urllib then raises the 3xx answer as an HTTPError


_NO_REDIRECTS = urllib.request.build_opener(_NoRedirect)


class HttpSmsTransport:
    """Posts {"to", "text"} as JSON with a bearer token to the configured provider address.
    A redirect is a failure naming the new address (the message is not posted there: the
    practice's settings say where texts go)."""

    def __init__(self, settings: SmsSettings, timeout: float = 20) -> None:
        self.settings, self.timeout = settings, timeout

    def send(self, notification: Notification) -> None:
        request = urllib.request.Request(
            self.settings.http_url,
            data=json.dumps({"to": notification.to_address, "text": notification.body}).encode(),
            headers={
                "Content-Type": "application/json",
                "Authorization": f"Bearer {self.settings.http_token}",
            },
            method="POST",
        )
        try:
            with _NO_REDIRECTS.open(request, timeout=self.timeout) as response:
                if response.status >= 300:
                    raise RuntimeError(f"SMS provider answered HTTP {response.status}")
        except urllib.error.HTTPError as exc:
            if 300 <= exc.code < 400:
                moved = exc.headers.get("Location", "")
                raise RuntimeError(
                    f"the SMS provider answered HTTP {exc.code}, a redirect to {moved!r}: set "
                    "SMS_HTTP_URL to the address it names (see README, Configuration)"
                ) from None
            if 400 <= exc.code < 500 and exc.code not in (401, 403, 408, 429):
                raise PermanentFailure(f"the SMS provider answered HTTP {exc.code}") from None
            raise


def transports(settings: Settings) -> dict[Channel, Transport]:
    """The configured transports; a channel without one keeps its messages queued."""
    sms = (
        HttpSmsTransport(settings.sms) if settings.sms.provider == "http" else LoggingSmsTransport()
    )
    found: dict[Channel, Transport] = {Channel.SMS: sms}
    if settings.smtp:
        found[Channel.EMAIL] = SmtpTransport(settings.smtp)
    return found


def text_regions(
    session, rows: list[Notification], practice: tuple[str, ...] | None = None
) -> dict[int, tuple[str, ...]]:
    """By id, the countries each text of `rows` reads its national number in, in order: its
    visit's clinic's, else those of the clinics its patient booked at (the countries an inbound
    reply from the number is matched in, core.portal.sign_in), then the practice's
    (core.kernel.phones.practice_regions; `practice` when read already). Three reads at most
    for the batch."""
    texts = [row for row in rows if row.channel == Channel.SMS]
    visits = {row.appointment_id for row in texts} - {None}
    patients = {row.patient_id for row in texts if row.appointment_id is None} - {None}
    clinic_of: dict[int, str] = {}
    if visits:
        clinic_of = dict(
            session.execute(
                select(Appointment.id, Clinic.locale)
                .join(Clinic, Clinic.id == Appointment.clinic_id)
                .where(Appointment.id.in_(visits))
            ).all()
        )
    booked = phones.booked_regions(session, patients)
    if practice is None:
        practice = phones.practice_regions(session) if texts else ()
    found = {}
    for row in texts:
        if row.appointment_id in clinic_of:
            read_in: tuple[str, ...] = (phones.phone_region(clinic_of[row.appointment_id]),)
        else:
            read_in = booked.get(row.patient_id, ())
        found[row.id] = tuple(dict.fromkeys([*read_in, *practice]))
    return found


def text_address(phone: str, regions: tuple[str, ...]) -> str:
    """The number a text goes to, in E.164 (core.kernel.phones.e164); a PermanentFailure
    saying what to correct when none of `regions` can read it."""
    address = phones.e164(phone, regions)
    if address is None:
        why = phones.phone_problem(phone, regions) or "no phone can dial it"
        raise PermanentFailure(
            f"{phone!r} is no phone number in {phones.countries(regions)} ({why}): correct it "
            "on the patient's record, then retry."
        )
    return address


def _regions_of(
    write: Callable[[], object], rows: list[Notification]
) -> tuple[dict[int, tuple[str, ...]], tuple[str, ...]]:
    """text_regions for the batch, and the practice's countries (a landline is one in them,
    core.messaging.recipients): one transaction, none without a text."""
    if not any(row.channel == Channel.SMS for row in rows):
        return {}, ()
    with write() as session:
        practice = phones.practice_regions(session)
        return text_regions(session, rows, practice), practice


def _due():
    return and_(
        Notification.permanent_failure.is_(False),
        or_(
            Notification.status == DeliveryStatus.QUEUED,
            and_(
                Notification.status == DeliveryStatus.FAILED,
                Notification.attempts < MAX_ATTEMPTS,
            ),
        ),
    )


def redact(text: str) -> str:
    """`text` with every link token replaced by its SHA-256 (what LinkToken stores)."""
    return _TOKEN_IN_LINK.sub(lambda m: f"{m[1]}redacted-sha256-{hash_token(m[2])}", text)


@dataclass(frozen=True)
class DeliveryReport:
    sent: int
    failed: int
    retrying: int
    waiting: int = 0
    lost: int = 0  # results not written: another sender had taken the claim over
    held: int = 0  # handed back until the end of their clinic's quiet hours


def claim(
    write: Callable[[], object],
    token: str,
    channels: list[Channel],
    now: datetime,
    *,
    lease: timedelta = LEASE,
    limit: int = BATCH,
) -> list[Notification]:
    """Claim up to `limit` due messages for `token` until now + lease (detached copies, their
    files loaded)."""
    with write() as session:
        query = (
            select(Notification)
            .where(_due(), Notification.next_attempt_at <= now, Notification.channel.in_(channels))
            .order_by(Notification.next_attempt_at, Notification.id)
            .limit(limit)
        )
        if session.bind.dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True)
        claimed = list(session.scalars(query))
        for row in claimed:
            row.claim_token, row.next_attempt_at = token, now + lease
        session.flush()
        _load_attachments(session, claimed)
        session.expunge_all()
    return claimed


def _load_attachments(session, rows: list[Notification]) -> None:
    """Give each claimed row its files (one read for the batch), for the transport to attach
    once the row is detached."""
    files: dict[int, list[NotificationAttachment]] = defaultdict(list)
    if rows:
        for file in session.scalars(
            select(NotificationAttachment)
            .where(NotificationAttachment.notification_id.in_([row.id for row in rows]))
            .order_by(NotificationAttachment.notification_id, NotificationAttachment.position)
        ):
            files[file.notification_id].append(file)
    for row in rows:
        set_committed_value(row, "attachments", files[row.id])


def release(write: Callable[[], object], token: str, ids: list[int], due: datetime) -> None:
    """Hand back messages `token` claimed but did not try: due again at `due`, unclaimed."""
    if not ids:
        return
    with write() as session:
        session.execute(
            update(Notification)
            .where(Notification.claim_token == token, Notification.id.in_(ids))
            .values(claim_token=None, next_attempt_at=due)
            .execution_options(synchronize_session=False)
        )


def renew(write: Callable[[], object], token: str, until: datetime, ids: list[int]) -> set[int]:
    """Extend the lease of the messages still held by `token`; the ids it still holds."""
    if not ids:
        return set()
    with write() as session:
        held = Notification.claim_token == token
        session.execute(
            update(Notification)
            .where(held, Notification.id.in_(ids))
            .values(next_attempt_at=until)
            .execution_options(synchronize_session=False)
        )
        return set(session.scalars(select(Notification.id).where(held, Notification.id.in_(ids))))


# what core.messaging.recipients reads of a message's patient, read by take as it renews the
# claim (in the same statement: a read a message would be one statement more for each)
_READ_OF_PATIENT = (
    Patient.merged_into_id,
    Patient.first_name,
    Patient.last_name,
    Patient.email,
    Patient.phone,
    Patient.consent_email,
    Patient.consent_sms,
)


def _of_its_patient(column):
    """`column` of the patient a message (the statement's notification) is to."""
    return (
        select(column)
        .where(Patient.id == Notification.patient_id)
        .correlate(Notification)
        .scalar_subquery()
    )


def take(
    write: Callable[[], object],
    token: str,
    row: Notification,
    until: datetime,
    practice: tuple[str, ...] = (),
) -> str:
    """Renew `token`'s claim on `row` as it is about to go, and look at it again as a first
    send would (core.messaging.recipients), in one transaction: "go", to the address or number
    on its patient's record now (its patient as it is now, a merge since the claim moved it to
    the record kept; written on the message and on `row`, the detached copy);
    "failed" when it was stopped since it was claimed (a consent withdrawn: its reason stays)
    or is stopped now, with the reason (its record merged into another, no address or consent
    on that channel, a number now a landline), claim released, no attempt counted; "lost" when
    the claim was taken over (nothing written). `practice`: the practice's countries, when
    read for the batch."""
    with write() as session:
        mine = and_(Notification.id == row.id, Notification.claim_token == token)
        held = session.execute(
            update(Notification)
            .where(mine)
            .values(next_attempt_at=until)
            .returning(
                Notification.permanent_failure,
                Notification.patient_id,
                *(_of_its_patient(column) for column in _READ_OF_PATIENT),
            )
            .execution_options(synchronize_session=False)
        ).first()
        if held is None:
            return "lost"
        # its patient now: a merge since the claim moved it to the record kept
        stopped_meanwhile, patient_id, *now_on_record = held
        set_committed_value(row, "patient_id", patient_id)
        patient = None
        if patient_id is not None:
            read = zip(_READ_OF_PATIENT, now_on_record, strict=True)
            # a transient copy, for the rule only
            patient = Patient(id=patient_id, **{column.key: value for column, value in read})
        if row.channel == Channel.SMS and not practice:
            practice = phones.practice_regions(session)  # where a number is a landline
        refused = patient and recipients.unreachable(patient, row.channel, regions=practice)
        values: dict[str, object] = {}
        if stopped_meanwhile:
            values = {"claim_token": None}
        elif refused:
            values = {"claim_token": None, **stopped(refused.kind, refused.reason)}
        elif patient and (to := recipients.address(patient, row.channel)) != row.to_address:
            values = {"to_address": to}
            set_committed_value(row, "to_address", to)
        if values:
            session.execute(
                update(Notification)
                .where(mine)
                .values(**values)
                .execution_options(synchronize_session=False)
            )
    return "failed" if stopped_meanwhile or refused else "go"


def record(
    write: Callable[[], object],
    token: str,
    row: Notification,
    error: Exception | None,
    now: datetime,
) -> str:
    """Write one attempt's result if `token` still holds the claim: "sent", "retrying",
    "failed" (for good) or "lost" (the claim was taken over; nothing written)."""
    values: dict[str, object] = {"attempts": Notification.attempts + 1, "claim_token": None}
    if error is None:
        outcome = "sent"
        values |= {
            "status": DeliveryStatus.SENT,
            "sent_at": utcnow(),
            "last_error": None,
            "body": redact(row.body),
        }
    elif isinstance(error, PermanentFailure):
        outcome = "failed"
        values |= stopped(StopKind.REFUSED, (PERMANENT + str(error))[:1000])
    else:
        # failed shows on screen at once; the sender retries it with back-off until
        # MAX_ATTEMPTS, after which only a person's "retry" sends it again
        outcome = "failed" if row.attempts + 1 >= MAX_ATTEMPTS else "retrying"
        values |= {
            "status": DeliveryStatus.FAILED,
            "last_error": f"{type(error).__name__}: {error}"[:1000],
            "next_attempt_at": now + BACKOFF[min(row.attempts, len(BACKOFF) - 1)],
        }
    with write() as session:
        result = session.execute(
            update(Notification)
            .where(Notification.id == row.id, Notification.claim_token == token)
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        if result.rowcount == 0:
            log.warning("notification %s: claim taken over; result not written", row.id)
            return "lost"
        if outcome == "sent":  # the files' bytes go; their names stay
            session.execute(
                update(NotificationAttachment)
                .where(NotificationAttachment.notification_id == row.id)
                .values(content=None)
                .execution_options(synchronize_session=False)
            )
    return outcome


class _Heartbeat(threading.Thread):
    """Renews the current batch's claim every third of the lease while it is being sent."""

    def __init__(self, write, token: str, lease: timedelta, clock: Callable[[], datetime]):
        super().__init__(daemon=True, name=f"outbox-claim-{token[:8]}")
        self.write, self.token, self.lease, self.clock = write, token, lease, clock
        self.ids: list[int] = []
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(self.lease.total_seconds() / 3):
            try:
                renew(self.write, self.token, self.clock() + self.lease, list(self.ids))
            except Exception as exc:  # the result write is fenced anyway; say it once a beat
                log.warning("could not renew the outbox claim: %s", exc)


def _mark_waiting(write: Callable[[], object], channels: dict[Channel, Transport]) -> int:
    """Say on each queued message of a channel without transport why it waits; how many."""
    waiting = 0
    for channel in sorted(set(Channel) - set(channels)):
        queued = and_(Notification.channel == channel, Notification.status == DeliveryStatus.QUEUED)
        with write() as session:
            session.execute(
                update(Notification)
                .where(queued, Notification.last_error.is_distinct_from(WAITING[channel]))
                .values(last_error=WAITING[channel])
                .execution_options(synchronize_session=False)
            )
            waiting += session.scalar(select(func.count()).where(queued)) or 0
    return waiting


REMINDER = quiet.REMINDER  # core.messaging.reminders' template
FORMS = "forms_to_complete"  # core.forms.after_booking's template
# the statuses in which a visit's forms may still be answered (core.forms.after_booking)
FORMS_OPEN = (AppointmentStatus.SCHEDULED, AppointmentStatus.CHECKED_IN)


def hold_for_quiet_hours(
    write: Callable[[], object], token: str, rows: list[Notification], now: datetime
) -> tuple[quiet.Facts, dict[int, str]]:
    """Judge the claimed `rows` at `now` at once (core.messaging.quiet): those quiet hours keep
    are handed back until their clinic's quiet hours end ("held") or stopped for good
    ("failed"), in one transaction, written only under `token`'s claim ("lost": taken over,
    nothing written). The facts read (to judge a message again as it goes) and, by id, what
    became of each one kept."""
    held = [row for row in rows if row.template in quiet.HELD]
    if not held:
        return quiet.Facts(), {}
    with write() as session:
        facts = quiet.gather(session, held)
        decisions = {row.id: d for row in held if (d := facts.decide(row, now)) is not None}
        return facts, _keep(session, token, held, decisions)


def _keep(
    session, token: str, rows: list[Notification], decisions: dict[int, quiet.Decision]
) -> dict[int, str]:
    """Write `decisions` (by id) on `rows` still claimed by `token`, one statement for the rows
    a decision treats alike; by id, "held", "failed" or "lost"."""
    alike: dict[tuple, list[int]] = defaultdict(list)
    for row in rows:
        if (decision := decisions.get(row.id)) is not None:
            note = decision.note if row.status == DeliveryStatus.QUEUED else None
            alike[(decision.stopped, decision.until, note)].append(row.id)
    outcomes: dict[int, str] = {}
    for (why, until, note), ids in alike.items():
        values: dict[str, object] = {"claim_token": None}
        if why:
            values |= stopped(StopKind.PURPOSE, why)
        else:
            values["next_attempt_at"] = until
            if note is not None:  # a failed one keeps its error on screen
                values["last_error"] = note
        written = set(
            session.scalars(
                update(Notification)
                .where(Notification.id.in_(ids), Notification.claim_token == token)
                .values(**values)
                .returning(Notification.id)
                .execution_options(synchronize_session=False)
            )
        )
        for id_ in ids:
            outcomes[id_] = ("failed" if why else "held") if id_ in written else "lost"
    return outcomes


def stopped(kind: StopKind, reason: str) -> dict[str, object]:
    """The values that stop a message for good, `reason` shown as its error, `kind` saying
    what a retry may do (db.models.StopKind)."""
    return {
        "status": DeliveryStatus.FAILED,
        "permanent_failure": True,
        "stop_kind": kind,
        "last_error": reason,
    }


def _stop_stale(write: Callable[[], object], now: datetime) -> None:
    """Stop the waiting messages that would arrive stale (see the module), each with the
    reason: reminders whose appointment changed since they were queued, forms to complete for
    a visit no longer scheduled or whose forms are all done, and survey requests already
    answered. One a sender holds right now is left to go."""
    waiting = and_(
        Notification.status.in_([DeliveryStatus.QUEUED, DeliveryStatus.FAILED]),
        Notification.permanent_failure.is_(False),
        Notification.claim_token.is_(None),
    )
    reminded_for_its_time = exists().where(
        ReminderSent.appointment_id == Appointment.id,
        ReminderSent.start_at == Appointment.start_at,
        ReminderSent.queued_at <= Notification.created_at,
    )

    def visit(condition):
        return exists().where(Appointment.id == Notification.appointment_id, condition)

    reminder, forms = Notification.template == REMINDER, Notification.template == FORMS
    forms_of_the_visit = FormRequest.appointment_id == Notification.appointment_id
    stale = [
        (
            reminder,
            visit(Appointment.status == AppointmentStatus.CANCELLED),
            "the appointment was cancelled",
        ),
        (
            reminder,
            visit(
                or_(Appointment.status != AppointmentStatus.SCHEDULED, Appointment.start_at <= now)
            ),
            "the appointment is no longer ahead (its time has come, or it was checked in, done or "
            "missed)",
        ),
        (reminder, visit(~reminded_for_its_time), "the appointment was moved to another time"),
        (
            forms,
            visit(Appointment.status.not_in(FORMS_OPEN)),
            "the appointment is no longer scheduled (cancelled, declined, missed or done)",
        ),
        (
            forms,
            and_(
                exists().where(forms_of_the_visit),
                ~exists().where(forms_of_the_visit, FormRequest.completed_at.is_(None)),
            ),
            "the forms were all completed before it went out",
        ),
    ]
    answered = exists().where(
        FeedbackRequest.id == Notification.feedback_request_id,
        FeedbackRequest.answered_at.is_not(None),
    )
    stale.append(
        (
            Notification.template == quiet.SURVEY,
            answered,
            "the patient answered the survey before it went out",
        )
    )
    templates = [REMINDER, FORMS, quiet.SURVEY]
    with write() as session:
        if not session.scalar(
            select(exists().where(waiting, Notification.template.in_(templates)))
        ):
            return  # most rounds: nothing of those kinds waits, one read instead of six updates
        for kind, condition, why in stale:
            session.execute(
                update(Notification)
                .where(waiting, kind, condition)
                .values(**stopped(StopKind.PURPOSE, f"Not sent: {why}."))
                .execution_options(synchronize_session=False)
            )


def send_due(
    write: Callable[[], object],
    channels: dict[Channel, Transport],
    *,
    limit: int = BATCH,
    now: datetime | None = None,
    lease: timedelta = LEASE,
) -> DeliveryReport:
    """Deliver everything due, `limit` messages a batch. `write` opens a write transaction
    (Database.write). Messages of a channel missing from `channels` stay queued and say why;
    a channel whose server cannot be reached is left for the next round (see the module)."""
    start, started = now or utcnow(), time.monotonic()
    token = uuid.uuid4().hex
    counts = dict.fromkeys(("sent", "failed", "retrying", "lost", "held"), 0)
    _stop_stale(write, start)
    waiting = _mark_waiting(write, channels)

    def clock() -> datetime:
        return start + timedelta(seconds=time.monotonic() - started)

    heartbeat = _Heartbeat(write, token, lease, clock)
    heartbeat.start()
    down: set[Channel] = set()  # unreachable this round
    try:
        while batch := claim(
            write, token, [c for c in channels if c not in down], start, lease=lease, limit=limit
        ):
            heartbeat.ids = [row.id for row in batch]
            facts, kept = hold_for_quiet_hours(write, token, batch, clock())
            regions, practice = _regions_of(write, [row for row in batch if row.id not in kept])
            untried = []
            for row in batch:
                if row.id in kept:
                    counts[kept[row.id]] += 1
                    continue
                if row.channel in down:
                    untried.append(row.id)
                    continue
                # taken over while this batch waited ("lost"), or stopped ("failed")
                if (taken := take(write, token, row, clock() + lease, practice)) != "go":
                    counts[taken] += 1
                    continue
                if (decision := facts.decide(row, clock())) is not None:  # began meanwhile
                    with write() as session:
                        counts[_keep(session, token, [row], {row.id: decision})[row.id]] += 1
                    continue
                error = None
                try:
                    if row.id in regions:  # the detached copy's: the outbox keeps it as typed
                        to = text_address(row.to_address, regions[row.id])
                        set_committed_value(row, "to_address", to)
                    channels[row.channel].send(row)
                except Exception as exc:  # any transport failure is recorded on the message
                    error = exc
                counts[record(write, token, row, error, start)] += 1
                if error is not None and connection_failed(error):
                    down.add(row.channel)
                    log.warning("%s server unreachable (%s): the rest waits", row.channel, error)
            release(write, token, untried, start)
    finally:
        heartbeat.stopped.set()
        heartbeat.join()
    return DeliveryReport(
        counts["sent"],
        counts["failed"],
        counts["retrying"],
        waiting,
        counts["lost"],
        counts["held"],
    )


def deliver_now(write: Callable[[], object], actor: Actor, settings: Settings) -> DeliveryReport:
    """A person's "send now" on the Notifications page (the background sender runs anyway)."""
    ensure(actor, Permission.NOTIFICATIONS_MANAGE)
    return send_due(write, transports(settings))
