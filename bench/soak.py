"""The soak: the shipped deployment under load and faults, counted inquiry by inquiry (RELIABILITY.md).

One bounded command, loopback only, that stops by itself: `make soak` (or .venv/bin/python bench/soak.py).
Every scenario starts the shipped nginx site, gunicorn on its socket and the sender as DEPLOY.md does
(tests/deploy_harness.py), sends simulated visitors at it over HTTPS, and counts per scenario what was
submitted, acknowledged to the visitor, stored, delivered (unique Message-IDs at a local SMTP relay),
delivered twice (by cause) and lost (acknowledged but never in the mailbox: must be 0).

A visitor opens the form (GET /contact, keeping the cookie and the hidden tokens), submits it once with a
unique canary in the name and the note, and starts over, each time from a fresh loopback address
(127.1.x.y) as different people would. Every fourth submission is a plain browser's (303, then the thanks
page); the others are htmx's (the confirmation fragment). The canaries are then looked for in every log.
"""

import argparse
import http.client
import os
import random
import re
import shutil
import signal
import socketserver
import sqlite3
import ssl
import subprocess
import sys
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
from rsct import smime  # noqa: E402

import deploy_harness as h  # noqa: E402

REFERENCE = re.compile(r"RSCT-[23456789ABCDEFGHJKMNPQRSTVWXYZ]{6}")
INPUT = re.compile(r"<input\b[^>]*>")
ATTRIBUTE = re.compile(r'(\w[\w-]*)="([^"]*)"')
CANARY = re.compile(r"Qzc[0-9a-f]{12}")
MESSAGE_ID = re.compile(rb"^Message-ID:\s*<([^>]+)>", re.IGNORECASE | re.MULTILINE)
SHIPPED_RATE = "rate=6r/m"
SHIPPED_BURST = "burst=5 nodelay"
MAIL_TIMEOUT = 5.0
RETRY_SECONDS = 0.25  # doubling up to 30 s (120 times), so a relay that comes back is used within half a minute
DRAIN_SECONDS = 300.0


def _bind_socket_as_systemd(d: h.Deployment):
    """The harness binds with a backlog of 128; systemd's Backlog= default is SOMAXCONN, which a load of
    200 visitors needs (a full Unix-socket backlog is an immediate 502 from nginx)."""
    listener = _harness_bind_socket(d)
    listener.listen(int(Path("/proc/sys/net/core/somaxconn").read_text()))
    return listener


_harness_bind_socket = h.bind_socket
h.bind_socket = _bind_socket_as_systemd


# --- the relay ---------------------------------------------------------------------------------------


class Relay(socketserver.ThreadingTCPServer):
    """An SMTP relay on 127.0.0.1 that misbehaves on purpose; every message it took is kept with its fate.

    flaky: 4xx to `refuse` of the messages, takes `drop` of them whole and hangs up before the 250, and
    answers `slow` of them only after the sender's timeout (at most `slow_cap` per run). ok: behaves.
    """

    allow_reuse_address = True
    daemon_threads = True

    def __init__(self, port: int = 0):
        super().__init__(("127.0.0.1", port), _SMTPHandler)
        self.port = self.server_address[1]
        self.mode = "ok"
        self.refuse, self.drop, self.slow, self.slow_cap = 0.10, 0.02, 0.01, 5
        self.lock = threading.Lock()
        self.taken: list[tuple[str, str, float]] = []  # (message id, fate: ok/dropped/slow, when)
        self.refused = 0
        self.slowed = 0
        self.thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
        self.thread.start()

    def decide(self) -> str:
        if self.mode != "flaky":
            return "ok"
        r = random.random()
        with self.lock:
            if r < self.refuse:
                self.refused += 1
                return "refuse"
            if r < self.refuse + self.drop:
                return "dropped"
            if r < self.refuse + self.drop + self.slow and self.slowed < self.slow_cap:
                self.slowed += 1
                return "slow"
        return "ok"

    def keep(self, data: bytes, fate: str) -> None:
        found = MESSAGE_ID.search(data.split(b"\r\n\r\n", 1)[0])
        with self.lock:
            self.taken.append((found.group(1).decode() if found else "?", fate, time.time()))

    def down(self) -> None:
        """The relay is gone: connections are refused until up() (a new server on the same port)."""
        self.shutdown()
        self.server_close()


