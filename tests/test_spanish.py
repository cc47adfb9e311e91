"""En español: every page at its Spanish address, the form's messages and notices in Spanish, the office told."""

import html
import re
import xml.etree.ElementTree as ET
from html.parser import HTMLParser

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po

from rsct import i18n, verify

from helpers import PAGES, ROOT, SPANISH_PAGES, Visitor, body_text, deliver, field_message, stored_inquiries

PAIRS = list(zip(PAGES, SPANISH_PAGES, strict=True))
SITE = "https://rsct.example.org"
KEYWORDS = {"_": None, "gettext": None, "ngettext": (1, 2), "lazy_gettext": None}  # as `make messages` extracts
CALL_BACK_IN_SPANISH = "Language of the form: Spanish — call back in Spanish if you can"
# Words that stay the same in both languages: names, acronyms, and a few words Spanish shares with English.
SAME_IN_BOTH = {
    "recovery", "services", "of", "connecticut", "rsct", "madison", "ct", "bradley", "road", "suite", "fax",
    "samhsa", "asam", "iop", "dmhas", "tty", "help", "openstreetmap", "facebook", "htmx", "site", "js",
    "jsdelivr", "error", "no", "org", "lifeline", "988lifeline",
}  # fmt: skip


class VisibleText(HTMLParser):
    """The text a visitor sees or hears: <title> and <body>, without scripts, styles or templates."""

    SKIP = {"script", "style", "template"}

    def __init__(self, page: str):
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skipping = 0
        self.feed(page)

    def handle_starttag(self, tag, attrs):
        if tag in self.SKIP:
            self._skipping += 1
        elif tag in ("p", "li", "h1", "h2", "h3", "td", "th", "caption", "label", "legend", "a", "title", "summary"):
            self.parts.append("\n")

    def handle_endtag(self, tag):
        if tag in self.SKIP:
            self._skipping -= 1

    def handle_data(self, data):
        if not self._skipping:
            self.parts.append(data)

    def sentences(self) -> set[str]:
        text = "".join(self.parts)
        pieces = re.split(r"(?<=[.!?:])\s+|\n", text)
        return {" ".join(piece.split()) for piece in pieces if piece.strip()}


def english_words(sentence: str) -> set[str]:
    """The words of a sentence that are not names, numbers or words both languages share."""
    words = re.findall(r"[^\W\d_]+", sentence.lower())
    return {word for word in words if len(word) > 2 and word not in SAME_IN_BOTH}


@pytest.mark.parametrize(("english", "spanish"), PAIRS)
def test_each_spanish_page_is_spanish_and_names_its_english_counterpart(make_app, english, spanish):
    client = make_app(SITE_URL=SITE).test_client()
    page = client.get(spanish)
    assert page.status_code == 200
    assert '<html lang="es">' in page.text
    assert f'<link rel="canonical" href="{SITE}{spanish}">' in page.text
    assert f'<link rel="alternate" hreflang="en" href="{SITE}{english}">' in page.text
    assert f'<link rel="alternate" hreflang="es" href="{SITE}{spanish}">' in page.text
    assert f'<a class="language-link" href="{english}" hreflang="en" lang="en">English</a>' in page.text
    assert "Set-Cookie" not in page.headers or spanish == "/es/contacto"
    # Every link to another page of the site stays in Spanish.
    internal = set(re.findall(r'href="(/[^"#]*)', page.text)) - {english, "/"}
    assert all(link.startswith(("/es/", "/static/", "/favicon.")) for link in internal), internal


@pytest.mark.parametrize(("english", "spanish"), PAIRS)
def test_each_english_page_offers_spanish_in_its_header(client, english, spanish):
    page = client.get(english).text
    assert '<html lang="en">' in page
    header = page.split("</header>")[0]
    assert f'<a class="language-link" href="{spanish}" hreflang="es" lang="es">Español</a>' in header


