"""What a visitor sees first, on a phone and on a desktop, and the form's last mile, in real Chromium.

The header is the same height on every page and leaves room for the page's heading and a way to
call; an empty form is answered by the site's own summary, not the browser's bubble; after a
request the address is /contact/thanks, a reload shows the confirmation again (masked) without a
second request, and htmx's sessionStorage keeps nothing typed.
"""

import contextlib
import re
import sqlite3

import pytest
from playwright.sync_api import expect

from helpers import PAGES, new_context

pytestmark = pytest.mark.browser
SHORT = 5000  # ms
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 800}
VIEWPORTS = pytest.mark.parametrize("viewport", [PHONE, DESKTOP], ids=["phone", "desktop"])
INFO_PAGES = ["/", "/intensive-outpatient-programs", "/substance-abuse-therapy", "/resources", "/privacy"]
TYPED = {"name": "Zyxcanary Morgan", "phone": "203 555 0147", "message": "Zyxcanary note, after six"}
MASKED = "(203) \u00b7\u00b7\u00b7-0147"


def box(page, locator):
    locator.wait_for(state="visible", timeout=SHORT)
    return locator.bounding_box()


def header_call(page):
    return page.get_by_role("banner").get_by_role("link", name=re.compile(r"^Call \(203\) 421-6242$"))


def stored(app):
    with contextlib.closing(sqlite3.connect(app.config["DATABASE"])) as db:
        return db.execute("SELECT reference FROM inquiries").fetchall()


def form_posts(page):
    posts = []
    page.on("request", lambda r: posts.append(r.url) if r.method == "POST" and r.url.endswith("/contact") else None)
    return posts


def fill_request(page):
    page.get_by_label("Name", exact=True).fill(TYPED["name"])
    page.get_by_role("radiogroup", name="How should we reach you?").get_by_role("radio", name="Phone call").check()
    page.get_by_label("Phone", exact=True).fill(TYPED["phone"])
    page.get_by_label("Anything you'd like us to know").fill(TYPED["message"])


def browser_storage(page) -> str:
    return page.evaluate("() => JSON.stringify([Object.entries(sessionStorage), Object.entries(localStorage)])")


# --- the first screen ---------------------------------------------------------------------------------


@VIEWPORTS
def test_the_header_is_the_same_height_everywhere_and_the_first_screen_shows_heading_and_call(
    context, live_server, viewport
):
    page = context.new_page()
    page.set_viewport_size(viewport)
    heights = {}
    for path in [*PAGES, "/contact/thanks", "/no-such-page"]:
        page.goto(live_server + path)
        heights[path] = page.get_by_role("banner").bounding_box()["height"]
        call, heading = box(page, header_call(page)), box(page, page.get_by_role("heading", level=1))
        assert call["y"] + call["height"] <= viewport["height"], f"{path}: the Call link is below the first screen"
        assert heading["y"] + heading["height"] <= viewport["height"], f"{path}: the heading is below the first screen"
    assert len(set(heights.values())) == 1, heights
    if viewport is PHONE:
        assert heights["/"] <= PHONE["height"] / 4, f"the header takes {heights['/']}px of {PHONE['height']}"
    not_found = r"^console error: Failed to load resource: the server responded with a status of 404 "
    assert [p for p in context.problems if not re.search(not_found, p)] == []


@VIEWPORTS
def test_each_info_page_offers_both_actions_on_its_first_screen(context, live_server, viewport):
    page = context.new_page()
    page.set_viewport_size(viewport)
    for path in INFO_PAGES:
        page.goto(live_server + path)
        main = page.get_by_role("main")
        for name in (re.compile(r"^Call \(203\) 421-6242$"), "Ask us to call you"):
            action = box(page, main.get_by_role("link", name=name).first)
            assert action["y"] + action["height"] <= viewport["height"], f"{path}: {name} is below the first screen"


def test_the_crisis_line_is_one_short_line_in_the_banner_on_a_phone(context, live_server):
    page = context.new_page()
    page.set_viewport_size(PHONE)
    for path in PAGES:
        page.goto(live_server + path)
        line = page.get_by_role("banner").locator(".crisis-line p")
        expect(line.get_by_role("link", name="988")).to_have_attribute("href", "tel:988")
        expect(line.get_by_role("link", name="911")).to_have_attribute("href", "tel:911")
        one_line = page.evaluate(
            "el => el.getClientRects().length && el.getBoundingClientRect().height", line.element_handle()
        )
        line_height = float(line.evaluate("el => parseFloat(getComputedStyle(el).lineHeight)"))
        assert one_line < 2 * line_height, f"{path}: the crisis line wraps"


