"""Input no browser form sends (a file part, a field twice) gets the normal 422 form, never a 500."""

import io

import pytest
from werkzeug.datastructures import MultiDict

from helpers import VISITOR, Visitor

FIELDS = {**VISITOR, "website": "", "cookie_check": ""}
URLS = ["/contact", "/contact/check/phone", "/contact/check/email", "/contact/check/contact_method"]


def with_token(client) -> dict:
    return dict(FIELDS, form_token=Visitor(client).fresh_token())


@pytest.mark.parametrize("url", URLS)
@pytest.mark.parametrize("field", [*FIELDS, "form_token", "attachment"])
def test_a_file_in_any_field_gets_422(client, url, field):
    data = with_token(client)
    data[field] = (io.BytesIO(b"%PDF-1.4 not a name"), "letter.pdf")
    response = client.post(url, data=data, content_type="multipart/form-data")
    assert response.status_code == 422, response.text[:500]
    if url == "/contact":
        assert 'id="contact-form"' in response.text
        kept = [value for name, value in FIELDS.items() if value and name not in (field, "contact_method")]
        assert all(value in response.text for value in kept)  # the visitor's other words come back


def test_a_file_in_the_name_field_is_named_in_the_summary(client):
    data = with_token(client)
    data["name"] = (io.BytesIO(b"x"), "name.txt")
    response = client.post("/contact", data=data, content_type="multipart/form-data")
    assert response.status_code == 422
    assert 'href="#name">Name: Please type your answer here as plain text.</a>' in response.text


@pytest.mark.parametrize("url", URLS)
@pytest.mark.parametrize("field", [*FIELDS, "form_token"])
def test_a_field_sent_twice_gets_422(client, url, field):
    data = MultiDict(with_token(client))
    data.add(field, "another value")
    response = client.post(url, data=data)
    assert response.status_code == 422, response.text[:500]


def test_nothing_odd_still_stores_the_request(client):
    assert client.post("/contact", data=with_token(client)).status_code == 303


@pytest.mark.parametrize("method, url", [("delete", "/"), ("put", "/contact"), ("post", "/privacy")])
def test_a_method_the_page_does_not_take_says_which_it_does(client, method, url):
    response = getattr(client, method)(url)
    assert response.status_code == 405
    assert "GET" in {m.strip() for m in response.headers["Allow"].split(",")}
    assert "(203) 421-6242" in response.text
