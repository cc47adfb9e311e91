"""Write the office's emails and hand them to the mail server (or, in development, to files).

Flask-Mail builds and sends the messages; the connection is our own subclass, because
Flask-Mail 0.10 sets no timeout and does not verify the server's certificate.
"""

import email.charset
import email.policy
import json
import os
import re
import smtplib
import socket
import ssl
import threading
import time
from datetime import UTC, datetime
from email.mime.message import MIMEMessage
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.utils import format_datetime, make_msgid, parseaddr
from zoneinfo import ZoneInfo

from flask import current_app, render_template
from flask_babel import force_locale
from flask_mail import Connection, Message

from . import office, signing, smime, storage
from .forms import FOR_WHOM, METHODS, TIMES

# The form's choices as the office reads them: always English (see english_label), whatever the form's language.
CHOICES = (*METHODS, *TIMES, *FOR_WHOM)


def english_label(value: str | None, default: str | None = None) -> str | None:
    """A choice's label in English, even while a Spanish request is being answered (sealed mode)."""
    with force_locale("en"):
        return next((str(choice.label) for choice in CHOICES if choice.value == value), default)


# 5xx replies that ask for STARTTLS or a login first (530, 534, 538): a setting to fix, like a failed
# login, not a refusal of the message; retried so the inquiry goes out once the setting is right.
SETUP_CODES = (530, 534, 538)


# Words of a 5xx reply to MAIL FROM or RCPT TO that refuses this server, not the message (Postfix, Exim and
# hosted relays answer so to a client that has not logged in); replies with an enhanced code 5.7.x count too.
REFUSES_CLIENT = ("client host rejected", "authentication required", "relay access denied", "relaying denied")


class TransientError(Exception):
    """Worth trying again later: no connection, a timeout, a 4xx reply, a TLS or login problem."""


class SetupError(TransientError):
    """The relay refuses the site's settings (a login, TLS, a client it does not relay for): retried, and
    the operator is alerted, since only a change of settings fixes it."""


class PermanentError(Exception):
    """The server refused the message for good (a 5xx reply to the message itself)."""


def local_time(timestamp: float) -> str:
    """A submission time as the office reads it, in its own time zone, with UTC for the record."""
    moment = datetime.fromtimestamp(timestamp, UTC)
    local = moment.astimezone(ZoneInfo(office.TIME_ZONE))
    return f"{local:%A, %B %-d, %Y at %-I:%M %p %Z} ({moment:%Y-%m-%dT%H:%M:%SZ})"


WAYS_BACK = {"call": "call back", "text": "text back", "email": "reply by email"}


def subject_for(reference: str, contact_method: str | None) -> str:
    """The Subject: the reference and the way back, which let staff triage and identify no one."""
    return f"Website inquiry {reference} - {WAYS_BACK.get(contact_method, 'get in touch')}"


def inquiry_message(
    reference: str, submitted_at: float, fields: dict, possibly_automated: bool, message_id: str
) -> Message:
    """The signed email for one inquiry. Only the reference reaches a header; visitor data stays in the body,
    except Reply-To when the visitor asked for email.

    The signature line covers the whole text above it, which also states the Subject and From
    address (see rsct.signing); every line is fit to be quoted back to the visitor on Reply.
    """
    config = current_app.config
    subject = subject_for(reference, fields.get("contact_method"))
    body = render_template(
        "mail/inquiry.txt",
        subject=subject,
        reference=reference,
        submitted=local_time(submitted_at),
        fields=fields,
        possibly_automated=possibly_automated,
        method=fields.get("contact_method"),
        method_label=english_label(fields.get("contact_method"), "not given"),
        best_time_label=english_label(fields.get("best_time")),
        for_whom_label=english_label(fields.get("for_whom")),
        sender_address=parseaddr(config["MAIL_DEFAULT_SENDER"])[1],
        office=office,
    )
    body = signing.canonical(body)
    reply_to = fields.get("email") if fields.get("contact_method") == "email" else None
    message = PlainMessage(
        subject=subject,
        recipients=[config["INQUIRY_RECIPIENT"]],
        body=body + "\n" + signing.signature_line(config["INQUIRY_SIGNING_KEYS"], body) + "\n",
        sender=config["MAIL_DEFAULT_SENDER"],
        reply_to=reply_to,
    )
    message.msgId = message_id
    return message


