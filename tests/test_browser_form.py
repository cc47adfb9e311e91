"""The call-back form in real Chromium: inline checks, errors, sending, failures, no JavaScript, accessibility.

Controls are found by the names visitors hear. Each test ends with an empty list of browser problems;
only entries that are by design (Chromium's console line for a 422, an aborted field check) or the
point of the test (a refused connection, a 500) are filtered out, each by an exact pattern.
"""

import contextlib
import json
import re
import sqlite3

import pytest
from playwright.sync_api import expect

from helpers import new_context

pytestmark = pytest.mark.browser
SHORT = 5000  # ms: every expectation is bounded
OFFICE_PHONE = "(203) 421-6242"
REFERENCE = re.compile(r"^RSCT-[23456789ABCDEFGHJKMNPQRSTVWXYZ]{6}$")
# A visitor's answers; non-ASCII, markup-like text and a line break must all come back unchanged.
ANSWERS = {
    "name": "José Ñúñez <b>",
    "method": "Phone call",
    "phone": "203 555 0147",
    "best_time": "Evening",
    "leave_message": "Yes",
    "for_whom": "Someone I care about",
    "message": "It's my brother & me.\nPlease call after 6.",
}


@pytest.fixture
def app(request, make_app):
    """The testing app; indirect parametrization passes setting overrides."""
    return make_app(**getattr(request, "param", {}))


# --- finding controls by what visitors hear ---------------------------------------------------------


def name_input(page):
    return page.get_by_label("Name", exact=True)


def method(page, label):
    return page.get_by_role("radiogroup", name="How should we reach you?").get_by_role("radio", name=label, exact=True)


def phone_input(page):
    return page.get_by_label("Phone", exact=True)


def email_input(page):
    return page.get_by_role("textbox", name="Email", exact=True)


LEAVE_MESSAGE = "Is it OK to leave a message that mentions our name?"


def choice(page, group, label):
    return page.get_by_role("radiogroup", name=group).get_by_role("radio", name=label, exact=True)


def message_input(page):
    return page.get_by_label("Anything you'd like us to know")


def send_button(page):
    return page.get_by_role("button", name="Send request")


def fill_form(page, answers=ANSWERS, phone=None, email=""):
    """Fill every field the way a visitor would; phone overrides the answer's phone number."""
    name_input(page).fill(answers["name"])
    method(page, answers["method"]).check()
    phone_input(page).fill(phone if phone is not None else answers["phone"])
    if email:
        email_input(page).fill(email)
    choice(page, "Best time to reach you", answers["best_time"]).check()
    choice(page, LEAVE_MESSAGE, answers["leave_message"]).check()
    choice(page, "Who is this for?", answers["for_whom"]).check()
    message_input(page).fill(answers["message"])


def expect_answers_kept(page, answers=ANSWERS, phone=None, email=""):
    expect(name_input(page)).to_have_value(answers["name"], timeout=SHORT)
    expect(method(page, answers["method"])).to_be_checked()
    expect(phone_input(page)).to_have_value(phone if phone is not None else answers["phone"])
    expect(email_input(page)).to_have_value(email)
    expect(choice(page, "Best time to reach you", answers["best_time"])).to_be_checked()
    expect(choice(page, LEAVE_MESSAGE, answers["leave_message"])).to_be_checked()
    expect(choice(page, "Who is this for?", answers["for_whom"])).to_be_checked()
    expect(message_input(page)).to_have_value(answers["message"])


# --- waiting without sleeping -----------------------------------------------------------------------


def after_check(page, field, action):
    """Run action, which makes htmx check one field, and return once that answer is swapped and settled."""
    page.evaluate(
        """field => { window.__settled = new Promise((resolve, reject) => {
        const done = e => { if (e.target.id === field + '-message') {
            document.removeEventListener('htmx:afterSettle', done); resolve(); } };
        document.addEventListener('htmx:afterSettle', done);
        setTimeout(() => reject(new Error('no answer to the check of ' + field + ' within 5 s')), 5000); }); }""",
        field,
    )
    with page.expect_response(lambda r: r.url.endswith("/contact/check/" + field), timeout=SHORT):
        action()
    page.evaluate("() => window.__settled")