class _SMTPHandler(socketserver.StreamRequestHandler):
    timeout = 30

    def handle(self):
        relay: Relay = self.server
        out = self.connection.sendall
        try:
            out(b"220 relay.test.invalid ESMTP\r\n")
            while True:
                line = self.rfile.readline(1000)
                if not line:
                    return
                verb = line[:4].upper()
                if verb in (b"EHLO", b"HELO"):
                    out(b"250-relay.test.invalid\r\n250 8BITMIME\r\n")
                elif verb in (b"MAIL", b"RCPT", b"RSET", b"NOOP"):
                    out(b"250 OK\r\n")
                elif verb == b"DATA":
                    out(b"354 go ahead\r\n")
                    data = bytearray()
                    while not data.endswith(b"\r\n.\r\n"):
                        chunk = self.rfile.readline(1_000_000)
                        if not chunk:
                            return
                        data += chunk
                    fate = relay.decide()
                    if fate == "refuse":
                        out(b"451 4.3.0 try again later\r\n")
                        continue
                    relay.keep(bytes(data), fate)
                    if fate == "dropped":
                        return  # the message is here; the 250 never leaves
                    if fate == "slow":
                        time.sleep(MAIL_TIMEOUT + 1.5)
                    out(b"250 2.0.0 queued\r\n")
                elif verb == b"QUIT":
                    out(b"221 bye\r\n")
                    return
                else:
                    out(b"502 not implemented\r\n")
        except OSError:
            return


# --- the alert receiver ------------------------------------------------------------------------------


class AlertReceiver(ThreadingHTTPServer):
    """FLASK_ALERT_URL on https://localhost:PORT (production takes https only), keeping every alert's text."""

    daemon_threads = True

    def __init__(self, cert: Path, key: Path):
        super().__init__(("127.0.0.1", 0), _AlertHandler)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(str(cert), str(key))
        self.socket = context.wrap_socket(self.socket, server_side=True)
        self.alerts: list[str] = []
        threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()

    @property
    def url(self) -> str:
        return f"https://localhost:{self.server_address[1]}/rsct-alerts"


class _AlertHandler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.server.alerts.append(body.decode(errors="replace"))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


# --- visitors ----------------------------------------------------------------------------------------


@dataclass
class Tally:
    submitted: int = 0
    acknowledged: dict = field(default_factory=dict)  # reference -> (canary, when acknowledged)
    latencies: list = field(default_factory=list)  # (when, seconds) per visitor request
    statuses: dict = field(default_factory=dict)
    errors: int = 0  # no answer at all (a connection reset, a timeout)
    why: dict = field(default_factory=dict)  # those errors by kind
    canaries: set = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self, status: int, started: float) -> None:
        with self.lock:
            self.latencies.append((started, time.perf_counter() - started))
            self.statuses[status] = self.statuses.get(status, 0) + 1

    @property
    def server_errors(self) -> int:
        return sum(n for status, n in self.statuses.items() if status >= 500)


class Addresses:
    """A fresh loopback address for each visit: 127.1.0.1, 127.1.0.2, ... (65,000 before one repeats)."""

    def __init__(self, base: int = 1):
        self.next = 0
        self.base = base
        self.lock = threading.Lock()

    def take(self) -> str:
        with self.lock:
            self.next = self.next % 65000 + 1
            n = self.next
        return f"127.{self.base}.{n // 250}.{n % 250 + 1}"


def hidden_fields(page: str) -> dict:
    fields = {}
    for tag in INPUT.findall(page):
        attributes = dict(ATTRIBUTE.findall(tag))
        if attributes.get("type") == "hidden" and "name" in attributes:
            fields[attributes["name"]] = attributes.get("value", "")
    return fields


def cookies_from(response, jar: dict) -> dict:
    """The browser's cookie jar after this response (a later Set-Cookie replaces one of the same name)."""
    for header in response.headers.get_all("Set-Cookie") or []:
        name, _, value = header.split(";", 1)[0].partition("=")
        jar[name.strip()] = value
    return jar


