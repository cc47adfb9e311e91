"""The shipped deployment end to end: deploy/'s nginx site (TLS, redirects, headers, throttling, body limit),
gunicorn with deploy/gunicorn.conf.py, the outbox sender and a real SMTP server, all on loopback, driven by
real Chromium, plain HTTPS clients and the MDN HTTP Observatory; and systemd-analyze on deploy/systemd.

How it is started is in deploy_harness.py. The tests run in file order (pytest's default); the ones that
would disturb the others use their own client address (127.0.0.x) or put back what they changed.
"""

import email
import gzip
import html
import http.client
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import sqlite3
import ssl
import subprocess
import sys
import time
from email import policy
from pathlib import Path
from urllib.parse import urlencode

import pytest
from playwright.sync_api import expect

from config import HTMX_URL
from rsct import ratelimit

import deploy_harness as harness
from helpers import PAGES, ROOT, new_context, require_tool

OFFICE_PHONE = "(203) 421-6242"
DEPLOY_MD = (ROOT / "DEPLOY.md").read_text()
REFERENCE = re.compile(r"RSCT-[23456789ABCDEFGHJKMNPQRSTVWXYZ]{6}")
MAIL_SECONDS = 15.0
SHORT = 10_000  # ms, for every browser expectation
# Sent on every response through nginx, by the app or by nginx's snippet, each exactly once.
SECURITY_HEADERS = {
    "Strict-Transport-Security": lambda v: v.startswith("max-age=") and int(v[8:].split(";")[0]) >= 31536000,
    "Content-Security-Policy": lambda v: v.startswith("default-src 'none'"),
    "X-Content-Type-Options": lambda v: v == "nosniff",
    "Referrer-Policy": lambda v: v == "same-origin",
    "X-Frame-Options": lambda v: v == "DENY",
    "Cross-Origin-Opener-Policy": lambda v: v == "same-origin",
    "Cross-Origin-Resource-Policy": lambda v: v == "same-origin",
    "Permissions-Policy": lambda v: "camera=()" in v and "geolocation=()" in v,
}