def mark(page, selector):
    """Tag a DOM node so that a later look can tell whether it is still the same node."""
    page.eval_on_selector(selector, "el => { el.__testMark = true; }")


def still_marked(page, selector):
    return page.eval_on_selector(selector, "el => el.__testMark === true")


def active_element(page):
    return page.evaluate(
        "() => { const a = document.activeElement; return a ? (a.id || a.className || a.tagName) : null; }"
    )


def stored(app):
    with contextlib.closing(sqlite3.connect(app.config["DATABASE"])) as db:
        db.row_factory = sqlite3.Row
        return [dict(row) for row in db.execute("SELECT * FROM inquiries ORDER BY id")]


def problems_except(problems, *expected):
    """The recorded problems minus the expected ones (regular expressions searched in each line)."""
    return [p for p in problems if not any(re.search(e, p) for e in expected)]


# Chromium logs every 4xx answer to the console; a 422 with the form and its messages is by design.
AS_DESIGNED_422 = r"^console error: Failed to load resource: the server responded with a status of 422 "
# Pressing "Send request" straight from a field aborts that field's check (hx-sync "closest form:abort"),
# so that the click is never dropped; htmx logs every abort as an error. Whether it happens is a race.
ABORTED_CHECK = (
    r"^console error: htmx:(sendAbort|afterRequest), \[object HTML\w*Element\]$",
    r"^failed request: http://127\.0\.0\.1:\d+/contact/check/\w+ net::ERR_ABORTED$",
)


def form_posts(page):
    """A live list of the POSTs to /contact itself (not the per-field checks)."""
    posts = []
    page.on("request", lambda r: posts.append(r.url) if r.method == "POST" and r.url.endswith("/contact") else None)
    return posts


@pytest.fixture
def nojs_context(browser, app):
    """Like the context fixture, with JavaScript off: nothing leaves the machine, problems recorded."""
    ctx = new_context(browser, app.config["HTMX_URL"], java_script_enabled=False)
    yield ctx
    ctx.close()


def axe_without_javascript(context, url, html, axe_violations):
    """axe needs timers, which never fire in a page without JavaScript: check the same document, its
    scripts removed, at its own address in a JavaScript page (so styles and contrast are the real ones)."""
    page = context.new_page()
    body = re.sub(r"<script\b[^>]*\bsrc=[^>]*></script>", "", html)
    page.route(url, lambda route: route.fulfill(body=body, content_type="text/html; charset=utf-8"))
    page.goto(url)
    try:
        return axe_violations(page)
    finally:
        page.close()


def open_form(page, live_server):
    page.goto(live_server + "/contact")  # waits for "load": the deferred htmx and site.js have run
    return page


# --- 1-3: checks beside a field ---------------------------------------------------------------------


def test_a_wrong_phone_number_is_explained_beside_the_field_without_disturbing_typing(page, live_server):
    open_form(page, live_server)
    message = page.locator("#phone-message")
    expect(message).to_have_attribute("aria-live", "polite")
    expect(message).to_be_empty()
    mark(page, "#phone")
    mark(page, "#phone-message")
    after_check(page, "contact_method", lambda: method(page, "Phone call").check())
    phone = phone_input(page)
    phone.click()
    page.keyboard.type("12")

    after_check(page, "phone", lambda: page.keyboard.press("Tab"))
    expect(message).to_contain_text("doesn't look like a full phone number")
    expect(phone).to_have_attribute("aria-invalid", "true")
    assert "phone-message" in phone.get_attribute("aria-describedby").split()
    expect(phone).to_have_value("12")
    assert active_element(page) == "email", "focus must go where Tab sends it, and stay there"
    assert still_marked(page, "#phone"), "the input was replaced: focus, caret and typing would be lost"
    assert still_marked(page, "#phone-message"), "the live region must be the one that existed at page load"
    expect(phone).to_have_accessible_description(re.compile("doesn't look like a full phone number"))

    phone.fill("203 555 0147")
    after_check(page, "phone", lambda: phone.press("Tab"))
    expect(message).to_be_empty()
    expect(phone).not_to_have_attribute("aria-invalid", re.compile(".*"))
    expect(phone).to_have_value("203 555 0147")
    assert still_marked(page, "#phone")
    assert page.context.problems == []