def visit(d: h.Deployment, context: ssl.SSLContext, tally: Tally, source: str, plain: bool) -> None:
    """One visitor: open the form, submit it once with a canary; counts what it saw."""
    connection = http.client.HTTPSConnection(
        "localhost", d.https_port, context=context, timeout=60, source_address=(source, 0)
    )
    try:
        started = time.perf_counter()
        connection.request("GET", "/contact")
        response = connection.getresponse()
        page = response.read().decode(errors="replace")
        tally.count(response.status, started)
        if response.status != 200:
            return
        jar = cookies_from(response, {})
        cookies = "; ".join(f"{k}={v}" for k, v in jar.items())
        canary = f"Qzc{random.getrandbits(48):012x}"
        data = {
            **hidden_fields(page),
            "name": f"Jordan {canary}",
            "contact_method": "call",
            "phone": "203-555-0147",
            "email": "",
            "best_time": "morning",
            "leave_message": "no",
            "for_whom": "self",
            "message": f"I would like to talk about {canary} options.",
            "website": "",
        }
        headers = {"Content-Type": "application/x-www-form-urlencoded", "Cookie": cookies}
        if not plain:
            headers["HX-Request"] = "true"
        with tally.lock:
            tally.submitted += 1
            tally.canaries.add(canary)
        started = time.perf_counter()
        connection.request("POST", "/contact", body=urllib.parse.urlencode(data), headers=headers)
        response = connection.getresponse()
        body = response.read().decode(errors="replace")
        tally.count(response.status, started)
        if plain and response.status == 303:
            cookies = "; ".join(f"{k}={v}" for k, v in cookies_from(response, jar).items())
            started = time.perf_counter()
            connection.request("GET", response.headers["Location"], headers={"Cookie": cookies})
            response = connection.getresponse()
            body = response.read().decode(errors="replace")
            tally.count(response.status, started)
        found = REFERENCE.search(body) if response.status == 200 else None
        if found:
            with tally.lock:
                tally.acknowledged[found.group(0)] = (canary, time.time())
    except (OSError, http.client.HTTPException) as error:
        with tally.lock:
            tally.errors += 1
            name = type(error).__name__ + (f" {error.errno}" if isinstance(error, OSError) else "")
            tally.why[name] = tally.why.get(name, 0) + 1
    finally:
        connection.close()


def load(d: h.Deployment, seconds: float, visitors: int, tally: Tally, addresses: Addresses) -> None:
    """`visitors` at a time for `seconds`, each visiting over and over; returns when all have finished."""
    context = ssl.create_default_context(cafile=str(d.cert))
    deadline = time.monotonic() + seconds

    def visitor(number: int):
        cycle = 0
        while time.monotonic() < deadline:
            visit(d, context, tally, addresses.take(), plain=(cycle + number) % 4 == 0)
            cycle += 1

    threads = [threading.Thread(target=visitor, args=(n,), daemon=True) for n in range(visitors)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=seconds + 120)


def p99(latencies: list, since: float = float("-inf"), until: float = float("inf")) -> float:
    values = sorted(s for started, s in latencies if since <= started < until)
    return values[min(len(values) - 1, int(len(values) * 0.99))] if values else float("nan")


# --- bogus traffic -----------------------------------------------------------------------------------


def bogus(d: h.Deployment, count: int, seconds: float, statuses: dict) -> None:
    """`count` bogus POSTs over `seconds` from 127.0.0.2-11: no token, a wrong token, oversize, malformed multipart."""
    context = ssl.create_default_context(cafile=str(d.cert))
    kinds = (
        ("no token", "application/x-www-form-urlencoded", b"name=Jo&phone=2035550147&message=hello"),
        ("wrong token", "application/x-www-form-urlencoded", b"form_token=forged&csrf_token=forged&name=Jo"),
        ("oversize", "application/x-www-form-urlencoded", b"message=" + b"x" * 40_000),
        ("malformed multipart", "multipart/form-data; boundary=zz", b"--zz\r\nContent-Disposition: form\r\n\r\nx"),
    )
    lock = threading.Lock()

    def sender(offset: int):
        for i in range(offset, count, 4):
            time.sleep(max(0.0, started + i * seconds / count - time.monotonic()))
            kind, content_type, body = kinds[i % len(kinds)]
            source = f"127.0.0.{2 + i % 10}"
            try:
                response, _ = h.https_request(
                    d.https_port,
                    "/contact",
                    d.cert,
                    method="POST",
                    body=body,
                    headers={"Content-Type": content_type},
                    source=source,
                    timeout=30,
                )
                status = response.status
            except (OSError, http.client.HTTPException):
                status = 0
            with lock:
                statuses.setdefault(kind, {}).setdefault(status, 0)
                statuses[kind][status] += 1

    del context
    started = time.monotonic()
    threads = [threading.Thread(target=sender, args=(n,), daemon=True) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=seconds + 60)


# --- one deployment ----------------------------------------------------------------------------------


@dataclass
class Site:
    d: h.Deployment
    relay: Relay
    sealed: bool
    sender_deaths: int = 0

    @property
    def database(self) -> Path:
        return Path(self.d.env["FLASK_INSTANCE_PATH"]) / "rsct.sqlite3"


def make_keys(folder: Path) -> dict:
    """The office's certificate (sealed mode) and a signer for the From address, as tests/test_sealed.py makes them."""
    folder.mkdir(parents=True, exist_ok=True)
    ca_cert, ca_key = smime.new_ca(str(folder / "ca"), "RSCT soak CA")
    signer_cert, signer_key = smime.new_signer(str(folder / "signer"), ca_cert, ca_key, h.SENDER)
    _p12, office_cert = smime.new_office_identity(str(folder / "office"), h.RECIPIENT, "soak-password", ca_cert, ca_key)
    h.make_readable(folder)
    return {"office": office_cert, "signer_cert": signer_cert, "signer_key": signer_key}


