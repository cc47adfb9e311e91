"""S/MIME signatures (RFC 8551) that the office's own mail program checks and shows as a badge.

The message is composed as before; signing turns its content (the text part with its MIME
headers) into the first part of a `multipart/signed` message, with a detached SHA-256 PKCS#7
signature that carries the signer certificate and its chain. The itsdangerous block inside the
text stays, so `inquiry verify` still works on a signed email. `cryptography` signs; it cannot
verify, so the tests check the signatures with OpenSSL's command line and GnuPG's gpgsm.
"""

import base64
import datetime
import os
import secrets
from dataclasses import dataclass
from email.utils import parseaddr

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.ciphers import algorithms
from cryptography.hazmat.primitives.serialization import pkcs7, pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

# Headers that describe the content: they move into the signed part. Every other header stays outside.
CONTENT_HEADERS = ("content-type", "content-transfer-encoding", "content-disposition", "content-description")
EXPIRY_WARNING_DAYS = 30


class SmimeError(Exception):
    """The signer's files cannot be used; the message says what is wrong in plain words."""


@dataclass(frozen=True)
class Signer:
    certificate: x509.Certificate
    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
    chain: tuple[x509.Certificate, ...]


@dataclass(frozen=True)
class Finding:
    """One result of `smime check`: an error (the files cannot sign) or a warning (they can, for now)."""

    level: str  # "error" or "warning"
    message: str


def read_certificates(path: str, what: str = "certificate file") -> list[x509.Certificate]:
    """Every PEM certificate in a file, or SmimeError saying in plain words why not."""
    try:
        with open(path, "rb") as handle:
            return x509.load_pem_x509_certificates(handle.read())
    except OSError as error:
        raise SmimeError(f"the {what} {path} cannot be read ({error.strerror})") from None
    except ValueError:
        raise SmimeError(f"the {what} {path} holds no PEM certificate") from None


def load_signer(cert_path: str, key_path: str) -> Signer:
    """Read the signer certificate (its chain may follow it in the same file) and its private key."""
    certificates = read_certificates(cert_path)
    try:
        with open(key_path, "rb") as handle:
            key = serialization.load_pem_private_key(handle.read(), password=None)
    except OSError as error:
        raise SmimeError(f"the key file {key_path} cannot be read ({error.strerror})") from None
    except (ValueError, TypeError):
        raise SmimeError(f"the key file {key_path} holds no unencrypted PEM private key") from None
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise SmimeError("the key must be an RSA or EC key")
    certificate = certificates[0]
    if certificate.public_key().public_numbers() != key.public_key().public_numbers():
        raise SmimeError("the certificate and the key do not match (the key belongs to another certificate)")
    return Signer(certificate, key, tuple(certificates[1:]))


def check(signer: Signer, sender: str, now: datetime.datetime | None = None) -> list[Finding]:
    """What stops the certificate from signing the site's mail, or soon will."""
    now = now or datetime.datetime.now(datetime.UTC)
    cert = signer.certificate
    findings = []
    try:
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
        if not usage.digital_signature:
            findings.append(Finding("error", "the certificate's key usage does not allow digital signatures"))
    except x509.ExtensionNotFound:
        pass  # no restriction
    try:
        extended = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        if ExtendedKeyUsageOID.EMAIL_PROTECTION not in extended:
            findings.append(Finding("error", "the certificate's extended key usage does not include email protection"))
    except x509.ExtensionNotFound:
        pass
    address = parseaddr(sender)[1].lower()
    if address not in certificate_addresses(cert):
        findings.append(
            Finding("error", f"the From address {address} (FLASK_MAIL_DEFAULT_SENDER) is not in the certificate")
        )
    if cert.not_valid_after_utc < now:
        findings.append(Finding("error", f"the certificate expired on {cert.not_valid_after_utc:%Y-%m-%d}"))
    elif cert.not_valid_after_utc < now + datetime.timedelta(days=EXPIRY_WARNING_DAYS):
        findings.append(Finding("warning", f"the certificate expires on {cert.not_valid_after_utc:%Y-%m-%d}"))
    if cert.not_valid_before_utc > now:
        findings.append(Finding("error", f"the certificate is not valid before {cert.not_valid_before_utc:%Y-%m-%d}"))
    return findings