def test_a_field_is_not_marked_wrong_while_it_is_first_typed(page, live_server):
    open_form(page, live_server)
    checks = []
    page.on("request", lambda r: checks.append(r.url) if "/contact/check/phone" in r.url else None)
    after_check(page, "contact_method", lambda: method(page, "Phone call").check())
    phone_input(page).click()
    page.keyboard.type("203 55")
    page.wait_for_timeout(1000)  # the visitor pauses, still in the field
    assert checks == []
    expect(page.locator("#phone-message")).to_be_empty()
    expect(phone_input(page)).not_to_have_attribute("aria-invalid", re.compile(".*"))
    assert active_element(page) == "phone"
    assert page.context.problems == []


def test_phone_and_email_messages_follow_the_chosen_way_to_reach(page, live_server):
    open_form(page, live_server)
    email, email_message = email_input(page), page.locator("#email-message")
    phone_message, method_message = page.locator("#phone-message"), page.locator("#contact_method-message")

    # Choosing email does not scold an email field the visitor has not reached yet.
    after_check(page, "contact_method", lambda: method(page, "Email").check())
    expect(email_message).to_be_empty()
    expect(phone_message).to_be_empty()
    expect(method_message).to_be_empty()
    expect(email).not_to_have_attribute("aria-invalid", re.compile(".*"))

    email.fill("sam.example.com")
    after_check(page, "email", lambda: email.press("Tab"))
    expect(email_message).to_contain_text("doesn't look like an email address")
    expect(email).to_have_attribute("aria-invalid", "true")

    # Another way to reach: a wrong address is still wrong; an empty phone is not scolded yet.
    after_check(page, "contact_method", lambda: method(page, "Phone call").check())
    expect(email_message).to_contain_text("doesn't look like an email address")
    expect(email).to_have_attribute("aria-invalid", "true")
    expect(phone_message).to_be_empty()
    expect(phone_input(page)).not_to_have_attribute("aria-invalid", re.compile(".*"))

    email.fill("sam@example.com")
    after_check(page, "email", lambda: email.press("Tab"))
    expect(email_message).to_be_empty()
    expect(email).not_to_have_attribute("aria-invalid", re.compile(".*"))

    # Back to email, then the address is removed: now it is needed and was touched.
    after_check(page, "contact_method", lambda: method(page, "Email").check())
    expect(email_message).to_be_empty()
    email.fill("")
    after_check(page, "email", lambda: email.press("Tab"))
    expect(email_message).to_contain_text("Please give an email address")
    expect(email).to_have_attribute("aria-invalid", "true")

    # A text message needs no email: the message goes away with the reason for it.
    after_check(page, "contact_method", lambda: method(page, "Text message").check())
    expect(email_message).to_be_empty()
    expect(email).not_to_have_attribute("aria-invalid", re.compile(".*"))
    expect(phone_message).to_be_empty()
    assert page.context.problems == []


# --- 4-6: sending with htmx -------------------------------------------------------------------------


def test_a_server_side_error_shows_a_focused_summary_and_keeps_every_answer(page, live_server, app):
    open_form(page, live_server)
    # Both pass the browser's own checks (type=email accepts "sam@example"); the server refuses them.
    fill_form(page, phone="12", email="sam@example")
    with page.expect_response(lambda r: r.url.endswith("/contact") and r.request.method == "POST") as answer:
        send_button(page).click()  # straight from the last field to the button, as people do
    assert answer.value.status == 422

    summary = page.locator(".error-summary")
    expect(summary).to_be_visible(timeout=SHORT)
    expect(summary).to_be_focused()
    expect(summary).to_have_accessible_name("Please check these answers")
    links = summary.get_by_role("link")
    expect(links).to_have_text(
        [
            re.compile(r"^Phone: This doesn't look like a full phone number"),
            re.compile(r"^Email: This doesn't look like an email address"),
        ]
    )
    assert [links.nth(i).get_attribute("href") for i in range(2)] == ["#phone", "#email"]
    expect(page.locator("#phone")).to_have_accessible_name("Phone")
    expect(page.locator("#email")).to_have_accessible_name("Email")
    expect_answers_kept(page, phone="12", email="sam@example")
    for field in ("phone", "email"):
        expect(page.locator(f"#{field}")).to_have_attribute("aria-invalid", "true")
        expect(page.locator(f"#{field}-message")).to_contain_text("doesn't look like")
    assert page.url == live_server + "/contact"
    links.nth(1).click()
    expect(email_input(page)).to_be_focused()  # a link in the summary takes the visitor to the field
    assert stored(app) == []
    assert problems_except(page.context.problems, AS_DESIGNED_422, *ABORTED_CHECK) == []