@pytest.mark.parametrize(("english", "spanish"), PAIRS)
def test_no_sentence_of_a_spanish_page_is_left_in_english(client, english, spanish):
    english_text = VisibleText(client.get(english).text).sentences()
    spanish_text = VisibleText(client.get(spanish).text).sentences()
    untranslated = sorted(s for s in spanish_text & english_text if english_words(s))
    assert untranslated == []
    # The check itself: an English page compared with itself is all English.
    assert len([s for s in english_text if english_words(s)]) > 5


def test_the_address_alone_chooses_the_language(client):
    """No redirect on Accept-Language and no cookie: the next person on a shared computer gets what the link says."""
    english = client.get("/", headers={"Accept-Language": "es-MX,es;q=0.9"})
    assert english.status_code == 200 and '<html lang="en">' in english.text
    spanish = client.get("/es/", headers={"Accept-Language": "en-US"})
    assert spanish.status_code == 200 and '<html lang="es">' in spanish.text
    assert "Set-Cookie" not in english.headers and "Set-Cookie" not in spanish.headers
    assert client.get("/es").status_code == 308  # /es leads to /es/


def test_the_sitemap_lists_both_languages_with_each_others_address(make_app):
    client = make_app(SITE_URL=SITE).test_client()
    namespaces = {"s": "http://www.sitemaps.org/schemas/sitemap/0.9", "x": "http://www.w3.org/1999/xhtml"}
    urls = ET.fromstring(client.get("/sitemap.xml").data).findall("s:url", namespaces)
    listed = {url.find("s:loc", namespaces).text: url for url in urls}
    assert set(listed) == {SITE + path for pair in PAIRS for path in pair}
    for english, spanish in PAIRS:
        for path in (english, spanish):
            alternates = {
                link.get("hreflang"): link.get("href") for link in listed[SITE + path].findall("x:link", namespaces)
            }
            assert alternates == {"en": SITE + english, "es": SITE + spanish}
    assert "Disallow: /es/contacto/" in client.get("/robots.txt").text


def test_a_missing_page_under_es_is_answered_in_spanish(client):
    response = client.get("/es/no-existe")
    assert response.status_code == 404
    assert '<html lang="es">' in response.text and "No encontramos esa página" in response.text
    assert 'href="/es/contacto"' in response.text and 'href="tel:+12034216242"' in response.text
    assert "marque 2" in response.text  # 988 in Spanish
    assert "We can't find that page" in client.get("/no-such-page").text


def test_the_crisis_lines_say_how_to_reach_them_in_spanish(client):
    resources = html.unescape(client.get("/es/recursos").text)
    assert "llame al 988 y marque 2" in re.sub(r"<[^>]+>", "", resources)
    assert "envíe la palabra AYUDA por texto al 988" in resources
    assert "en inglés y en español" in resources  # SAMHSA's line
    assert "¿En crisis?" in resources and 'href="tel:988"' in resources and 'href="tel:911"' in resources


# --- the form -------------------------------------------------------------------------------------


@pytest.fixture
def visitante(client):
    """A visitor at the Spanish form."""
    return Visitor(client, "/es/contacto")


def test_the_spanish_form_posts_and_checks_at_spanish_addresses(client):
    page = client.get("/es/contacto").text
    assert 'action="/es/contacto"' in page and 'data-hx-post="/es/contacto"' in page
    assert 'data-hx-post="/es/contacto/comprobar/phone"' in page
    assert 'data-hx-post="/es/contacto/comprobar/contact_method"' in page
    assert "Enviar pedido" in page and "¿Cómo prefiere que le contactemos?" in page and "Llamada telefónica" in page


@pytest.mark.parametrize("htmx", [False, True], ids=["plain", "htmx"])
def test_every_message_of_a_refused_spanish_form_is_spanish(visitante, htmx):
    response = visitante.submit(htmx=htmx, name="", phone="12", email="not an address")
    assert response.status_code == 422
    assert "Por favor, revise estas respuestas" in response.text
    assert field_message(response.text, "name").endswith("Basta con el primer nombre.")
    assert field_message(response.text, "phone").startswith("Esto no parece un número de teléfono completo.")
    assert "(203) 555-0147" in field_message(response.text, "phone")  # a US example, as in English
    assert field_message(response.text, "email").endswith("solo hace falta si elige correo electrónico.")
    assert "Nombre: Por favor, díganos un nombre" in html.unescape(response.text)