def certificate_addresses(cert: x509.Certificate) -> set[str]:
    """The email addresses a certificate names (subjectAltName rfc822Name, and the subject's emailAddress)."""
    addresses = {a.value.lower() for a in cert.subject.get_attributes_for_oid(NameOID.EMAIL_ADDRESS)}
    try:
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        addresses |= {name.lower() for name in names.get_values_for_type(x509.RFC822Name)}
    except x509.ExtensionNotFound:
        pass
    return addresses


def signer_findings(cert_path: str, key_path: str, sender: str) -> list[Finding]:
    """check() for the configured files, with files that cannot be loaded as one error."""
    try:
        signer = load_signer(cert_path, key_path)
    except SmimeError as error:
        return [Finding("error", str(error))]
    return check(signer, sender)


def days_left(signer: Signer, now: datetime.datetime | None = None) -> float:
    now = now or datetime.datetime.now(datetime.UTC)
    return (signer.certificate.not_valid_after_utc - now).total_seconds() / 86400


# --- signing ----------------------------------------------------------------------------------------


def _crlf(data: bytes) -> bytes:
    return data.replace(b"\r\n", b"\n").replace(b"\r", b"\n").replace(b"\n", b"\r\n")


def split_message(raw: bytes) -> tuple[list[bytes], list[bytes], bytes]:
    """A message's outer header lines, its content header lines (folded lines kept together), and its body."""
    fields, body = _header_fields(raw)
    outer = [f for f in fields if _field_name(f) not in CONTENT_HEADERS]
    content = [f for f in fields if _field_name(f) in CONTENT_HEADERS]
    return outer, content, body


def sign(raw: bytes, signer: Signer) -> bytes:
    """The message as `multipart/signed`: its content signed, detached, SHA-256, certificates included.

    The signed part must reach the office byte for byte: it is made 7-bit (the text is quoted-printable)
    with CRLF line ends, which is what SMTP carries, so no relay has a reason to re-encode it.
    """
    outer, content, body = split_message(raw)
    if not content:
        content = [b'Content-Type: text/plain; charset="us-ascii"']
    # The CRLF before the next boundary line belongs to that line, not to the signed part (RFC 1847).
    signed_part = (b"\r\n".join(content) + b"\r\n\r\n" + body).rstrip(b"\r\n")
    if any(byte > 127 for byte in signed_part):
        raise ValueError("the signed part must be 7-bit: encode the text as quoted-printable first")
    builder = pkcs7.PKCS7SignatureBuilder().set_data(signed_part)
    builder = builder.add_signer(signer.certificate, signer.key, hashes.SHA256())
    for certificate in signer.chain:
        builder = builder.add_certificate(certificate)
    signature = builder.sign(
        serialization.Encoding.DER, [pkcs7.PKCS7Options.DetachedSignature, pkcs7.PKCS7Options.Binary]
    )
    boundary = "=_rsct_signed_" + secrets.token_hex(12)
    encoded = base64.encodebytes(signature).replace(b"\n", b"\r\n")
    outer = [f for f in outer if not f.lower().startswith(b"mime-version:")]
    parts = [
        *outer,
        b"MIME-Version: 1.0",
        b'Content-Type: multipart/signed; protocol="application/pkcs7-signature"; micalg="sha-256";'
        + b'\r\n boundary="'
        + boundary.encode()
        + b'"',
        b"",
        b"This is a cryptographically signed message in MIME format.",
        b"",
        b"--" + boundary.encode(),
        signed_part,
        b"--" + boundary.encode(),
        b'Content-Type: application/pkcs7-signature; name="smime.p7s"',
        b"Content-Transfer-Encoding: base64",
        b'Content-Disposition: attachment; filename="smime.p7s"',
        b"Content-Description: S/MIME Cryptographic Signature",
        b"",
        encoded.rstrip(b"\r\n"),
        b"--" + boundary.encode() + b"--",
        b"",
    ]
    return b"\r\n".join(parts)


# --- making certificates for an office without a publicly trusted one --------------------------------