def sealer(fields: dict, possibly_automated: bool):
    """Sealed mode: a function that composes the whole email at submission (S/MIME signed when a signer is
    set) and encrypts it for the office's certificates, for inquiries.store(seal=...)."""
    config = current_app.config

    def seal(reference: str, submitted_at: float, message_id: str) -> bytes:
        message = inquiry_message(reference, submitted_at, fields, possibly_automated, message_id)
        try:
            message.smime_signer = signer_from(config)
            certificates = smime.load_office_certificates(config["SMIME_OFFICE_CERT"])
        except smime.SmimeError as error:
            # Checked at start-up; a file removed since must not cost the visitor their words.
            raise storage.StorageError(f"sealing is configured but cannot be used: {error}") from None
        return smime.seal(message.as_bytes(), certificates)

    return seal


_signers: dict[tuple[str, str], tuple[tuple, smime.Signer]] = {}


def signer_from(config) -> smime.Signer | None:
    """The S/MIME signer when one is configured, read again whenever its files change (a renewal needs no restart).

    Loading an RSA key costs about 0.3 s of CPU (cryptography checks the key): done for every sealed
    submission, it held a 2-core server to a few submissions a second (RELIABILITY.md), so the loaded
    signer is kept while neither file changes.
    """
    cert, key = config["SMIME_SIGNER_CERT"], config["SMIME_SIGNER_KEY"]
    if not cert:
        return None
    try:
        stamp = tuple((s.st_ino, s.st_mtime_ns, s.st_size) for s in (os.stat(cert), os.stat(key)))
    except OSError:
        return smime.load_signer(cert, key)  # says in plain words which file cannot be read
    cached = _signers.get((cert, key))
    if cached is None or cached[0] != stamp:
        cached = _signers[(cert, key)] = (stamp, smime.load_signer(cert, key))
    return cached[1]


def send_inquiry(row) -> str:
    """Compose and send one claimed outbox row (the sender's send function); returns where it went.

    A sealed inquiry is sent as stored, byte for byte, on every attempt.
    """
    config = current_app.config
    if row["sealed"]:
        message = SealedMessage(
            row["sealed"], sender=config["MAIL_DEFAULT_SENDER"], recipients=[config["INQUIRY_RECIPIENT"]]
        )
        return deliver(message, row["reference"])
    message = inquiry_message(
        row["reference"],
        row["submitted_at"],
        json.loads(row["fields"]),
        bool(row["possibly_automated"]),
        row["message_id"],
    )
    return deliver(message, row["reference"])


def send_digest(items: list[dict], delivered: list[str]) -> str:
    """Compose and send the digest; returns where it went."""
    return deliver(digest_message(items, delivered), f"digest-{time.strftime('%Y%m%d-%H%M%S')}")


HELD_REASONS = {
    "honeypot field filled": "the automatic spam check held it: a hidden field that only robots see was filled in",
}
# The enhanced status code's class (RFC 3463) in plain words; the operator sees the server's own answer.
REFUSALS = {
    "5.1": "the office's mail server did not accept the office's address",
    "5.2": "the office's mailbox was full or not available",
    "5.3": "the office's mail server could not take a message of this kind or size",
    "5.6": "the office's mail server could not take a message of this kind or size",
    "5.7": "the office's mail server refused it for a security or spam rule",
}


def plain_reason(item: dict) -> str:
    """Why a request did not arrive as a normal email, in words for the office, not SMTP codes."""
    if item["state"] == "quarantined":
        return HELD_REASONS.get(item["quarantine_reason"], "the automatic spam check held it")
    enhanced = re.search(r"\b(5\.\d)\.\d{1,3}\b", item.get("last_error") or "")
    refusal = REFUSALS.get(enhanced.group(1) if enhanced else "", "the office's mail server refused it")
    return refusal + " (the website's operator can see the server's exact answer)"


