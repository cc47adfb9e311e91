"""The information pages, search-engine files, error pages and headers, through the test client."""

import json
import re
import xml.etree.ElementTree as ET

import pytest

from helpers import PAGES, SPANISH_PAGES

PHONE_LINK = 'href="tel:+12034216242"'


@pytest.mark.parametrize("path", PAGES)
def test_page_answers_with_its_own_title_and_the_phone_number(client, path):
    response = client.get(path)
    assert response.status_code == 200
    title = re.search(r"<title>(.*?)</title>", response.text, re.S).group(1)
    assert PAGES[path].lower() in title.lower()
    assert response.text.count(PHONE_LINK) >= 2  # header, plus content or footer
    assert 'href="tel:988"' in response.text and 'href="tel:911"' in response.text


def test_titles_and_descriptions_are_unique(client):
    titles, descriptions = set(), set()
    for path in PAGES:
        text = client.get(path).text
        titles.add(re.search(r"<title>(.*?)</title>", text, re.S).group(1))
        descriptions.add(re.search(r'<meta name="description" content="([^"]+)"', text).group(1))
    assert len(titles) == len(PAGES) and len(descriptions) == len(PAGES)


@pytest.mark.parametrize("path", [p for p in PAGES if p != "/contact"])
def test_info_pages_set_no_cookie(client, path):
    assert "Set-Cookie" not in client.get(path).headers


@pytest.mark.parametrize("path", PAGES)
def test_current_page_is_marked_in_navigation(client, path):
    text = client.get(path).text
    current = re.findall(r'<a href="([^"]+)" aria-current="page">', text)
    assert current == ([path] if path != "/privacy" else [])


def test_canonical_link_comes_from_site_url(make_app):
    client = make_app(SITE_URL="https://rsct.example.org").test_client()
    text = client.get("/resources").text
    assert '<link rel="canonical" href="https://rsct.example.org/resources">' in text


def test_unknown_path_gives_friendly_404(client):
    response = client.get("/no-such-page")
    assert response.status_code == 404
    assert PHONE_LINK in response.text
    assert "noindex" in response.text


def test_exception_gives_500_page_without_internals(app):
    @app.get("/boom")
    def boom():
        raise RuntimeError("secret internals")

    app.testing = False  # let the error handler run as in production
    app.config["PROPAGATE_EXCEPTIONS"] = False
    response = app.test_client().get("/boom")
    assert response.status_code == 500
    assert PHONE_LINK in response.text
    assert "secret internals" not in response.text and "Traceback" not in response.text


def test_sitemap_lists_every_page(make_app):
    client = make_app(SITE_URL="https://rsct.example.org").test_client()
    response = client.get("/sitemap.xml")
    assert response.mimetype == "application/xml"
    namespace = {"s": "http://www.sitemaps.org/schemas/sitemap/0.9"}
    locations = [loc.text for loc in ET.fromstring(response.data).findall("s:url/s:loc", namespace)]
    pairs = zip(PAGES, SPANISH_PAGES, strict=True)
    assert locations == ["https://rsct.example.org" + path for pair in pairs for path in pair]


def test_robots_points_to_sitemap(client):
    response = client.get("/robots.txt")
    assert response.mimetype == "text/plain"
    assert "Sitemap: http://127.0.0.1:5000/sitemap.xml" in response.text


def test_structured_data_carries_address_and_phone(client):
    text = client.get("/").text
    block = re.search(r'<script type="application/ld\+json">(.*?)</script>', text, re.S).group(1)
    data = json.loads(block)
    assert data["@type"] == "MedicalClinic"
    assert data["telephone"] == "+12034216242"
    assert data["address"]["streetAddress"] == "71 Bradley Road, Suite 6"
    assert data["address"]["postalCode"] == "06443"
    assert "sameAs" not in data


def test_facebook_link_only_when_configured(make_app, client):
    assert "facebook" not in client.get("/").text.lower()
    configured = make_app(FACEBOOK_URL="https://www.facebook.com/rsct-example").test_client()
    text = configured.get("/").text
    assert 'href="https://www.facebook.com/rsct-example"' in text
    assert '"sameAs": ["https://www.facebook.com/rsct-example"]' in text


def test_office_hours_appear_only_when_configured(make_app, client):
    assert "Hours:" not in client.get("/contact").text
    text = make_app(OFFICE_HOURS="Monday to Friday, 9 to 5").test_client().get("/contact").text
    assert "Hours: Monday to Friday, 9 to 5" in text


def test_htmx_loads_from_settings_with_integrity(make_app):
    client = make_app(HTMX_URL="/static/vendor/htmx.min.js", HTMX_INTEGRITY="sha384-abc").test_client()
    response = client.get("/contact")
    assert 'data-htmx-src="/static/vendor/htmx.min.js" data-htmx-integrity="sha384-abc"' in response.text
    assert "htmx" not in client.get("/").text  # only the pages that use it load it
    assert "script-src 'self';" in response.headers["Content-Security-Policy"]


def test_no_inline_scripts_or_styles(client):
    for path in PAGES:
        text = client.get(path).text
        assert " style=" not in text
        for attributes in re.findall(r"<script([^>]*)>", text):
            assert "src=" in attributes or 'type="application/ld+json"' in attributes
        assert "<style" not in text
        assert not re.search(r"\son[a-z]+=", text)  # no inline event handlers


def test_htmx_config_is_strict(client):
    text = client.get("/contact").text
    config = json.loads(re.search(r"<meta name=\"htmx-config\" content='([^']+)'>", text).group(1))
    assert config["allowEval"] is False
    assert config["allowScriptTags"] is False
    assert config["includeIndicatorStyles"] is False
    assert config["historyCacheSize"] == 0


@pytest.mark.parametrize("path", [*PAGES, "/no-such-page", "/robots.txt", "/sitemap.xml"])
def test_security_headers_on_every_response(client, path):
    headers = client.get(path).headers
    csp = headers["Content-Security-Policy"]
    for directive in (
        "default-src 'none'",
        "style-src 'self'",
        "img-src 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
        "object-src 'none'",
    ):
        assert directive in csp
    assert "script-src 'self' https://cdn.jsdelivr.net/npm/htmx.org@2.0.11/dist/htmx.min.js" in csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] == "same-origin"
    assert headers["Cross-Origin-Opener-Policy"] == "same-origin"
    assert "camera=()" in headers["Permissions-Policy"]
    assert "Strict-Transport-Security" not in headers  # only production over HTTPS


def test_static_files_are_fingerprinted_and_cached_long(client):
    text = client.get("/").text
    css = re.search(r'href="(/static/css/site\.css\?v=[0-9a-f]{12})"', text).group(1)
    with client.get(css) as response:
        assert response.status_code == 200
        assert "max-age=31536000" in response.headers["Cache-Control"]
        assert "immutable" in response.headers["Cache-Control"]


def test_unknown_host_is_refused_plainly_not_with_a_crash(make_app):
    client = make_app(TRUSTED_HOSTS=["rsct.example.org"]).test_client()
    response = client.get("/", headers={"Host": "attacker.example"})
    assert response.status_code == 400
    assert "(203) 421-6242" in response.text
    assert response.headers["Content-Security-Policy"].startswith("default-src 'none'")
