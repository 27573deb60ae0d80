"""bench.browser's scale-out set-up: two `streamlit run bench/browser_serve.py` processes on one
throwaway PostgreSQL behind Debian's nginx, configured from deploy/nginx.conf, with both jobs
loops delivering to a loopback SMTP server.

    with ScaleOut(appointments=20_000) as cluster:
        ...  # drive browsers at cluster.url
        spread = cluster.spread()      # sessions per process, stickiness, from nginx's log
        outbox = cluster.outbox(after_id)  # every email queued delivered exactly once?

The nginx configuration is deploy/nginx.conf itself with the two ports, a free listen port, an
access log (route, upstream, status, URI) and a response header naming the upstream: a change
to the shipped file is what gets measured.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from contextlib import ExitStack
from pathlib import Path
from typing import Self

from bench.run import DATA, ROOT, SECRET, log
from tests.support.browser import StreamlitServer
from tests.support.postgres import TempPostgres, free_port
from tests.support.smtp import LoopbackSMTP

NGINX_CONF = ROOT / "deploy" / "nginx.conf"
UPSTREAM_HEADER = "X-ClinicDesk-Upstream"
STREAM = "/_stcore/stream"  # Streamlit's WebSocket: where a session lives
JOB_SECONDS = "2"
DRAIN_TIMEOUT_S = 180.0


def nginx_binary() -> str | None:
    return shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx",) if Path(p).exists()), None
    )


def render_nginx_conf(listen: int, ports: list[int]) -> str:
    """deploy/nginx.conf for this run: its two upstream ports, the listen port, plus an access
    log and a header naming the upstream. Every edited line must be there as shipped."""
    text = NGINX_CONF.read_text()
    edits = {
        "listen 8080;": f"listen 127.0.0.1:{listen};",
        "server 127.0.0.1:8601;": f"server 127.0.0.1:{ports[0]};",
        "server 127.0.0.1:8602;": f"server 127.0.0.1:{ports[1]};",
        "access_log off;": (
            "log_format bench '$route $upstream_addr $status $request_uri';\n"
            "    access_log access.log bench;"
        ),
        "add_header Set-Cookie $route_cookie always;": (
            "add_header Set-Cookie $route_cookie always;\n"
            f"            add_header {UPSTREAM_HEADER} $upstream_addr always;"
        ),
    }
    for old, new in edits.items():
        if text.count(old) != 1:
            raise RuntimeError(f"{NGINX_CONF} no longer has the line {old!r} once")
        text = text.replace(old, new)
    return text


def wait_idle(pids: list[int], timeout: float = 300) -> float:
    """Wait until the server processes `pids` are nearly idle: under 20% of a core, together,
    three seconds running (their start-up and the jobs loops' first rounds done: the roll-ups,
    the reminders, the day's risk scoring); seconds waited."""
    tick = os.sysconf("SC_CLK_TCK")
    started = time.monotonic()
    quiet = 0

    def cpu() -> float:
        total = 0
        for pid in pids:
            with contextlib.suppress(OSError):
                fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
                total += int(fields[11]) + int(fields[12])  # utime, stime
        return total / tick

    before = cpu()
    while time.monotonic() - started < timeout and quiet < 3:
        time.sleep(1)
        now = cpu()
        quiet = quiet + 1 if now - before < 0.2 else 0
        before = now
    return time.monotonic() - started


class Nginx:
    """nginx in the foreground (`-g 'daemon off;'`) from a temporary prefix directory."""

    def __init__(self, listen: int, ports: list[int]) -> None:
        self.port = listen
        self.prefix = Path(tempfile.mkdtemp(prefix="clinicdesk-nginx-"))
        (self.prefix / "nginx.conf").write_text(render_nginx_conf(listen, ports))
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def access_log(self) -> Path:
        return self.prefix / "access.log"

    def start(self) -> Self:
        binary = nginx_binary()
        if binary is None:
            raise RuntimeError("nginx not found: apt-get install nginx-light (or nginx)")
        command = [binary, "-p", f"{self.prefix}/", "-c", str(self.prefix / "nginx.conf")]
        command += ["-e", "stderr", "-g", "daemon off;"]
        self._output = open(self.prefix / "output.txt", "wb")  # noqa: SIM115
        self._process = subprocess.Popen(
            command, stdout=self._output, stderr=subprocess.STDOUT, start_new_session=True
        )
        deadline = time.monotonic() + 15
        while True:
            if self._process.poll() is not None:
                out = (self.prefix / "output.txt").read_text(errors="replace")
                raise RuntimeError(f"nginx exited with {self._process.returncode}:\n{out}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port)):
                return self
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("nginx did not listen within 15 s")
            time.sleep(0.05)

    def stop(self) -> None:
        """Graceful quit (the log complete), terminate after 10 s; the prefix removed."""
        if self._process is not None:
            for sig, wait in ((signal.SIGQUIT, 10), (signal.SIGTERM, 5), (signal.SIGKILL, 5)):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self._process.pid, sig)
                try:
                    self._process.wait(timeout=wait)
                    break
                except subprocess.TimeoutExpired:
                    continue
            self._process = None
            self._output.close()
            self._lines = self.log_lines()  # complete now
        shutil.rmtree(self.prefix, ignore_errors=True)

    def log_lines(self) -> list[list[str]]:
        """The access log's lines, split (kept after stop())."""
        if not self.access_log.exists():
            return getattr(self, "_lines", [])
        return [line.split() for line in self.access_log.read_text().splitlines() if line]


class ScaleOut:
    """PostgreSQL + bench data, loopback SMTP, two app processes, nginx; torn down in reverse."""

    def __init__(self, appointments: int, patients: int, responses: int) -> None:
        self.appointments, self.patients, self.responses = appointments, patients, responses
        self._stack = ExitStack()
        self.servers: list[StreamlitServer] = []

    @property
    def url(self) -> str:
        return self.nginx.url

    @property
    def pids(self) -> list[int]:
        return [s._process.pid for s in self.servers]  # noqa: SLF001  (their memory)

    def __enter__(self) -> Self:
        try:
            self._start()
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stack.close()

    def _start(self) -> None:
        from bench import generate

        if nginx_binary() is None:
            raise RuntimeError("nginx not found: apt-get install nginx-light (or nginx)")
        pg = self._stack.enter_context(TempPostgres())
        self.database_url = pg.create_database(f"bench_{uuid.uuid4().hex[:8]}")
        log(f"PostgreSQL on port {pg.port}: generating {self.appointments:,} appointments")
        generate.generate(
            self.database_url,
            appointments=self.appointments,
            patients=self.patients,
            responses=self.responses,
        )
        self.done_before = self._done_email_ids()  # the demo's history: sent before the run
        self.smtp = self._stack.enter_context(LoopbackSMTP())
        ports = [free_port(), free_port()]
        while ports[1] == ports[0]:
            ports[1] = free_port()
        listen = free_port()
        env = {
            "DATABASE_URL": self.database_url,
            "CLINICDESK_SECRET_KEY": SECRET,
            "CLINICDESK_DATA_DIR": str(DATA),
            "CLINICDESK_BASE_URL": f"http://127.0.0.1:{listen}",
            "CLINICDESK_JOB_SECONDS": JOB_SECONDS,
            "CLINICDESK_NIGHTLY_BACKUP": "off",  # as bench.browser: not timed with the sessions
            "SMTP_HOST": self.smtp.host,
            "SMTP_PORT": str(self.smtp.port),
            "SMTP_SECURITY": "none",
        }
        for port in ports:
            log(f"app process on port {port} (jobs every {JOB_SECONDS} s)")
            server = StreamlitServer("bench/browser_serve.py", cwd=ROOT, env=env, port=port)
            self.servers.append(self._stack.enter_context(server))
        self.nginx = Nginx(listen, ports)
        self._stack.callback(self.nginx.stop)
        self.nginx.start()
        log(f"nginx on {self.nginx.url} → {ports[0]}, {ports[1]} (deploy/nginx.conf)")
        self.ports = ports

    def upstream_of(self, addr: str) -> str:
        """'A' or 'B' for an upstream address, as named in the report."""
        for name, port in zip("AB", self.ports, strict=True):
            if addr.endswith(f":{port}"):
                return name
        return addr

    def spread(self) -> dict:
        """From nginx's access log: how many Streamlit sessions (WebSocket upgrades) each
        process holds, and whether every browser's requests (one route cookie) all reached
        one process."""
        per_route: dict[str, set[str]] = defaultdict(set)
        sessions: Counter[str] = Counter()
        requests: Counter[str] = Counter()
        for fields in self.nginx.log_lines():
            if len(fields) < 4 or fields[1] == "-":
                continue
            route, addr, status, uri = fields[0], fields[1], fields[2], fields[3]
            name = self.upstream_of(addr.split(",")[-1].strip())
            per_route[route].add(name)
            requests[name] += 1
            if uri.startswith(STREAM) and status == "101":
                sessions[name] += 1
        split = [r for r, names in per_route.items() if len(names) > 1]
        return {
            "websocket_sessions": dict(sorted(sessions.items())),
            "requests": dict(sorted(requests.items())),
            "routes": len(per_route),
            "routes_on_two_processes": len(split),
        }

    def _done_email_ids(self) -> set[int]:
        from sqlalchemy import select

        from bench.run import open_db
        from db.models import Channel, DeliveryStatus, Notification

        database = open_db(self.database_url)
        try:
            with database.read() as session:
                return set(
                    session.scalars(
                        select(Notification.id).where(
                            Notification.channel == Channel.EMAIL,
                            Notification.status != DeliveryStatus.QUEUED,
                        )
                    )
                )
        finally:
            database.dispose()

    def wait_idle(self, timeout: float = 300) -> float:
        """Wait until both processes are nearly idle (their start-up and the jobs loops' first
        rounds done: the model fit, the reminders); seconds waited."""
        return wait_idle(self.pids, timeout)

    def problems(self, limit: int = 20) -> list[str]:
        """Lines of the processes' output that report an error or a traceback."""
        found = []
        for name, server in zip("AB", self.servers, strict=True):
            output = server._output  # noqa: SLF001  (the whole output, not its tail)
            if output is None:
                continue
            output.seek(0)
            for line in output.read().decode(errors="replace").splitlines():
                if any(word in line for word in ("Traceback", "ERROR", "Error:", "Exception")):
                    found.append(f"{name}: {line.strip()[:200]}")
        return found[:limit]

    def last_notification_id(self) -> int:
        from sqlalchemy import func, select

        from bench.run import open_db
        from db.models import Notification

        database = open_db(self.database_url)
        try:
            with database.read() as session:
                return session.scalar(select(func.max(Notification.id))) or 0
        finally:
            database.dispose()

    def outbox(self, after_id: int) -> dict:
        """Wait for the jobs loops to empty the email outbox, then hold every email sent against
        what the SMTP server received, by Message-ID and recipient: each exactly once."""
        from sqlalchemy import select

        from bench.run import open_db
        from core.kernel.config import SmtpSettings
        from core.messaging.delivery import message_id
        from db.models import Channel, DeliveryStatus, Notification

        database = open_db(self.database_url)
        email = Notification.channel == Channel.EMAIL
        pending = (Notification.status == DeliveryStatus.QUEUED) & ~Notification.permanent_failure
        deadline = time.monotonic() + DRAIN_TIMEOUT_S
        while True:
            with database.read() as session:
                left = len(session.scalars(select(Notification.id).where(email, pending)).all())
            if not left or time.monotonic() > deadline:
                break
            time.sleep(1)
        with database.read() as session:
            rows = [
                n
                for n in session.scalars(select(Notification).where(email))
                if n.id not in self.done_before
            ]
            sender = SmtpSettings(host="").sender
            expected = {
                message_id(n, sender): (n.to_address, n.template, n.status, n.id) for n in rows
            }
        database.dispose()
        received = Counter((str(m["Message-ID"]), str(m["X-RcptTo"])) for m in self.smtp.messages)
        by_id = Counter(str(m["Message-ID"]) for m in self.smtp.messages)
        sent = {k: v for k, v in expected.items() if v[2] == DeliveryStatus.SENT}
        declined = {
            k for k, v in expected.items() if v[1] == "appointment_declined" and v[3] > after_id
        }
        return {
            "email_rows": len(expected),
            "queued_left": left,
            "failed": sum(1 for v in expected.values() if v[2] == DeliveryStatus.FAILED),
            "sent": len(sent),
            "received": sum(by_id.values()),
            "declines_queued": len(declined),
            "declines_received_once": sum(1 for k in declined if by_id[k] == 1),
            "duplicates": sum(1 for count in by_id.values() if count > 1),
            "sent_not_received": sum(1 for k in sent if by_id[k] == 0),
            "received_not_sent": sum(1 for k in by_id if k not in sent),
            "wrong_recipient": sum(
                1 for (mid, rcpt), _ in received.items() if mid in sent and rcpt != sent[mid][0]
            ),
        }