def deploy(relay: Relay, keys: dict | None, shipped_limits: bool, extra_env: dict | None = None, env=None) -> Site:
    """Render and start the shipped site against `relay`; sealed when keys are given.

    Unless shipped_limits, nginx's limit_req on POST /contact and the app's per-client limit are raised
    in this rendered copy only: the deploy/ files are never changed.
    """
    d = h.prepare(h.new_root())
    # Debian's nginx.conf, not the harness's small test one: a worker per core, 768 connections each.
    d.nginx_conf.write_text(
        h.render(
            d.nginx_conf.read_text(),
            {"worker_processes 1;": "worker_processes auto;", "worker_connections 256;": "worker_connections 768;"},
            "the harness's nginx.conf",
        )
    )
    if not shipped_limits:
        site = d.site_file.read_text()
        d.site_file.write_text(
            h.render(site, {SHIPPED_RATE: "rate=100000r/s", SHIPPED_BURST: "burst=100000 nodelay"}, "rendered site")
        )
    if env is not None:  # a restore: the saved rsct.env, this machine's folders and ports
        env = dict(env)
        for name in ("FLASK_INSTANCE_PATH", "FLASK_SITE_URL", "FLASK_MAIL_PORT"):
            env[name] = d.env[name]
        d.env = env
    d.env.pop("RSCT_WORKERS", None)  # gunicorn.conf.py's own count for this machine (5 on 2 cores)
    d.env.update(
        {
            "FLASK_MAIL_PORT": str(relay.port),
            "FLASK_MAIL_TIMEOUT": str(MAIL_TIMEOUT),
            "FLASK_OUTBOX_RETRY_SECONDS": str(RETRY_SECONDS),
            "FLASK_INQUIRY_RETENTION_DAYS": "30",
        }
    )
    if not shipped_limits:
        d.env["FLASK_RATE_LIMIT_COUNT"] = "10000"
    if keys:
        d.env.update(
            {
                "FLASK_SMIME_OFFICE_CERT": keys["office"],
                "FLASK_SMIME_SIGNER_CERT": keys["signer_cert"],
                "FLASK_SMIME_SIGNER_KEY": keys["signer_key"],
            }
        )
    d.env.update(extra_env or {})
    Path(d.env["FLASK_INSTANCE_PATH"]).mkdir(parents=True, exist_ok=True)
    return Site(d, relay, bool(keys))


def start(site: Site) -> None:
    """gunicorn, the sender and nginx, as deploy_harness.start() but with this soak's relay."""
    d = site.d
    h.write_security_headers(d)
    h.start_gunicorn(d)
    start_sender(d)
    test = subprocess.run([h.NGINX, "-t", "-c", str(d.nginx_conf), "-p", f"{d.root}/"], capture_output=True, text=True)
    if test.returncode != 0:
        raise RuntimeError(f"nginx -t failed:\n{test.stderr}")
    d.processes.append(h.Process("nginx", [h.NGINX, "-c", str(d.nginx_conf), "-p", f"{d.root}/"], d.logs, cwd=d.root))
    h.wait_until(lambda: d.request("/healthz", timeout=2)[0].status == 200, "nginx over HTTPS", d)


def start_sender(d: h.Deployment) -> None:
    marker = d.logs / "sender.log"
    before = marker.read_text().count("Outbox sender started") if marker.exists() else 0
    process = h.Process(
        "sender", [str(h.VENV_BIN / "flask"), "--app", "app", "outbox", "run"], d.logs, cwd=h.ROOT, env=d.env
    )
    d.processes.append(process)
    h.wait_until(lambda: process.output().count("Outbox sender started") > before, "the sender", d)


def kill_sender(d: h.Deployment) -> None:
    """kill -9 of the sender, wherever it is in a conversation; systemd starts it again (here at once)."""
    process = d.process("sender")
    os.kill(process.popen.pid, signal.SIGKILL)
    process.popen.wait(timeout=10)
    d.processes.remove(process)


def gunicorn_workers(d: h.Deployment) -> list[int]:
    master = d.process("gunicorn").popen.pid
    workers = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == master:
                workers.append(int(entry.name))
    return workers


def outstanding(database: Path) -> int:
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=30) as db:
        return db.execute("SELECT count(*) FROM outbox WHERE delivered_at IS NULL AND failed_at IS NULL").fetchone()[0]


