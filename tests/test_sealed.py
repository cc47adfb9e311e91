"""Sealed mode: each inquiry is encrypted for the office as it is stored, so the server cannot read its own leads.

Read back with two implementations that are not ours (OpenSSL's command line and GnuPG's gpgsm), from
what a real SMTP server (aiosmtpd) received; the canary values must not be anywhere on the server's disk.
"""

import base64
import os
import re
import shutil
import sqlite3
import subprocess
import threading

import pytest

import config
from rsct import inquiries, sender, smime

from helpers import Visitor, deliver, require_tool
from smtp_servers import SENDER, running_smtp, smtp_settings

CANARIES = ("Qzxsealname", "Qzxsealnote", "sealcanary@example.org", "555-0199")
OFFICE = "Madison office <office@rsct.example.org>"
PASSWORD = "correct horse battery staple"


def require(tool: str) -> str:
    path = shutil.which(tool)
    require_tool(path is not None, tool)
    return path


class RecordingInbox:
    """An aiosmtpd handler that records every message it is sent, accepted or not; replies from a list."""

    def __init__(self, replies=("250 OK",)):
        self.replies = list(replies)
        self.attempts: list[bytes] = []
        self.accepted: list[bytes] = []
        self._lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):
        with self._lock:
            reply = self.replies.pop(0) if len(self.replies) > 1 else self.replies[0]
            self.attempts.append(envelope.content)
            if reply.startswith("250"):
                self.accepted.append(envelope.content)
        return reply


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    """A private CA, a signer for the From address and the office's identity (PKCS#12 and PEM)."""
    folder = tmp_path_factory.mktemp("keys")
    ca_cert, ca_key = smime.new_ca(str(folder / "ca"), "RSCT test CA")
    signer_cert, signer_key = smime.new_signer(str(folder / "signer"), ca_cert, ca_key, SENDER)
    p12, office_cert = smime.new_office_identity(str(folder / "office"), OFFICE, PASSWORD, ca_cert, ca_key)
    office_pem = folder / "office-key.pem"
    subprocess.run(
        [require("openssl"), "pkcs12", "-in", p12, "-passin", f"pass:{PASSWORD}", "-nodes", "-out", str(office_pem)],
        check=True,
        capture_output=True,
        timeout=30,
    )
    other_p12, other_cert = smime.new_office_identity(str(folder / "other"), OFFICE, PASSWORD)
    return {
        "ca": ca_cert,
        "ca_key": ca_key,
        "signer_cert": signer_cert,
        "signer_key": signer_key,
        "p12": p12,
        "office_cert": office_cert,
        "office_pem": str(office_pem),
        "other_cert": other_cert,
    }


def sealed_settings(port, keys, **overrides):
    settings = {
        "INQUIRY_RECIPIENT": OFFICE,
        "SMIME_SIGNER_CERT": keys["signer_cert"],
        "SMIME_SIGNER_KEY": keys["signer_key"],
        "SMIME_OFFICE_CERT": keys["office_cert"],
    }
    return smtp_settings(port, **{**settings, **overrides})


def canary_visit(client, **changes):
    values = dict(
        name="Jo Qzxsealname",
        contact_method="email",
        email="sealcanary@example.org",
        phone="(203) 555-0199",
        message="Please Qzxsealnote write soon.",
    )
    values.update(changes)
    response = Visitor(client).submit(**values)
    assert response.status_code == 303, response.text
    return response


def decrypt_openssl(raw: bytes, key_pem: str, tmp_path) -> bytes | None:
    (tmp_path / "sealed.eml").write_bytes(raw)
    result = subprocess.run(
        [require("openssl"), "smime", "-decrypt", "-in", str(tmp_path / "sealed.eml"), "-inkey", key_pem],
        capture_output=True,
        timeout=30,
    )
    return result.stdout if result.returncode == 0 else None


def openssl_verifies(inner: bytes, ca: str, tmp_path) -> bool:
    (tmp_path / "inner.eml").write_bytes(inner)
    result = subprocess.run(
        [require("openssl"), "cms", "-verify", "-in", str(tmp_path / "inner.eml"), "-CAfile", ca, "-out", os.devnull],
        capture_output=True,
        timeout=30,
    )
    return result.returncode == 0


