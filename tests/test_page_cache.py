"""Info pages are rendered once and served with a strong validator; everything else about them still holds."""

import pytest

from rsct import i18n, pages
from rsct.security import header_values

from helpers import PAGES, stored_inquiries

INFO_PAGES = [path for path in PAGES if path != "/contact"]


@pytest.mark.parametrize("path", INFO_PAGES)
def test_a_repeat_visit_gets_304_without_the_page(client, path):
    first = client.get(path)
    assert first.status_code == 200
    etag = first.headers["ETag"]
    assert not etag.startswith("W/")  # strong: the bytes are the same
    again = client.get(path, headers={"If-None-Match": etag})
    assert again.status_code == 304
    assert again.data == b""
    assert again.headers["ETag"] == etag
    assert client.get(path, headers={"If-None-Match": '"something-else"'}).status_code == 200


@pytest.mark.parametrize("path", INFO_PAGES)
def test_every_answer_is_the_same_page_and_tag(client, path):
    first, second = client.get(path), client.get(path)
    assert first.data == second.data
    assert first.headers["ETag"] == second.headers["ETag"]
    assert PAGES[path] in first.text


@pytest.mark.parametrize("path", INFO_PAGES)
def test_head_gives_the_headers_without_the_page(client, path):
    get, head = client.get(path), client.head(path)
    assert head.status_code == 200
    assert head.data == b""
    assert head.headers["ETag"] == get.headers["ETag"]
    assert head.headers["Content-Length"] == str(len(get.data))


@pytest.mark.parametrize("path", INFO_PAGES)
def test_other_methods_get_405_with_allow(client, path):
    client.get(path)  # stored: later answers may come from the stored bytes
    response = client.post(path)
    assert response.status_code == 405
    assert set(response.headers["Allow"].replace(" ", "").split(",")) == {"GET", "HEAD", "OPTIONS"}
    assert response.headers["X-Frame-Options"] == "DENY"


@pytest.mark.parametrize("path", INFO_PAGES)
def test_the_headers_are_the_sites_own_and_no_cookie(app, client, path):
    response = client.get(path)
    for name, value in header_values(app.config, secure=False).items():
        assert response.headers.get_all(name) == [value], name
    assert response.headers["Content-Type"] == "text/html; charset=utf-8"
    assert "Set-Cookie" not in response.headers and "Vary" not in response.headers
    # nginx may keep exactly these answers (it hides the header from visitors).
    assert response.headers["X-Accel-Expires"] == str(pages.PROXY_CACHE_SECONDS)


def test_the_trusted_host_check_still_holds(make_app):
    client = make_app(TRUSTED_HOSTS=["rsct.example.org"]).test_client()
    assert client.get("/", headers={"Host": "attacker.example"}).status_code == 400
    assert client.get("/", headers={"Host": "rsct.example.org"}).status_code == 200
    assert client.get("/", headers={"Host": "attacker.example"}).status_code == 400  # once stored, too
    assert client.head("/", headers={"Host": "attacker.example:443"}).status_code == 400


@pytest.mark.parametrize("path", INFO_PAGES)
def test_the_stored_answer_is_the_one_flask_gave(client, path):
    """The first visit renders through Flask; later ones are answered from the stored bytes before it."""
    first, second = client.get(path), client.get(path + "?utm=x")
    assert first.data == second.data
    # Date is the server's to send (werkzeug adds one to a conditional answer; gunicorn always sends one).
    assert sorted(first.headers.items()) == sorted([*second.headers.items(), ("Date", first.headers["Date"])])
    stale = client.get(path, headers={"If-None-Match": first.headers["ETag"]})
    fresh = client.get(path, headers={"If-None-Match": '"other"'})
    assert stale.status_code == 304 and fresh.status_code == 200


@pytest.mark.parametrize("path", ["/contact", "/contact/thanks", "/healthz", "/no-such-page", "/sitemap.xml"])
def test_nothing_else_may_be_cached_by_nginx(client, path):
    assert "X-Accel-Expires" not in client.get(path).headers


def test_the_page_is_rendered_once_per_process(app, client):
    client.get("/resources")
    app.extensions["rendered_pages"][("pages.resources", "en")] = (b"stored", "x")  # once per language
    assert client.get("/resources").data == b"stored"
    assert '<html lang="es">' in client.get("/es/recursos").text


def test_the_one_list_drives_sitemap_and_canonical_links(app, client):
    sitemap = client.get("/sitemap.xml").text
    for page in pages.PUBLIC_PAGES:
        path = {"pages.index": "/"}.get(page.endpoint)
        assert path is None or f"{path}</loc>" in sitemap
    assert sitemap.count("<loc>") == len(pages.PUBLIC_PAGES) * len(i18n.LANGUAGES)  # each page in each language
    for path in PAGES:
        assert f'<link rel="canonical" href="{app.config["SITE_URL"]}{path}">' in client.get(path).text


def test_favicon_is_answered_with_a_long_cache(client):
    response = client.get("/favicon.ico")
    assert response.status_code == 200
    assert response.data[:4] == b"\x00\x00\x01\x00"  # an ICO file
    assert response.headers["Content-Type"] in ("image/vnd.microsoft.icon", "image/x-icon")
    assert response.cache_control.max_age == 31536000
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_the_form_is_not_touched_by_the_cache(visitor, app):
    visitor.submit()
    assert len(stored_inquiries(app)) == 1