def drain(site: Site, timeout: float = DRAIN_SECONDS) -> float:
    """The relay behaves; wait (bounded) until the outbox is empty. Returns the seconds it took."""
    site.relay.mode = "ok"
    started = time.monotonic()
    while outstanding(site.database) and time.monotonic() - started < timeout:
        sender = site.d.process("sender")
        if sender.popen.poll() is not None:  # it died: systemd's Restart=always starts it again after RestartSec=5
            site.sender_deaths += 1
            site.d.processes.remove(sender)
            time.sleep(5)
            start_sender(site.d)
        time.sleep(0.5)
    return time.monotonic() - started


def rows(database: Path) -> dict:
    """reference -> (message id, state) for every stored inquiry."""
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=30) as db:
        found = db.execute(
            "SELECT i.reference, o.message_id, i.state FROM inquiries i LEFT JOIN outbox o ON o.inquiry_id = i.id"
        ).fetchall()
    return {reference: ((message_id or "").strip("<>"), state) for reference, message_id, state in found}


def integrity(database: Path) -> str:
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=30) as db:
        return db.execute("PRAGMA integrity_check").fetchone()[0]


def leaked_canaries(folders: list[Path], canaries: set) -> int:
    """Lines in any log (app, sender, gunicorn, nginx access and error) that hold a canary: must be 0."""
    leaks = 0
    for folder in folders:
        for log in folder.glob("*.log"):
            for line in log.read_text(errors="replace").splitlines():
                if any(found in canaries for found in CANARY.findall(line)):
                    leaks += 1
    return leaks


# --- counting ----------------------------------------------------------------------------------------


@dataclass
class Row:
    name: str
    mode: str
    visitors: int
    seconds: float
    tally: Tally
    stored: int = 0
    delivered: int = 0
    twice_dropped: int = 0
    twice_slow: int = 0
    twice_crash: int = 0
    twice_other: int = 0
    lost: int = 0
    not_in_backup: str = "–"  # the restore drill: acknowledged after the backup and not yet delivered when lost
    drain_seconds: float = 0.0
    integrity: str = ""
    leaks: int = -1
    notes: list = field(default_factory=list)
    command: str = ""


def count(row: Row, site: Site, mapping: dict, relay: Relay, restarts: bool = False, exclude=frozenset()) -> None:
    """Fill the row from the database(s), the relay and the visitors' tally."""
    tally = row.tally
    row.stored = len(mapping)
    copies: dict[str, list[str]] = {}
    for message_id, fate, _when in relay.taken:
        copies.setdefault(message_id, []).append(fate)
    ours = {message_id for message_id, _state in mapping.values()}
    row.delivered = sum(1 for message_id in copies if message_id in ours)
    for message_id, fates in copies.items():
        if message_id not in ours or len(fates) < 2:
            continue
        extra = len(fates) - 1
        if "dropped" in fates[:-1]:
            row.twice_dropped += extra
        elif "slow" in fates[:-1]:
            row.twice_slow += extra
        elif restarts:
            row.twice_crash += extra
        else:
            row.twice_other += extra
    for reference in tally.acknowledged:
        if reference in exclude:
            continue
        message_id = mapping.get(reference, ("", ""))[0]
        if message_id not in copies:
            row.lost += 1
    row.integrity = integrity(site.database)


# --- the scenarios -----------------------------------------------------------------------------------


def flaky(args, keys, crashes: bool) -> tuple[Row, Path]:
    relay = Relay()
    relay.mode = "flaky"
    site = deploy(relay, keys, shipped_limits=False)
    row = Row(
        "Flaky relay" + (", kill -9 under load" if crashes else ""),
        "sealed" if keys else "plain",
        args.visitors,
        args.seconds,
        Tally(),
    )
    try:
        start(site)
        stop = threading.Event()
        killed = {"workers": 0, "sender": 0}

        def crasher():
            started = time.monotonic()
            sender_kills = (args.seconds / 3, 2 * args.seconds / 3)
            tick = 0
            while not stop.wait(1):
                elapsed = time.monotonic() - started
                if elapsed >= (tick + 1) * 10:
                    tick += 1
                    workers = gunicorn_workers(site.d)
                    if workers:
                        os.kill(random.choice(workers), signal.SIGKILL)
                        killed["workers"] += 1
                if killed["sender"] < 2 and elapsed >= sender_kills[killed["sender"]]:
                    kill_sender(site.d)
                    killed["sender"] += 1
                    time.sleep(1)
                    start_sender(site.d)

        thread = threading.Thread(target=crasher, daemon=True) if crashes else None
        if thread:
            thread.start()
        load(site.d, args.seconds, args.visitors, row.tally, Addresses())
        stop.set()
        if thread:
            thread.join(timeout=30)
        row.drain_seconds = drain(site)
        count(row, site, rows(site.database), relay, restarts=crashes)
        if crashes:
            row.notes.append(f"{killed['workers']} gunicorn workers and the sender {killed['sender']} times killed")
        dropped = sum(1 for taken in relay.taken if taken[1] == "dropped")
        row.notes.append(
            f"relay: {relay.refused} answered 4xx, {dropped} dropped before 250, {relay.slowed} after the timeout"
        )
    finally:
        site.d.stop()
        row.leaks = leaked_canaries([site.d.logs], row.tally.canaries)
        relay.down()
    row.command = f"make soak SOAK_ONLY={'crashes' if crashes else 'flaky'}"
    return row, site.d.root


