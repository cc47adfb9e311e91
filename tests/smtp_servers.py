"""Real mail servers for the delivery tests, and the settings that point the app at them.

- `Inbox` + `running_smtp()`: an aiosmtpd server in a thread on 127.0.0.1, collecting what it accepts
  (optionally with STARTTLS or implicit TLS, a slow reply, or a 4xx/5xx reply to DATA).
- `SilentServer`: accepts TCP connections and never says a word (a hung relay).
- `DroppingSMTPServer`: speaks just enough SMTP to accept one message, then drops the connection
  before QUIT.
- `DribblingSMTPServer`: greets, then answers EHLO with a multi-line reply, one line at a time, each
  well within any per-read timeout: endless (a relay that never finishes a conversation), or finished
  after a given number of lines (slow but complete).
- `make_certs()`: a throw-away CA and server certificates made with the openssl command.
- `smtp_settings()`: the app's settings for sending to one of these servers.
Every server is bounded by timeouts and closes every socket and thread when stopped.
"""

import asyncio
import email
import shutil
import socket
import ssl
import subprocess
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from email import policy
from pathlib import Path

from aiosmtpd.controller import Controller

SENDER = "RSCT website <website@rsct.example.org>"
SENDER_DOMAIN = "rsct.example.org"
RECIPIENT_ADDRESS = "office@rsct.example.org"
RECIPIENT = f"Madison office <{RECIPIENT_ADDRESS}>"
HEADER_ALLOWLIST = {
    "from",
    "to",
    "subject",
    "date",
    "message-id",
    "reply-to",
    "mime-version",
    "content-type",
    "content-transfer-encoding",
}
WAIT_SECONDS = 15.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass(frozen=True)
class Received:
    mail_from: str
    rcpt_tos: list
    content: bytes

    @property
    def message(self) -> email.message.EmailMessage:
        return email.message_from_bytes(self.content, policy=policy.default)


