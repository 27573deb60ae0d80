"""Settings from the environment or `.streamlit/secrets.toml` (environment wins).

| setting | environment | secrets.toml | default |
|---|---|---|---|
| database | DATABASE_URL | database_url | sqlite file data/clinicdesk.db |
| secret key | CLINICDESK_SECRET_KEY | [clinicdesk] secret_key | generated into data/secret_key |
| idle sign-out | CLINICDESK_IDLE_MINUTES | [clinicdesk] idle_minutes | 480 |
| public address for links | CLINICDESK_BASE_URL | [clinicdesk] base_url | http://localhost:8501 |
| database connect timeout | CLINICDESK_DB_CONNECT_TIMEOUT | [clinicdesk] db_connect_timeout | 5 |
| SMTP | SMTP_HOST, _PORT, _USERNAME, _PASSWORD, _FROM, _SECURITY | [smtp] host, port, … | none |
| SMS | SMS_PROVIDER, SMS_HTTP_URL, SMS_HTTP_TOKEN | [sms] provider, http_url, http_token | log |
| data folder | CLINICDESK_DATA_DIR | — | data/ (created readable by its owner only) |
| jobs interval | CLINICDESK_JOB_SECONDS | — | 15 (0 = off) |
| nightly backup | CLINICDESK_NIGHTLY_BACKUP | — | on (off: none) |
| bookings/hour | CLINICDESK_BOOKING_PER_CONTACT, _NETWORK, _LINK, _CLINIC | booking_… | 3 15 20 60|
| SMS replies | SMS_INBOUND_SECRET, TWILIO_AUTH_TOKEN | [sms] inbound_secret, … | off |
| portal idle sign-out | CLINICDESK_PORTAL_IDLE_MINUTES | [clinicdesk] portal_idle_minutes | 30 |
| Stripe | STRIPE_SECRET_KEY, STRIPE_WEBHOOK_SECRET | [stripe] secret_key, webhook_secret | none |
"""

from __future__ import annotations

import os
import secrets
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from core.kernel.errors import ConfigurationError

ROOT = Path(__file__).resolve().parent.parent
SECURITY_MODES = ("none", "starttls", "ssl")
SMS_PROVIDERS = ("log", "http")


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int = 25
    username: str = ""
    password: str = field(default="", repr=False)
    sender: str = "ClinicDesk <no-reply@clinicdesk.local>"
    security: str = "none"


@dataclass(frozen=True)
class SmsSettings:
    provider: str = "log"
    http_url: str = ""
    http_token: str = field(default="", repr=False)
    # shared secret of the inbound route (X-ClinicDesk-Secret)
    inbound_secret: str = field(default="", repr=False)
    # verifies Twilio's X-Twilio-Signature on the inbound route
    twilio_auth_token: str = field(default="", repr=False)


DEFAULT_BASE_URL = "http://localhost:8501"


@dataclass(frozen=True)
class BookingLimits:
    """Public booking requests accepted an hour: per email and per phone (each, strictly), per
    client network (loosely: a waiting room's Wi-Fi is one address for all its patients; below
    a link's, so one network alone cannot use up a link's hour), per booking link, and per
    clinic (whatever the link)."""

    per_contact: int = 3
    per_link: int = 20
    per_clinic: int = 60
    per_network: int = 15


@dataclass(frozen=True)
class StripeSettings:
    secret_key: str = field(repr=False)
    webhook_secret: str = field(repr=False)


@dataclass(frozen=True)
class Settings:
    """Every setting, read once. The secrets (the key, passwords, tokens, and the database URL,
    which may carry its password) are left out of repr(), so a log line or an error showing the
    settings never shows them."""

    database_url: str = field(repr=False)
    secret_key: str = field(repr=False)
    data_dir: Path
    idle_minutes: int = 480
    base_url: str = DEFAULT_BASE_URL
    connect_timeout: int = 5
    smtp: SmtpSettings | None = None
    sms: SmsSettings = SmsSettings()
    job_seconds: float = 15.0
    booking_limits: BookingLimits = BookingLimits()
    portal_idle_minutes: int = 30
    stripe: StripeSettings | None = None
    nightly_backup: bool = True  # into data/backups (core.practice.backups)