def gpgsm_reads(raw: bytes, keys, tmp_path) -> bytes:
    """Import the office's PKCS#12 and the CA into a short temporary GNUPGHOME, decrypt, then verify the
    signed part inside; returns the decrypted message."""
    gpgsm = require("gpgsm")
    home = tmp_path / "g"
    home.mkdir(mode=0o700, exist_ok=True)
    (home / "gpgsm.conf").write_text("disable-crl-checks\ndisable-policy-checks\n")
    (home / "gpg-agent.conf").write_text("allow-loopback-pinentry\n")
    fingerprint = (
        subprocess.run(
            ["openssl", "x509", "-in", keys["ca"], "-noout", "-fingerprint", "-sha1"],
            capture_output=True,
            text=True,
            check=True,
        )
        .stdout.strip()
        .split("=")[1]
    )
    (home / "trustlist.txt").write_text(f"{fingerprint} S\n")
    env = {"GNUPGHOME": str(home), "PATH": "/usr/bin:/bin"}
    batch = [gpgsm, "--batch", "--pinentry-mode", "loopback", "--passphrase-fd", "0"]
    try:
        subprocess.run(
            [*batch, "--import", keys["ca"]], input=b"", env=env, capture_output=True, timeout=60, check=True
        )
        imported = subprocess.run(
            [*batch, "--import", keys["p12"]], input=PASSWORD.encode() + b"\n", env=env, capture_output=True, timeout=60
        )
        assert b"secret keys imported: 1" in imported.stderr, imported.stderr
        der = base64.b64decode(raw.replace(b"\r\n", b"\n").split(b"\n\n", 1)[1])
        (tmp_path / "sealed.p7m").write_bytes(der)
        # gpg-agent keeps the imported key under the same passphrase, asked again to decrypt.
        decrypted = subprocess.run(
            [*batch, "--decrypt", str(tmp_path / "sealed.p7m")],
            input=PASSWORD.encode() + b"\n",
            env=env,
            capture_output=True,
            timeout=60,
        )
        assert decrypted.returncode == 0, decrypted.stderr
        inner = decrypted.stdout.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
        boundary = re.search(rb'boundary="([^"]+)"', inner).group(1)
        parts = inner.split(b"\r\n--" + boundary)
        (tmp_path / "data").write_bytes(parts[1].removeprefix(b"\r\n"))
        (tmp_path / "sig.p7s").write_bytes(base64.b64decode(parts[2].split(b"\r\n\r\n", 1)[1]))
        verified = subprocess.run(
            [gpgsm, "--batch", "--verify", str(tmp_path / "sig.p7s"), str(tmp_path / "data")],
            env=env,
            capture_output=True,
            timeout=60,
        )
        assert verified.returncode == 0 and b"Good signature" in verified.stderr, verified.stderr
        return decrypted.stdout
    finally:
        subprocess.run(["gpgconf", "--kill", "gpg-agent"], env=env, capture_output=True, timeout=30)


def verify_cli(app, raw: bytes, tmp_path):
    (tmp_path / "check.eml").write_bytes(raw)
    return app.test_cli_runner().invoke(args=["inquiry", "verify", str(tmp_path / "check.eml")])


def test_a_sealed_inquiry_is_read_by_openssl_and_gpgsm_and_verifies(make_app, keys, tmp_path):
    inbox = RecordingInbox()
    with running_smtp(inbox) as port:
        app = make_app(**sealed_settings(port, keys))
        canary_visit(app.test_client())
        assert len(deliver(app).delivered) == 1
    (raw,) = inbox.accepted
    for canary in CANARIES:
        assert canary.encode() not in raw
    head = raw.split(b"\r\n\r\n", 1)[0].decode()
    names = {line.split(":", 1)[0].lower() for line in head.split("\r\n") if line and line[0] not in " \t"}
    assert names <= {
        "from",
        "to",
        "subject",
        "date",
        "message-id",
        "mime-version",
        "content-type",
        "content-transfer-encoding",
        "content-disposition",
        "content-description",
    }
    assert "enveloped-data" in head and "reply-to" not in names

    inner = decrypt_openssl(raw, keys["office_pem"], tmp_path)
    assert inner is not None and b"Qzxsealname" in inner.replace(b"=\r\n", b"").replace(b"=\n", b"")
    assert b"Reply-To: sealcanary@example.org" in inner  # only inside, where the office's program reads it
    assert openssl_verifies(inner, keys["ca"], tmp_path)
    result = verify_cli(app, inner, tmp_path)
    assert result.exit_code == 0, result.output
    sealed = verify_cli(app, raw, tmp_path)  # as saved before the mail program opened it: nothing to read
    assert sealed.exit_code == 2 and "sealed (encrypted for the office)" in sealed.output
    assert gpgsm_reads(raw, keys, tmp_path).replace(b"\r\n", b"\n") == inner.replace(b"\r\n", b"\n")


def test_sealed_for_another_certificate_cannot_be_read_with_the_office_key(make_app, keys, tmp_path):
    inbox = RecordingInbox()
    with running_smtp(inbox) as port:
        app = make_app(**sealed_settings(port, keys, SMIME_OFFICE_CERT=keys["other_cert"]))
        canary_visit(app.test_client())
        deliver(app)
    (raw,) = inbox.accepted
    assert decrypt_openssl(raw, keys["office_pem"], tmp_path) is None


