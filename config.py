"""Settings: read from FLASK_* environment variables, parsed and checked explicitly.

Every setting is declared once in SETTINGS; the README's table lists the same names
(a test keeps the two in step). A bad value raises ConfigError, which stops start-up
with one line that says what to fix.
"""

import copy
import ipaddress
import os
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import parseaddr
from typing import Any
from urllib.parse import urlsplit

import click

HTMX_URL = "https://cdn.jsdelivr.net/npm/htmx.org@2.0.11/dist/htmx.min.js"
HTMX_INTEGRITY = "sha384-2OatzQy1H+Zd/IIrjr1TcuDGqLXeHhbooAyJY1KdQMKnr4LZ22k31GBLdYKHmVjg"
MIN_KEY_BYTES = 32
CONFIG_NAMES = ("development", "production", "testing")
ALERT_FORMATS = ("text", "json", "healthchecks")
LOCAL_MAIL_SERVERS = ("localhost", "127.0.0.1", "::1")


class ConfigError(SystemExit, click.ClickException):
    """A setting is missing or wrong; the message is the one line shown to the operator.

    A SystemExit, so that anything starting the app stops with that line; and a ClickException, so
    that an operator command (`flask --app app ...`) shows the same line and exits 2, "could not do
    the job", as the README's exit-status table says.
    """

    exit_code = 2

    def __init__(self, message: str):
        SystemExit.__init__(self, f"Configuration error: {message}")
        self.message = f"Configuration error: {message}"

    def show(self, file=None) -> None:
        click.echo(self.message, err=True)


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


UNSET = object()  # a setting whose production default is its ordinary default


@dataclass(frozen=True)
class Setting:
    """One setting, declared once: its variable, how it is parsed, its defaults and what it does.

    `shown` is the README's wording for a default that is made at start-up rather than fixed here.
    """

    env: str
    parse: Callable[[str, str], Any]
    default: Any
    help: str
    production: Any = UNSET
    shown: str = ""

    @property
    def key(self) -> str:
        """The app.config key: the name without FLASK_ (FLASK_CONFIG is CONFIG_NAME, as Flask has no such key)."""
        return "CONFIG_NAME" if self.env == "FLASK_CONFIG" else self.env.removeprefix("FLASK_")

    def default_for(self, name: str) -> Any:
        if name == "production" and self.production is not UNSET:
            return self.production
        return copy.copy(self.default)

    def default_text(self) -> str:
        """The README's "Default" cell."""
        if self.shown:
            return self.shown
        text = _shown_value(self.default)
        if self.production is not UNSET:
            text += "; production: " + (_shown_value(self.production) if self.production != "" else "required")
        return text


def _shown_value(value: Any) -> str:
    if value in ("", []):
        return "(empty)"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return f"`{value}`" if isinstance(value, str) and ("/" in value or "@" in value) else str(value)


