"""Settings: explicit parsing, clear refusals in production, a kept development secret."""

import os
import re
import stat
import subprocess
import sys

import pytest

import config
from app import create_app
from rsct import instance

from helpers import ROOT

GOOD_KEY = "k" * 40
PRODUCTION = {
    "FLASK_CONFIG": "production",
    "FLASK_SECRET_KEY": "s" * 40,
    "FLASK_SITE_URL": "https://rsct.example.org",
    "FLASK_MAIL_SERVER": "smtp.example.org",
    "FLASK_MAIL_USE_TLS": "true",
    "FLASK_MAIL_USERNAME": "website@rsct.example.org",
    "FLASK_MAIL_DEFAULT_SENDER": "RSCT website <website@rsct.example.org>",
    "FLASK_INQUIRY_RECIPIENT": "office@rsct.example.org",
    "FLASK_INQUIRY_SIGNING_KEYS": GOOD_KEY,
}


def load(tmp_path, **environ):
    return config.load(environ, str(tmp_path / "instance"))


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("true", True),
        ("1", True),
        ("yes", True),
        ("ON", True),
        ("false", False),
        ("0", False),
        ("no", False),
        ("", False),
    ],
)
def test_booleans_accept_the_usual_words(tmp_path, raw, expected):
    assert load(tmp_path, FLASK_MAIL_USE_TLS=raw)["MAIL_USE_TLS"] is expected


def test_lists_are_comma_separated(tmp_path):
    settings = load(tmp_path, FLASK_TRUSTED_HOSTS=" rsct.example.org, www.rsct.example.org ,")
    assert settings["TRUSTED_HOSTS"] == ["rsct.example.org", "www.rsct.example.org"]


@pytest.mark.parametrize(
    "name, raw, words",
    [
        ("FLASK_MAIL_PORT", "abc", "FLASK_MAIL_PORT must be a number"),
        ("FLASK_MAIL_PORT", "70000", "FLASK_MAIL_PORT must be a number"),
        ("FLASK_MAIL_USE_TLS", "maybe", "FLASK_MAIL_USE_TLS must be true or false"),
        ("FLASK_CONFIG", "staging", "FLASK_CONFIG must be one of"),
        ("FLASK_SITE_URL", "rsct.example.org", "FLASK_SITE_URL must be an http"),
        ("FLASK_MAIL_DEFAULT_SENDER", "not an address", "FLASK_MAIL_DEFAULT_SENDER must be an email address"),
        ("FLASK_INQUIRY_RETENTION_DAYS", "-1", "FLASK_INQUIRY_RETENTION_DAYS must be a number"),
        ("FLASK_MAIL_CA_FILE", "/no/such/ca.pem", "FLASK_MAIL_CA_FILE names no readable file"),
    ],
)
def test_bad_values_stop_start_up_with_one_clear_line(tmp_path, name, raw, words):
    with pytest.raises(config.ConfigError) as caught:
        load(tmp_path, **{name: raw})
    message = str(caught.value)
    assert words in message and "\n" not in message


def test_production_accepts_complete_settings(tmp_path):
    settings = load(tmp_path, **PRODUCTION)
    assert settings["SESSION_COOKIE_NAME"] == "__Host-session"
    assert settings["SESSION_COOKIE_SECURE"] is True
    assert settings["TRUSTED_HOSTS"] == ["rsct.example.org"]
    assert settings["MAIL_DEBUG"] is False


@pytest.mark.parametrize(
    "change, words",
    [
        ({"FLASK_SECRET_KEY": None}, "FLASK_SECRET_KEY must be set to at least 32"),
        ({"FLASK_SECRET_KEY": "short"}, "FLASK_SECRET_KEY must be set to at least 32"),
        ({"FLASK_DEBUG": "true"}, "FLASK_DEBUG must be off in production"),
        ({"FLASK_SITE_URL": "http://rsct.example.org"}, "FLASK_SITE_URL must be the site's public https://"),
        ({"FLASK_MAIL_SERVER": None}, "FLASK_MAIL_SERVER is required in production"),
        ({"FLASK_MAIL_DEFAULT_SENDER": None}, "FLASK_MAIL_DEFAULT_SENDER is required in production"),
        ({"FLASK_INQUIRY_RECIPIENT": None}, "FLASK_INQUIRY_RECIPIENT is required in production"),
        ({"FLASK_INQUIRY_SIGNING_KEYS": None}, "FLASK_INQUIRY_SIGNING_KEYS must hold one or more keys"),
        ({"FLASK_INQUIRY_SIGNING_KEYS": GOOD_KEY + ",short"}, "FLASK_INQUIRY_SIGNING_KEYS must hold one or more keys"),
        ({"FLASK_INQUIRY_SIGNING_KEYS": "s" * 40}, "must differ from FLASK_SECRET_KEY"),
        ({"FLASK_MAIL_USE_TLS": "false"}, "FLASK_MAIL_USE_TLS or FLASK_MAIL_USE_SSL is required"),
        ({"FLASK_MAIL_USE_SSL": "true"}, "not both"),
        ({"FLASK_MAIL_USERNAME": None}, "FLASK_MAIL_USERNAME and FLASK_MAIL_PASSWORD are required"),
        ({"FLASK_ALERT_URL": "http://127.0.0.1:9/alerts"}, "FLASK_ALERT_URL must be an https:// address"),
    ],
)
def test_production_refuses_unsafe_settings(tmp_path, change, words):
    environ = {**PRODUCTION, **change}
    environ = {k: v for k, v in environ.items() if v is not None}
    with pytest.raises(config.ConfigError, match=re.escape(words)):
        load(tmp_path, **environ)


