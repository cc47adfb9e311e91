"""Settings: read from FLASK_* environment variables, parsed and checked explicitly.

Every setting is declared once in SETTINGS; the README's table lists the same names
(a test keeps the two in step). A bad value raises ConfigError, which stops start-up
with one line that says what to fix.
"""
import os
import secrets
from dataclasses import dataclass
from email.utils import parseaddr
from typing import Any, Callable
from urllib.parse import urlsplit

HTMX_URL = "https://cdn.jsdelivr.net/npm/htmx.org@2.0.11/dist/htmx.min.js"
HTMX_INTEGRITY = "sha384-2OatzQy1H+Zd/IIrjr1TcuDGqLXeHhbooAyJY1KdQMKnr4LZ22k31GBLdYKHmVjg"
MIN_KEY_BYTES = 32
CONFIG_NAMES = ("development", "production", "testing")


class ConfigError(SystemExit):
    """A setting is missing or wrong; the message is the one line shown to the operator."""

    def __init__(self, message: str):
        super().__init__(f"Configuration error: {message}")


def parse_str(name: str, raw: str) -> str:
    return raw.strip()


def parse_bool(name: str, raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off", ""):
        return False
    raise ConfigError(f"{name} must be true or false (or 1/0, yes/no), not {raw!r}")


def _number(kind: type, low: float, high: float) -> Callable[[str, str], Any]:
    def parse(name: str, raw: str) -> Any:
        try:
            value = kind(raw.strip())
        except ValueError:
            value = None
        if value is None or not low <= value <= high:
            raise ConfigError(f"{name} must be a number from {low} to {high}, not {raw!r}")
        return value
    return parse


def parse_list(name: str, raw: str) -> list[str]:
    return [item.strip() for item in raw.split(",") if item.strip()]


def parse_url(name: str, raw: str) -> str:
    value = raw.strip().rstrip("/")
    parts = urlsplit(value)
    if value and (parts.scheme not in ("http", "https") or not parts.netloc):
        raise ConfigError(f"{name} must be an http:// or https:// address, not {raw!r}")
    return value


def parse_address(name: str, raw: str) -> str:
    value = raw.strip()
    if value and "@" not in parseaddr(value)[1]:
        raise ConfigError(f"{name} must be an email address like Name <office@example.org>, not {raw!r}")
    return value


def parse_choice(*choices: str) -> Callable[[str, str], str]:
    def parse(name: str, raw: str) -> str:
        value = raw.strip().lower()
        if value not in choices:
            raise ConfigError(f"{name} must be one of {', '.join(choices)}, not {raw!r}")
        return value
    return parse


@dataclass(frozen=True)
class Setting:
    env: str
    key: str
    parse: Callable[[str, str], Any]
    help: str


SETTINGS = (
    Setting("FLASK_CONFIG", "CONFIG_NAME", parse_choice(*CONFIG_NAMES), "development (default), production or testing"),
    Setting("FLASK_SECRET_KEY", "SECRET_KEY", parse_str, "Signs sessions and form tokens; 32+ bytes; required in production"),
    Setting("FLASK_DEBUG", "DEBUG", parse_bool, "Flask debug mode; refused in production"),
    Setting("FLASK_INSTANCE_PATH", "INSTANCE_PATH", parse_str, "Folder for the database, development secrets and mail files"),
    Setting("FLASK_SITE_URL", "SITE_URL", parse_url, "Public address, used for canonical links and the sitemap"),
    Setting("FLASK_TRUSTED_HOSTS", "TRUSTED_HOSTS", parse_list, "Host names the site answers to (comma-separated)"),
    Setting("FLASK_PROXY_COUNT", "PROXY_COUNT", _number(int, 0, 5), "Reverse proxies in front of the app (1 behind nginx)"),
    Setting("FLASK_FACEBOOK_URL", "FACEBOOK_URL", parse_url, "The office's Facebook page; the link is hidden when empty"),
    Setting("FLASK_OFFICE_HOURS", "OFFICE_HOURS", parse_str, "Office hours as the office wants them shown; hidden when empty"),
    Setting("FLASK_HTMX_URL", "HTMX_URL", parse_str, "Where pages load htmx 2.0.11 from (a /static/ path to self-host)"),
    Setting("FLASK_HTMX_INTEGRITY", "HTMX_INTEGRITY", parse_str, "Subresource Integrity hash of that file"),
    Setting("FLASK_DATABASE", "DATABASE", parse_str, "SQLite file for inquiries"),
    Setting("FLASK_MIN_FILL_SECONDS", "MIN_FILL_SECONDS", _number(float, 0, 600), "A form sent faster than this is marked possibly automated"),
    Setting("FLASK_RATE_LIMIT_COUNT", "RATE_LIMIT_COUNT", _number(int, 1, 10000), "Form submissions allowed per client per window"),
    Setting("FLASK_RATE_LIMIT_SECONDS", "RATE_LIMIT_SECONDS", _number(int, 1, 86400), "Length of that window in seconds"),
    Setting("FLASK_MAIL_SERVER", "MAIL_SERVER", parse_str, "SMTP host; empty in development writes mail to files"),
    Setting("FLASK_MAIL_PORT", "MAIL_PORT", _number(int, 1, 65535), "SMTP port"),
    Setting("FLASK_MAIL_USE_TLS", "MAIL_USE_TLS", parse_bool, "Use STARTTLS"),
    Setting("FLASK_MAIL_USE_SSL", "MAIL_USE_SSL", parse_bool, "Use implicit TLS (port 465)"),
    Setting("FLASK_MAIL_USERNAME", "MAIL_USERNAME", parse_str, "SMTP login name"),
    Setting("FLASK_MAIL_PASSWORD", "MAIL_PASSWORD", parse_str, "SMTP password"),
    Setting("FLASK_MAIL_TIMEOUT", "MAIL_TIMEOUT", _number(float, 1, 300), "Seconds before an SMTP connection or reply times out"),
    Setting("FLASK_MAIL_CA_FILE", "MAIL_CA_FILE", parse_str, "CA certificates for a private relay (PEM); system CAs when empty"),
    Setting("FLASK_MAIL_DEFAULT_SENDER", "MAIL_DEFAULT_SENDER", parse_address, "From address, on the office's own domain"),
    Setting("FLASK_INQUIRY_RECIPIENT", "INQUIRY_RECIPIENT", parse_address, "The office mailbox that receives inquiries"),
    Setting("FLASK_INQUIRY_SIGNING_KEYS", "INQUIRY_SIGNING_KEYS", parse_list, "Keys that sign inquiry emails, oldest first; the last signs"),
    Setting("FLASK_INQUIRY_RETENTION_DAYS", "INQUIRY_RETENTION_DAYS", _number(int, 0, 3650), "Days before personal fields are erased"),
    Setting("FLASK_OUTBOX_STUCK_MINUTES", "OUTBOX_STUCK_MINUTES", _number(int, 1, 10080), "An undelivered inquiry older than this is reported as stuck"),
)


class Config:
    """Defaults shared by every configuration."""

    CONFIG_NAME = "development"
    DEBUG = False
    TESTING = False
    SECRET_KEY = ""
    INSTANCE_PATH = ""
    SITE_URL = "http://127.0.0.1:5000"
    TRUSTED_HOSTS: list[str] = []
    PROXY_COUNT = 0
    FACEBOOK_URL = ""
    OFFICE_HOURS = ""
    HTMX_URL = HTMX_URL
    HTMX_INTEGRITY = HTMX_INTEGRITY
    DATABASE = ""
    MIN_FILL_SECONDS = 3.0
    RATE_LIMIT_COUNT = 10
    RATE_LIMIT_SECONDS = 900
    MAIL_SERVER = ""
    MAIL_PORT = 587
    MAIL_USE_TLS = False
    MAIL_USE_SSL = False
    MAIL_USERNAME = ""
    MAIL_PASSWORD = ""
    MAIL_TIMEOUT = 20.0
    MAIL_CA_FILE = ""
    MAIL_DEFAULT_SENDER = "RSCT website <website@localhost>"
    INQUIRY_RECIPIENT = "Madison office <office@localhost>"
    INQUIRY_SIGNING_KEYS: list[str] = []
    INQUIRY_RETENTION_DAYS = 30
    OUTBOX_STUCK_MINUTES = 30
    # Flask-Mail would print every message (visitors' words) when this follows DEBUG.
    MAIL_DEBUG = False
    MAX_CONTENT_LENGTH = 32 * 1024
    MAX_FORM_MEMORY_SIZE = 32 * 1024
    SESSION_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SAMESITE = "Lax"
    WTF_CSRF_TIME_LIMIT = 6 * 3600
    SEND_FILE_MAX_AGE_DEFAULT = 3600


class DevelopmentConfig(Config):
    CONFIG_NAME = "development"


class TestingConfig(Config):
    CONFIG_NAME = "testing"
    TESTING = True
    WTF_CSRF_ENABLED = False
    MIN_FILL_SECONDS = 0.0


class ProductionConfig(Config):
    CONFIG_NAME = "production"
    MAIL_PORT = 587
    MAIL_USE_TLS = True
    MAIL_DEFAULT_SENDER = ""
    INQUIRY_RECIPIENT = ""
    SESSION_COOKIE_NAME = "__Host-session"
    SESSION_COOKIE_SECURE = True
    PREFERRED_URL_SCHEME = "https"


CLASSES = {"development": DevelopmentConfig, "production": ProductionConfig, "testing": TestingConfig}


def load(environ: os._Environ | dict, instance_path: str, overrides: dict | None = None) -> dict:
    """Build the settings: class defaults, then the environment, then overrides (tests)."""
    overrides = dict(overrides or {})
    name = overrides.get("CONFIG_NAME") or parse_choice(*CONFIG_NAMES)("FLASK_CONFIG", environ.get("FLASK_CONFIG", "development"))
    cls = CLASSES[name]
    settings = {key: getattr(cls, key) for key in dir(cls) if key.isupper()}
    for setting in SETTINGS:
        if setting.env in environ and setting.env != "FLASK_CONFIG":
            settings[setting.key] = setting.parse(setting.env, environ[setting.env])
    settings.update(overrides)
    settings["INSTANCE_PATH"] = settings["INSTANCE_PATH"] or instance_path
    os.makedirs(settings["INSTANCE_PATH"], mode=0o700, exist_ok=True)
    settings["DATABASE"] = settings["DATABASE"] or os.path.join(settings["INSTANCE_PATH"], "rsct.sqlite3")
    if name == "production":
        check_production(settings)
    else:
        settings["SECRET_KEY"] = settings["SECRET_KEY"] or instance_secret(settings["INSTANCE_PATH"], "secret_key")
        settings["INQUIRY_SIGNING_KEYS"] = settings["INQUIRY_SIGNING_KEYS"] or [
            instance_secret(settings["INSTANCE_PATH"], "signing_key")]
    check_common(settings)
    return settings


def check_common(s: dict) -> None:
    """Rules that hold in every configuration."""
    if s["MAIL_USE_TLS"] and s["MAIL_USE_SSL"]:
        raise ConfigError("set FLASK_MAIL_USE_TLS or FLASK_MAIL_USE_SSL, not both")
    if s["MAIL_CA_FILE"] and not os.path.isfile(s["MAIL_CA_FILE"]):
        raise ConfigError(f"FLASK_MAIL_CA_FILE names no readable file: {s['MAIL_CA_FILE']!r}")
    if not s["HTMX_INTEGRITY"].startswith(("sha384-", "sha512-")):
        raise ConfigError("FLASK_HTMX_INTEGRITY must be a sha384- or sha512- hash")


def check_production(s: dict) -> None:
    """Refuse settings that are unsafe on a public server, one clear line each."""
    if len(s["SECRET_KEY"].encode()) < MIN_KEY_BYTES:
        raise ConfigError(f"FLASK_SECRET_KEY must be set to at least {MIN_KEY_BYTES} random bytes in production"
                          " (python3 -c 'import secrets; print(secrets.token_urlsafe(48))')")
    if s["DEBUG"]:
        raise ConfigError("FLASK_DEBUG must be off in production")
    if not s["SITE_URL"].startswith("https://") or "127.0.0.1" in s["SITE_URL"]:
        raise ConfigError("FLASK_SITE_URL must be the site's public https:// address in production")
    for env, key in (("FLASK_MAIL_SERVER", "MAIL_SERVER"), ("FLASK_MAIL_DEFAULT_SENDER", "MAIL_DEFAULT_SENDER"),
                     ("FLASK_INQUIRY_RECIPIENT", "INQUIRY_RECIPIENT")):
        if not s[key]:
            raise ConfigError(f"{env} is required in production (mail is never written to files there)")
    keys = s["INQUIRY_SIGNING_KEYS"]
    if not keys or any(len(k.encode()) < MIN_KEY_BYTES for k in keys):
        raise ConfigError(f"FLASK_INQUIRY_SIGNING_KEYS must hold one or more keys of at least {MIN_KEY_BYTES} bytes in production")
    if s["SECRET_KEY"] in keys:
        raise ConfigError("FLASK_INQUIRY_SIGNING_KEYS must differ from FLASK_SECRET_KEY")
    plain = not (s["MAIL_USE_TLS"] or s["MAIL_USE_SSL"])
    if plain and s["MAIL_SERVER"] not in ("localhost", "127.0.0.1", "::1"):
        raise ConfigError("FLASK_MAIL_USE_TLS or FLASK_MAIL_USE_SSL is required for a mail server other than localhost")
    if not s["TRUSTED_HOSTS"]:
        s["TRUSTED_HOSTS"] = [urlsplit(s["SITE_URL"]).hostname]


def instance_secret(folder: str, name: str) -> str:
    """Return a random secret kept in the instance folder (mode 0600), made on first use.

    Written to a temporary file and hard-linked into place, so that several workers
    starting at once all end up reading the same secret.
    """
    path = os.path.join(folder, name)
    if not os.path.exists(path):
        temp = f"{path}.{os.getpid()}.{secrets.token_hex(4)}"
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(48))
        try:
            os.link(temp, path)
        except FileExistsError:
            pass
        finally:
            os.unlink(temp)
    with open(path, encoding="ascii") as handle:
        return handle.read().strip()
