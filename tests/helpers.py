"""What tests share besides fixtures: project paths and tools, the contact form as a client sees it,
the database file, the received mail, and the browser context every browser test uses.

Fixtures live in conftest.py; test servers in smtp_servers.py and deploy_harness.py. Test modules take
what they share from here, never from other test modules or the conftest file.
"""

import base64
import email
import email.message
import json
import os
import pathlib
import re
import sqlite3
import threading
import time
from contextlib import closing, contextmanager
from email import policy
from html.parser import HTMLParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from rsct import outbox, sender

ROOT = pathlib.Path(__file__).resolve().parent.parent
HTMX_FILE = ROOT / "node_modules" / "htmx.org" / "dist" / "htmx.min.js"
IN_CI = os.environ.get("CI") == "true"

# Every page a visitor can reach; tests walk this table.
PAGES = {
    "/": "Addiction Treatment in Madison",
    "/intensive-outpatient-programs": "Intensive Outpatient Programs",
    "/substance-abuse-therapy": "Therapy",
    "/resources": "Resources",
    "/contact": "Contact",
    "/privacy": "Privacy",
}
# Each page's Spanish counterpart, in the same order, with a word of its title.
SPANISH_PAGES = {
    "/es/": "Tratamiento de adicciones",
    "/es/programas-intensivos-ambulatorios": "Programas Intensivos Ambulatorios",
    "/es/terapia": "Terapia",
    "/es/recursos": "Recursos",
    "/es/contacto": "Contacto",
    "/es/privacidad": "privacidad",
}


def require_tool(available: bool, what: str) -> None:
    """Skip loudly when a tool is missing on a developer's machine; fail in CI."""
    if available:
        return
    if IN_CI:
        pytest.fail(f"{what} is missing, and CI=true makes a missing tool a failure")
    pytest.skip(f"MISSING TOOL, CHECK NOT RUN: {what}")


# --- the contact form, as the test client sees it ------------------------------------------------

HTMX = {"HX-Request": "true"}
PHONE_LINK = 'href="tel:+12034216242"'
REFERENCE = re.compile(r"RSCT-[23456789ABCDEFGHJKMNPQRSTVWXYZ]{6}")

TOKEN = re.compile(r'name="form_token" type="hidden" value="([^"]*)"')

# The one valid request the tests send: a call back, for the visitor themself. "Qzxname" and "Qzxnote"
# are canaries, words no page, email template or log line contains, so tests can search for what was typed.
VISITOR = {
    "name": "Jordan Qzxname Rivers",
    "contact_method": "call",
    "phone": "203-555-0147",
    "email": "",
    "best_time": "morning",
    "leave_message": "no",
    "for_whom": "self",
    "message": "I would like to talk about Qzxnote options.\nSecond line of my note.",
}


class Visitor:
    """Someone at the contact form in one browser (a test client), in the style of flaskr's AuthActions.

    form() opens the form and fills in VISITOR's answers with `changes`; submit() also sends it, as a
    plain browser (303 to the thanks page when stored) or, with htmx=True, as htmx (200 and a fragment).
    """

    def __init__(self, client, path: str = "/contact"):
        self.client = client
        self.path = path  # "/es/contacto" for the Spanish form

    def fresh_token(self) -> str:
        """Open the contact page; returns its hidden form_token."""
        response = self.client.get(self.path)
        assert response.status_code == 200
        return TOKEN.search(response.text).group(1)

    def form(self, **changes) -> dict:
        """A complete, valid request on a freshly opened form, with `changes`; None leaves a field out."""
        data = {**VISITOR, "website": "", "form_token": self.fresh_token(), **changes}
        return {name: value for name, value in data.items() if value is not None}

    def post(self, data: dict, htmx: bool = False):
        return self.client.post(self.path, data=data, headers=HTMX if htmx else {})

    def submit(self, htmx: bool = False, **changes):
        """Fill in the form (see form()) and send it."""
        return self.post(self.form(**changes), htmx=htmx)


# Answers that must come back escaped and unchanged when the form is shown again (the phone number
# is not a valid one, so the form is refused).
TRICKY_VALUES = dict(
    name='Zoë <b>"O\'Brien"</b> & co',
    phone="203-555-01<i>",
    email="visitor@example.org",
    best_time="afternoon",
    leave_message="yes",
    for_whom="other",
    message='First line <script>alert(1)</script>\nSecond line & "quotes"',
)


class FormPage(HTMLParser):
    """What a browser would show in the form: input values, checked radios, textarea text, attributes by id."""

    def __init__(self, html: str):
        super().__init__()
        self.values: dict[str, str] = {}
        self.checked: dict[str, str] = {}
        self.by_id: dict[str, dict] = {}
        self._textarea = None
        self.feed(html)
        self.close()

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if "id" in attributes:
            self.by_id[attributes["id"]] = attributes
        if tag == "input" and attributes.get("type") == "radio":
            if "checked" in attributes:
                self.checked[attributes["name"]] = attributes["value"]
        elif tag == "input":
            self.values[attributes.get("name")] = attributes.get("value", "")
        elif tag == "textarea":
            self._textarea = attributes["name"]
            self.values[self._textarea] = ""

    def handle_data(self, data):
        if self._textarea:
            self.values[self._textarea] += data

    def handle_endtag(self, tag):
        if tag == "textarea" and self._textarea:
            # HTML drops one line break right after <textarea>.
            text = self.values[self._textarea]
            self.values[self._textarea] = text[2:] if text.startswith("\r\n") else text.removeprefix("\n")
            self._textarea = None