def load_settings(
    environ: dict[str, str] | None = None, secrets_file: Path | None = None
) -> Settings:
    """Read every setting once; a malformed value raises ConfigurationError naming it."""
    env = os.environ if environ is None else environ
    file = _read_secrets(secrets_file or ROOT / ".streamlit" / "secrets.toml")
    app = file.get("clinicdesk", {})
    data_dir = Path(env.get("CLINICDESK_DATA_DIR") or ROOT / "data")

    def pick(env_key: str, section: dict, key: str, default=None):
        value = env.get(env_key)
        return value if value not in (None, "") else section.get(key, default)

    database_url = (
        pick("DATABASE_URL", file, "database_url") or f"sqlite:///{data_dir}/clinicdesk.db"
    )
    _check_database_url(str(database_url))
    idle = _whole_number(
        pick("CLINICDESK_IDLE_MINUTES", app, "idle_minutes", 480),
        "CLINICDESK_IDLE_MINUTES",
        1,
        7 * 24 * 60,
    )
    connect_timeout = _whole_number(
        pick("CLINICDESK_DB_CONNECT_TIMEOUT", app, "db_connect_timeout", 5),
        "CLINICDESK_DB_CONNECT_TIMEOUT",
        1,
        300,
    )
    smtp = _smtp(env, file.get("smtp", {}), pick)
    sms = _sms(file.get("sms", {}), pick)
    secret_key = pick("CLINICDESK_SECRET_KEY", app, "secret_key") or _stored_secret_key(data_dir)
    if len(secret_key) < 32:
        raise ConfigurationError("CLINICDESK_SECRET_KEY must be at least 32 characters long.")
    base_url = str(pick("CLINICDESK_BASE_URL", app, "base_url", DEFAULT_BASE_URL))
    if not base_url.startswith(("http://", "https://")):
        raise ConfigurationError(
            f"CLINICDESK_BASE_URL must start with http:// or https://, got {base_url!r}."
        )
    job_seconds = _seconds(env.get("CLINICDESK_JOB_SECONDS") or "15", "CLINICDESK_JOB_SECONDS")
    nightly_backup = _switch(
        env.get("CLINICDESK_NIGHTLY_BACKUP") or "on", "CLINICDESK_NIGHTLY_BACKUP"
    )
    limits = BookingLimits(
        **{
            name: _whole_number(
                pick(f"CLINICDESK_BOOKING_{name.upper()}", app, f"booking_{name}", default),
                f"CLINICDESK_BOOKING_{name.upper()}",
                1,
                100_000,
            )
            for name, default in vars(BookingLimits()).items()  # per_contact: 3, …
        }
    )
    portal_idle = _whole_number(
        pick("CLINICDESK_PORTAL_IDLE_MINUTES", app, "portal_idle_minutes", 30),
        "CLINICDESK_PORTAL_IDLE_MINUTES",
        1,
        24 * 60,
    )
    return Settings(
        portal_idle_minutes=portal_idle,
        stripe=_stripe(file.get("stripe", {}), pick),
        database_url=str(database_url),
        secret_key=secret_key,
        data_dir=data_dir,
        idle_minutes=idle,
        base_url=base_url.rstrip("/"),
        connect_timeout=connect_timeout,
        smtp=smtp,
        sms=sms,
        job_seconds=job_seconds,
        booking_limits=limits,
        nightly_backup=nightly_backup,
    )


def _check_database_url(url: str) -> None:
    shape = "postgresql+psycopg://user@host/db or sqlite:///path"
    if "://" not in url:
        raise ConfigurationError(f"DATABASE_URL must look like {shape}, got {url!r}.")
    authority = url.split("://", 1)[1].split("/", 1)[0].rpartition("@")[2]
    port = authority.rpartition("]")[2].rpartition(":")[2] if ":" in authority else ""
    if port and not (port.isdigit() and 0 < int(port) < 65536):
        raise ConfigurationError(
            f"DATABASE_URL has port {port!r}; a port is a whole number from 1 to 65535."
        )


def _seconds(value: str, name: str) -> float:
    try:
        number = float(value.strip())
    except ValueError:
        number = -1.0
    if not 0 <= number <= 24 * 3600:
        raise ConfigurationError(
            f"{name} must be a number of seconds from 0 (off) to 86400, got {value!r}."
        )
    return number