class Inbox:
    """An aiosmtpd handler: replies `reply` to DATA (after `delay` seconds) and keeps what it accepted."""

    def __init__(self, reply: str = "250 OK", delay: float = 0.0):
        self.reply = reply
        self.delay = delay
        self.refused = 0
        self._lock = threading.Lock()
        self._messages: list[Received] = []

    async def handle_DATA(self, server, session, envelope):
        if self.delay:
            await asyncio.sleep(self.delay)
        reply = self.reply
        with self._lock:
            if reply.startswith("250"):
                self._messages.append(Received(envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
            else:
                self.refused += 1
        return reply

    @property
    def messages(self) -> list[Received]:
        with self._lock:
            return list(self._messages)

    def wait_for(self, count: int, timeout: float = WAIT_SECONDS) -> list[Received]:
        """Wait (bounded) until at least `count` messages were accepted; returns them all."""
        deadline = time.monotonic() + timeout
        while len(self.messages) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.messages


@contextmanager
def running_smtp(inbox: Inbox, port: int | None = None, **kwargs):
    """Run `inbox` behind a real aiosmtpd server on 127.0.0.1; yields the port.

    kwargs go to aiosmtpd: tls_context + require_starttls for STARTTLS, ssl_context for implicit TLS.
    """
    port = port or free_port()
    controller = Controller(
        inbox, hostname="127.0.0.1", port=port, ready_timeout=10, server_hostname="mx.test.invalid", **kwargs
    )
    controller.start()
    try:
        yield port
    finally:
        controller.stop()


class _ThreadedListener:
    """A listening socket served by one thread; stop() closes every socket and joins the thread."""

    def __init__(self):
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(8)
        self.listener.settimeout(0.1)
        self.port = self.listener.getsockname()[1]
        self.connections: list[socket.socket] = []
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stopping.set()
        self.thread.join(timeout=10)
        for connection in self.connections:
            connection.close()
        self.listener.close()

    def _serve(self):
        while not self.stopping.is_set():
            self.tick()
            try:
                connection, _ = self.listener.accept()
            except (TimeoutError, OSError):
                continue
            self.connections.append(connection)
            self.handle(connection)

    def handle(self, connection: socket.socket) -> None:
        raise NotImplementedError

    def tick(self) -> None:
        """Called about every 0.1 s."""


class SilentServer(_ThreadedListener):
    """Accepts connections and never answers: a relay that hangs.

    After `give_up_after` seconds it hangs up, so that a client without a timeout fails the test
    instead of hanging it.
    """

    def __init__(self, give_up_after: float = 8.0):
        super().__init__()
        self.give_up_after = give_up_after
        self.accepted_at: list[float] = []

    def handle(self, connection):
        self.accepted_at.append(time.monotonic())  # keep it open and say nothing

    def tick(self):
        for connection, accepted in zip(self.connections, self.accepted_at, strict=False):
            if time.monotonic() - accepted > self.give_up_after:
                connection.close()


class _RawSMTPServer(_ThreadedListener):
    """Speaks just enough SMTP by hand to accept messages, with hooks for the ways a relay misbehaves.

    `commands` holds the command lines the client sent and `messages` what was accepted.
    """

    name = b"fake.test.invalid"
    hang_up_after_data = False  # close right after the 250 for the message, before QUIT

    def __init__(self):
        super().__init__()
        self.commands: list[bytes] = []
        self.messages: list[bytes] = []

    def answer_ehlo(self, connection: socket.socket) -> bool:
        """Send what comes before the final EHLO line; False ends the conversation."""
        return True

    def handle(self, connection):
        connection.settimeout(5)
        reader = connection.makefile("rb")
        try:
            connection.sendall(b"220 " + self.name + b" ESMTP\r\n")
            while not self.stopping.is_set():
                line = reader.readline(1000)
                if not line:
                    return
                self.commands.append(line)
                verb = line[:4].upper()
                if verb in (b"EHLO", b"HELO"):
                    if not self.answer_ehlo(connection):
                        return
                    connection.sendall(b"250 " + self.name + b"\r\n")
                elif verb in (b"MAIL", b"RCPT", b"RSET", b"NOOP"):
                    connection.sendall(b"250 OK\r\n")
                elif verb == b"DATA":
                    connection.sendall(b"354 go ahead\r\n")
                    data = b""
                    while not data.endswith(b"\r\n.\r\n"):
                        chunk = reader.readline(100000)
                        if not chunk:
                            return
                        data += chunk
                    self.messages.append(data)
                    connection.sendall(b"250 2.0.0 queued\r\n")
                    if self.hang_up_after_data:
                        return
                elif verb == b"QUIT":
                    connection.sendall(b"221 bye\r\n")
                    return
                else:
                    connection.sendall(b"502 not implemented\r\n")
        except OSError:
            return
        finally:
            reader.close()
            connection.close()


class DroppingSMTPServer(_RawSMTPServer):
    """Accepts a message, replies 250 to it, then closes before QUIT."""

    hang_up_after_data = True


class DribblingSMTPServer(_RawSMTPServer):
    """Says 220, then answers EHLO with a "250-" continuation line every `interval` seconds.

    By default the reply never ends (bounded: it stops after `give_up_after` seconds, when the client
    hangs up, or when stopped). With `finish_after=n` it ends the reply after n lines and then accepts
    one message like a normal server, so a slow conversation that does finish can be tested too.
    `client_hung_up` is set when the client went away in the middle of the reply.
    """

    name = b"dribble.test.invalid"

    def __init__(self, interval: float = 0.3, give_up_after: float = 20.0, finish_after: int | None = None):
        super().__init__()
        self.interval = interval
        self.give_up_after = give_up_after
        self.finish_after = finish_after
        self.client_hung_up = threading.Event()

    def answer_ehlo(self, connection: socket.socket) -> bool:
        return self._dribble(connection)

    def _dribble(self, connection: socket.socket) -> bool:
        """Send continuation lines; False when the reply is never to be finished (or the client left)."""
        give_up = time.monotonic() + self.give_up_after
        sent = 0
        while time.monotonic() < give_up and not self.stopping.is_set():
            if self.finish_after is not None and sent >= self.finish_after:
                return True
            try:
                connection.sendall(b"250-x\r\n")
            except OSError:  # a reset or a broken pipe: the client hung up
                self.client_hung_up.set()
                return False
            sent += 1
            if self.stopping.wait(self.interval):
                return False
        return False


def make_certs(folder: Path) -> dict[str, Path]:
    """A test CA, a server certificate it signs for 127.0.0.1 and localhost, and one for another host."""
    if shutil.which("openssl") is None:
        raise RuntimeError("the openssl command is needed to make test certificates")
    folder.mkdir(parents=True, exist_ok=True)

    def run(*args):
        subprocess.run(["openssl", *args], cwd=folder, check=True, capture_output=True, timeout=30)

    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    run(
        "req",
        "-x509",
        *ec,
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=RSCT Test CA",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    )
    for name, common_name, san in (
        ("server", "127.0.0.1", "IP:127.0.0.1,DNS:localhost"),
        ("other", "other.test.invalid", "DNS:other.test.invalid"),
    ):
        (folder / f"{name}.ext").write_text(
            f"subjectAltName={san}\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n"
            "extendedKeyUsage=serverAuth\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid,issuer\n"
        )
        run("req", *ec, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={common_name}")
        run(
            "x509",
            "-req",
            "-in",
            f"{name}.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            f"{name}.pem",
            "-days",
            "2",
            "-extfile",
            f"{name}.ext",
        )
    return {
        "ca": folder / "ca.pem",
        "cert": folder / "server.pem",
        "key": folder / "server.key",
        "other_cert": folder / "other.pem",
        "other_key": folder / "other.key",
    }


def server_tls_context(cert: Path, key: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(cert), str(key))
    return context


# --- the app side -------------------------------------------------------------------------------


def smtp_settings(port: int, **overrides) -> dict:
    """Settings for an app that sends to a test server (MAIL_SUPPRESS_SEND off: testing suppresses sends)."""
    settings = {
        "MAIL_SERVER": "127.0.0.1",
        "MAIL_PORT": port,
        "MAIL_SUPPRESS_SEND": False,
        "MAIL_TIMEOUT": 5.0,
        "MAIL_DEFAULT_SENDER": SENDER,
        "INQUIRY_RECIPIENT": RECIPIENT,
    }
    settings.update(overrides)
    return settings