S = Setting
SETTINGS = (
    S("FLASK_CONFIG", parse_choice(*CONFIG_NAMES), "development", "`development` (default), `production` or `testing`"),
    S(
        "FLASK_SECRET_KEY",
        parse_str,
        "",
        "Signs sessions and form tokens; 32+ bytes; required in production",
        shown="development: made in the instance folder",
    ),
    S("FLASK_DEBUG", parse_bool, False, "Flask debug mode; refused in production"),
    S(
        "FLASK_INSTANCE_PATH",
        parse_str,
        "",
        "Folder for the database, development secrets and mail files",
        shown="`./instance`",
    ),
    S(
        "FLASK_SITE_URL",
        parse_url,
        "http://127.0.0.1:5000",
        "Public address, used for canonical links, the sitemap and robots.txt; https required in production",
    ),
    S(
        "FLASK_TRUSTED_HOSTS",
        parse_list,
        [],
        "Host names the site answers to (comma-separated)",
        shown="any; production: the host of `FLASK_SITE_URL`",
    ),
    S(
        "FLASK_PROXY_COUNT",
        _number(int, 0, 5),
        0,
        "Reverse proxies in front of the app whose `X-Forwarded-*` headers are trusted (1 behind nginx)",
    ),
    S(
        "FLASK_ALLOW_TCP_BIND",
        parse_bool,
        False,
        "Let gunicorn listen on TCP in production, for a benchmark only (it serves nginx on a Unix socket)",
    ),
    S(
        "FLASK_FACEBOOK_URL",
        parse_url,
        "",
        "The office's Facebook page; the footer link and structured data appear only when set",
    ),
    S("FLASK_OFFICE_HOURS", parse_str, "", "Office hours as the office wants them shown; hidden when empty"),
    S(
        "FLASK_HTMX_URL",
        parse_str,
        HTMX_URL,
        "Where pages load htmx 2.0.11 from; a `/static/...` path self-hosts it",
        shown="jsDelivr URL of htmx.org@2.0.11",
    ),
    S(
        "FLASK_HTMX_INTEGRITY",
        parse_str,
        HTMX_INTEGRITY,
        "Subresource Integrity hash of that file",
        shown="the SHA-384 of htmx.org@2.0.11 `dist/htmx.min.js`",
    ),
    S("FLASK_DATABASE", parse_str, "", "SQLite file for inquiries", shown="`<instance>/rsct.sqlite3`"),
    S(
        "FLASK_MIN_FILL_SECONDS",
        _number(float, 0, 600),
        3.0,
        'A form sent faster than this after it was shown is marked "possibly automated"',
    ),
    S("FLASK_RATE_LIMIT_COUNT", _number(int, 1, 10000), 10, "Form submissions allowed per client per window"),
    S("FLASK_RATE_LIMIT_SECONDS", _number(int, 1, 86400), 900, "Length of that window in seconds"),
    S(
        "FLASK_MAIL_SERVER",
        parse_str,
        "",
        "SMTP host; empty in development writes mail to files; required in production",
        production="",
    ),
    S("FLASK_MAIL_PORT", _number(int, 1, 65535), 587, "SMTP port"),
    S(
        "FLASK_MAIL_USE_TLS",
        parse_bool,
        False,
        "Use STARTTLS (certificate and host name are verified)",
        production=True,
    ),
    S("FLASK_MAIL_USE_SSL", parse_bool, False, "Use implicit TLS, usually port 465"),
    S("FLASK_MAIL_USERNAME", parse_str, "", "SMTP login name"),
    S(
        "FLASK_MAIL_NO_AUTH",
        parse_bool,
        False,
        "The relay trusts this server's address without a login (production refuses a remote relay with no"
        " `FLASK_MAIL_USERNAME` unless this says so)",
    ),
    S("FLASK_MAIL_PASSWORD", parse_str, "", "SMTP password"),
    S("FLASK_MAIL_TIMEOUT", _number(float, 1, 300), 20.0, "Seconds before an SMTP connection or reply times out"),
    S("FLASK_MAIL_CA_FILE", parse_str, "", "CA certificates (PEM) for a private relay; the system's CAs when empty"),
    S(
        "FLASK_MAIL_DEFAULT_SENDER",
        parse_address,
        "RSCT website <website@localhost>",
        "From address, on the office's own domain so SPF and DMARC pass; Message-IDs use its domain",
        production="",
        shown="development: `website@localhost`; required in production",
    ),
    S(
        "FLASK_INQUIRY_RECIPIENT",
        parse_address,
        "Madison office <office@localhost>",
        "The office mailbox that receives inquiries and the digest",
        production="",
        shown="development: `office@localhost`; required in production",
    ),
    S(
        "FLASK_INQUIRY_SIGNING_KEYS",
        parse_list,
        [],
        "Keys that sign inquiry emails, comma-separated, oldest first; the last one signs",
        shown="development: made in the instance folder; required in production (32+ bytes each, not the secret key)",
    ),
    S(
        "FLASK_INQUIRY_RETENTION_DAYS",
        _number(int, 0, 3650),
        30,
        "Days after delivery before an inquiry's personal fields are erased (0 = right after delivery)",
    ),
    S(
        "FLASK_SMIME_SIGNER_CERT",
        parse_str,
        "",
        "S/MIME signer certificate (PEM, its chain may follow); with the key, every email to the office is"
        " S/MIME signed (see DEPLOY.md)",
    ),
    S("FLASK_SMIME_SIGNER_KEY", parse_str, "", "The signer certificate's private key (PEM, unencrypted, mode 0600)"),
    S(
        "FLASK_SMIME_OFFICE_CERT",
        parse_str,
        "",
        "The office mailbox's certificate(s) (PEM, RSA): sealed mode, each inquiry encrypted for the office as it"
        " is stored (see README, Sealed mode)",
    ),
    S(
        "FLASK_OUTBOX_RETRY_SECONDS",
        _number(float, 0.1, 3600),
        30.0,
        "Wait before retrying an inquiry the relay did not take; doubles with each try, up to 120 times this"
        " (an hour for 30 s)",
    ),
    S(
        "FLASK_OUTBOX_STUCK_MINUTES",
        _number(int, 1, 10080),
        30,
        "An undelivered inquiry older than this is reported as stuck",
    ),
    S(
        "FLASK_ALERT_URL",
        parse_url,
        "",
        "Where alerts go when inquiries stop reaching the office (an ntfy topic, a chat webhook, a Healthchecks"
        " check); https required in production, http only on loopback elsewhere; no alerts when empty",
    ),
    S(
        "FLASK_ALERT_FORMAT",
        parse_choice(*ALERT_FORMATS),
        "text",
        '`text` (a plain-text POST, as ntfy takes it), `json` (`{"text": ...}`, as Slack-style webhooks take it)'
        " or `healthchecks` (a ping to the URL on every healthy check, to `URL/fail` when not)",
    ),
)
del S


