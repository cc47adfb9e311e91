"""The Spanish site in real Chromium: axe-core and the Nu checker on every page, the form with and without JS."""

import json
import re
import sqlite3

import pytest
from playwright.sync_api import expect

from helpers import PAGES, SPANISH_PAGES, body_text, deliver, new_context
from smtp_servers import smtp_settings

pytestmark = pytest.mark.browser
SHORT = 5000  # ms: every expectation is bounded
VIEWPORTS = [{"width": 360, "height": 740}, {"width": 1280, "height": 800}]
ERROR_PAGES = ["/es/no-existe", "/es/contacto/gracias"]
CALL_BACK_IN_SPANISH = "Language of the form: Spanish — call back in Spanish if you can"
PHONE_MESSAGE = "Esto no parece un número de teléfono completo. Por favor, revíselo. Por ejemplo: (203) 555-0147."
THANKS = "Gracias. Recibimos su pedido."


@pytest.fixture
def app(make_app, smtp_port):
    """The testing app, its mail going to a real SMTP server (aiosmtpd)."""
    return make_app(**smtp_settings(smtp_port))


@pytest.fixture
def nojs_context(browser, app):
    ctx = new_context(browser, app.config["HTMX_URL"], java_script_enabled=False)
    yield ctx
    ctx.close()


def stored(app) -> list[dict]:
    with sqlite3.connect(app.config["DATABASE"]) as connection:
        connection.row_factory = sqlite3.Row
        return [dict(row) for row in connection.execute("SELECT reference, fields FROM inquiries ORDER BY id")]


def fill_in_spanish(page, phone="203 555 0147"):
    """Fill the form by the names a Spanish-speaking visitor hears."""
    page.get_by_label("Nombre", exact=True).fill("María José")
    group = page.get_by_role("radiogroup", name="¿Cómo prefiere que le contactemos?")
    group.get_by_role("radio", name="Llamada telefónica", exact=True).check()
    page.get_by_label("Teléfono", exact=True).fill(phone)
    page.get_by_role("radio", name="Noche", exact=True).check()
    page.get_by_label("Algo más que quiera contarnos").fill("Es para mi hijo.\nPor favor, llamen después de las 6.")


def send(page):
    page.get_by_role("button", name="Enviar pedido").click()


def assert_office_told_spanish(app, inbox):
    outcome = deliver(app)
    assert len(outcome.delivered) == 1, outcome
    [received] = inbox.wait_for(1)
    text = body_text(received.message)
    block = text.split("----- BEGIN INQUIRY -----")[1].split("----- END INQUIRY -----")[0]
    assert CALL_BACK_IN_SPANISH in block
    assert "Best time to reach them: Evening" in block and "Name: María José" in block


@pytest.mark.parametrize("viewport", VIEWPORTS, ids=["phone", "desktop"])
def test_axe_finds_no_violations_on_any_spanish_page(page, live_server, axe_violations, viewport):
    page.set_viewport_size(viewport)
    for path in [*SPANISH_PAGES, *ERROR_PAGES]:
        page.goto(live_server + path)
        assert page.get_attribute("html", "lang") == "es", path
        assert axe_violations(page) == [], path
    # Chromium logs the 404 of the missing page, which is the point of that page.
    assert [p for p in page.context.problems if "status of 404" not in p] == []


def test_nu_checker_finds_no_errors_on_any_spanish_page(client, make_app, html_errors):
    documents = {
        "es_" + (path.strip("/").replace("/", "_") or "index"): client.get(path).text for path in SPANISH_PAGES
    }
    documents.update({path.strip("/").replace("/", "_"): client.get(path).text for path in ERROR_PAGES})
    refused = make_app().test_client()
    documents["es_form_errors"] = refused.post("/es/contacto", data={"name": "", "phone": "12"}).text
    csrf = make_app(WTF_CSRF_ENABLED=True).test_client()
    documents["es_press_again"] = csrf.post("/es/contacto", data={"name": "Sam", "contact_method": "call"}).text
    assert len(documents) == len(SPANISH_PAGES) + len(ERROR_PAGES) + 2
    assert html_errors(documents) == []