@pytest.mark.parametrize("javascript", [True, False], ids=["js", "no-js"])
def test_the_phone_menu_opens_with_or_without_javascript(browser, app, live_server, javascript):
    ctx = new_context(browser, app.config["HTMX_URL"], java_script_enabled=javascript, viewport=PHONE)
    page = ctx.new_page()
    page.goto(live_server + "/")
    nav = page.get_by_role("navigation", name="Main")
    banner_height = page.get_by_role("banner").bounding_box()["height"]
    expect(nav.get_by_role("link", name="Resources")).to_be_hidden()
    page.get_by_text("Menu", exact=True).click()
    expect(nav.get_by_role("link", name="Resources")).to_be_visible()
    assert page.get_by_role("banner").bounding_box()["height"] == banner_height, "the open menu lies over the page"
    nav.get_by_role("link", name="Resources").click()
    expect(page).to_have_url(live_server + "/resources")
    assert ctx.problems == []
    ctx.close()


def test_on_a_desktop_the_menu_is_open_in_one_row_on_the_same_grid_as_the_text(context, live_server):
    page = context.new_page()
    page.set_viewport_size(DESKTOP)
    page.goto(live_server + "/intensive-outpatient-programs")
    expect(page.get_by_text("Menu", exact=True)).to_be_hidden()
    links = page.get_by_role("navigation", name="Main").get_by_role("link")
    expect(links).to_have_count(5)
    tops = {round(links.nth(i).bounding_box()["y"]) for i in range(5)}
    assert len(tops) == 1, "the menu wraps"
    brand = page.get_by_role("banner").get_by_role("link", name=re.compile("^Recovery Services")).bounding_box()
    call = header_call(page).bounding_box()
    text = page.get_by_role("main").locator("p").first.bounding_box()
    assert abs(brand["x"] - text["x"]) <= 1, "header and text start on the same line"
    assert abs((call["x"] + call["width"]) - (text["x"] + text["width"])) <= 24, "and end together"
    left, right = text["x"], DESKTOP["width"] - (text["x"] + text["width"])
    assert abs(left - right) <= 40, f"the page is centred ({left:.0f}px left, {right:.0f}px right)"


def test_the_favicon_is_the_offices_own_and_cached_for_long(context, live_server):
    page = context.new_page()
    page.goto(live_server + "/")
    href = page.get_attribute("link[rel=icon][type='image/svg+xml']", "href")
    assert re.match(r"^/static/favicon\.svg\?v=[0-9a-f]{12}$", href)
    response = page.request.get(live_server + href)
    assert response.status == 200 and response.headers["content-type"].startswith("image/svg+xml")
    assert "max-age=31536000" in response.headers["cache-control"]
    assert context.problems == []


# --- the form -----------------------------------------------------------------------------------------


def test_an_empty_form_gets_the_sites_summary_with_focus_and_no_browser_bubble(page, live_server, app):
    page.set_viewport_size(PHONE)
    page.goto(live_server + "/contact")
    posts = form_posts(page)
    assert page.eval_on_selector("#contact-form", "f => f.noValidate") is True
    assert page.get_attribute("#name", "required") is not None, "required stays, for its meaning"
    page.get_by_role("button", name="Send request").click()
    summary = page.locator(".error-summary")
    expect(summary).to_be_focused(timeout=SHORT)
    # The browser's own check would have stopped the submit before any request was made.
    assert len(posts) == 1
    expect(summary.get_by_role("link")).to_have_text([re.compile("^Name: "), re.compile("^How should we reach you")])

    summary.get_by_role("link", name=re.compile("^Name: ")).click()
    expect(page.locator("#name")).to_be_focused()
    label = page.locator("label[for=name]").bounding_box()
    assert 0 <= label["y"] and label["y"] + label["height"] <= PHONE["height"], "the label scrolled off the screen"
    assert stored(app) == []


def test_skip_to_the_form_lands_in_front_of_it(page, live_server):
    page.goto(live_server + "/contact")
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Skip to the form")).to_be_focused()
    page.keyboard.press("Enter")
    presses = 0
    while page.evaluate("document.activeElement.id") != "name":
        page.keyboard.press("Tab")
        presses += 1
        assert presses <= 3, "more than the crisis lines' links between the skip link and the form"