def digest_message(items: list[dict], delivered: list[str]) -> Message:
    """The office's summary: requests held as possible spam or refused by the mail server (so that a real person
    is still called back), and the references delivered since the last one (to compare with the inbox)."""
    config = current_app.config
    for item in items:
        item["submitted"] = local_time(item["submitted_at"])
        item["reason"] = plain_reason(item)
        fields = item["fields"]
        if fields is None:  # sealed: only the reference, time and reason; the inquiry is attached
            continue
        item["method_label"] = english_label(fields.get("contact_method"), "not given")
        item["best_time_label"] = english_label(fields.get("best_time"))
        item["for_whom_label"] = english_label(fields.get("for_whom"))
        text = " ".join((fields.get("message") or "").split())
        item["short_message"] = text[:200] + ("..." if len(text) > 200 else "")
    message = DigestMessage(
        subject=f"Website daily summary: {len(items)} to check by hand, {len(delivered)} delivered",
        recipients=[config["INQUIRY_RECIPIENT"]],
        sender=config["MAIL_DEFAULT_SENDER"],
        body=render_template("mail/digest.txt", items=items, delivered=delivered),
    )
    # Like the inquiries' ids, on the office's domain, not the server's host name (Flask-Mail's default).
    message.msgId = make_msgid(domain=sender_domain(config["MAIL_DEFAULT_SENDER"]))
    message.sealed_items = [(item["reference"], item["sealed"]) for item in items if item.get("sealed")]
    return message


class PlainMessage(Message):
    """A Flask-Mail message whose text is quoted-printable, so no line exceeds SMTP's limit, and whose
    Date is in the office's time zone, like the times in the body.

    Flask-Mail registers UTF-8 as 8bit, which would send a long note as one over-long line; its Date
    is in the server's time zone (UTC on most servers).
    """

    smime_signer = None  # set by deliver() when S/MIME signing is configured

    def _message(self):
        message = super()._message()
        del message["Date"]
        moment = datetime.fromtimestamp(self.date or time.time(), ZoneInfo(office.TIME_ZONE))
        message["Date"] = format_datetime(moment)
        return message

    def _mimetext(self, text, subtype="plain"):
        charset = email.charset.Charset("utf-8")
        charset.body_encoding = email.charset.QP
        return MIMEText(text, _subtype=subtype, _charset=charset)

    def as_bytes(self) -> bytes:
        """The message as sent; S/MIME signed here, at send time, when a signer is set."""
        raw = super().as_bytes()
        return smime.sign(raw, self.smime_signer) if self.smime_signer else raw


class SealedMessage(PlainMessage):
    """A message composed and encrypted at submission: its stored bytes are what every attempt sends.

    The envelope goes to today's FLASK_INQUIRY_RECIPIENT; the headers inside were fixed at submission.
    """

    def __init__(self, raw: bytes, **kwargs) -> None:
        super().__init__(**kwargs)
        self.raw = raw

    def as_bytes(self) -> bytes:
        return self.raw


class DigestMessage(PlainMessage):
    """The digest; in sealed mode each held or refused inquiry is attached as the sealed email it is."""

    sealed_items: list[tuple[str, bytes]] = []

    def _message(self):
        msg = super()._message()
        if not self.sealed_items:
            return msg
        mixed = MIMEMultipart("mixed")
        for name in ("Subject", "From", "To", "Date", "Message-ID"):
            if msg[name] is not None:
                mixed[name] = msg[name]
        mixed.attach(self._mimetext(self.body))
        for reference, sealed in self.sealed_items:
            part = MIMEMessage(email.message_from_bytes(sealed, policy=email.policy.compat32))
            part.add_header("Content-Disposition", "attachment", filename=f"{reference}.eml")
            mixed.attach(part)
        mixed.policy = email.policy.SMTP
        return mixed


def sender_domain(sender: str) -> str:
    """The domain of the From address: Message-IDs are made on the office's domain."""
    return parseaddr(sender)[1].rpartition("@")[2] or "localhost"