def long_reader(args, keys) -> tuple[Row, Path]:
    relay = Relay()
    site = deploy(relay, keys, shipped_limits=False)
    row = Row(
        "Long reader: flask backup + a 10 s read transaction",
        "sealed" if keys else "plain",
        args.visitors,
        args.short,
        Tally(),
    )
    try:
        start(site)

        def reader():
            time.sleep(args.short / 3)
            backup = site.d.flask("backup", str(site.d.root / "backup.sqlite3"), timeout=120)
            row.notes.append(f"flask backup: exit {backup.returncode}")
            db = sqlite3.connect(str(site.database), isolation_level=None, timeout=30)
            db.execute("BEGIN")
            db.execute("SELECT count(*) FROM inquiries").fetchone()
            # The sender's minutely pass (retention, then the WAL checkpoint) meets this reader: run that pass
            # now, as `flask inquiry purge` does, rather than wait for the minute to come round by chance.
            started = time.monotonic()
            purge = site.d.flask("inquiry", "purge", timeout=120)
            row.notes.append(
                f"the retention pass and its checkpoint, run while the reader held its snapshot:"
                f" exit {purge.returncode} after {time.monotonic() - started:.1f} s"
            )
            time.sleep(max(0.0, 10 - (time.monotonic() - started)))
            db.execute("COMMIT")
            db.close()

        thread = threading.Thread(target=reader, daemon=True)
        thread.start()
        load(site.d, args.short, args.visitors, row.tally, Addresses())
        thread.join(timeout=120)
        row.drain_seconds = drain(site)
        count(row, site, rows(site.database), relay)
        locked = sum(log.read_text(errors="replace").count("database is locked") for log in site.d.logs.glob("*.log"))
        row.notes.append(f'"database is locked" in the logs: {locked}; the sender died {site.sender_deaths} times')
    finally:
        site.d.stop()
        row.leaks = leaked_canaries([site.d.logs], row.tally.canaries)
        relay.down()
    row.command = "make soak SOAK_ONLY=reader"
    return row, site.d.root


def restore(args, keys) -> tuple[Row, Path]:
    relay = Relay()
    old = deploy(relay, keys, shipped_limits=False)
    row = Row(
        "Restore drill: restic backup under load, server lost, restored",
        "sealed" if keys else "plain",
        args.visitors,
        args.short,
        Tally(),
    )
    repository = old.d.root / "restic-repo"
    restic_env = {
        **old.d.env,
        "RESTIC_REPOSITORY": str(repository),
        "RESTIC_PASSWORD": "soak-only-password",
        "RESTIC_CACHE_DIR": str(old.d.root / "restic-cache"),
        "RSCT_VENV": str(ROOT / ".venv"),
    }
    backup_at = {}
    new = None
    try:
        start(old)
        subprocess.run(["restic", "init", "--quiet"], env=restic_env, check=True, capture_output=True, timeout=60)

        def backup():
            time.sleep(args.short / 2)
            backup_at["t"] = time.time()
            result = subprocess.run(
                ["sh", str(h.DEPLOY / "rsct-backup")],
                cwd=ROOT,
                env=restic_env,
                capture_output=True,
                text=True,
                timeout=120,
            )
            backup_at["result"] = result

        thread = threading.Thread(target=backup, daemon=True)
        thread.start()
        load(old.d, args.short, args.visitors, row.tally, Addresses())
        thread.join(timeout=150)
        if backup_at["result"].returncode != 0:
            raise RuntimeError(f"deploy/rsct-backup failed:\n{backup_at['result'].stderr}")
        # The server is lost: everything dies at once, with no chance to finish.
        for process in old.d.processes:
            h._signal_group(process.popen.pid, signal.SIGKILL)
        old.d.stop()
        lost_at = time.time()
        old_rows = rows(old.database)
        # A fresh server with the saved rsct.env and restic.env, restored as DEPLOY.md says.
        new = deploy(relay, keys, shipped_limits=False, env=old.d.env)
        dumped = new.d.root / "rsct-restored.sqlite3"
        with open(dumped, "wb") as out:
            subprocess.run(
                ["restic", "dump", "latest", "/rsct.sqlite3"], env=restic_env, stdout=out, check=True, timeout=60
            )
        check = subprocess.run(
            ["sqlite3", str(dumped), "PRAGMA integrity_check"], capture_output=True, text=True, timeout=60
        )
        shutil.copy(dumped, new.database)
        os.chmod(new.database, 0o600)
        dumped.unlink()
        start(new)
        row.drain_seconds = drain(new)
        new_rows = rows(new.database)
        mapping = {**old_rows, **new_rows}
        before = {r for r, (_c, when) in row.tally.acknowledged.items() if when < backup_at["t"]}
        after = set(row.tally.acknowledged) - before
        delivered_ids = {message_id for message_id, _f, _w in relay.taken}
        missing_before = [r for r in before if r not in new_rows]
        after_missing = [r for r in after if r not in new_rows and old_rows.get(r, ("",))[0] not in delivered_ids]
        after_delivered_by_old = [r for r in after if r not in new_rows and old_rows.get(r, ("",))[0] in delivered_ids]
        after_in_backup = [r for r in after if r in new_rows]
        count(row, new, mapping, relay, restarts=True, exclude=frozenset(after_missing))
        row.not_in_backup = str(len(after_missing))
        row.notes.append(
            f"restored copy: integrity {check.stdout.strip()}; acknowledged before the backup {len(before)},"
            f" missing from the restored copy {len(missing_before)}; acknowledged after it started {len(after)}:"
            f" {len(after_in_backup)} in the copy all the same (taken a moment later),"
            f" {len(after_delivered_by_old)} not in it but in the mailbox before the loss,"
            f" {len(after_missing)} had not (what a backup interval risks, not counted as lost)"
        )
        resent = sum(1 for _m, _f, when in relay.taken if when > lost_at)
        row.notes.append(
            f"sent by the restored server: {resent}, of which already delivered by the lost one"
            f" (expected duplicates): {row.twice_crash}"
        )
    finally:
        old.d.stop()
        if new:
            new.d.stop()
        row.leaks = leaked_canaries([old.d.logs] + ([new.d.logs] if new else []), row.tally.canaries)
        relay.down()
        if new:
            shutil.rmtree(new.d.root, ignore_errors=True)
    row.command = "make soak SOAK_ONLY=restore"
    return row, old.d.root