def test_nothing_readable_is_left_on_the_server(make_app, keys, tmp_path):
    """After a sealed submission, with no sender running: the database, its WAL, a backup and the whole
    instance folder hold none of the values the visitor typed."""
    app = make_app(**sealed_settings(1, keys))
    client = app.test_client()
    keeper = sqlite3.connect(app.config["DATABASE"])  # an open connection keeps the WAL file on disk
    keeper.execute("SELECT count(*) FROM inquiries").fetchone()
    canary_visit(client)
    canary_visit(client, contact_method="call", website="http://spam.example")  # quarantined: sealed too
    backup = tmp_path / "backup.sqlite3"
    with app.app_context():  # as `flask backup` runs it
        assert app.test_cli_runner().invoke(args=["backup", str(backup)]).exit_code == 0
    files = [str(backup)] + [
        os.path.join(root, name) for root, _, names in os.walk(app.instance_path) for name in names
    ]
    assert any(name.endswith("-wal") and os.path.getsize(name) for name in files)
    for path in files:
        with open(path, "rb") as handle:
            data = handle.read()
        for canary in CANARIES:
            assert canary.encode() not in data, f"{canary} found in {path}"
            assert canary.encode("utf-16-le") not in data
    rows = keeper.execute("SELECT fields, sealed FROM inquiries").fetchall()
    keeper.close()
    assert len(rows) == 2 and all(fields is None and sealed for fields, sealed in rows)
    listed = app.test_cli_runner().invoke(args=["inquiry", "list"])
    assert listed.output.count("sealed") == 2
    reference = listed.output.split()[0]
    shown = app.test_cli_runner().invoke(args=["inquiry", "show", reference])
    assert "Details: sealed" in shown.output and "Qzx" not in shown.output


def test_retries_send_the_same_bytes_and_retention_erases_them(make_app, keys):
    inbox = RecordingInbox(replies=["451 4.3.0 try later", "250 OK"])
    with running_smtp(inbox) as port:
        app = make_app(**sealed_settings(port, keys, INQUIRY_RETENTION_DAYS=0))
        canary_visit(app.test_client())
        assert deliver(app).retrying
        with sqlite3.connect(app.config["DATABASE"]) as db:
            db.execute("UPDATE outbox SET next_attempt_at = 0")
        assert len(deliver(app).delivered) == 1
    assert len(inbox.attempts) == 2 and inbox.attempts[0] == inbox.attempts[1]
    with app.app_context():
        erased = sender.apply_retention()
    assert len(erased) == 1
    with sqlite3.connect(app.config["DATABASE"]) as db:
        assert db.execute("SELECT sealed, fields FROM inquiries").fetchall() == [(None, None)]


def test_a_held_sealed_inquiry_reaches_the_office_in_the_digest_and_can_be_released(make_app, keys, tmp_path):
    inbox = RecordingInbox()
    with running_smtp(inbox) as port:
        app = make_app(**sealed_settings(port, keys))
        canary_visit(app.test_client(), website="http://spam.example")
        (row,) = inquiries.recent(app.config["DATABASE"])
        reference = row["reference"]
        result = app.test_cli_runner().invoke(args=["inquiry", "digest"])
        assert result.exit_code == 0, result.output
        assert app.test_cli_runner().invoke(args=["inquiry", "release", reference]).exit_code == 0
        assert deliver(app).delivered == [reference]
    digest, released = inbox.accepted
    for canary in CANARIES:
        assert canary.encode() not in digest
    digest_inner = decrypt_openssl(digest, keys["office_pem"], tmp_path)
    assert digest_inner is None  # the digest itself is signed, not sealed: it names no one
    assert openssl_verifies(digest, keys["ca"], tmp_path)
    assert f"{reference}.eml".encode() in digest and reference.encode() in digest
    attached = digest.split(f'filename="{reference}.eml"'.encode(), 1)[1].split(b"\r\n\r\n", 1)[1]
    inner = decrypt_openssl(attached.split(b"\r\n--", 1)[0], keys["office_pem"], tmp_path)
    assert inner is not None and verify_cli(app, inner, tmp_path).exit_code == 0
    assert decrypt_openssl(released, keys["office_pem"], tmp_path) == inner  # released: the same sealed message


def test_start_up_and_smime_check_refuse_office_certificates_that_are_not_rsa(tmp_path, make_app):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.oid.NameOID.COMMON_NAME, "office")])
    import datetime

    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=9))
        .sign(key, hashes.SHA256())
    )
    path = tmp_path / "ec.pem"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    with pytest.raises(config.ConfigError, match="not RSA"):
        config.load({"FLASK_SMIME_OFFICE_CERT": str(path)}, str(tmp_path / "instance"))
    with pytest.raises(config.ConfigError, match="cannot be read"):
        config.load({"FLASK_SMIME_OFFICE_CERT": str(tmp_path / "none.pem")}, str(tmp_path / "instance"))