def test_a_valid_request_is_confirmed_in_place_and_stored_once(page, live_server, app):
    open_form(page, live_server)
    fill_form(page)
    send_button(page).click()

    heading = page.get_by_role("heading", name="Thank you. We have your request.")
    expect(heading).to_be_visible(timeout=SHORT)
    expect(heading).to_be_focused()
    reference = page.locator(".reference").inner_text()
    assert REFERENCE.match(reference), reference
    assert page.url == live_server + "/contact/thanks", "htmx swaps in the confirmation and moves the address"
    rows = stored(app)
    assert len(rows) == 1
    assert rows[0]["reference"] == reference
    fields = json.loads(rows[0]["fields"])
    assert fields["name"] == ANSWERS["name"]
    assert fields["phone"] == "(203) 555-0147"
    assert fields["message"] == ANSWERS["message"]
    assert (fields["contact_method"], fields["best_time"], fields["leave_message"], fields["for_whom"]) == (
        "call",
        "evening",
        "yes",
        "other",
    )
    assert rows[0]["possibly_automated"] == 0
    assert page.context.problems == []


def test_a_double_click_sends_one_request(page, live_server, app):
    open_form(page, live_server)
    posts = form_posts(page)
    fill_form(page)
    # Record whether the button is disabled at the moment the form is sent (too quick to see locally).
    page.evaluate("""() => { window.__buttonDisabledWhileSending = [];
        document.addEventListener('htmx:beforeSend', e => { if (e.detail.elt.id === 'contact-form') {
            window.__buttonDisabledWhileSending.push(e.detail.elt.querySelector('button').disabled); } }); }""")
    send_button(page).dblclick()
    expect(page.locator(".reference")).to_have_count(1, timeout=SHORT)
    expect(page.locator(".reference")).to_have_text(REFERENCE)
    page.wait_for_load_state("networkidle")
    assert len(posts) == 1
    assert page.evaluate("window.__buttonDisabledWhileSending") == [True]
    assert len(stored(app)) == 1
    assert page.context.problems == []


# --- 7: without JavaScript --------------------------------------------------------------------------


def test_without_javascript_errors_come_back_as_a_page_and_thanks_follow_a_redirect(nojs_context, live_server, app):
    page = nojs_context.new_page()
    page.goto(live_server + "/contact")
    fill_form(page, phone="12")
    with page.expect_navigation():
        send_button(page).click()
    assert page.url == live_server + "/contact"
    summary = page.locator(".error-summary")
    expect(summary).to_be_visible()
    expect(summary).to_be_focused()
    expect(summary.get_by_role("link")).to_have_text(
        ["Phone: This doesn't look like a full phone number. Please check it, for example (203) 555-0147."]
    )
    expect_answers_kept(page, phone="12")
    assert stored(app) == []

    phone_input(page).fill(ANSWERS["phone"])
    with page.expect_navigation():
        send_button(page).click()
    assert page.url == live_server + "/contact/thanks", "no personal data in the address"
    heading = page.get_by_role("heading", name="Thank you. We have your request.")
    expect(heading).to_be_visible()
    expect(heading).to_be_focused()
    reference = page.locator(".reference").inner_text()
    assert REFERENCE.match(reference), reference
    rows = stored(app)
    assert [row["reference"] for row in rows] == [reference]
    assert json.loads(rows[0]["fields"])["name"] == ANSWERS["name"]
    assert problems_except(nojs_context.problems, AS_DESIGNED_422) == []


# --- 8: when sending fails --------------------------------------------------------------------------