def _write_private(path: str, data: bytes) -> None:
    """Write a file only its owner can read, refusing to overwrite one that exists."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def _pem_key(key) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _builder(subject: x509.Name, issuer: x509.Name, key, until: datetime.datetime) -> x509.CertificateBuilder:
    """A certificate for key's public half, valid from five minutes ago (clocks differ) until `until`."""
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(until)
    )


def new_ca(folder: str, name: str, years: int = 10) -> tuple[str, str]:
    """A small private CA (certificate and key) in folder; returns their paths."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=3072)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        _builder(subject, subject, key, now + datetime.timedelta(days=365 * years))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )  # keyCertSign, cRLSign
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    os.makedirs(folder, mode=0o700, exist_ok=True)
    cert_path, key_path = os.path.join(folder, "ca.pem"), os.path.join(folder, "ca.key")
    _write_private(key_path, _pem_key(key))
    _write_private(cert_path, cert.public_bytes(serialization.Encoding.PEM))
    return cert_path, key_path


def new_signer(folder: str, ca_cert_path: str, ca_key_path: str, address: str, years: int = 2) -> tuple[str, str]:
    """A signer certificate for the From address, issued by the private CA; the certificate file carries
    the CA after it (the chain the mail program needs). Returns the certificate's and key's paths."""
    with open(ca_cert_path, "rb") as handle:
        ca_cert = x509.load_pem_x509_certificate(handle.read())
    with open(ca_key_path, "rb") as handle:
        ca_key = serialization.load_pem_private_key(handle.read(), password=None)
    address = parseaddr(address)[1]
    key = rsa.generate_private_key(public_exponent=65537, key_size=3072)
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        _builder(
            x509.Name(
                [x509.NameAttribute(NameOID.COMMON_NAME, address), x509.NameAttribute(NameOID.EMAIL_ADDRESS, address)]
            ),
            ca_cert.subject,
            key,
            min(now + datetime.timedelta(days=365 * years), ca_cert.not_valid_after_utc),
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(True, True, False, False, False, False, False, False, False), critical=True
        )  # digitalSignature, nonRepudiation (contentCommitment)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
        .add_extension(x509.SubjectAlternativeName([x509.RFC822Name(address)]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_cert.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    os.makedirs(folder, mode=0o700, exist_ok=True)
    cert_path, key_path = os.path.join(folder, "signer.pem"), os.path.join(folder, "signer.key")
    _write_private(key_path, _pem_key(key))
    chain = cert.public_bytes(serialization.Encoding.PEM) + ca_cert.public_bytes(serialization.Encoding.PEM)
    _write_private(cert_path, chain)
    return cert_path, key_path


# --- sealing: encrypted for the office (sealed mode) --------------------------------------------------

# Headers a relay needs, or the office needs to triage before opening: everything else, Reply-To
# included, travels only inside the encrypted part.
OUTER_SEALED_HEADERS = ("from", "to", "cc", "subject", "date", "message-id")


def load_office_certificates(path: str) -> list[x509.Certificate]:
    """The office mailbox's certificates (one PEM file, one or more certificates); RSA keys only."""
    certificates = read_certificates(path, "office certificate file")
    for certificate in certificates:
        if not isinstance(certificate.public_key(), rsa.RSAPublicKey):
            raise SmimeError(
                "an office certificate has a key that is not RSA: mail programs need RSA keys to open encrypted email"
            )
    return certificates