def deliver(message: Message, name: str) -> str:
    """Send one message; returns where it went. Raises TransientError or PermanentError."""
    config = current_app.config
    if config["SMIME_SIGNER_CERT"]:
        try:
            # Read at every send, so a renewed certificate is used without a restart.
            message.smime_signer = signer_from(config)
        except smime.SmimeError as error:
            raise TransientError(f"S/MIME signing is configured but cannot be used: {error}") from None
    if not config["MAIL_SERVER"]:
        return write_file(message, name)
    mail = current_app.extensions["mail"]
    connection = VerifiedConnection(mail)
    # MAIL_TIMEOUT bounds each socket operation; a relay that dribbles (one line of a reply at a time,
    # each within the timeout) could stretch one conversation without end. So the whole conversation has
    # a deadline too: 5 x MAIL_TIMEOUT, well below outbox.lease_seconds() (10 x MAIL_TIMEOUT + 60), so a
    # claim never expires while its sender is still talking (another sender would send a second copy).
    # Only a connect still in progress when the deadline passes can add its own timeout to it.
    deadline = 5 * current_app.config["MAIL_TIMEOUT"]
    try:
        try:
            if not mail.suppress:
                connection.start_watchdog(deadline)
                connection.configure_host()  # sets connection.host as soon as the SMTP object exists
            connection.send(message)  # once sendmail has returned, the server has the message
        except Exception as error:
            if connection.deadline_passed:  # the watchdog cut the connection: whatever broke, that is why
                raise TransientError(
                    f"no complete SMTP conversation within {deadline:g} s ({error.__class__.__name__})"
                ) from error
            raise
    except smtplib.SMTPResponseException as error:
        reason = f"SMTP {error.smtp_code}: {_text(error.smtp_error)}"
        if (
            isinstance(error, smtplib.SMTPAuthenticationError)
            or error.smtp_code in SETUP_CODES
            or (isinstance(error, smtplib.SMTPSenderRefused) and refuses_client(error.smtp_code, error.smtp_error))
        ):
            raise SetupError(reason) from error
        # What is left of 5xx is a refusal of the message itself (after DATA, or of the sender's address).
        raise (PermanentError if 500 <= error.smtp_code < 600 else TransientError)(reason) from error
    except smtplib.SMTPRecipientsRefused as error:
        codes = [code for code, _ in error.recipients.values()]
        refusals = (f"SMTP {code} {_text(text)}" for code, text in error.recipients.values())
        reason = "recipient refused: " + ", ".join(refusals)
        if any(refuses_client(code, text) for code, text in error.recipients.values()):
            raise SetupError(reason) from error
        raise (PermanentError if all(code >= 500 for code in codes) else TransientError)(reason) from error
    except (smtplib.SMTPNotSupportedError, ssl.SSLError) as error:
        # No STARTTLS or AUTH offered, a certificate that does not verify, TLS spoken to a plain port: settings.
        # A connection dropped during the handshake is only a network problem.
        setup = not isinstance(error, (ssl.SSLEOFError, ssl.SSLZeroReturnError, ssl.SSLSyscallError))
        raise (SetupError if setup else TransientError)(f"{error.__class__.__name__}: {_text(str(error))}") from error
    except (smtplib.SMTPException, OSError) as error:  # includes timeouts, refusals, TLS failures
        raise TransientError(f"{error.__class__.__name__}: {_text(str(error))}") from error
    finally:
        # The message was accepted (or not) before this point: a dropped QUIT changes nothing. The watchdog
        # stays armed through QUIT, so a server dribbling its goodbye cannot hold the sender either.
        try:
            if connection.host is not None:
                if connection.deadline_passed:
                    connection.host.close()
                else:
                    try:
                        connection.host.quit()
                    except (smtplib.SMTPException, OSError):
                        connection.host.close()
        finally:
            connection.stop_watchdog()
    return f"{current_app.config['MAIL_SERVER']}:{current_app.config['MAIL_PORT']}"


def refuses_client(code: int, reply) -> bool:
    """Whether a reply to MAIL FROM or RCPT TO refuses this server (its login or address), not the message."""
    text = _text(reply).lower()
    return code in SETUP_CODES or (
        500 <= code < 600 and (text.startswith("5.7.") or any(words in text for words in REFUSES_CLIENT))
    )


