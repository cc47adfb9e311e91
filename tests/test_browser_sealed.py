"""Sealed mode in real Chromium: the form works as always, with htmx and without JavaScript, and the server
keeps only the message encrypted for the office."""

import sqlite3

import pytest
from playwright.sync_api import expect

from rsct import smime

from helpers import new_context

pytestmark = pytest.mark.browser
SHORT = 5000  # ms
TYPED = {"name": "Qzxbrowsersealed Lee", "phone": "203 555 0147"}


@pytest.fixture(scope="module")
def office_cert(tmp_path_factory):
    folder = tmp_path_factory.mktemp("office")
    _, cert = smime.new_office_identity(str(folder / "id"), "office@rsct.example.org", "a long test password")
    return cert


@pytest.fixture
def app(make_app, office_cert):
    return make_app(SMIME_OFFICE_CERT=office_cert)


def fill_and_send(page):
    page.get_by_label("Name", exact=True).fill(TYPED["name"])
    page.get_by_role("radiogroup", name="How should we reach you?").get_by_role("radio", name="Phone call").check()
    page.get_by_label("Phone", exact=True).fill(TYPED["phone"])
    page.get_by_role("button", name="Send request").click()


def stored(app) -> list[tuple]:
    with sqlite3.connect(app.config["DATABASE"]) as db:
        return db.execute("SELECT reference, fields, sealed FROM inquiries").fetchall()


def assert_only_sealed(app, reference):
    (row,) = stored(app)
    assert row[0] == reference and row[1] is None and row[2]
    assert TYPED["name"].encode() not in row[2]


def test_with_htmx_the_confirmation_shows_the_number_in_full_and_only_sealed_bytes_are_kept(page, live_server, app):
    page.goto(live_server + "/contact")
    fill_and_send(page)
    heading = page.get_by_role("heading", name="Thank you. We have your request.")
    expect(heading).to_be_focused(timeout=SHORT)
    expect(page).to_have_url(live_server + "/contact/thanks")
    expect(page.locator(".way-back")).to_have_text("(203) 555-0147")
    assert_only_sealed(app, page.locator(".reference").inner_text())
    assert page.context.problems == []


def test_without_javascript_the_thank_you_page_follows_with_the_contact_masked(browser, live_server, app):
    context = new_context(browser, app.config["HTMX_URL"], java_script_enabled=False)
    try:
        page = context.new_page()
        page.goto(live_server + "/contact")
        with page.expect_navigation():
            fill_and_send(page)
        assert page.url == live_server + "/contact/thanks"
        expect(page.get_by_role("heading", name="Thank you. We have your request.")).to_be_visible()
        # The server cannot read a sealed request back, so even the first page shows the number masked.
        expect(page.locator(".way-back")).to_have_text("(203) \u00b7\u00b7\u00b7-0147")
        assert_only_sealed(app, page.locator(".reference").inner_text())
        assert context.problems == []
    finally:
        context.close()