@pytest.fixture(scope="module")
def deployment():
    """nginx (the rendered deploy/nginx files, TLS on a free port), gunicorn, the sender and an SMTP server."""
    require_tool(os.access(harness.NGINX, os.X_OK), "nginx (apt-get install nginx)")
    require_tool(shutil.which("openssl") is not None, "openssl")
    root = harness.new_root()
    deployment = None
    try:
        deployment = harness.prepare(root)
        harness.write_security_headers(deployment)
        harness.start(deployment)
        yield deployment
    finally:
        if deployment is not None:
            deployment.stop()
        if os.environ.get("RSCT_KEEP_DEPLOY"):
            print(f"deployment folder kept: {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def curl():
    """curl speaks HTTP/2 to nginx, as browsers do."""
    require_tool(os.access(harness.CURL, os.X_OK), "curl (apt-get install curl)")


def security_header_problems(response) -> list[str]:
    """Each security header present exactly once with a good value; Server without a version."""
    problems = []
    for name, good in SECURITY_HEADERS.items():
        values = response.headers.get_all(name) or []
        if len(values) != 1:
            problems.append(f"{name} appears {len(values)} times: {values}")
        elif not good(values[0]):
            problems.append(f"{name}: unexpected value {values[0]!r}")
    server = response.headers.get_all("Server") or []
    if server != ["nginx"]:
        problems.append(f"Server header should be exactly 'nginx' (server_tokens off), got {server}")
    return problems


def stylesheet_path(deployment) -> str:
    response, body = deployment.request("/")
    match = re.search(r'<link rel="stylesheet" href="(/static/css/site\.css\?v=[0-9a-f]+)"', body.decode())
    assert match, "the home page links no fingerprinted stylesheet"
    return match.group(1)


def form_post(
    deployment,
    source: str,
    htmx: bool = False,
    path: str = "/contact",
    fields: dict | None = None,
    body: bytes | None = None,
):
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    if htmx:
        headers["HX-Request"] = "true"
    data = (
        body
        if body is not None
        else urlencode(fields or {"name": "Burst", "contact_method": "call", "phone": "203 555 0147"}).encode()
    )
    return deployment.request(path, method="POST", body=data, headers=headers, source=source)


# --- the files themselves ----------------------------------------------------------------------------


def test_the_nginx_snippet_made_by_the_app_is_the_shipped_one(deployment):
    """DEPLOY.md makes the snippet with `flask security-headers`; with the default htmx URL it is deploy/'s file."""
    assert "FLASK_HTMX_URL" not in deployment.env
    assert deployment.security_headers == (harness.DEPLOY / "nginx" / "security-headers.conf").read_text()
    assert "test is successful" in deployment.nginx_test_output
    assert "[warn]" not in deployment.nginx_test_output, deployment.nginx_test_output


# --- gunicorn behind its socket ---------------------------------------------------------------------------


def listening_tcp_inodes() -> set[str]:
    """Socket inodes of every TCP socket in LISTEN state on the machine."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if os.path.exists(table):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                if fields[3] == "0A":
                    inodes.add(fields[9])
    return inodes


def socket_inodes(pid: int) -> set[str]:
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        target = os.readlink(f"/proc/{pid}/fd/{fd}") if os.path.exists(f"/proc/{pid}/fd/{fd}") else ""
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    return inodes


def test_gunicorn_listens_only_on_the_socket_that_only_nginx_user_may_open(deployment):
    """No TCP port for a local user to tie up or to forge X-Forwarded-For on; the socket is nginx's user's alone."""
    master = deployment.process("gunicorn").popen.pid
    workers = [int(pid) for pid in Path(f"/proc/{master}/task/{master}/children").read_text().split()]
    assert len(workers) == 2
    for pid in (master, *workers):
        assert socket_inodes(pid) & listening_tcp_inodes() == set(), f"process {pid} listens on TCP"
    unit = harness.socket_unit()
    info = os.stat(deployment.socket)
    assert oct(info.st_mode & 0o777) == oct(int(unit["SocketMode"], 8)) == oct(0o600)
    require_tool(os.geteuid() == 0, "root (to own the socket as www-data and connect as another user)")
    assert info.st_uid == pwd.getpwnam(unit["SocketUser"]).pw_uid == pwd.getpwnam("www-data").pw_uid
    connect = "import socket, sys; socket.socket(socket.AF_UNIX).connect(sys.argv[1])"
    # The system's Python: the test's own may live where nobody cannot enter.
    as_nobody = subprocess.run(
        ["/usr/bin/python3", "-c", connect, str(deployment.socket)],
        user="nobody",
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert as_nobody.returncode != 0 and "PermissionError" in as_nobody.stderr, as_nobody


def gunicorn_alone(deployment, tmp_path, env: dict, pass_fds=(), command_prefix=()):
    """deploy/gunicorn.conf.py started by hand, as an operator might; returns the process (running or not)."""
    command = [*command_prefix, str(harness.VENV_BIN / "gunicorn"), "-c", "deploy/gunicorn.conf.py", "app:create_app()"]
    with open(tmp_path / "gunicorn.log", "wb") as log:
        return subprocess.Popen(
            command,
            cwd=ROOT,
            env={**deployment.env, **env},
            stdout=log,
            stderr=subprocess.STDOUT,
            pass_fds=pass_fds,
            start_new_session=True,
        )


def stopped(process, timeout: float = 20) -> int | None:
    try:
        return process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, 9)
        process.wait(timeout=10)
        return None


@pytest.mark.parametrize("how", ["bind", "handed over"])
def test_production_gunicorn_refuses_tcp(deployment, tmp_path, how):
    """A TCP address, by RSCT_BIND or as the socket systemd hands over, stops gunicorn before it serves."""
    port = harness.free_port()
    if how == "bind":
        process = gunicorn_alone(deployment, tmp_path, {"RSCT_BIND": f"127.0.0.1:{port}"})
    else:
        listener = socket.create_server(("127.0.0.1", port))
        process = gunicorn_alone(
            deployment,
            tmp_path,
            {},
            pass_fds=(listener.fileno(),),
            command_prefix=(sys.executable, "-c", harness.HAND_OVER, str(listener.fileno())),
        )
        listener.close()
    assert stopped(process) == 3
    lines = (tmp_path / "gunicorn.log").read_text().strip().splitlines()
    assert lines[-1].startswith("Configuration error: gunicorn would listen on TCP 127.0.0.1")
    assert "Booting worker" not in "\n".join(lines)


def test_a_benchmark_may_allow_tcp_by_setting(deployment, tmp_path):
    port = harness.free_port()
    process = gunicorn_alone(deployment, tmp_path, {"RSCT_BIND": f"127.0.0.1:{port}", "FLASK_ALLOW_TCP_BIND": "true"})
    try:
        deadline = time.monotonic() + harness.START_SECONDS
        status = None
        while status is None and time.monotonic() < deadline and process.poll() is None:
            try:
                status = harness.http_request(port, "/healthz", host="localhost", timeout=2)[0].status
            except OSError:
                time.sleep(0.1)
        assert status == 200, (tmp_path / "gunicorn.log").read_text()
    finally:
        if process.poll() is None:
            os.killpg(process.pid, 15)
        stopped(process)


def hidden_fields(page: str) -> dict:
    fields = {}
    for tag in re.findall(r"<input[^>]*>", page):
        name, value, kind = (re.search(rf'{attr}="([^"]*)"', tag) for attr in ("name", "value", "type"))
        if kind and kind.group(1) == "hidden" and name:
            fields[name.group(1)] = html.unescape(value.group(1)) if value else ""
    return fields


def test_every_page_and_the_form_through_the_socket_and_a_forged_forwarded_for_changes_nothing(deployment):
    """Without JavaScript: every page, then the form, sent with a forged X-Forwarded-For; the limit counts the
    address nginx saw, and the office gets the email."""
    for path, title in PAGES.items():
        response, body = deployment.request(path)
        assert response.status == 200 and title in body.decode(), path
    source, forged = "127.0.0.9", "198.51.100.7"
    response, page = deployment.request("/contact", source=source)
    cookie = response.getheader("Set-Cookie").split(";")[0]
    fields = {**hidden_fields(page.decode()), "name": "Socket Test", "contact_method": "call", "phone": "203 555 0148"}
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "Cookie": cookie,
        "X-Forwarded-For": forged,
        "X-Real-IP": forged,
        "Forwarded": f"for={forged}",
    }
    response, _ = deployment.request(
        "/contact", method="POST", body=urlencode(fields).encode(), headers=headers, source=source
    )
    assert response.status == 303, response.status
    assert response.getheader("Location").endswith("/contact/thanks")
    cookie = (response.getheader("Set-Cookie") or cookie).split(";")[0]  # the session now holds the reference
    thanks, page = deployment.request("/contact/thanks", headers={"Cookie": cookie}, source=source)
    reference = REFERENCE.search(page.decode()).group(0)

    database = os.path.join(deployment.env["FLASK_INSTANCE_PATH"], "rsct.sqlite3")
    with sqlite3.connect(database) as db:
        counted = {row[0] for row in db.execute("SELECT client FROM rate_events")}
    secret = deployment.env["FLASK_SECRET_KEY"]
    assert ratelimit.client_key(secret, source) in counted
    assert ratelimit.client_key(secret, forged) not in counted

    deadline = time.monotonic() + MAIL_SECONDS
    while time.monotonic() < deadline and not any(reference.encode() in raw for raw in deployment.inbox.messages):
        time.sleep(0.1)
    assert any(reference.encode() in raw for raw in deployment.inbox.messages), deployment.diagnostics()


# --- a visitor in a real browser -----------------------------------------------------------------------


@pytest.mark.browser
def test_a_visitor_sends_the_form_through_nginx_and_the_office_gets_the_email(deployment, browser):
    """Every page and the form over HTTPS in Chromium: no console error, no CSP violation; the email arrives."""
    context = new_context(browser, HTMX_URL, site=deployment.url + "/", ignore_https_errors=True)
    problems = context.problems
    try:
        page = context.new_page()
        for path in PAGES:
            response = page.goto(deployment.url + path, wait_until="networkidle")
            assert response.status == 200, path
            expected = "object" if path == "/contact" else "undefined"  # htmx only where it is used
            assert page.evaluate("typeof htmx") == expected, path
            protocol = page.evaluate("performance.getEntriesByType('navigation')[0].nextHopProtocol")
            assert protocol == "h2", f"{path} came over {protocol}, not HTTP/2"

        page.goto(deployment.url + "/contact", wait_until="networkidle")
        page.get_by_label("Name", exact=True).fill("Deployment Test")
        # Each field check is let finish first: a click on "Send request" aborts one in flight (by design,
        # hx-sync), and htmx logs that abort as a console error, which this test does not allow.
        with page.expect_response(lambda r: "/contact/check/contact_method" in r.url, timeout=SHORT) as check:
            page.get_by_role("radiogroup", name="How should we reach you?").get_by_role(
                "radio", name="Phone call", exact=True
            ).check()
        assert check.value.status == 200
        phone = page.get_by_label("Phone", exact=True)
        phone.fill("203 555 0147")
        with page.expect_response(lambda r: "/contact/check/phone" in r.url, timeout=SHORT) as check:
            phone.press("Tab")
        assert check.value.status == 200
        page.get_by_role("button", name="Send request").click()
        reference_text = page.locator(".reference")
        expect(reference_text).to_have_text(REFERENCE, timeout=SHORT)
        reference = reference_text.inner_text()

        deadline = time.monotonic() + MAIL_SECONDS
        subjects = []
        while time.monotonic() < deadline:
            subjects = [
                str(email.message_from_bytes(raw, policy=policy.default)["Subject"])
                for raw in deployment.inbox.messages
            ]
            if any(reference in subject for subject in subjects):
                break
            time.sleep(0.1)
        assert any(reference in subject for subject in subjects), (
            f"no email with {reference} within {MAIL_SECONDS:.0f} s (subjects: {subjects})\n" + deployment.diagnostics()
        )

        cookies = {cookie["name"]: cookie for cookie in context.cookies()}
        assert "__Host-session" in cookies, f"cookies set: {sorted(cookies)}"
        session = cookies["__Host-session"]
        assert (session["secure"], session["httpOnly"], session["sameSite"], session["path"]) == (
            True,
            True,
            "Lax",
            "/",
        ), session
        assert problems == [], "\n".join(problems)
    finally:
        context.close()


# --- nginx's answers -----------------------------------------------------------------------------------


def test_plain_http_is_redirected_to_https(deployment):
    response, _ = harness.http_request(deployment.http_port, "/contact?from=ad")
    assert response.status == 301
    assert response.getheader("Location") == f"{deployment.url}/contact?from=ad"
    assert response.headers.get_all("Server") == ["nginx"]


def test_certbot_challenges_are_answered_over_plain_http(deployment):
    challenge = deployment.root / "var" / "www" / "letsencrypt" / ".well-known" / "acme-challenge"
    challenge.mkdir(parents=True, exist_ok=True)
    harness.make_readable(deployment.root / "var" / "www" / "letsencrypt")
    (challenge / "token-123").write_text("token-123.key")
    os.chmod(challenge / "token-123", 0o644)
    response, body = harness.http_request(deployment.http_port, "/.well-known/acme-challenge/token-123")
    assert (response.status, body) == (200, b"token-123.key")


@pytest.mark.parametrize("kind", ["page", "not found", "static file", "health check"])
def test_every_answer_carries_each_security_header_exactly_once(deployment, kind):
    path = {"page": "/", "not found": "/no-such-page", "health check": "/healthz"}.get(kind) or stylesheet_path(
        deployment
    )
    response, _ = deployment.request(path)
    assert response.status == (404 if kind == "not found" else 200)
    assert security_header_problems(response) == []
    if kind == "static file":
        assert response.headers.get_all("Cache-Control") == ["public, max-age=31536000, immutable"]
        assert response.getheader("Content-Type", "").startswith("text/css")


@pytest.mark.usefixtures("curl")
@pytest.mark.parametrize("how", ["https-host", "http2-host", "tls-name", "http-host"])
def test_an_unknown_host_name_gets_no_answer(deployment, how):
    """The default servers close the connection unanswered, or refuse TLS before any certificate is shown."""
    if how == "https-host":
        with pytest.raises(http.client.RemoteDisconnected):
            deployment.request("/", headers={"Host": "attacker.example"})
    elif how == "http2-host":
        result = subprocess.run(
            [
                harness.CURL,
                "--silent",
                "--http2",
                "--cacert",
                str(deployment.cert),
                "--header",
                "Host: attacker.example",
                "--write-out",
                "%{http_code}",
                "--output",
                "/dev/null",
                deployment.url + "/",
            ],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert (result.returncode != 0, result.stdout) == (True, "000"), result
    elif how == "tls-name":
        context = ssl.create_default_context(cafile=str(deployment.cert))
        context.check_hostname = False
        with socket.create_connection(("127.0.0.1", deployment.https_port), timeout=10) as raw:
            with pytest.raises(ssl.SSLError, match="UNRECOGNIZED_NAME|HANDSHAKE_FAILURE|INTERNAL_ERROR"):
                context.wrap_socket(raw, server_hostname="attacker.example")
    else:
        with pytest.raises(http.client.RemoteDisconnected):
            harness.http_request(deployment.http_port, "/", host="127.0.0.1", headers={"Host": "attacker.example"})


def test_nginx_offers_only_forward_secret_aead_suites(deployment):
    """Mozilla's intermediate TLS: CBC suites are refused on TLS 1.2; GCM on 1.2 and TLS 1.3 are accepted."""

    def handshake(ciphers: str | None, version: ssl.TLSVersion) -> str:
        context = ssl.create_default_context(cafile=str(deployment.cert))
        context.minimum_version = context.maximum_version = version
        if ciphers:
            context.set_ciphers(ciphers)
        with socket.create_connection(("127.0.0.1", deployment.https_port), timeout=10) as raw:
            with context.wrap_socket(raw, server_hostname="localhost") as tls:
                return tls.cipher()[0]

    for cbc in ("ECDHE-ECDSA-AES128-SHA", "ECDHE-ECDSA-AES256-SHA384", "ECDHE-ECDSA-AES128-SHA256"):
        with pytest.raises(ssl.SSLError, match="HANDSHAKE_FAILURE"):
            handshake(cbc, ssl.TLSVersion.TLSv1_2)
    assert handshake("ECDHE-ECDSA-AES128-GCM-SHA256", ssl.TLSVersion.TLSv1_2) == "ECDHE-ECDSA-AES128-GCM-SHA256"
    assert handshake(None, ssl.TLSVersion.TLSv1_3).startswith("TLS_")


def raw_https(deployment, data: bytes) -> http.client.HTTPResponse:
    """Bytes no HTTP client would send, over TLS; returns nginx's parsed answer."""
    context = ssl.create_default_context(cafile=str(deployment.cert))
    with socket.create_connection(("127.0.0.1", deployment.https_port), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname="localhost") as tls:
            tls.sendall(data)
            response = http.client.HTTPResponse(tls)
            response.begin()
            response.body = response.read()
            return response


@pytest.mark.usefixtures("curl")
@pytest.mark.parametrize(
    "kind",
    [
        "malformed",
        "no host",
        "uri too long",
        "header too large",
        "post to a file",
        "body over 1m",
        "body over 1m over http/2",
        "internal page asked for",
    ],
)
def test_nginx_own_answers_carry_each_security_header_once(deployment, kind):
    """What nginx answers itself, before or instead of the app, has the headers, and mostly the phone number."""
    long = "a" * 9000
    huge = b"message=" + b"y" * (1024 * 1024 + 1)
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    if kind == "malformed":
        response = raw_https(deployment, b"GARBAGE\r\n\r\n")
    elif kind == "no host":
        response = raw_https(deployment, b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n")
    elif kind == "uri too long":
        response, response.body = deployment.request("/" + long)
    elif kind == "header too large":
        response, response.body = deployment.request("/", headers={"X-Long": long})
    elif kind == "post to a file":
        response, response.body = deployment.request("/static/css/site.css", method="POST", body=b"a=b", headers=form)
    elif kind == "body over 1m":
        response, response.body = deployment.request(
            "/contact", method="POST", body=huge, headers=form, source="127.0.0.10"
        )
    elif kind == "body over 1m over http/2":
        response, response.body = harness.curl_request(
            deployment, "/contact", http2=True, method="POST", body=huge, headers=form, source="127.0.0.11"
        )
        assert response.protocol == "2"
    else:
        response, response.body = deployment.request("/_error.html")
    expected = {
        "malformed": 400,
        "no host": 400,
        "uri too long": 414,
        "header too large": 400,
        "post to a file": 405,
        "internal page asked for": 404,
    }.get(kind, 413)
    assert response.status == expected
    assert security_header_problems(response) == []
    # nginx 1.22 cannot send its own page for a body too large on HTTP/2 (it would read the body again):
    # its plain 413 still has the headers. No browser sends the form a body that size.
    if kind not in ("no host", "internal page asked for", "body over 1m over http/2"):
        assert OFFICE_PHONE in response.body.decode()
        assert response.headers.get_all("Cache-Control") == ["no-store"]


def test_text_is_compressed(deployment):
    path = stylesheet_path(deployment)
    response, body = deployment.request(path, headers={"Accept-Encoding": "gzip"})
    assert response.status == 200
    assert response.getheader("Content-Encoding") == "gzip"
    assert "Accept-Encoding" in response.getheader("Vary", "")
    assert gzip.decompress(body) == (ROOT / "static" / "css" / "site.css").read_bytes()


# --- nginx's page cache: only the listed pages, with the app's own headers --------------------------------

INFO_PAGES = [path for path in PAGES if path != "/contact"]


def cached_keys(deployment) -> set[str]:
    """The keys of every answer nginx's page cache holds (each cache file names its key in its header)."""
    keys = set()
    for path in deployment.cache.rglob("*"):
        if path.is_file():
            match = re.search(rb"\nKEY: ([^\n]*)\n", path.read_bytes()[:4096])
            keys.add(match.group(1).decode() if match else f"?{path.name}")
    return keys


def test_nginx_keeps_only_the_listed_pages(deployment):
    made_up = "/" + secrets.token_hex(6)
    for path in [*PAGES, "/contact/thanks", made_up, f"/?{made_up[1:]}=1", "/healthz", "/sitemap.xml", "/favicon.ico"]:
        deployment.request(path)
    deployment.request("/", method="POST", body=b"x=1", headers={"Content-Type": "application/x-www-form-urlencoded"})
    deadline = time.monotonic() + 5  # nginx writes a cache file as the answer ends
    while time.monotonic() < deadline and len(cached_keys(deployment)) < len(INFO_PAGES):
        time.sleep(0.05)
    assert cached_keys(deployment) == {f"localhost{path}" for path in INFO_PAGES}


@pytest.mark.parametrize("path", INFO_PAGES)
def test_a_cached_page_has_the_apps_headers_and_answers_304_head_and_405(deployment, path):
    deployment.request(path)  # now in the cache
    from_cache, body = deployment.request(path)
    from_app, app_body = harness.unix_request(deployment.socket, path)
    assert from_cache.status == 200 and body == app_body
    assert security_header_problems(from_cache) == []
    # Only what nginx adds to every answer it proxies, cached or not (and gzip's Vary) may differ.
    assert from_cache.getheader("Vary") == "Accept-Encoding"
    hidden = {"X-Accel-Expires", "Date", "Server", "Connection", "Strict-Transport-Security", "Vary"}
    app_headers = {name: value for name, value in from_app.getheaders() if name not in hidden}
    cache_headers = {name: value for name, value in from_cache.getheaders() if name not in hidden}
    assert cache_headers == app_headers
    assert "X-Accel-Expires" not in dict(from_cache.getheaders())

    again, again_body = deployment.request(path, headers={"If-None-Match": from_cache.getheader("ETag")})
    assert again.status == 304 and again_body == b""
    head, head_body = deployment.request(path, method="HEAD")
    assert head.status == 200 and head_body == b"" and head.getheader("ETag") == from_cache.getheader("ETag")
    post, _ = deployment.request(path, method="POST", body=b"", headers={"Content-Length": "0"})
    assert post.status == 405
    assert "GET" in post.getheader("Allow")
    assert security_header_problems(post) == []


def test_the_favicon_comes_with_a_long_cache(deployment):
    response, body = deployment.request("/favicon.ico")
    assert response.status == 200
    assert body == (ROOT / "static" / "favicon.ico").read_bytes()
    assert "max-age=31536000" in response.getheader("Cache-Control")
    assert security_header_problems(response) == []


def test_a_burst_of_form_posts_gets_nginx_friendly_page(deployment):
    """Six posts a minute with a burst of five: the rest get 429 and the page with the phone number."""
    answers = [form_post(deployment, source="127.0.0.2") for _ in range(15)]
    statuses = [response.status for response, _ in answers]
    limited = [(response, body.decode()) for response, body in answers if response.status == 429]
    assert limited, f"no 429 in {statuses}"
    assert statuses.count(429) >= 15 - 6, statuses
    response, page = limited[-1]
    assert "Please wait a few minutes" in page  # templates/429.html, shown through error_page
    assert OFFICE_PHONE in page
    assert security_header_problems(response) == []


def test_a_burst_of_spanish_form_posts_counts_in_the_same_zone_and_is_answered_in_spanish(deployment):
    answers = [form_post(deployment, path="/es/contacto", source="127.0.0.40") for _ in range(15)]
    limited = [(response, body.decode()) for response, body in answers if response.status == 429]
    assert len(limited) >= 15 - 6, [response.status for response, _ in answers]
    response, page = limited[-1]
    assert '<html lang="es">' in page and "Por favor, espere unos minutos" in page and OFFICE_PHONE in page
    assert security_header_problems(response) == []


def test_a_burst_of_htmx_posts_gets_the_message_above_the_button(deployment):
    answers = [form_post(deployment, source="127.0.0.3", htmx=True) for _ in range(15)]
    limited = [(response, body.decode()) for response, body in answers if response.status == 429]
    assert limited, f"no 429 in {[response.status for response, _ in answers]}"
    response, fragment = limited[-1]
    assert response.getheader("HX-Retarget") == "#form-status"
    assert "paused it for a few minutes" in fragment and OFFICE_PHONE in fragment
    assert "<html" not in fragment
    assert security_header_problems(response) == []


def test_the_field_checks_are_never_throttled(deployment):
    statuses = [
        form_post(
            deployment,
            source="127.0.0.4",
            path="/contact/check/phone",
            fields={"contact_method": "call", "phone": "203 555 0147"},
        )[0].status
        for _ in range(30)
    ]
    assert statuses == [200] * 30


@pytest.mark.usefixtures("curl")
@pytest.mark.parametrize("size", [40_000, 70_000])
@pytest.mark.parametrize("htmx", [False, True], ids=["page", "htmx"])
@pytest.mark.parametrize("http2", [False, True], ids=["http1.1", "http2"])
def test_a_long_form_gets_the_app_own_413(deployment, size, htmx, http2):
    """Anything a browser can send reaches the app, which answers with its page (or message) and the phone number."""
    body = urlencode({"name": "x", "message": "y" * size}).encode()
    headers = {"Content-Type": "application/x-www-form-urlencoded", **({"HX-Request": "true"} if htmx else {})}
    source = f"127.0.0.{20 + 4 * http2 + 2 * htmx + (size > 50_000)}"  # one visitor each, under nginx's limit
    response, answer = harness.curl_request(
        deployment, "/contact", http2=http2, method="POST", body=body, headers=headers, source=source
    )
    assert response.protocol == ("2" if http2 else "1.1")
    assert response.status == 413
    assert OFFICE_PHONE in answer.decode()
    assert security_header_problems(response) == []
    if htmx:
        assert response.headers.get("HX-Retarget") == "#form-status"
    else:
        assert "<html" in answer.decode() and "too long" in answer.decode().lower()


def hsts_values(deployment, path: str) -> list[str]:
    response, _ = deployment.request(path)
    return response.headers.get_all("Strict-Transport-Security") or []


def reload_nginx(deployment, path: str, expected: list[str]) -> None:
    os.kill(deployment.process("nginx").popen.pid, signal.SIGHUP)
    harness.wait_until(lambda: hsts_values(deployment, path) == expected, "nginx after reload", deployment, timeout=10)


def test_deploy_md_lines_that_drop_include_subdomains_work(deployment):
    """DEPLOY.md's two sed lines, run on the installed snippets: every answer then has one HSTS without it."""
    section = DEPLOY_MD.split("**HSTS.**", 1)[1].split("```sh", 1)[1].split("```", 1)[0]
    commands = section.replace("\\\n", "").replace("/etc/nginx/snippets/", f"{deployment.snippets}/")
    commands = "\n".join(line for line in commands.splitlines() if line.startswith("sed "))
    assert commands.count("sed -i") == 2, section
    names = ("rsct-security-headers.conf", "rsct-proxy.conf")
    saved = {name: (deployment.snippets / name).read_text() for name in names}
    try:
        subprocess.run(["sh", "-ec", commands], check=True, timeout=30)
        subprocess.run(["sh", "-ec", commands], check=True, timeout=30)  # safe to run twice
        reload_nginx(deployment, "/", ["max-age=63072000"])
        for path in ("/", "/no-such-page", stylesheet_path(deployment), "/_error.html"):
            assert hsts_values(deployment, path) == ["max-age=63072000"], path
    finally:
        for name, text in saved.items():
            (deployment.snippets / name).write_text(text)
        reload_nginx(deployment, "/", ["max-age=63072000; includeSubDomains"])


# --- graded from outside -------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/", "/contact"])
def test_the_mdn_http_observatory_grades_the_site_a_plus(deployment, path):
    node = shutil.which("node")
    require_tool(node is not None, "Node.js (for the MDN HTTP Observatory)")
    require_tool(
        (harness.OBSERVATORY / "src" / "retriever" / "retriever.js").exists(),
        "node_modules/@mdn/mdn-http-observatory (run: npm ci --ignore-scripts)",
    )
    result = harness.observatory_scan(deployment, node, path=path)
    scores = "\n".join(
        f"  {name}: {test['result']} ({test['scoreModifier']:+d})" for name, test in result.get("tests", {}).items()
    )
    assert result.get("scan", {}).get("grade") == "A+", f"{result.get('scan') or result}\n{scores}"
    assert result["scan"]["testsFailed"] == 0, scores
    assert result["tests"]["redirection"]["result"] == "redirection-to-https", scores
    if path == "/contact":
        assert result["tests"]["cookies"]["result"] == "cookies-secure-with-httponly-sessions-and-samesite", scores


# --- the app down --------------------------------------------------------------------------------------


def test_when_the_app_is_down_nginx_shows_the_phone_number(deployment):
    """Last: gunicorn is stopped, nginx answers 502 with its static page; gunicorn is started again after."""
    deployment.request("/")  # in nginx's page cache
    harness.stop_gunicorn(deployment)
    try:
        # The information pages nginx holds still show, with the phone number.
        response, page = deployment.request("/")
        assert response.status == 200 and OFFICE_PHONE in page.decode()
        for path in ("/contact/thanks", "/contact", "/healthz"):
            response, page = deployment.request(path)
            assert response.status == 502, path
            assert OFFICE_PHONE in page.decode(), path
            assert security_header_problems(response) == [], path
            assert response.headers.get_all("Cache-Control") == ["no-store"], path
        css, _ = deployment.request("/static/css/site.css")  # the page's stylesheet, linked without a hash
        assert css.status == 200
    finally:
        harness.start_gunicorn(deployment)
        harness.wait_until(
            lambda: deployment.request("/healthz", timeout=2)[0].status == 200, "gunicorn again", deployment
        )


# --- systemd ---------------------------------------------------------------------------------------------


def test_systemd_units_verify(tmp_path):
    """systemd-analyze verify on the units with their folders made under tmp_path (no nginx needed)."""
    analyze = shutil.which("systemd-analyze")
    require_tool(analyze is not None, "systemd-analyze (apt-get install systemd)")
    srv = tmp_path / "srv" / "rsct"
    (srv / "instance").mkdir(parents=True)
    (srv / "app").symlink_to(ROOT)
    (srv / "venv").symlink_to(ROOT / ".venv")
    env_file = tmp_path / "etc" / "rsct" / "rsct.env"
    env_file.parent.mkdir(parents=True)
    env_file.write_text((harness.DEPLOY / "rsct.env.example").read_text())
    units = tmp_path / "units"
    units.mkdir()
    shipped = sorted((harness.DEPLOY / "systemd").iterdir())
    for unit in shipped:
        text = unit.read_text()
        if unit.suffix == ".service" and "@" not in unit.name:
            assert "/srv/rsct/venv/bin/" in text and "EnvironmentFile=/etc/rsct/rsct.env" in text, unit.name
            assert "deploy/check_env.py /etc/rsct/rsct.env" in text, f"{unit.name} does not check its environment file"
        (units / unit.name).write_text(text.replace("/etc/rsct/rsct.env", str(env_file)).replace("/srv/rsct", str(srv)))
    result = subprocess.run(
        [analyze, "verify", *(str(units / unit.name) for unit in shipped)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    about_ours = [line for line in (result.stdout + result.stderr).splitlines() if "rsct" in line]
    assert (result.returncode, about_ours) == (0, []), result.stdout + result.stderr