def _switch(value: str, name: str) -> bool:
    word = value.strip().lower()
    if word in ("on", "yes", "true", "1"):
        return True
    if word in ("off", "no", "false", "0"):
        return False
    raise ConfigurationError(f"{name} must be on or off, got {value!r}.")


def ensure_private_folder(folder: Path, setting: str) -> None:
    """Create `folder` readable by its owner only (0700) unless it exists; a folder that
    cannot be created is a ConfigurationError naming `setting`."""
    if folder.is_dir():
        return
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigurationError(
            f"{setting}: cannot create the folder {str(folder)!r} ({exc.strerror or exc}). "
            "Choose a folder ClinicDesk may write to."
        ) from None


def _read_secrets(path: Path) -> dict:
    if not path.exists():
        return {}
    try:
        return tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationError(f"{path} is not valid TOML: {exc}.") from exc


def _whole_number(value, name: str, low: int, high: int) -> int:
    try:
        number = int(str(value).strip())
    except ValueError:
        number = None
    if number is None or not low <= number <= high:
        raise ConfigurationError(
            f"{name} must be a whole number from {low} to {high}, got {value!r}."
        )
    return number


def _smtp(env, section: dict, pick) -> SmtpSettings | None:
    host = pick("SMTP_HOST", section, "host")
    if not host:
        return None
    security = str(pick("SMTP_SECURITY", section, "security", "none")).lower()
    if security not in SECURITY_MODES:
        raise ConfigurationError(
            f"SMTP_SECURITY must be one of {', '.join(SECURITY_MODES)}, got {security!r}."
        )
    return SmtpSettings(
        host=str(host),
        port=_whole_number(pick("SMTP_PORT", section, "port", 25), "SMTP_PORT", 1, 65535),
        username=str(pick("SMTP_USERNAME", section, "username", "")),
        password=str(pick("SMTP_PASSWORD", section, "password", "")),
        sender=str(pick("SMTP_FROM", section, "sender", SmtpSettings.sender)),
        security=security,
    )


def _sms(section: dict, pick) -> SmsSettings:
    provider = str(pick("SMS_PROVIDER", section, "provider", "log")).lower()
    if provider not in SMS_PROVIDERS:
        raise ConfigurationError(
            f"SMS_PROVIDER must be one of {', '.join(SMS_PROVIDERS)}, got {provider!r}."
        )
    url = str(pick("SMS_HTTP_URL", section, "http_url", ""))
    if provider == "http" and not url.startswith(("http://", "https://")):
        raise ConfigurationError(
            "SMS_HTTP_URL must be set to an http(s) address when SMS_PROVIDER=http."
        )
    return SmsSettings(
        provider,
        url,
        str(pick("SMS_HTTP_TOKEN", section, "http_token", "")),
        str(pick("SMS_INBOUND_SECRET", section, "inbound_secret", "")),
        str(pick("TWILIO_AUTH_TOKEN", section, "twilio_auth_token", "")),
    )


def _stripe(section: dict, pick) -> StripeSettings | None:
    key = str(pick("STRIPE_SECRET_KEY", section, "secret_key", "") or "")
    hook = str(pick("STRIPE_WEBHOOK_SECRET", section, "webhook_secret", "") or "")
    if not key and not hook:
        return None
    if not key.startswith(("sk_", "rk_")):
        raise ConfigurationError("STRIPE_SECRET_KEY must be a Stripe secret key (sk_…).")
    if not hook.startswith("whsec_"):
        raise ConfigurationError(
            "STRIPE_WEBHOOK_SECRET must be set to the endpoint's signing secret (whsec_…) "
            "when STRIPE_SECRET_KEY is set."
        )
    return StripeSettings(key, hook)


def _stored_secret_key(data_dir: Path) -> str:
    """The key generated on first run into data/secret_key (never committed)."""
    path = data_dir / "secret_key"
    if path.exists():
        return path.read_text().strip()
    ensure_private_folder(data_dir, "CLINICDESK_DATA_DIR")
    key = secrets.token_urlsafe(48)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process wrote it first
        return path.read_text().strip()
    with os.fdopen(fd, "w") as handle:
        handle.write(key)
    return key