def test_when_the_server_cannot_be_reached_or_fails_nothing_typed_is_lost(page, live_server, app):
    open_form(page, live_server)
    fill_form(page)
    status, button = page.locator("#form-status"), send_button(page)
    mark(page, "#contact-form")
    contact_url = live_server + "/contact"

    def unreachable(route):
        route.abort("connectionrefused") if route.request.method == "POST" else route.fallback()

    page.context.route(contact_url, unreachable)
    button.click()
    expect(status).to_contain_text("We couldn't reach our website just now", timeout=SHORT)
    expect(status.get_by_role("link", name=OFFICE_PHONE)).to_have_attribute("href", "tel:+12034216242")
    expect(button).to_be_enabled()
    expect(button).to_be_focused()  # disabling it while sending took focus away; it is given back
    expect_answers_kept(page)
    assert still_marked(page, "#contact-form")
    page.context.unroute(contact_url, unreachable)

    def failing(route):
        route.fulfill(status=500, body="oops") if route.request.method == "POST" else route.fallback()

    page.context.route(contact_url, failing)
    button.click()
    expect(status).to_contain_text("Something went wrong on our side", timeout=SHORT)
    expect(status).not_to_contain_text("couldn't reach")
    expect(status.get_by_role("link", name=OFFICE_PHONE)).to_be_visible()
    expect(button).to_be_enabled()
    expect(button).to_be_focused()
    expect_answers_kept(page)
    assert still_marked(page, "#contact-form"), "an error answer must not be swapped in"
    expect(page.get_by_text("oops")).to_have_count(0)
    page.context.unroute(contact_url, failing)
    assert stored(app) == []

    # The server is back: the same words go through once.
    button.click()
    expect(page.locator(".reference")).to_have_text(REFERENCE, timeout=SHORT)
    assert len(stored(app)) == 1
    assert page.url == live_server + "/contact/thanks"
    failures = [
        r"^console error: htmx:(afterRequest|sendError), \[object HTML\w*Element\]$",
        "^failed request: " + re.escape(contact_url) + " net::ERR_CONNECTION_REFUSED$",
        r"^console error: Failed to load resource: net::ERR_CONNECTION_REFUSED$",
        r"^console error: Failed to load resource: the server responded with a status of 500 ",
        r"^console error: Response Status Error Code 500 from /contact, \[object HTML\w*Element\]$",
    ]
    assert len(page.context.problems) > len(problems_except(page.context.problems, *failures)), (
        "the failures themselves should have been recorded"
    )
    assert problems_except(page.context.problems, *failures, *ABORTED_CHECK) == []


# --- 9: accessibility and valid HTML in every state -------------------------------------------------


def test_every_state_of_the_form_passes_axe_and_the_nu_checker(
    page, nojs_context, live_server, axe_violations, html_errors
):
    documents = {}
    open_form(page, live_server)
    assert axe_violations(page) == [], "empty form"
    documents["form_empty"] = page.content()

    fill_form(page, phone="12")
    send_button(page).click()
    expect(page.locator(".error-summary")).to_be_focused(timeout=SHORT)
    assert axe_violations(page) == [], "form with errors (htmx)"
    documents["form_errors_htmx"] = page.content()

    phone_input(page).fill(ANSWERS["phone"])
    send_button(page).click()
    expect(page.locator(".reference")).to_be_visible(timeout=SHORT)
    assert axe_violations(page) == [], "confirmation (htmx)"
    documents["confirmation_htmx"] = page.content()
    assert problems_except(page.context.problems, AS_DESIGNED_422, *ABORTED_CHECK) == []

    plain = nojs_context.new_page()
    plain.goto(live_server + "/contact")
    fill_form(plain, phone="12")
    with plain.expect_navigation():
        send_button(plain).click()
    expect(plain.locator(".error-summary")).to_be_focused()
    documents["form_errors_nojs"] = plain.content()
    phone_input(plain).fill(ANSWERS["phone"])
    with plain.expect_navigation():
        send_button(plain).click()
    expect(plain.locator(".reference")).to_be_visible()
    documents["thanks_nojs"] = plain.content()
    assert problems_except(nojs_context.problems, AS_DESIGNED_422) == []
    for name, url in (("form_errors_nojs", "/contact"), ("thanks_nojs", "/contact/thanks")):
        assert axe_without_javascript(page.context, live_server + url, documents[name], axe_violations) == [], name

    assert html_errors(documents) == []