class Config:
    """Fixed Flask keys shared by every configuration (the settings' defaults live in SETTINGS)."""

    TESTING = False
    # Flask-Mail would print every message (visitors' words) when this follows DEBUG.
    MAIL_DEBUG = False
    MAX_CONTENT_LENGTH = 32 * 1024
    MAX_FORM_MEMORY_SIZE = 32 * 1024
    SESSION_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SAMESITE = "Lax"
    WTF_CSRF_TIME_LIMIT = 6 * 3600
    SEND_FILE_MAX_AGE_DEFAULT = 3600


class DevelopmentConfig(Config):
    pass


class TestingConfig(Config):
    TESTING = True
    WTF_CSRF_ENABLED = False
    MIN_FILL_SECONDS = 0.0  # tests post a form the moment they have opened it


class ProductionConfig(Config):
    SESSION_COOKIE_NAME = "__Host-session"
    SESSION_COOKIE_SECURE = True
    PREFERRED_URL_SCHEME = "https"


CLASSES = {"development": DevelopmentConfig, "production": ProductionConfig, "testing": TestingConfig}


def settings_table() -> str:
    """The README's settings table, made from SETTINGS (`python config.py` prints it)."""
    rows = ["| Setting | What it does | Default |", "| --- | --- | --- |"]
    rows += [f"| `{s.env}` | {s.help} | {s.default_text()} |" for s in SETTINGS]
    return "\n".join(rows) + "\n"


def load(environ: os._Environ | dict, instance_path: str, overrides: dict | None = None) -> dict:
    """Build the settings: class defaults, then the environment, then overrides (tests)."""
    overrides = dict(overrides or {})
    name = overrides.get("CONFIG_NAME") or parse_choice(*CONFIG_NAMES)(
        "FLASK_CONFIG", environ.get("FLASK_CONFIG", "development")
    )
    settings = {setting.key: setting.default_for(name) for setting in SETTINGS}
    cls = CLASSES[name]
    settings.update({key: getattr(cls, key) for key in dir(cls) if key.isupper()})
    settings["CONFIG_NAME"] = name
    for setting in SETTINGS:
        if setting.env in environ and setting.env != "FLASK_CONFIG":
            settings[setting.key] = setting.parse(setting.env, environ[setting.env])
    settings.update(overrides)
    settings["INSTANCE_PATH"] = settings["INSTANCE_PATH"] or instance_path
    settings["DATABASE"] = settings["DATABASE"] or os.path.join(settings["INSTANCE_PATH"], "rsct.sqlite3")
    if name == "production":
        check_production(settings)
    else:
        # Read, never made here: rsct.instance.prepare makes them for the processes that write.
        settings["SECRET_KEY"] = settings["SECRET_KEY"] or existing_secret(settings["INSTANCE_PATH"], "secret_key")
        key = existing_secret(settings["INSTANCE_PATH"], "signing_key")
        settings["INQUIRY_SIGNING_KEYS"] = settings["INQUIRY_SIGNING_KEYS"] or ([key] if key else [])
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
    alert = urlsplit(s["ALERT_URL"])
    if alert.scheme == "http" and (s["CONFIG_NAME"] == "production" or not _loopback(alert.hostname)):
        raise ConfigError("FLASK_ALERT_URL must be an https:// address (http only to this machine, outside production)")
    check_smime(s)


