"""The operator's files work as DEPLOY.md uses them: the example environment file through deploy/rsct-flask."""

import os
import pwd
import re
import subprocess
import sys
from pathlib import Path

import config

from helpers import ROOT, Visitor, deliver


def usable_environment_file(tmp_path) -> Path:
    """The shipped example with only its placeholders filled in, as an operator would."""
    text = (ROOT / "deploy" / "rsct.env.example").read_text()
    text = text.replace("FLASK_SECRET_KEY=CHANGE-ME", "FLASK_SECRET_KEY=" + "s" * 48)
    text = text.replace("FLASK_INQUIRY_SIGNING_KEYS=CHANGE-ME", "FLASK_INQUIRY_SIGNING_KEYS=" + "k" * 48)
    text = text.replace("/srv/rsct/instance", str(tmp_path / "instance"))
    path = tmp_path / "rsct.env"
    path.write_text(text)
    path.chmod(0o640)  # as DEPLOY.md installs it; deploy/check_env.py refuses a file others may read
    return path


def rsct_flask(tmp_path, env_file, *args, stdin: bytes | None = None):
    env = {
        "PATH": os.environ["PATH"],
        "RSCT_APP": str(ROOT),
        "RSCT_ENV": str(env_file),
        "RSCT_VENV": str(Path(sys.executable).parent.parent),
        "RSCT_ENV_OWNER": pwd.getpwuid(os.geteuid()).pw_name,
    }
    if stdin is not None:  # bytes in, text out
        result = subprocess.run(
            ["sh", str(ROOT / "deploy" / "rsct-flask"), *args], env=env, input=stdin, capture_output=True, timeout=60
        )
        result.stdout, result.stderr = result.stdout.decode(), result.stderr.decode()
        return result
    return subprocess.run(
        ["sh", str(ROOT / "deploy" / "rsct-flask"), *args], env=env, capture_output=True, text=True, timeout=60
    )


def test_example_environment_lists_every_setting():
    text = (ROOT / "deploy" / "rsct.env.example").read_text()
    assert [s.env for s in config.SETTINGS if f"{s.env}=" not in text] == []


def test_the_operators_verify_command_reads_the_email_from_standard_input(make_app, tmp_path):
    """DEPLOY.md's `deploy/rsct-flask inquiry verify - < FILE`: the wrapper loads the site's settings (its
    signing key), the email comes in on standard input, and nothing is created in the instance folder."""
    server = tmp_path / "server"  # the deployment's folders, apart from the site that made the email
    server.mkdir()
    env_file = usable_environment_file(server)
    sender = re.search(r"^FLASK_MAIL_DEFAULT_SENDER=(.*)$", env_file.read_text(), re.M).group(1).strip("'\"")
    site = make_app(INQUIRY_SIGNING_KEYS=["k" * 48], MAIL_DEFAULT_SENDER=sender)  # delivers to .eml files
    assert Visitor(site.test_client()).submit().status_code == 303
    (reference,) = deliver(site).delivered
    (saved,) = Path(site.instance_path, "mail").glob(f"*-{reference}.eml")
    result = rsct_flask(tmp_path, env_file, "inquiry", "verify", "-", stdin=saved.read_bytes())
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"Authentic: inquiry {reference}" in result.stdout
    assert not (server / "instance").exists()  # the production instance folder: verify made nothing
    changed = saved.read_bytes().replace(b"Jordan Qzxname", b"Mallory Qzxname")
    assert rsct_flask(tmp_path, env_file, "inquiry", "verify", "-", stdin=changed).returncode == 1


def test_example_environment_makes_the_shipped_nginx_header_snippet(tmp_path):
    result = rsct_flask(tmp_path, usable_environment_file(tmp_path), "security-headers")
    assert result.returncode == 0, result.stderr
    assert result.stdout == (ROOT / "deploy" / "nginx" / "security-headers.conf").read_text()


def test_example_environment_with_its_placeholders_refuses_to_start(tmp_path):
    text = (ROOT / "deploy" / "rsct.env.example").read_text().replace("/srv/rsct/instance", str(tmp_path))
    (tmp_path / "raw.env").write_text(text)
    (tmp_path / "raw.env").chmod(0o640)
    result = rsct_flask(tmp_path, tmp_path / "raw.env", "outbox", "status")
    assert result.returncode != 0
    assert result.stderr.strip().splitlines()[-1].startswith("Configuration error: FLASK_SECRET_KEY")


def test_nginx_own_pages_are_valid_and_show_the_phone_and_crisis_lines(html_errors):
    """The pages nginx shows when the app is down or a request was unreadable: a reader in crisis still gets help."""
    pages = {page.stem: page.read_text() for page in (ROOT / "deploy" / "nginx").glob("_*.html")}
    assert set(pages) == {"_unavailable", "_error"}
    for name, text in pages.items():
        assert 'href="tel:+12034216242"' in text and 'href="tel:988"' in text and 'href="tel:911"' in text, name
    assert html_errors(pages) == []