# --- 10: the time trap ------------------------------------------------------------------------------


@pytest.mark.parametrize("app", [{"MIN_FILL_SECONDS": 30}], indirect=True)
def test_a_fast_person_is_not_blocked_by_the_time_trap(page, live_server, app):
    open_form(page, live_server)
    fill_form(page)
    send_button(page).click()
    expect(page.get_by_role("heading", name="Thank you. We have your request.")).to_be_focused(timeout=SHORT)
    expect(page.locator(".reference")).to_have_text(REFERENCE)
    rows = stored(app)
    assert len(rows) == 1
    assert rows[0]["possibly_automated"] == 1
    assert rows[0]["state"] == "pending"
    assert page.context.problems == []


# --- and when htmx itself cannot load (a filter blocks the CDN) the form still works as a plain form --


def test_the_form_still_sends_when_htmx_cannot_load(page, live_server, app):
    page.route(app.config["HTMX_URL"], lambda route: route.abort("connectionrefused"))
    page.goto_without_htmx(live_server + "/contact")
    assert page.evaluate("typeof htmx") == "undefined"
    fill_form(page)
    with page.expect_navigation():
        send_button(page).click()
    assert page.url == live_server + "/contact/thanks"
    expect(page.locator(".reference")).to_have_text(REFERENCE)
    assert len(stored(app)) == 1
    blocked = (
        "^failed request: " + re.escape(app.config["HTMX_URL"]) + " net::ERR_CONNECTION_REFUSED$",
        r"^console error: Failed to load resource: net::ERR_CONNECTION_REFUSED$",
    )
    assert problems_except(page.context.problems, *blocked) == []


def delayed(page, url_pattern, seconds):
    """Let matching requests reach the server only after a delay: a slow line."""

    def hold(route):
        page.wait_for_timeout(seconds * 1000)
        route.continue_()

    page.route(url_pattern, hold)


def test_message_regions_are_rendered_from_page_load_so_they_are_announced(page, live_server):
    open_form(page, live_server)
    for region in ("#name-message", "#phone-message", "#email-message", "#contact_method-message", "#form-status"):
        shown = page.eval_on_selector(
            region, "el => getComputedStyle(el).display !== 'none' && el.getAttribute('aria-live') !== null"
        )
        assert shown, f"{region} is not a rendered live region at page load"
    assert page.get_attribute("button[type=submit]", "aria-describedby") == "form-status"
    assert problems_except(page.context.problems) == []


def test_on_a_slow_line_a_fixed_number_does_not_keep_its_old_message(page, live_server):
    open_form(page, live_server)
    method(page, "Phone call").check()
    delayed(page, "**/contact/check/phone", 0.8)
    phone_input(page).fill("12")
    phone_input(page).press("Tab")
    phone_input(page).fill("203 555 0147")  # fixed while the first check is still on its way
    phone_input(page).press("Tab")
    expect(page.locator("#phone-message")).to_have_text("", timeout=SHORT)
    page.wait_for_timeout(2000)  # both answers have had time to arrive; the newest must win
    expect(page.locator("#phone-message")).to_have_text("")
    expect(phone_input(page)).not_to_have_attribute("aria-invalid", "true")
    assert problems_except(page.context.problems, *ABORTED_CHECK) == []


def test_words_cannot_be_typed_into_a_form_that_is_being_sent(page, live_server):
    open_form(page, live_server)
    fill_form(page, phone="12")  # the server will answer 422 and show the form again
    delayed(page, "**/contact", 1.0)
    send_button(page).click()
    expect(message_input(page)).to_have_js_property("readOnly", True, timeout=SHORT)
    message_input(page).press("End")
    page.keyboard.type(" typed while sending", delay=10)
    expect(page.locator(".error-summary")).to_be_visible(timeout=SHORT)
    expect(message_input(page)).to_have_value(ANSWERS["message"])  # what was sent is what comes back
    expect(message_input(page)).to_have_js_property("readOnly", False)
    assert problems_except(page.context.problems, AS_DESIGNED_422, *ABORTED_CHECK) == []