class FormText(HTMLParser):
    """The text of an HTML snippet as a screen reader would read it, without the "Error: " prefix."""

    def __init__(self, html: str):
        super().__init__()
        self.parts = []
        self.feed(html)
        self.close()
        self.text = "".join(self.parts).replace("Error: ", "", 1).strip()

    def handle_data(self, data):
        self.parts.append(data)


def field_message(html: str, name: str) -> str:
    """The text of the message shown beside a field (empty when there is none)."""
    block = re.search(rf'<div id="{name}-message"[^>]*>(.*?)</div>', html, re.S).group(1)
    return FormText(block).text


def summary_links(html: str) -> list[str]:
    summary = re.search(r'<div class="error-summary".*?</div>', html, re.S)
    return re.findall(r'<a href="([^"]+)">', summary.group(0)) if summary else []


def assert_shown_in_form(html: str, data: dict) -> None:
    """Every value the visitor typed or chose is back in the re-rendered form."""
    page = FormPage(html)
    for name in ("name", "phone", "email", "message", "form_token"):
        if data.get(name):
            assert page.values.get(name) == data[name], name
    for name in ("contact_method", "best_time", "leave_message", "for_whom"):
        if data.get(name):
            assert page.checked.get(name) == data[name], name


def assert_is_form_region_fragment(html: str) -> None:
    assert html.lstrip().startswith('<section id="contact-form-region"')
    assert "<html" not in html


# --- the database file --------------------------------------------------------------------------


@contextmanager
def db(app_or_path):
    """A plain sqlite3 connection to the app's database file (autocommit), closed afterwards."""
    path = app_or_path if isinstance(app_or_path, (str, pathlib.Path)) else app_or_path.config["DATABASE"]
    connection = sqlite3.connect(str(path), isolation_level=None, timeout=10)
    connection.row_factory = sqlite3.Row
    try:
        yield connection
    finally:
        connection.close()


def stored_inquiries(app) -> list[dict]:
    """Every row of the real SQLite file's inquiries table, with `fields` decoded."""
    with closing(sqlite3.connect(app.config["DATABASE"])) as connection:
        connection.row_factory = sqlite3.Row
        rows = [dict(row) for row in connection.execute("SELECT * FROM inquiries ORDER BY id")]
    for row in rows:
        row["fields"] = json.loads(row["fields"]) if row["fields"] else None
    return rows


def outbox_ids(app) -> list[int]:
    with closing(sqlite3.connect(app.config["DATABASE"])) as connection:
        return [row[0] for row in connection.execute("SELECT inquiry_id FROM outbox ORDER BY inquiry_id")]


def break_database(app) -> None:
    """Put a directory where the SQLite file was: a real fault that file modes cannot undo (CI runs as root)."""
    path = app.config["DATABASE"]
    for suffix in ("", "-wal", "-shm", "-journal"):
        if os.path.exists(path + suffix):
            os.remove(path + suffix)
    os.mkdir(path)


# --- mail ---------------------------------------------------------------------------------------


def body_text(message: email.message.EmailMessage) -> str:
    return message.get_body(preferencelist=("plain",)).get_content()


def deliver(app) -> outbox.Outcome:
    with app.app_context():
        return sender.deliver_due()


def send_one(app, inbox, **changes):
    """Submit the form with VISITOR (plus changes), deliver, and return (reference, received message)."""
    before = len(inbox.messages)
    response = Visitor(app.test_client()).submit(**changes)
    assert response.status_code == 303, response.text
    outcome = deliver(app)
    assert len(outcome.delivered) == 1 and not outcome.retrying and not outcome.failed
    received = inbox.wait_for(before + 1)
    assert len(received) == before + 1
    return outcome.delivered[0], received[-1]


def verify_file(app, raw: bytes, folder):
    """`flask inquiry verify` on the email `raw`, saved in `folder`; returns the CLI result."""
    path = folder / f"check-{time.monotonic_ns()}.eml"
    path.write_bytes(raw)
    return app.test_cli_runner().invoke(args=["inquiry", "verify", str(path)])


def rewritten(raw: bytes, change) -> bytes:
    """The message with its decoded text passed through `change`, encoded again (quoted-printable)."""
    message = email.message_from_bytes(raw, policy=policy.default)
    text = body_text(message).replace("\r\n", "\n")  # quoted-printable keeps the CRLF of the wire
    new_text = change(text)
    message.set_content(new_text, subtype="plain", charset="utf-8", cte="quoted-printable")
    return message.as_bytes()


