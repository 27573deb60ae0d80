"""Settings from the environment or `.streamlit/secrets.toml` (environment wins).

| setting | environment | secrets.toml | default |
|---|---|---|---|
| database | DATABASE_URL | database_url | sqlite file data/clinicdesk.db |
| secret key | CLINICDESK_SECRET_KEY | [clinicdesk] secret_key | generated into data/secret_key |
| idle sign-out | CLINICDESK_IDLE_MINUTES | [clinicdesk] idle_minutes | 480 |
| public address for links | CLINICDESK_BASE_URL | [clinicdesk] base_url | http://localhost:8501 |
| SMTP | SMTP_HOST, _PORT, _USERNAME, _PASSWORD, _FROM, _SECURITY | [smtp] host, port, … | none |
| SMS | SMS_PROVIDER, SMS_HTTP_URL, SMS_HTTP_TOKEN | [sms] provider, http_url, http_token | log |
| portal idle sign-out | CLINICDESK_PORTAL_IDLE_MINUTES | [clinicdesk] portal_idle_minutes | 30 |
| Stripe | STRIPE_SECRET_KEY, STRIPE_WEBHOOK_SECRET | [stripe] secret_key, webhook_secret | none |
"""

from __future__ import annotations

import os
import secrets
import tomllib
from dataclasses import dataclass
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
    password: str = ""
    sender: str = "ClinicDesk <no-reply@clinicdesk.local>"
    security: str = "none"


@dataclass(frozen=True)
class SmsSettings:
    provider: str = "log"
    http_url: str = ""
    http_token: str = ""


@dataclass(frozen=True)
class StripeSettings:
    secret_key: str
    webhook_secret: str


@dataclass(frozen=True)
class Settings:
    database_url: str
    secret_key: str
    data_dir: Path
    idle_minutes: int = 480
    base_url: str = "http://localhost:8501"
    smtp: SmtpSettings | None = None
    sms: SmsSettings = SmsSettings()
    portal_idle_minutes: int = 30
    stripe: StripeSettings | None = None


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
    if "://" not in str(database_url):
        raise ConfigurationError(
            f"DATABASE_URL must look like postgresql+psycopg://user@host/db or sqlite:///path, "
            f"got {database_url!r}."
        )
    idle = _whole_number(
        pick("CLINICDESK_IDLE_MINUTES", app, "idle_minutes", 480),
        "CLINICDESK_IDLE_MINUTES",
        1,
        7 * 24 * 60,
    )
    smtp = _smtp(env, file.get("smtp", {}), pick)
    sms = _sms(file.get("sms", {}), pick)
    secret_key = pick("CLINICDESK_SECRET_KEY", app, "secret_key") or _stored_secret_key(data_dir)
    if len(secret_key) < 32:
        raise ConfigurationError("CLINICDESK_SECRET_KEY must be at least 32 characters long.")
    base_url = str(pick("CLINICDESK_BASE_URL", app, "base_url", "http://localhost:8501"))
    if not base_url.startswith(("http://", "https://")):
        raise ConfigurationError(
            f"CLINICDESK_BASE_URL must start with http:// or https://, got {base_url!r}."
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
        smtp=smtp,
        sms=sms,
    )


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
    return SmsSettings(provider, url, str(pick("SMS_HTTP_TOKEN", section, "http_token", "")))


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
    data_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process wrote it first
        return path.read_text().strip()
    with os.fdopen(fd, "w") as handle:
        handle.write(key)
    return key