def relay_down(args, keys) -> tuple[Row, Path]:
    relay = Relay()
    port = relay.port
    relay.down()  # nothing listens: connections are refused for the whole load
    site = deploy(relay, keys, shipped_limits=False, extra_env={"FLASK_OUTBOX_STUCK_MINUTES": "1"})
    receiver = AlertReceiver(site.d.cert, site.d.cert.parent / "privkey.pem")
    site.d.env["FLASK_ALERT_URL"] = receiver.url
    site.d.env["SSL_CERT_FILE"] = str(site.d.cert)  # the alert receiver's certificate, trusted as a public one would be
    row = Row(
        "Relay down for the whole load, then back", "sealed" if keys else "plain", args.visitors, args.short, Tally()
    )
    stop = threading.Event()

    def monitor():  # rsct-monitor.timer, every few minutes in production; every 10 s here
        while not stop.wait(10):
            site.d.flask("outbox", "monitor", timeout=60)

    try:
        start(site)
        thread = threading.Thread(target=monitor, daemon=True)
        thread.start()
        load(site.d, args.short, args.visitors, row.tally, Addresses())
        deadline = time.monotonic() + 150
        while not receiver.alerts and time.monotonic() < deadline:
            time.sleep(1)
        stuck_alerts = len(receiver.alerts)
        relay = Relay(port)
        site.relay = relay
        row.drain_seconds = drain(site)
        deadline = time.monotonic() + 60
        while len(receiver.alerts) < stuck_alerts + 1 and time.monotonic() < deadline:
            time.sleep(1)
        time.sleep(12)  # one more monitor run: nothing new to say
        stop.set()
        thread.join(timeout=90)
        count(row, site, rows(site.database), relay)
        row.notes.append(
            f"alerts: {stuck_alerts} when stuck, {len(receiver.alerts) - stuck_alerts} after the relay came back;"
            f" the outbox was empty {row.drain_seconds:.0f} s after the relay came back"
        )
        row.notes.append("alert texts: " + " | ".join(a[:90] for a in receiver.alerts))
    finally:
        stop.set()
        site.d.stop()
        receiver.shutdown()
        row.leaks = leaked_canaries([site.d.logs], row.tally.canaries)
        relay.down()
    row.command = "make soak SOAK_ONLY=relay-down"
    return row, site.d.root


