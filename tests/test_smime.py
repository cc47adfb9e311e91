"""S/MIME signed emails, checked by two implementations that are not ours: OpenSSL's command line and gpgsm.

The certificates are made with the site's own `smime new-ca` and `smime new-signer` commands; every
inquiry and digest the sender delivers to a real SMTP server (aiosmtpd) must verify in both tools and
with `inquiry verify`; one changed character must fail all three.
"""

import base64
import datetime
import re
import shutil
import subprocess

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

import config

from helpers import Visitor, deliver, require_tool
from smtp_servers import SENDER, running_smtp, smtp_settings

SENDER_ADDRESS = "website@rsct.example.org"


def require(tool: str) -> str:
    """The tool's path; in CI a missing tool fails, on a developer's machine it skips loudly."""
    path = shutil.which(tool)
    require_tool(path is not None, tool)
    return path


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """A private CA and a signer for the From address, made by the site's own commands."""
    from app import create_app

    folder = tmp_path_factory.mktemp("pki")
    app = create_app(
        {"CONFIG_NAME": "testing", "INSTANCE_PATH": str(folder / "instance"), "MAIL_DEFAULT_SENDER": SENDER}
    )
    runner = app.test_cli_runner()
    made = runner.invoke(args=["smime", "new-ca", str(folder / "ca")])
    assert made.exit_code == 0, made.output
    made = runner.invoke(
        args=[
            "smime",
            "new-signer",
            str(folder / "signer"),
            "--ca-cert",
            str(folder / "ca/ca.pem"),
            "--ca-key",
            str(folder / "ca/ca.key"),
        ]
    )
    assert made.exit_code == 0, made.output
    for name in ("ca/ca.key", "signer/signer.key", "signer/signer.pem"):
        assert (folder / name).stat().st_mode & 0o777 == 0o600
    return {
        "ca": folder / "ca/ca.pem",
        "ca_key": folder / "ca/ca.key",
        "cert": folder / "signer/signer.pem",
        "key": folder / "signer/signer.key",
        "folder": folder,
    }


@pytest.fixture
def signing_app(make_app, inbox, pki):
    with running_smtp(inbox) as port:
        yield make_app(**smtp_settings(port, SMIME_SIGNER_CERT=str(pki["cert"]), SMIME_SIGNER_KEY=str(pki["key"])))


def openssl_verifies(raw: bytes, ca, tmp_path) -> bool:
    """`openssl smime -verify` and `openssl cms -verify` against the CA: True only when both accept it."""
    openssl = require("openssl")
    path = tmp_path / "received.eml"
    path.write_bytes(raw)
    results = [
        subprocess.run(
            [openssl, command, "-verify", "-in", str(path), "-CAfile", str(ca), "-out", str(tmp_path / "content.txt")],
            capture_output=True,
            timeout=30,
        )
        for command in ("smime", "cms")
    ]
    assert all(r.returncode in (0, 4) for r in results), [r.stderr for r in results]  # 4: verification failed
    return all(r.returncode == 0 for r in results)


def gpgsm_verifies(raw: bytes, ca, tmp_path) -> bool:
    """GnuPG's gpgsm, as Kleopatra and KMail use it: the CA imported and trusted in a short, temporary
    GNUPGHOME (CRL checks off), then the detached signature checked against the signed part's bytes."""
    gpgsm = require("gpgsm")
    home = tmp_path / "g"  # short: the agent's socket path must fit in 108 bytes
    home.mkdir(mode=0o700, exist_ok=True)
    (home / "gpgsm.conf").write_text("disable-crl-checks\ndisable-policy-checks\n")
    fingerprint = x509.load_pem_x509_certificate(ca.read_bytes()).fingerprint(hashes.SHA1()).hex(":").upper()
    (home / "trustlist.txt").write_text(f"{fingerprint} S\n")
    env = {"GNUPGHOME": str(home), "PATH": "/usr/bin:/bin"}
    try:
        subprocess.run([gpgsm, "--batch", "--import", str(ca)], env=env, capture_output=True, timeout=60, check=True)
        data, signature = signed_parts(raw)
        (tmp_path / "data").write_bytes(data)
        (tmp_path / "sig.p7s").write_bytes(signature)
        result = subprocess.run(
            [gpgsm, "--batch", "--verify", str(tmp_path / "sig.p7s"), str(tmp_path / "data")],
            env=env,
            capture_output=True,
            timeout=60,
        )
        return result.returncode == 0 and b"Good signature" in result.stderr
    finally:
        subprocess.run(["gpgconf", "--kill", "gpg-agent"], env=env, capture_output=True, timeout=30)


def signed_parts(raw: bytes) -> tuple[bytes, bytes]:
    """The signed part's exact bytes (CRLF) and the DER signature of a multipart/signed message."""
    raw = raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    boundary = re.search(rb'boundary="([^"]+)"', raw).group(1)
    parts = raw.split(b"\r\n--" + boundary)
    data = parts[1].removeprefix(b"\r\n")
    signature = base64.b64decode(parts[2].split(b"\r\n\r\n", 1)[1])
    return data, signature