def seal(raw: bytes, certificates: list[x509.Certificate]) -> bytes:
    """The whole message (signed or not) enveloped with AES-256 for every office certificate.

    Outside stay only the headers a relay and an inbox list need; the subject follows the site's rule
    (a reference and how to reach them back, naming no one). Inside is the whole message, every header
    included (Reply-To only there), so that the decrypted text is a complete email that `inquiry verify`
    checks as it is, and mail programs that show protected headers (RFC 8551, 3.1) can use them.
    """
    fields, body = _header_fields(raw)
    outer = [f for f in fields if _field_name(f) in OUTER_SEALED_HEADERS]
    inner_entity = b"\r\n".join(fields) + b"\r\n\r\n" + body
    builder = pkcs7.PKCS7EnvelopeBuilder().set_data(inner_entity)
    builder = builder.set_content_encryption_algorithm(algorithms.AES256)
    for certificate in certificates:
        builder = builder.add_recipient(certificate)
    enveloped = builder.encrypt(serialization.Encoding.DER, [pkcs7.PKCS7Options.Binary])
    encoded = base64.encodebytes(enveloped).replace(b"\n", b"\r\n").rstrip(b"\r\n")
    return b"\r\n".join(
        [
            *outer,
            b"MIME-Version: 1.0",
            b'Content-Type: application/pkcs7-mime; smime-type=enveloped-data; name="smime.p7m"',
            b"Content-Transfer-Encoding: base64",
            b'Content-Disposition: attachment; filename="smime.p7m"',
            b"Content-Description: S/MIME Encrypted Message",
            b"",
            encoded,
            b"",
        ]
    )


def _header_fields(raw: bytes) -> tuple[list[bytes], bytes]:
    """A message's header fields (folded lines kept together, CRLF) and its body."""
    head, _, body = _crlf(raw).partition(b"\r\n\r\n")
    fields: list[bytes] = []
    for line in head.split(b"\r\n"):
        if line[:1] in (b" ", b"\t") and fields:
            fields[-1] += b"\r\n" + line
        else:
            fields.append(line)
    return fields, body


def _field_name(field: bytes) -> str:
    return field.split(b":", 1)[0].strip().lower().decode("ascii", "replace")


def new_office_identity(
    folder: str, address: str, password: str, ca_cert_path: str | None = None, ca_key_path: str | None = None
) -> tuple[str, str]:
    """The office mailbox's key pair and certificate: a password-protected PKCS#12 file for the mail
    programs, and the certificate alone as PEM for the server. Returns (p12 path, certificate path).

    The PKCS#12 uses 3DES and SHA-1 for its own protection, the algorithms that Outlook on older
    Windows and Apple Keychain can import (they refuse the AES/PBKDF2 files that are now the default);
    the password is what protects it, so make it long. GnuPG's gpgsm imports the same file.
    """
    address = parseaddr(address)[1]
    key = rsa.generate_private_key(public_exponent=65537, key_size=3072)
    now = datetime.datetime.now(datetime.UTC)
    subject = x509.Name(
        [x509.NameAttribute(NameOID.COMMON_NAME, address), x509.NameAttribute(NameOID.EMAIL_ADDRESS, address)]
    )
    if ca_cert_path and ca_key_path:
        with open(ca_cert_path, "rb") as handle:
            ca_cert = x509.load_pem_x509_certificate(handle.read())
        with open(ca_key_path, "rb") as handle:
            issuer_key = serialization.load_pem_private_key(handle.read(), password=None)
        issuer, until = ca_cert.subject, min(now + datetime.timedelta(days=365 * 5), ca_cert.not_valid_after_utc)
    else:
        issuer_key, issuer, until = key, subject, now + datetime.timedelta(days=365 * 5)
    cert = (
        _builder(subject, issuer, key, until)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(True, False, True, False, False, False, False, False, False), critical=True
        )  # digitalSignature, keyEncipherment
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
        .add_extension(x509.SubjectAlternativeName([x509.RFC822Name(address)]), critical=False)
        .sign(issuer_key, hashes.SHA256())
    )
    encryption = (
        serialization.PrivateFormat.PKCS12.encryption_builder()
        .kdf_rounds(50000)
        .key_cert_algorithm(pkcs12.PBES.PBESv1SHA1And3KeyTripleDESCBC)
        .hmac_hash(hashes.SHA1())
        .build(password.encode())
    )
    # The CA stays out of the bundle: it is trusted separately (ca.pem), and gpgsm refuses bundles that carry it.
    bundle = pkcs12.serialize_key_and_certificates(address.encode(), key, cert, None, encryption)
    os.makedirs(folder, mode=0o700, exist_ok=True)
    p12_path, cert_path = os.path.join(folder, "office.p12"), os.path.join(folder, "office-cert.pem")
    _write_private(p12_path, bundle)
    _write_private(cert_path, cert.public_bytes(serialization.Encoding.PEM))
    return p12_path, cert_path
