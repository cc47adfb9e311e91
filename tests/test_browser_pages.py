"""Every page in real Chromium: loads cleanly, fits a phone screen, passes axe-core and the Nu checker."""
import base64
import hashlib

import pytest

from conftest import HTMX_FILE, PAGES

pytestmark = pytest.mark.browser
VIEWPORTS = [{"width": 360, "height": 740}, {"width": 1280, "height": 800}]


def test_htmx_file_matches_the_integrity_attribute(page, live_server):
    page.goto(live_server + "/")
    integrity = page.get_attribute("script[src*='htmx']", "integrity")
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
        assert page.evaluate("typeof htmx") == "object", f"htmx did not load on {path}"
    assert context.problems == []


def test_nothing_scrolls_sideways_at_320px(context, live_server):
    page = context.new_page()
    page.set_viewport_size({"width": 320, "height": 640})
    for path in PAGES:
        page.goto(live_server + path)
        overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
        assert overflow <= 0, f"{path} scrolls sideways by {overflow}px at 320px"


def test_axe_finds_no_wcag_violations_on_any_page(page, live_server, axe_violations):
    for path in PAGES:
        page.goto(live_server + path)
        assert axe_violations(page) == [], path


def test_nu_checker_finds_no_errors_on_any_page(client, html_errors):
    documents = {path.strip("/").replace("/", "_") or "index": client.get(path).text for path in PAGES}
    documents["not_found"] = client.get("/no-such-page").text
    documents["thanks"] = client.get("/contact/thanks").text
    assert html_errors(documents) == []