class VerifiedConnection(Connection):
    """Flask-Mail's connection with a timeout and TLS that checks the certificate and host name.

    An optional watchdog (start_watchdog) bounds the whole conversation: when it fires it shuts the
    connection's socket down, so whatever read or write is blocked fails at once.
    """

    def __init__(self, mail) -> None:
        super().__init__(mail)
        self.deadline_passed = False
        self._watchdog: threading.Timer | None = None
        self._watch_lock = threading.Lock()

    def start_watchdog(self, seconds: float) -> None:
        self._watchdog = threading.Timer(seconds, self._deadline)
        self._watchdog.daemon = True
        self._watchdog.start()

    def stop_watchdog(self) -> None:
        """Cancel the watchdog and wait for its thread, so that none is left running."""
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog.join(timeout=5)
            self._watchdog = None

    def _deadline(self) -> None:
        """In the watchdog's thread: mark the deadline as passed and cut the connection."""
        with self._watch_lock:
            self.deadline_passed = True
            sock = getattr(self.host, "sock", None)
            if sock is not None:
                try:
                    # shutdown, not close: it wakes a read blocked in another thread (close does not),
                    # and the plain socket's shutdown leaves an SSL socket's state to its own thread.
                    socket.socket.shutdown(sock, socket.SHUT_RDWR)
                except OSError:
                    pass  # already closed, or a socket being wrapped for TLS (checked after starttls)

    def _check_deadline(self) -> None:
        with self._watch_lock:
            if self.deadline_passed:
                raise TimeoutError("the deadline for the SMTP conversation passed")

    def configure_host(self) -> smtplib.SMTP:
        """Connect, STARTTLS and log in; self.host is the SMTP object from the moment it exists, so the
        watchdog can reach its socket at every step (the socket from the moment it is connected)."""
        config = current_app.config
        context = ssl.create_default_context(cafile=config["MAIL_CA_FILE"] or None)
        timeout = config["MAIL_TIMEOUT"]
        if self.mail.use_ssl:
            host = smtplib.SMTP_SSL(timeout=timeout, context=context)
        else:
            host = smtplib.SMTP(timeout=timeout)
        # Made without a server (so unconnected): the name its TLS certificate must match is set here,
        # as smtplib.SMTP(server, port) would have set it.
        host._host = self.mail.server
        get_socket = host._get_socket

        def watched_socket(*args):
            # Until this returns (TCP connect, and the TLS handshake for SMTP_SSL) smtplib's own timeout
            # applies; from here the watchdog can cut the socket, or has already passed its deadline.
            sock = get_socket(*args)
            with self._watch_lock:
                host.sock = sock
            self._check_deadline()
            return sock

        host._get_socket = watched_socket
        with self._watch_lock:
            self.host = host
        try:
            code, reply = host.connect(self.mail.server, self.mail.port)
            if code != 220:  # as smtplib.SMTP(server, port) does
                raise smtplib.SMTPConnectError(code, reply)
            if self.mail.use_tls:
                host.starttls(context=context)
                # During the TLS handshake the socket being wrapped cannot be shut down.
                self._check_deadline()
            if self.mail.username and self.mail.password:
                host.login(self.mail.username, self.mail.password)
        except BaseException:
            host.close()
            with self._watch_lock:
                self.host = None
            raise
        return host


def write_file(message: Message, name: str) -> str:
    """Development: keep the message as an .eml file (owner-only) under the instance folder."""
    folder = os.path.join(current_app.instance_path, "mail")
    os.makedirs(folder, mode=0o700, exist_ok=True)
    path = os.path.join(folder, f"{time.strftime('%Y%m%d-%H%M%S')}-{name}.eml")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(message.as_bytes())
    return path


def _text(value) -> str:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    return " ".join(str(value).split())[:200]


def test_message() -> Message:
    """A message to the office mailbox that shows the mail path works: no visitor data, no inquiry."""
    config = current_app.config
    message = PlainMessage(
        subject="Test message from the website (not an inquiry)",
        recipients=[config["INQUIRY_RECIPIENT"]],
        sender=config["MAIL_DEFAULT_SENDER"],
        body=render_template("mail/test.txt", sent=local_time(time.time()), site_url=config["SITE_URL"], office=office),
    )
    message.msgId = make_msgid(domain=sender_domain(config["MAIL_DEFAULT_SENDER"]))
    return message