def test_choosing_email_says_who_the_answer_comes_from(page, live_server):
    page.goto(live_server + "/contact")
    note = page.get_by_text("Our answer will come from the office's own email address.")
    methods = page.get_by_role("radiogroup", name="How should we reach you?")
    expect(note).to_be_hidden()
    methods.get_by_role("radio", name="Email").check()
    expect(note).to_be_visible()
    methods.get_by_role("radio", name="Text message").check()
    expect(note).to_be_hidden()


# --- after the request --------------------------------------------------------------------------------


@VIEWPORTS
def test_after_sending_the_address_is_thanks_and_a_reload_shows_it_again_masked(context, live_server, app, viewport):
    page = context.new_page()
    page.set_viewport_size(viewport)
    page.goto(live_server + "/contact")
    posts = form_posts(page)
    fill_request(page)
    page.get_by_label("Phone", exact=True).fill("12")
    page.get_by_role("button", name="Send request").click()  # the form comes back with the words in it
    expect(page.locator(".error-summary")).to_be_focused(timeout=SHORT)
    page.get_by_label("Phone", exact=True).fill(TYPED["phone"])
    page.get_by_role("button", name="Send request").click()

    heading = page.get_by_role("heading", name="Thank you. We have your request.")
    expect(heading).to_be_focused(timeout=SHORT)
    expect(page).to_have_url(live_server + "/contact/thanks")
    expect(page).to_have_title("Thank you | Recovery Services of Connecticut")
    expect(page.get_by_role("heading", name="Ask us to contact you")).to_have_count(0)
    confirmation = page.locator("#contact-form-region")
    expect(confirmation.locator(".way-back")).to_have_text("(203) 555-0147")
    expect(confirmation).to_contain_text("We will not leave a message that names us.")
    expect(page.get_by_text("not watched around the clock")).to_have_count(1)
    reference = page.locator(".reference").inner_text()
    assert [row[0] for row in stored(app)] == [reference]
    assert "Zyxcanary" not in browser_storage(page) and "0147" not in browser_storage(page), "nothing typed is kept"

    page.reload()
    expect(page).to_have_title("Thank you | Recovery Services of Connecticut")
    expect(page.locator(".reference")).to_have_text(reference)
    expect(page.locator(".way-back")).to_have_text(MASKED)
    expect(page.get_by_text("555-0147")).to_have_count(0)
    assert len(posts) == 2, "a reload sends nothing"
    assert len(stored(app)) == 1
    assert "Zyxcanary" not in browser_storage(page) and "0147" not in browser_storage(page)

    page.go_back()  # to the form page, fetched afresh: an empty form, and the confirmation forgotten
    expect(page).to_have_url(live_server + "/contact")
    expect(page.get_by_label("Name", exact=True)).to_have_value("", timeout=SHORT)
    page.wait_for_load_state("load")  # htmx reloads the page after Back: let that finish first
    page.goto(live_server + "/contact/thanks")
    expect(page.locator(".reference")).to_have_count(0)
    assert len(stored(app)) == 1
    expected = r"^console error: Failed to load resource: the server responded with a status of 422 "
    assert [p for p in context.problems if not re.search(expected, p)] == []


def test_the_reloaded_confirmation_and_the_open_menu_pass_axe_and_the_nu_checker(
    context, live_server, axe_violations, html_errors
):
    page = context.new_page()
    page.set_viewport_size(PHONE)
    documents = {}
    page.goto(live_server + "/contact")
    page.get_by_role("radiogroup", name="How should we reach you?").get_by_role("radio", name="Email").check()
    assert axe_violations(page) == [], "email chosen"
    fill_request(page)
    page.get_by_role("button", name="Send request").click()
    expect(page.locator(".reference")).to_be_visible(timeout=SHORT)
    page.reload()
    expect(page.locator(".way-back")).to_have_text(MASKED)
    assert axe_violations(page) == [], "reloaded confirmation"
    documents["thanks_masked"] = page.content()
    page.get_by_text("Menu", exact=True).click()
    assert axe_violations(page) == [], "menu open on a phone"
    documents["menu_open"] = page.content()
    assert html_errors(documents) == []
    assert context.problems == []