def hostile(args, keys) -> tuple[Row, Path]:
    relay = Relay()
    site = deploy(relay, keys, shipped_limits=True)
    row = Row(
        f"Hostile traffic: {args.bogus:,} bogus POSTs, shipped limits",
        "sealed" if keys else "plain",
        args.visitors,
        2 * args.short,
        Tally(),
    )
    statuses: dict = {}
    try:
        start(site)
        phase = time.perf_counter()
        load(site.d, args.short, args.visitors, row.tally, Addresses())
        middle = time.perf_counter()
        thread = threading.Thread(target=bogus, args=(site.d, args.bogus, args.short, statuses), daemon=True)
        thread.start()
        load(site.d, args.short, args.visitors, row.tally, Addresses(base=2))
        thread.join(timeout=args.short + 120)
        row.drain_seconds = drain(site)
        count(row, site, rows(site.database), relay)
        quiet, noisy = p99(row.tally.latencies, phase, middle), p99(row.tally.latencies, middle)
        not_4xx = sum(n for kinds in statuses.values() for status, n in kinds.items() if not 400 <= status < 500)
        row.notes.append(
            f"visitors' p99 without bogus traffic {quiet * 1000:.0f} ms, with it {noisy * 1000:.0f} ms"
            f" ({noisy / quiet:.2f}x); bogus answers not 4xx: {not_4xx}; "
            + "; ".join(f"{kind}: {dict(sorted(s.items()))}" for kind, s in statuses.items())
        )
    finally:
        site.d.stop()
        row.leaks = leaked_canaries([site.d.logs], row.tally.canaries)
        relay.down()
    row.command = "make soak SOAK_ONLY=hostile"
    return row, site.d.root


SCENARIOS = {
    "flaky": lambda args, keys: flaky(args, None, crashes=False),
    "crashes": lambda args, keys: flaky(args, keys, crashes=True),
    "reader": long_reader,
    "restore": restore,
    "relay-down": relay_down,
    "hostile": hostile,
}


def table(rows_: list[Row]) -> str:
    lines = [
        "| scenario | mode | visitors × s | submitted | acknowledged | stored | delivered | twice: dropped reply"
        " | twice: slow reply | twice: crash/restore | twice: other | lost | not in the backup | 5xx | no answer"
        " | p99 | integrity | canaries in logs | reproduce |",
        "|" + "---|" * 19,
    ]
    for r in rows_:
        t = r.tally
        lines.append(
            f"| {r.name} | {r.mode} | {r.visitors} × {r.seconds:.0f} | {t.submitted} | {len(t.acknowledged)}"
            f" | {r.stored} | {r.delivered} | {r.twice_dropped} | {r.twice_slow} | {r.twice_crash} | {r.twice_other}"
            f" | {r.lost} | {r.not_in_backup}"
            f" | {t.server_errors} | {t.errors} | {p99(t.latencies) * 1000:.0f} ms | {r.integrity} | {r.leaks}"
            f" | `{r.command}` |"
        )
    lines.append("")
    for r in rows_:
        statuses = dict(sorted(r.tally.statuses.items()))
        lines.append(
            f"- **{r.name}** ({r.mode}): statuses {statuses}; no answer: {r.tally.why or 0};"
            f" outbox empty {r.drain_seconds:.0f} s after the load."
        )
        for note in r.notes:
            lines.append(f"  {note}")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--visitors", type=int, default=200, help="simulated visitors at a time")
    parser.add_argument("--seconds", type=float, default=30, help="load in the flaky-relay and crash scenarios")
    parser.add_argument("--short", type=float, default=20, help="load in the other scenarios (each hostile phase)")
    parser.add_argument("--bogus", type=int, default=1000, help="bogus POSTs in the hostile scenario")
    parser.add_argument("--only", default=os.environ.get("SOAK_ONLY", ""), help="comma-separated scenario names")
    parser.add_argument("--out", default=str(ROOT / "bench" / "soak-results.md"), help="where the table is written")
    args = parser.parse_args()
    chosen = [name for name in SCENARIOS if not args.only or name in args.only.split(",")]
    started = time.monotonic()
    load_before = os.getloadavg()
    keys_root = h.new_root()
    results = []
    try:
        keys = make_keys(keys_root / "keys")
        for name in chosen:
            print(f"soak: {name} ...", flush=True)
            row, root = SCENARIOS[name](args, keys)
            results.append(row)
            print(table([row]), flush=True)
            shutil.rmtree(root, ignore_errors=True)
    finally:
        shutil.rmtree(keys_root, ignore_errors=True)
    text = (
        table(results) + f"\n\nRan {time.monotonic() - started:.0f} s on {os.cpu_count()} cores; load average before"
        f" {load_before[0]:.1f}, after {os.getloadavg()[0]:.1f}.\n"
    )
    Path(args.out).write_text(text)
    print(text)
    return 0 if all(r.lost == 0 and r.leaks == 0 and r.twice_other == 0 for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