def verify_cli(app, raw: bytes, tmp_path):
    path = tmp_path / "check.eml"
    path.write_bytes(raw)
    return app.test_cli_runner().invoke(args=["inquiry", "verify", str(path)])


def test_a_signed_inquiry_verifies_in_openssl_gpgsm_and_inquiry_verify(signing_app, inbox, pki, tmp_path):
    for changes in ({}, {"contact_method": "email", "email": "jo@example.org"}):
        assert Visitor(signing_app.test_client()).submit(**changes).status_code == 303
        assert len(deliver(signing_app).delivered) == 1
    received = inbox.wait_for(2)
    assert len(received) == 2
    for message in received:
        parsed = message.message
        assert parsed.get_content_type() == "multipart/signed"
        assert parsed.get_param("protocol") == "application/pkcs7-signature"
        assert parsed.get_param("micalg") == "sha-256"
        assert [p.get_content_type() for p in parsed.iter_parts()] == ["text/plain", "application/pkcs7-signature"]
        assert openssl_verifies(message.content, pki["ca"], tmp_path)
        assert gpgsm_verifies(message.content, pki["ca"], tmp_path)
        result = verify_cli(signing_app, message.content, tmp_path)
        assert result.exit_code == 0, result.output
        assert "also S/MIME signed: that signature is for the office's mail program" in result.output
    # The signer certificate and its chain travel with the signature, so a mail program can build the path.
    certificates = subprocess.run(
        ["openssl", "pkcs7", "-inform", "DER", "-print_certs"],
        input=signed_parts(received[0].content)[1],
        capture_output=True,
        timeout=30,
    )
    assert certificates.stdout.count(b"BEGIN CERTIFICATE") == 2


def test_one_changed_character_fails_every_check(signing_app, inbox, pki, tmp_path):
    assert Visitor(signing_app.test_client()).submit(name="Jordan Rivers").status_code == 303
    deliver(signing_app)
    (message,) = inbox.wait_for(1)
    changed = message.content.replace(b"Jordan Rivers", b"Jordan Riverz", 1)
    assert changed != message.content
    assert not openssl_verifies(changed, pki["ca"], tmp_path)
    assert not gpgsm_verifies(changed, pki["ca"], tmp_path)
    assert verify_cli(signing_app, changed, tmp_path).exit_code == 1


def test_the_digest_is_signed_too(signing_app, inbox, pki, tmp_path):
    assert Visitor(signing_app.test_client()).submit(website="http://spam.example").status_code == 303
    result = signing_app.test_cli_runner().invoke(args=["inquiry", "digest"])
    assert result.exit_code == 0, result.output
    (digest,) = inbox.wait_for(1)
    assert digest.message.get_content_type() == "multipart/signed"
    assert openssl_verifies(digest.content, pki["ca"], tmp_path)
    assert gpgsm_verifies(digest.content, pki["ca"], tmp_path)


def test_signing_is_off_by_default_and_development_files_are_plain(make_app):
    app = make_app()
    assert app.config["SMIME_SIGNER_CERT"] == "" and app.config["SMIME_SIGNER_KEY"] == ""


# --- smime check: one line per problem ------------------------------------------------------------