@pytest.mark.parametrize(
    ("path", "data", "message"),
    [
        ("/es/contacto/comprobar/phone", {"phone": "12"}, "Esto no parece un número de teléfono completo."),
        ("/es/contacto/comprobar/email", {"email": "x@", "contact_method": "email"}, "Esto no parece un correo"),
        ("/es/contacto/comprobar/contact_method", {}, "Por favor, elija cómo prefiere que le contactemos."),
        (
            "/es/contacto/comprobar/phone",
            {"phone": "203 555 0147 ext. 12", "contact_method": "text"},
            "Un mensaje de texto no puede llegar a un número con extensión.",
        ),
        ("/contact/check/phone", {"phone": "12"}, "This doesn't look like a full phone number."),
    ],
)
def test_the_inline_checks_answer_in_the_language_of_their_address(client, path, data, message):
    response = client.post(path, data=data, headers={"HX-Request": "true"})
    assert response.status_code == 200
    assert message in html.unescape(response.text)


def test_a_spanish_request_is_thanked_in_spanish_and_stored_as_spanish(app, visitante):
    response = visitante.submit()
    assert response.status_code == 303 and response.headers["Location"] == "/es/contacto/gracias"
    thanks = visitante.client.get("/es/contacto/gracias").text
    assert '<html lang="es">' in thanks and "Gracias. Recibimos su pedido." in thanks
    assert "Con una llamada al" in thanks and "No dejaremos ningún mensaje que diga nuestro nombre." in thanks
    assert "La mejor hora, según nos dijo: en la mañana." in thanks
    [row] = stored_inquiries(app)
    assert row["fields"]["language"] == "es"

    fragment = Visitor(visitante.client, "/es/contacto").submit(htmx=True, name="Otra persona").text
    assert "Gracias. Recibimos su pedido." in fragment and 'data-page-title="Gracias | ' in fragment


def test_the_notices_are_spanish(make_app):
    data = {"name": "Sam", "contact_method": "call", "phone": "203 555 0147", "leave_message": "no"}
    csrf = make_app(WTF_CSRF_ENABLED=True).test_client()
    assert "necesitamos que presione <strong>Enviar pedido</strong>" in csrf.post("/es/contacto", data=data).text
    limited = make_app(RATE_LIMIT_COUNT=1).test_client()
    limited.post("/es/contacto", data=data)
    assert "lo hemos pausado unos minutos" in limited.post("/es/contacto", data={**data, "name": "Sam B"}).text
    broken = make_app()
    broken.config["DATABASE"] = "/proc/rsct-nowhere.sqlite3"
    assert "no pudo guardar su pedido" in broken.test_client().post("/es/contacto", data=data).text
    small = make_app(MAX_CONTENT_LENGTH=2000).test_client()
    too_large = small.post("/es/contacto", data={**data, "message": "x" * 5000})
    assert too_large.status_code == 413 and "Eso fue más de lo que podemos aceptar" in too_large.text
    page = make_app().test_client().get("/es/contacto").text
    network = re.search(r'<template id="message-network">(.*?)</template>', page, re.S).group(1)
    assert "No pudimos comunicarnos con nuestro sitio" in network and 'href="tel:+12034216242"' in network


def test_cookies_blocked_is_explained_in_spanish(make_app):
    client = make_app(WTF_CSRF_ENABLED=True).test_client()
    data = {"name": "Sam", "contact_method": "call", "phone": "203 555 0147", "cookie_check": "1"}
    client.get("/es/privacidad")  # no session cookie from an information page
    response = client.post("/es/contacto", data=data, headers={"Cookie": ""})
    assert response.status_code == 400
    assert "Su navegador bloquea la pequeña cookie" in html.unescape(response.text)


# --- the office's email ---------------------------------------------------------------------------