def check_smime(s: dict) -> None:
    """The S/MIME files, when set, must be usable at all; an expired certificate is reported, not refused."""
    cert, key = s["SMIME_SIGNER_CERT"], s["SMIME_SIGNER_KEY"]
    if bool(cert) != bool(key):
        raise ConfigError("set both FLASK_SMIME_SIGNER_CERT and FLASK_SMIME_SIGNER_KEY, or neither")
    if cert:
        from rsct import smime  # only when S/MIME is used: it loads the cryptography library

        try:
            smime.load_signer(cert, key)
        except smime.SmimeError as error:
            raise ConfigError(f"S/MIME signing cannot start: {error}") from None
    if s["SMIME_OFFICE_CERT"]:
        from rsct import smime

        try:
            smime.load_office_certificates(s["SMIME_OFFICE_CERT"])
        except smime.SmimeError as error:
            raise ConfigError(f"sealed mode cannot start: {error}") from None


def _loopback(host: str | None) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host or "").is_loopback
    except ValueError:
        return False


def check_production(s: dict) -> None:
    """Refuse settings that are unsafe on a public server, one clear line each."""
    if len(s["SECRET_KEY"].encode()) < MIN_KEY_BYTES:
        raise ConfigError(
            f"FLASK_SECRET_KEY must be set to at least {MIN_KEY_BYTES} random bytes in production"
            " (python3 -c 'import secrets; print(secrets.token_urlsafe(48))')"
        )
    if s["DEBUG"]:
        raise ConfigError("FLASK_DEBUG must be off in production")
    if not s["SITE_URL"].startswith("https://") or "127.0.0.1" in s["SITE_URL"]:
        raise ConfigError("FLASK_SITE_URL must be the site's public https:// address in production")
    for env, key in (
        ("FLASK_MAIL_SERVER", "MAIL_SERVER"),
        ("FLASK_MAIL_DEFAULT_SENDER", "MAIL_DEFAULT_SENDER"),
        ("FLASK_INQUIRY_RECIPIENT", "INQUIRY_RECIPIENT"),
    ):
        if not s[key]:
            raise ConfigError(f"{env} is required in production (mail is never written to files there)")
    keys = s["INQUIRY_SIGNING_KEYS"]
    if not keys or any(len(k.encode()) < MIN_KEY_BYTES for k in keys):
        raise ConfigError(
            f"FLASK_INQUIRY_SIGNING_KEYS must hold one or more keys of at least {MIN_KEY_BYTES} bytes in production"
        )
    if s["SECRET_KEY"] in keys:
        raise ConfigError("FLASK_INQUIRY_SIGNING_KEYS must differ from FLASK_SECRET_KEY")
    plain = not (s["MAIL_USE_TLS"] or s["MAIL_USE_SSL"])
    remote = s["MAIL_SERVER"] not in LOCAL_MAIL_SERVERS
    if plain and remote:
        raise ConfigError("FLASK_MAIL_USE_TLS or FLASK_MAIL_USE_SSL is required for a mail server other than localhost")
    if remote and not s["MAIL_USERNAME"] and not s["MAIL_NO_AUTH"]:
        raise ConfigError(
            "FLASK_MAIL_USERNAME and FLASK_MAIL_PASSWORD are required for a mail server other than localhost"
            " (or FLASK_MAIL_NO_AUTH=true if the relay trusts this server's address)"
        )
    if not s["TRUSTED_HOSTS"]:
        s["TRUSTED_HOSTS"] = [urlsplit(s["SITE_URL"]).hostname]


def existing_secret(folder: str, name: str) -> str:
    """A development secret kept in the instance folder, or "" when it has not been made yet (see rsct.instance)."""
    try:
        with open(os.path.join(folder, name), encoding="ascii") as handle:
            return handle.read().strip()
    except FileNotFoundError:
        return ""


if __name__ == "__main__":
    print(settings_table(), end="")