def make_cert(
    folder,
    pki,
    *,
    address=SENDER_ADDRESS,
    days=365,
    usage=True,
    eku=ExtendedKeyUsageOID.EMAIL_PROTECTION,
    start_days=-1,
):
    """A signer certificate issued by the test CA with one property changed; returns (cert, key) paths."""
    ca_cert = x509.load_pem_x509_certificate(pki["ca"].read_bytes())
    ca_key = serialization.load_pem_private_key(pki["ca_key"].read_bytes(), password=None)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, address)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now + datetime.timedelta(days=start_days))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName([x509.RFC822Name(address)]), critical=False)
        .add_extension(x509.KeyUsage(usage, False, not usage, False, False, False, False, False, False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([eku]), critical=False)
    )
    cert = builder.sign(ca_key, hashes.SHA256())
    folder.mkdir(exist_ok=True)
    (folder / "c.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / "k.pem").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return folder / "c.pem", folder / "k.pem"


@pytest.mark.parametrize(
    "change, status, words",
    [
        ({}, 0, "OK: the certificate for website@rsct.example.org matches its key"),
        ({"days": 10}, 0, "WARNING: the certificate expires on"),
        ({"days": -1, "start_days": -30}, 1, "NOT USABLE: the certificate expired on"),
        ({"usage": False}, 1, "NOT USABLE: the certificate's key usage does not allow digital signatures"),
        ({"eku": ExtendedKeyUsageOID.SERVER_AUTH}, 1, "extended key usage does not include email protection"),
        ({"address": "someone@else.example"}, 1, "the From address website@rsct.example.org"),
    ],
    ids=["good", "expiring", "expired", "key-usage", "extended-key-usage", "other-address"],
)
def test_smime_check_says_what_is_wrong(make_app, pki, tmp_path, change, status, words):
    cert, key = make_cert(tmp_path / "c", pki, **change)
    app = make_app(MAIL_DEFAULT_SENDER=SENDER)
    result = app.test_cli_runner().invoke(args=["smime", "check", "--cert", str(cert), "--key", str(key)])
    assert result.exit_code == status, result.output
    assert words in result.output


def test_smime_check_on_unusable_files(make_app, pki, tmp_path):
    app = make_app(MAIL_DEFAULT_SENDER=SENDER)
    runner = app.test_cli_runner()
    other_cert, _ = make_cert(tmp_path / "other", pki)
    cases = [
        ((other_cert, pki["key"]), "the certificate and the key do not match"),
        ((tmp_path / "missing.pem", pki["key"]), "cannot be read"),
        ((pki["key"], pki["key"]), "holds no PEM certificate"),
        ((pki["cert"], pki["cert"]), "holds no unencrypted PEM private key"),
    ]
    for (cert, key), words in cases:
        result = runner.invoke(args=["smime", "check", "--cert", str(cert), "--key", str(key)])
        assert result.exit_code == 1 and words in result.output, result.output
        assert len(result.output.strip().splitlines()) == 1
    assert runner.invoke(args=["smime", "check"]).exit_code == 2  # nothing configured: nothing to check


def test_start_up_refuses_files_that_cannot_sign_but_not_an_expired_certificate(tmp_path, pki):
    environ = {"FLASK_SMIME_SIGNER_CERT": str(pki["cert"]), "FLASK_SMIME_SIGNER_KEY": str(pki["ca_key"])}
    with pytest.raises(config.ConfigError, match="certificate and the key do not match"):
        config.load(environ, str(tmp_path / "instance"))
    with pytest.raises(config.ConfigError, match="both FLASK_SMIME_SIGNER_CERT and FLASK_SMIME_SIGNER_KEY"):
        config.load({"FLASK_SMIME_SIGNER_CERT": str(pki["cert"])}, str(tmp_path / "instance"))
    cert, key = make_cert(tmp_path / "expired", pki, days=-1, start_days=-30)
    loaded = config.load(
        {"FLASK_SMIME_SIGNER_CERT": str(cert), "FLASK_SMIME_SIGNER_KEY": str(key)}, str(tmp_path / "instance")
    )
    assert loaded["SMIME_SIGNER_CERT"] == str(cert)  # keeps taking leads; status and alerts report it


def test_outbox_status_reports_the_certificate(make_app, pki, tmp_path):
    cert, key = make_cert(tmp_path / "soon", pki, days=5)
    app = make_app(MAIL_DEFAULT_SENDER=SENDER, SMIME_SIGNER_CERT=str(cert), SMIME_SIGNER_KEY=str(key))
    result = app.test_cli_runner().invoke(args=["outbox", "status"])
    assert "S/MIME signer: WARNING: the certificate expires on" in result.output


def test_the_monitor_alerts_once_when_the_certificate_expires_soon_and_once_when_it_is_renewed(
    make_app, pki, tmp_path, receiver
):
    soon, soon_key = make_cert(tmp_path / "soon", pki, days=5)
    settings = {"MAIL_DEFAULT_SENDER": SENDER, "ALERT_URL": receiver.url, "ALERT_FORMAT": "json"}
    app = make_app(SMIME_SIGNER_CERT=str(soon), SMIME_SIGNER_KEY=str(soon_key), **settings)
    for _ in range(3):  # the timer runs every few minutes: one alert
        result = app.test_cli_runner().invoke(args=["outbox", "monitor"])
        assert result.exit_code == 0, result.output  # leads still flow: not "stuck"
    assert len(receiver.requests) == 1
    assert "S/MIME certificate that signs the office's emails needs attention" in receiver.bodies()[0]
    assert "expires on" in receiver.bodies()[0]

    renewed, renewed_key = make_cert(tmp_path / "renewed", pki, days=365)
    app = make_app(SMIME_SIGNER_CERT=str(renewed), SMIME_SIGNER_KEY=str(renewed_key), **settings)
    assert app.test_cli_runner().invoke(args=["outbox", "monitor"]).exit_code == 0
    assert len(receiver.requests) == 2 and "fine again" in receiver.bodies()[1]


def test_healthchecks_stays_down_while_the_certificate_cannot_sign(make_app, pki, tmp_path, receiver):
    expired, key = make_cert(tmp_path / "expired", pki, days=-1, start_days=-30)
    app = make_app(
        MAIL_DEFAULT_SENDER=SENDER,
        SMIME_SIGNER_CERT=str(expired),
        SMIME_SIGNER_KEY=str(key),
        ALERT_URL=receiver.url,
        ALERT_FORMAT="healthchecks",
    )
    app.test_cli_runner().invoke(args=["outbox", "monitor"])
    assert [r["path"] for r in receiver.requests] == ["/fail"]
    assert "expired" in receiver.bodies()[0]