def test_the_office_is_told_in_english_to_call_back_in_spanish(smtp_app, inbox):
    Visitor(smtp_app.test_client(), "/es/contacto").submit(name="María", message="Mi hijo necesita ayuda.")
    Visitor(smtp_app.test_client()).submit(name="Mary", message="My son needs help.")
    outcome = deliver(smtp_app)
    assert len(outcome.delivered) == 2
    received = inbox.wait_for(2)
    [spanish] = [r for r in received if "Name: María" in body_text(r.message)]
    [english] = [r for r in received if "Name: Mary" in body_text(r.message)]
    keys = smtp_app.config["INQUIRY_SIGNING_KEYS"]
    report = verify.check_email(keys, spanish.content)
    assert report.status == verify.AUTHENTIC, report.reason
    assert CALL_BACK_IN_SPANISH in report.inquiry.fields, "the line is inside the signed block"
    text = body_text(spanish.message)
    assert "PREFERRED CONTACT: PHONE CALL" in text and "Best time to reach them: Morning" in text
    assert "Who it is for: Myself" in text  # the staff read English labels whatever the form's language
    subjects = {re.sub(r"RSCT-\w+", "RSCT-…", r.message["Subject"]) for r in (spanish, english)}
    assert len(subjects) == 1, "the subject follows the office-email rule, in English, whatever the language"
    assert "Language of the form" not in body_text(english.message)
    assert verify.check_email(keys, english.content).status == verify.AUTHENTIC


# --- the catalogues -------------------------------------------------------------------------------


def test_every_string_a_visitor_reads_has_a_spanish_translation():
    """Extract the strings from the code and templates now (as `make messages` does): each has a finished
    Spanish translation, none empty or fuzzy, so a new English sentence cannot slip onto a Spanish page."""
    with open(ROOT / "babel.cfg") as config:
        method_map, options_map = parse_mapping_cfg(config)
    extracted = {
        message[2] if isinstance(message[2], str) else message[2][0]
        for message in extract_from_dir(str(ROOT), method_map, options_map, keywords=KEYWORDS)
    }
    with open(ROOT / "translations" / "es" / "LC_MESSAGES" / "messages.po", "rb") as source:
        catalogue = read_po(source)
    translated = {}
    for message in catalogue:
        if not message.id:
            continue
        key = message.id if isinstance(message.id, str) else message.id[0]
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        translated[key] = message.fuzzy or not all(strings)
    assert len(extracted) > 300
    assert sorted(extracted - set(translated)) == [], "run `make messages` and translate the new strings"
    assert sorted(key for key, unfinished in translated.items() if unfinished) == []


def test_the_site_refuses_to_start_without_the_compiled_catalogue(tmp_path):
    folder = tmp_path / "es" / "LC_MESSAGES"
    folder.mkdir(parents=True)
    (folder / "messages.po").write_text("")
    with pytest.raises(RuntimeError, match="make translations"):
        i18n.check_catalogues(str(tmp_path))
    (folder / "messages.mo").write_bytes((ROOT / "translations" / "es" / "LC_MESSAGES" / "messages.mo").read_bytes())
    i18n.check_catalogues(str(tmp_path))


def test_a_held_spanish_request_is_marked_spanish_in_the_digest(smtp_app, inbox):
    Visitor(smtp_app.test_client(), "/es/contacto").submit(website="http://spam.example", name="Lucía Retenida")
    Visitor(smtp_app.test_client()).submit(website="http://spam.example", name="Held English")
    result = smtp_app.test_cli_runner().invoke(args=["inquiry", "digest"])
    assert result.exit_code == 0, result.output
    [digest] = inbox.wait_for(1)
    body = body_text(digest.message)
    items = body.split("-" * 70)
    [spanish] = [item for item in items if "Lucía Retenida" in item]
    [english] = [item for item in items if "Held English" in item]
    assert CALL_BACK_IN_SPANISH in spanish and "Language of the form" not in english
    assert "PREFERRED CONTACT: PHONE CALL" in spanish