def other_char(char: str) -> str:
    if char.isdigit():
        return str((int(char) + 1) % 10)
    if char.isalpha():
        replacement = "q" if char.lower() != "q" else "z"
        return replacement.upper() if char.isupper() else replacement
    return "#"


def change_in_line(prefix: str, index: int):
    """Change one character of the value on the block line that starts with `prefix`."""

    def change(text: str) -> str:
        lines = text.split("\n")
        (number,) = [i for i, line in enumerate(lines) if line.startswith(prefix)][:1]
        line = lines[number]
        position = len(prefix) + index if index >= 0 else len(line) + index
        assert not line[position].isspace(), repr(line)
        lines[number] = line[:position] + other_char(line[position]) + line[position + 1 :]
        return "\n".join(lines)

    return change


def gateway_rewrite(raw: bytes) -> bytes:
    """What a mail gateway may do: base64 instead of quoted-printable, CRLF, a banner around the text."""
    message = email.message_from_bytes(raw, policy=policy.default)
    text = body_text(message).replace("\r\n", "\n")
    banner = "[EXTERNAL EMAIL] This message came from outside the organisation. Be careful with links."
    text = f"{banner}\n\n{text}\n{banner}\n"
    headers = [
        f"{name}: {value}"
        for name, value in message.items()
        if name.lower() not in ("content-transfer-encoding", "content-type")
    ]
    headers += ["Content-Type: text/plain; charset=utf-8", "Content-Transfer-Encoding: base64"]
    encoded = base64.encodebytes(text.replace("\n", "\r\n").encode("utf-8")).decode("ascii")
    return ("\r\n".join(headers) + "\r\n\r\n" + encoded.replace("\n", "\r\n")).encode("ascii")


# --- the browser --------------------------------------------------------------------------------


def new_context(browser, htmx_url: str, site: str = "http://127.0.0.1", **options):
    """A fresh browser profile: htmx's CDN URL answered from the npm package, nothing but `site` is reached.

    Console errors, failed requests and Content-Security-Policy violations are collected in
    context.problems; tests assert that it stays empty.
    """
    require_tool(HTMX_FILE.exists(), "node_modules/htmx.org (run: npm ci)")
    ctx = browser.new_context(**options)
    ctx.problems = []
    ctx.add_init_script("""document.addEventListener('securitypolicyviolation', e =>
        console.error('CSP violation: ' + e.violatedDirective + ' ' + e.blockedURI));""")

    def outside(route):
        ctx.problems.append(f"request left the machine: {route.request.url}")
        route.abort()

    ctx.route(
        "**/*",
        lambda route: outside(route) if not route.request.url.startswith(site) else route.continue_(),
    )
    ctx.route(
        htmx_url,
        lambda route: route.fulfill(
            path=str(HTMX_FILE),
            content_type="text/javascript; charset=utf-8",
            headers={"Access-Control-Allow-Origin": "*"},
        ),
    )
    ctx.on(
        "console",
        lambda msg: (
            ctx.problems.append(f"console {msg.type}: {msg.text}") if msg.type in ("error", "warning") else None
        ),
    )
    # The browser fetches the favicon on its own and drops that fetch when the page goes away: not a fault.
    # A missing favicon still shows up, as a console error for its 404.
    ctx.on(
        "requestfailed",
        lambda request: (
            ctx.problems.append(f"failed request: {request.url} {request.failure}")
            if not (
                ("/static/favicon.svg" in request.url or "/favicon.ico" in request.url)
                and request.failure == "net::ERR_ABORTED"
            )
            else None
        ),
    )
    ctx.on("weberror", lambda error: ctx.problems.append(f"page error: {error.error}"))
    if options.get("java_script_enabled", True):
        ctx.on("page", wait_for_htmx_after_goto)
    return ctx


def wait_for_htmx(page, timeout: float = 10.0) -> None:
    """Until htmx is ready on a page that loads it (polled from here: the pages' CSP forbids eval)."""
    deadline = time.monotonic() + timeout
    while not page.evaluate("!document.querySelector('script[data-htmx-src]') || window.htmx !== undefined"):
        assert time.monotonic() < deadline, "htmx did not load"
        page.wait_for_timeout(20)


def wait_for_htmx_after_goto(page) -> None:
    """page.goto() also waits for htmx where the page loads it: site.js adds it only after "load"."""
    goto = page.goto

    def goto_then_htmx(url, **kwargs):
        response = goto(url, **kwargs)
        wait_for_htmx(page)
        return response

    page.goto = goto_then_htmx
    page.goto_without_htmx = goto


# --- an alert receiver -----------------------------------------------------------------------------


class Receiver(ThreadingHTTPServer):
    """An alert endpoint on 127.0.0.1: keeps every request as it arrived and answers `status`."""

    def __init__(self):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.status = 200
        self.requests: list[dict] = []
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_port}"

    def bodies(self) -> list[str]:
        with self.lock:
            return [r["body"].decode() for r in self.requests]


class _Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        with self.server.lock:
            self.server.requests.append(
                {"method": "POST", "path": self.path, "type": self.headers.get("Content-Type"), "body": body}
            )
        self.send_response(self.server.status)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"OK")

    def log_message(self, *args):
        pass
