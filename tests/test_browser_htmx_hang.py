"""A CDN that never answers for htmx leaves no page loading: site.js runs, and the form still sends."""

import pytest
from playwright.sync_api import expect

from helpers import PAGES, new_context, stored_inquiries

pytestmark = pytest.mark.browser


@pytest.fixture
def hanging(browser, app):
    """A browser whose request for htmx is never answered (the route is held: not fulfilled, not aborted)."""
    ctx = new_context(browser, app.config["HTMX_URL"])
    ctx.held = []
    ctx.route(app.config["HTMX_URL"], lambda route: ctx.held.append(route))
    yield ctx
    ctx.close()


def test_every_page_finishes_loading_and_only_the_contact_page_asks_for_htmx(hanging, live_server):
    page = hanging.new_page()
    for path in PAGES:
        if path != "/contact":
            page.goto_without_htmx(live_server + path, timeout=10_000)  # the load event: a hang times out here
    assert hanging.held == []
    page.goto_without_htmx(live_server + "/contact", timeout=10_000)
    assert page.evaluate("document.readyState") == "complete"
    # site.js ran (it is what asks for htmx, after the load event), and htmx is still on its way.
    assert len(hanging.held) == 1
    assert page.evaluate("typeof htmx") == "undefined"


def test_the_form_still_sends_while_htmx_hangs(hanging, live_server, app):
    page = hanging.new_page()
    page.goto_without_htmx(live_server + "/contact", timeout=10_000)
    page.get_by_label("Name", exact=True).fill("Sam")
    page.locator("input[name=contact_method][value=call]").check()
    page.get_by_label("Phone", exact=True).fill("203 555 0147")
    page.locator("input[name=leave_message][value=no]").check()
    with page.expect_navigation():
        page.get_by_role("button", name="Send request").click()
    assert page.url == live_server + "/contact/thanks"
    expect(page.locator(".reference")).to_be_visible()
    assert len(stored_inquiries(app)) == 1