def test_every_english_page_shows_espanol_in_the_header_on_a_phone_and_spanish_fits_the_same_banner(
    browser, app, live_server
):
    ctx = new_context(browser, app.config["HTMX_URL"], viewport={"width": 320, "height": 640})
    page = ctx.new_page()
    for english, spanish in zip(PAGES, SPANISH_PAGES, strict=True):
        page.goto(live_server + english)
        link = page.locator("header").get_by_role("link", name="Español", exact=True)
        expect(link).to_be_in_viewport()
        overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
        assert overflow <= 0, english
        english_header = page.locator("header").bounding_box()["height"]
        link.click()
        expect(page).to_have_url(live_server + spanish)
        expect(page.locator("header").get_by_role("link", name="English", exact=True)).to_be_in_viewport()
        # The name and the crisis line keep to one line each in Spanish too: the banner is no taller.
        assert page.locator("header").bounding_box()["height"] == english_header, spanish
    assert ctx.problems == []
    ctx.close()


def test_the_spanish_form_with_htmx_checks_inline_and_confirms_in_spanish(page, live_server, app, inbox):
    page.goto(live_server + "/es/contacto")
    fill_in_spanish(page, phone="12")
    page.get_by_label("Algo más que quiera contarnos").focus()  # leaving the phone field checks it
    expect(page.locator("#phone-message")).to_have_text("Error: " + PHONE_MESSAGE, timeout=SHORT)
    page.get_by_label("Teléfono", exact=True).fill("203 555 0147")
    page.get_by_label("Algo más que quiera contarnos").focus()
    expect(page.locator("#phone-message")).to_have_text("", timeout=SHORT)

    send(page)
    heading = page.get_by_role("heading", name=THANKS)
    expect(heading).to_be_visible(timeout=SHORT)
    expect(heading).to_be_focused()
    assert page.url == live_server + "/es/contacto/gracias"
    expect(page).to_have_title(re.compile(r"^Gracias \| "))
    assert "(203) 555-0147" in page.locator(".way-back").inner_text()
    [row] = stored(app)
    assert json.loads(row["fields"])["language"] == "es"
    assert_office_told_spanish(app, inbox)
    assert page.context.problems == []


def test_the_spanish_form_without_javascript_shows_spanish_errors_and_thanks(nojs_context, live_server, app, inbox):
    page = nojs_context.new_page()
    page.goto(live_server + "/es/contacto")
    fill_in_spanish(page, phone="12")
    with page.expect_navigation():
        send(page)
    assert page.url == live_server + "/es/contacto"
    summary = page.locator(".error-summary")
    expect(summary).to_be_focused()
    expect(summary.get_by_role("heading")).to_have_text("Por favor, revise esta respuesta")
    expect(summary.get_by_role("link")).to_have_text(["Teléfono: " + PHONE_MESSAGE])
    expect(page.get_by_label("Nombre", exact=True)).to_have_value("María José")
    assert stored(app) == []

    page.get_by_label("Teléfono", exact=True).fill("203 555 0147")
    with page.expect_navigation():
        send(page)
    assert page.url == live_server + "/es/contacto/gracias"
    expect(page.get_by_role("heading", name=THANKS)).to_be_focused()
    assert page.get_attribute("html", "lang") == "es"
    assert_office_told_spanish(app, inbox)
    problems = [p for p in nojs_context.problems if "status of 422" not in p]
    assert problems == []


def test_a_network_failure_is_explained_in_spanish_and_keeps_the_words(page, live_server):
    page.goto(live_server + "/es/contacto")
    fill_in_spanish(page)
    page.route(re.compile(r".*/es/contacto$"), lambda route: route.abort("connectionrefused"))
    send(page)
    status = page.locator("#form-status")
    expect(status).to_contain_text("No pudimos comunicarnos con nuestro sitio", timeout=SHORT)
    expect(status.get_by_role("link", name="(203) 421-6242")).to_have_attribute("href", "tel:+12034216242")
    expect(page.get_by_label("Nombre", exact=True)).to_have_value("María José")
    # The refused connection is the point of the test: htmx and Chromium log it, and nothing else.
    failures = ("htmx:(afterRequest|sendError|sendAbort)", "ERR_CONNECTION_REFUSED", "/es/contacto/comprobar/")
    assert [p for p in page.context.problems if not any(re.search(f, p) for f in failures)] == []
