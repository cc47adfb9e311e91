"""The shipped deployment end to end: deploy/'s nginx site (TLS, redirects, headers, throttling, body limit),
gunicorn with deploy/gunicorn.conf.py, the outbox sender and a real SMTP server, all on loopback, driven by
real Chromium, plain HTTPS clients and the MDN HTTP Observatory; and systemd-analyze on deploy/systemd.

How it is started is in deploy_harness.py. The tests run in file order (pytest's default); the ones that
would disturb the others use their own client address (127.0.0.x) or put back what they changed.
"""

import email
import gzip
import os
import re
import shutil
import subprocess
import time
from email import policy
from urllib.parse import urlencode

import pytest
from playwright.sync_api import expect

from config import HTMX_URL

import deploy_harness as harness
from helpers import HTMX_FILE, PAGES, ROOT, require_tool

OFFICE_PHONE = "(203) 421-6242"
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


# --- a visitor in a real browser -----------------------------------------------------------------------


@pytest.mark.browser
def test_a_visitor_sends_the_form_through_nginx_and_the_office_gets_the_email(deployment, browser):
    """Every page and the form over HTTPS in Chromium: no console error, no CSP violation; the email arrives."""
    require_tool(HTMX_FILE.exists(), "node_modules/htmx.org (run: npm ci --ignore-scripts)")

    context = browser.new_context(ignore_https_errors=True)
    problems = []
    try:
        context.add_init_script("""document.addEventListener('securitypolicyviolation', e =>
            console.error('CSP violation: ' + e.violatedDirective + ' ' + e.blockedURI));""")

        def outside(route):
            problems.append(f"request left the machine: {route.request.url}")
            route.abort()

        site = deployment.url + "/"
        context.route("**/*", lambda route: route.continue_() if route.request.url.startswith(site) else outside(route))
        context.route(
            HTMX_URL,
            lambda route: route.fulfill(
                path=str(HTMX_FILE),
                content_type="text/javascript; charset=utf-8",
                headers={"Access-Control-Allow-Origin": "*"},
            ),
        )
        context.on(
            "console",
            lambda msg: (
                problems.append(f"console {msg.type}: {msg.text}") if msg.type in ("error", "warning") else None
            ),
        )
        context.on("weberror", lambda error: problems.append(f"page error: {error.error}"))
        context.on("requestfailed", lambda request: problems.append(f"failed request: {request.url} {request.failure}"))

        page = context.new_page()
        for path in PAGES:
            response = page.goto(deployment.url + path, wait_until="networkidle")
            assert response.status == 200, path
            assert page.evaluate("typeof htmx") == "object", f"htmx did not load on {path}"
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


def test_an_unknown_host_name_is_refused(deployment):
    """nginx passes any Host on to the app (its only server on the port); the app's TRUSTED_HOSTS refuses it."""
    response, _ = deployment.request("/", headers={"Host": "attacker.example"})
    assert response.status == 400
    assert security_header_problems(response) == []


def test_text_is_compressed(deployment):
    path = stylesheet_path(deployment)
    response, body = deployment.request(path, headers={"Accept-Encoding": "gzip"})
    assert response.status == 200
    assert response.getheader("Content-Encoding") == "gzip"
    assert "Accept-Encoding" in response.getheader("Vary", "")
    assert gzip.decompress(body) == (ROOT / "static" / "css" / "site.css").read_bytes()


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


@pytest.mark.parametrize(
    "path, htmx", [("/contact", False), ("/contact", True), ("/", False)], ids=["form", "form-htmx", "other-page"]
)
def test_a_body_over_64_kib_gets_the_friendly_413(deployment, path, htmx):
    """nginx refuses it unread (the app would say 405 to a POST to /, and refuses over 32 KiB itself)."""
    body = urlencode({"name": "x", "message": "y" * (65 * 1024)}).encode()
    response, answer = form_post(deployment, source="127.0.0.5", htmx=htmx, path=path, body=body)
    assert response.status == 413
    assert OFFICE_PHONE in answer.decode()
    assert security_header_problems(response) == []
    if htmx:
        assert response.getheader("HX-Retarget") == "#form-status"
    else:
        assert "<html" in answer.decode()


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
    harness.stop_gunicorn(deployment)
    try:
        for path in ("/", "/contact", "/healthz"):
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
