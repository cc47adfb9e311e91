"""Every page in real Chromium: loads cleanly, fits a phone screen, passes axe-core and the Nu checker."""

import base64
import hashlib

import pytest

from helpers import HTMX_FILE, PAGES

pytestmark = pytest.mark.browser
VIEWPORTS = [{"width": 360, "height": 740}, {"width": 1280, "height": 800}]


def test_htmx_file_matches_the_integrity_attribute(page, live_server):
    page.goto(live_server + "/contact")
    integrity = page.evaluate("document.querySelector(\"script[src*='htmx']\").integrity")
    digest = base64.b64encode(hashlib.sha384(HTMX_FILE.read_bytes()).digest()).decode()
    assert integrity == "sha384-" + digest
    assert page.evaluate("typeof htmx !== 'undefined' && htmx.version") == "2.0.11"
    assert page.evaluate("htmx.config.allowEval") is False


@pytest.mark.parametrize("viewport", VIEWPORTS, ids=["phone", "desktop"])
def test_every_page_loads_without_errors_or_failed_requests(context, live_server, viewport):
    page = context.new_page()
    page.set_viewport_size(viewport)
    for path in PAGES:
        response = page.goto(live_server + path, wait_until="networkidle")
        assert response.status == 200, path
        # htmx only where it is used (the contact page), and there it loads.
        expected = "object" if path == "/contact" else "undefined"
        assert page.evaluate("typeof htmx") == expected, path
    assert context.problems == []


def test_nothing_scrolls_sideways_at_320px(context, live_server):
    page = context.new_page()
    page.set_viewport_size({"width": 320, "height": 640})
    for path in PAGES:
        page.goto(live_server + path)
        overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
        assert overflow <= 0, f"{path} scrolls sideways by {overflow}px at 320px"


@pytest.mark.parametrize("viewport", VIEWPORTS, ids=["phone", "desktop"])
def test_axe_finds_no_violations_on_any_page(page, live_server, axe_violations, viewport):
    page.set_viewport_size(viewport)
    for path in PAGES:
        page.goto(live_server + path)
        assert axe_violations(page) == [], path


ERROR_PAGES = ["/no-such-page", "/errors/rate-limited", "/errors/too-large", "/contact/thanks"]


def notice_states(make_app) -> dict:
    """The form as a plain browser sees it when something went wrong: each keeps the visitor's words."""
    data = {"name": "Sam", "contact_method": "call", "phone": "203 555 0147", "leave_message": "no"}
    csrf = make_app(WTF_CSRF_ENABLED=True).test_client()
    limited = make_app(RATE_LIMIT_COUNT=1).test_client()
    limited.post("/contact", data=data)
    broken = make_app()
    broken.config["DATABASE"] = "/proc/rsct-nowhere.sqlite3"
    crashing = make_app()
    crashing.testing, crashing.config["PROPAGATE_EXCEPTIONS"] = False, False
    crashing.add_url_rule("/boom", "boom", lambda: 1 / 0)
    return {
        "csrf_expired": csrf.post("/contact", data={**data, "csrf_token": "old"}).text,
        "rate_limited": limited.post("/contact", data={**data, "message": "again"}).text,
        "storage_failed": broken.test_client().post("/contact", data=data).text,
        "server_error": crashing.test_client().get("/boom").text,
    }


def test_nu_checker_finds_no_errors_on_any_page(client, make_app, html_errors):
    documents = {path.strip("/").replace("/", "_") or "index": client.get(path).text for path in PAGES}
    documents.update({path.strip("/").replace("/", "_"): client.get(path).text for path in ERROR_PAGES})
    documents.update(notice_states(make_app))
    assert len(documents) == len(PAGES) + len(ERROR_PAGES) + 4
    assert html_errors(documents) == []


def test_axe_finds_no_violations_on_error_pages(page, live_server, axe_violations):
    for path in ERROR_PAGES:
        page.goto(live_server + path)
        assert axe_violations(page) == [], path
