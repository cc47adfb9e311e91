"""The per-field check htmx sends when a visitor leaves a field: only that field's message, out-of-band
messages for phone and email when the way to reach changes, and nothing stored or counted.
"""

import re
import sqlite3
from contextlib import closing

import pytest

from helpers import HTMX, FormText, outbox_ids, stored_inquiries


@pytest.mark.parametrize(
    "field, data, message",
    [
        ("phone", {"contact_method": "call", "phone": "12"}, "full phone number"),
        ("phone", {"contact_method": "call", "phone": ""}, "Please give a phone number"),
        ("phone", {"contact_method": "call", "phone": "203\n555 0147"}, "one line"),
        ("phone", {"contact_method": "call", "phone": "203.555.0147"}, ""),
        ("phone", {"contact_method": "email", "phone": ""}, ""),
        ("email", {"contact_method": "email", "email": "visitor@"}, "look like an email address"),
        ("email", {"contact_method": "email", "email": ""}, "Please give an email address"),
        ("email", {"contact_method": "email", "email": "visitor@example.org"}, ""),
        ("email", {"contact_method": "call", "email": ""}, ""),
    ],
)
def test_field_check_returns_only_that_fields_message(client, field, data, message):
    response = client.post(f"/contact/check/{field}", data=data, headers=HTMX)
    assert response.status_code == 200
    text = FormText(response.text).text
    if message:
        assert message in text
        assert response.text.startswith('<span class="visually-hidden">Error: </span>')
    else:
        assert response.text == ""
    assert "<div" not in response.text and "<html" not in response.text
    assert "Please tell us a name" not in response.text  # other fields' problems are not reported


def out_of_band(html: str) -> dict[str, str]:
    blocks = re.findall(r'<div id="(\w+)-message" data-hx-swap-oob="innerHTML">(.*?)</div>', html, re.S)
    return {name: FormText(body).text for name, body in blocks}


def test_method_check_reports_a_bad_phone_number_out_of_band(client):
    response = client.post("/contact/check/contact_method", data={"contact_method": "call", "phone": "12"})
    assert response.status_code == 200
    assert response.text.startswith("\n<div")  # no message for the method itself
    messages = out_of_band(response.text)
    assert set(messages) == {"phone", "email"}
    assert "full phone number" in messages["phone"]
    assert messages["email"] == ""


def test_method_check_asks_for_email_only_when_one_is_typed(client):
    typed = client.post("/contact/check/contact_method", data={"contact_method": "email", "email": "visitor@"})
    assert "look like an email address" in out_of_band(typed.text)["email"]
    empty = client.post("/contact/check/contact_method", data={"contact_method": "email", "email": "", "phone": ""})
    assert out_of_band(empty.text) == {"phone": "", "email": ""}


def test_method_check_clears_messages_once_everything_fits(client):
    data = {"contact_method": "text", "phone": "203.555.0147", "email": "visitor@example.org"}
    response = client.post("/contact/check/contact_method", data=data)
    assert FormText(response.text.split("<div", 1)[0]).text == ""
    assert out_of_band(response.text) == {"phone": "", "email": ""}


@pytest.mark.parametrize(
    "value, message",
    [
        ("", "Please choose how we should reach you"),
        ("fax", "Please choose one of the options"),
    ],
)
def test_method_check_reports_a_missing_or_unknown_method(client, value, message):
    response = client.post("/contact/check/contact_method", data={"contact_method": value})
    assert message in FormText(response.text.split("<div", 1)[0]).text
    assert set(out_of_band(response.text)) == {"phone", "email"}


@pytest.mark.parametrize(
    "path",
    [
        "/contact/check/name",
        "/contact/check/message",
        "/contact/check/",
        "/contact/check/website",
        "/contact/check/phone%0A",
    ],
)
def test_check_for_an_unknown_field_is_not_found(client, path):
    response = client.post(path, data={"name": "Alex"})
    assert response.status_code == 404


def test_field_checks_never_store_anything(app, client, visitor):
    data = visitor.form()
    for field in ("phone", "email", "contact_method"):
        for _ in range(3):
            assert client.post(f"/contact/check/{field}", data=data, headers=HTMX).status_code == 200
    assert stored_inquiries(app) == []
    assert outbox_ids(app) == []
    with closing(sqlite3.connect(app.config["DATABASE"])) as db:
        assert db.execute("SELECT count(*) FROM rate_events").fetchone()[0] == 0