def test_production_allows_plain_smtp_only_to_localhost(tmp_path):
    settings = load(
        tmp_path,
        **{**PRODUCTION, "FLASK_MAIL_SERVER": "localhost", "FLASK_MAIL_USE_TLS": "false", "FLASK_MAIL_PORT": "25"},
    )
    assert settings["MAIL_SERVER"] == "localhost"


def test_production_takes_a_relay_that_trusts_the_server_without_a_login(tmp_path):
    settings = load(tmp_path, **{**PRODUCTION, "FLASK_MAIL_USERNAME": "", "FLASK_MAIL_NO_AUTH": "true"})
    assert settings["MAIL_NO_AUTH"] is True and settings["MAIL_USERNAME"] == ""


@pytest.mark.parametrize(
    "url, accepted",
    [
        ("http://127.0.0.1:8080/alerts", True),
        ("http://localhost/alerts", True),
        ("https://ntfy.sh/rsct-example", True),
        ("http://ntfy.sh/rsct-example", False),
        ("ftp://ntfy.sh/rsct-example", False),
    ],
)
def test_alerts_go_over_https_or_to_this_machine_outside_production(tmp_path, url, accepted):
    if accepted:
        assert load(tmp_path, FLASK_ALERT_URL=url)["ALERT_URL"] == url
    else:
        with pytest.raises(config.ConfigError, match="FLASK_ALERT_URL must be"):
            load(tmp_path, FLASK_ALERT_URL=url)


def test_development_needs_no_settings_and_keeps_its_secret(tmp_path):
    assert load(tmp_path)["INQUIRY_SIGNING_KEYS"] == []  # loading the settings makes nothing
    assert not (tmp_path / "instance").exists()
    first = load(tmp_path)
    instance.prepare(first)  # what the web app, the sender and `flask setup` do
    second = load(tmp_path)
    assert len(first["SECRET_KEY"]) >= 32
    assert first["SECRET_KEY"] == second["SECRET_KEY"]
    assert first["INQUIRY_SIGNING_KEYS"] == second["INQUIRY_SIGNING_KEYS"] != [first["SECRET_KEY"]]
    mode = stat.S_IMODE(os.stat(tmp_path / "instance" / "secret_key").st_mode)
    assert mode == 0o600


def test_operator_commands_do_not_repeat_the_development_notice(tmp_path, monkeypatch, caplog):
    """`make run` says once that this is development; every other command keeps quiet about it."""
    monkeypatch.setenv("FLASK_INSTANCE_PATH", str(tmp_path / "instance"))
    with caplog.at_level("INFO"):
        create_app()
    assert [r.message for r in caplog.records if "development mode" in r.message] == []


def test_readme_settings_table_is_the_one_config_makes():
    """The README's table is generated from config.SETTINGS (`python config.py`), so the two never drift."""
    readme = (ROOT / "README.md").read_text()
    table = config.settings_table()
    assert all(f"`{s.env}`" in table for s in config.SETTINGS)
    assert table in readme, "README's settings table is out of date: paste the output of `.venv/bin/python config.py`"


def test_each_setting_is_declared_once():
    names = [s.env for s in config.SETTINGS]
    assert len(names) == len(set(names))
    fixed = {key for cls in config.CLASSES.values() for key in dir(cls) if key.isupper()}
    assert fixed & {s.key for s in config.SETTINGS} <= {"MIN_FILL_SECONDS"}  # testing posts at once


def test_a_bad_setting_stops_the_flask_command_with_one_line_and_status_2(tmp_path):
    env = {**os.environ, "FLASK_MAIL_PORT": "many", "FLASK_INSTANCE_PATH": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-m", "flask", "--app", "app", "routes"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2  # "could not do the job", never 4 ("stuck") or 1
    assert result.stderr.strip().splitlines() == [
        "Configuration error: FLASK_MAIL_PORT must be a number from 1 to 65535, not 'many'"
    ]
