"""The call-back form on the server: what a visitor sees, what the office stores, and what is never kept.

The helpers at the top (fresh_token, valid_form, FormPage, stored_inquiries) are shared with
test_csrf.py, test_fuzz.py and test_ratelimit.py.
"""
import gc
import logging
import os
import re
import sqlite3
import time
from contextlib import closing

import pytest
from itsdangerous import TimestampSigner, URLSafeTimedSerializer

from helpers import (HTMX, PHONE_LINK, REFERENCE, TRICKY_VALUES, VISITOR, FormPage, FormText, Visitor,
                     assert_is_form_region_fragment, assert_shown_in_form, break_database, field_message, outbox_ids,
                     stored_inquiries, summary_links)
from rsct import contact

# ----------------------------------------------------------------------------------------------
# Helpers


def old_form_token(app, age_seconds: float) -> str:
    """A correctly signed form token issued `age_seconds` ago (what a page left open would send)."""
    class Backdated(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(time.time() - age_seconds)

    serializer = URLSafeTimedSerializer(app.config["SECRET_KEY"], salt=contact.FORM_TOKEN_SALT, signer=Backdated)
    return serializer.dumps(os.urandom(8).hex())


# ----------------------------------------------------------------------------------------------
# A valid request


def test_htmx_visitor_sees_confirmation_with_the_stored_reference(app, visitor):
    response = visitor.submit(htmx=True)
    assert response.status_code == 200
    assert_is_form_region_fragment(response.text)
    assert "Thank you. We have your request." in response.text
    references = set(REFERENCE.findall(response.text))
    [row] = stored_inquiries(app)
    assert references == {row["reference"]}


def test_plain_visitor_is_redirected_to_thanks_page_showing_the_reference(app, client, visitor):
    response = visitor.submit()
    assert response.status_code == 303
    assert response.headers["Location"] == "/contact/thanks"
    [row] = stored_inquiries(app)
    thanks = client.get("/contact/thanks")
    assert thanks.status_code == 200
    assert set(REFERENCE.findall(thanks.text)) == {row["reference"]}


def test_redirect_address_carries_no_personal_data(visitor):
    data = visitor.form(name="Zyxcanary", phone="203-555-0188", contact_method="text", email="zyxcanary@example.org")
    location = visitor.post(data).headers["Location"]
    assert "zyxcanary" not in location.lower()
    assert "0188" not in location and "?" not in location


def test_thanks_page_in_another_browser_shows_no_reference(app, visitor):
    visitor.submit()
    other = app.test_client().get("/contact/thanks")
    assert other.status_code == 200
    assert not REFERENCE.search(other.text)
    assert PHONE_LINK in other.text


def test_confirmation_names_the_chosen_way_to_reach_the_visitor(visitor):
    data = visitor.form(contact_method="email", email="visitor@example.org", phone="")
    assert "reach out to you by\n    email" in visitor.post(data, htmx=True).text
    data = visitor.form(contact_method="text")
    assert "text message" in visitor.post(data, htmx=True).text


def test_valid_request_is_stored_normalised_with_one_outbox_entry(app, visitor):
    data = visitor.form(name="  Ame\u0301lie  ", phone=" 203.555.0147 ", email="Visitor@EXAMPLE.org",
                        best_time="morning", leave_message="yes", for_whom="other",
                        message="  Line one\r\nLine two  ")
    assert visitor.post(data, htmx=True).status_code == 200
    [row] = stored_inquiries(app)
    assert row["fields"] == {
        "name": "Amélie", "contact_method": "call", "phone": "(203) 555-0147", "email": "Visitor@example.org",
        "best_time": "morning", "leave_message": "yes", "for_whom": "other", "message": "Line one\nLine two",
    }
    assert row["state"] == "pending"
    assert row["quarantine_reason"] is None
    assert row["possibly_automated"] == 0
    assert REFERENCE.fullmatch(row["reference"])
    assert outbox_ids(app) == [row["id"]]


@pytest.mark.parametrize("changes, field, stored", [
    ({"phone": "203.555.0147"}, "phone", "(203) 555-0147"),
    ({"phone": "+1 203 555 0147"}, "phone", "(203) 555-0147"),
    ({"phone": "(203) 555-0147"}, "phone", "(203) 555-0147"),
    ({"phone": "+44 20 7946 0958"}, "phone", "+44 20 7946 0958"),
    ({"phone": "011 44 20 7946 0958"}, "phone", "+44 20 7946 0958"),
    ({"contact_method": "email", "phone": "", "email": "Visitor@EXAMPLE.ORG"}, "email", "Visitor@example.org"),
    ({"contact_method": "email", "phone": "", "email": " visitor@example.org "}, "email", "visitor@example.org"),
    ({"contact_method": "email", "phone": "", "email": "Sam@Bu\u0308cher.example"}, "email", "Sam@bücher.example"),
    ({"email": ""}, "email", None),
    ({"contact_method": "email", "phone": "", "email": "v@example.org"}, "phone", None),
    ({"name": "Ame\u0301lie"}, "name", "Amélie"),
    ({"name": "\tAlex \u00a0"}, "name", "Alex"),
    ({"name": "x" * 100}, "name", "x" * 100),
    ({"name": "Sam \U0001F600"}, "name", "Sam \U0001F600"),
    ({"message": "x" * 1000}, "message", "x" * 1000),
    ({"message": "x" * 500 + "\r\n" + "x" * 499}, "message", "x" * 500 + "\n" + "x" * 499),  # fits the textarea
    ({"message": "one\rtwo\r\nthree\n\nfour"}, "message", "one\ntwo\nthree\n\nfour"),
    ({"message": "  "}, "message", None),
    ({"best_time": None}, "best_time", None),
    ({"for_whom": None}, "for_whom", None),
    ({"leave_message": None}, "leave_message", "no"),
    ({"contact_method": "text"}, "contact_method", "text"),
], ids=lambda value: repr(value)[:40] if isinstance(value, str) else None)
def test_accepted_values_are_stored_normalised(app, visitor, changes, field, stored):
    response = visitor.submit(**changes, htmx=True)
    assert response.status_code == 200, response.text
    [row] = stored_inquiries(app)
    assert row["fields"][field] == stored


@pytest.mark.parametrize("field, choices", [
    ("contact_method", ["call", "text", "email"]),
    ("best_time", ["morning", "afternoon", "evening", "any"]),
    ("leave_message", ["yes", "no"]),
    ("for_whom", ["self", "other"]),
])
def test_every_offered_choice_is_accepted(app, visitor, field, choices):
    for choice in choices:
        data = visitor.form(**{field: choice, "email": "visitor@example.org"})
        assert visitor.post(data, htmx=True).status_code == 200, choice
    assert [row["fields"][field] for row in stored_inquiries(app)] == choices


# ----------------------------------------------------------------------------------------------
# Invalid requests: 422, values kept, a summary that links to each problem


INVALID = [
    # (field, changes, part of the message)
    ("name", {"name": ""}, "Please tell us a name we can use"),
    ("name", {"name": None}, "Please tell us a name we can use"),
    ("name", {"name": "   \t "}, "Please tell us a name we can use"),
    ("name", {"name": "\u00a0\u3000"}, "Please tell us a name we can use"),
    ("name", {"name": "x" * 101}, "under 100 characters"),
    ("name", {"name": "Alex\r\nBcc: x@example.com"}, "one line"),
    ("name", {"name": "Alex\nMorgan"}, "one line"),
    ("name", {"name": "Alex\rMorgan"}, "one line"),
    ("name", {"name": "Alex\tMorgan"}, "one line"),
    ("name", {"name": "Al\x00ex"}, "one line"),
    ("name", {"name": "Al\x1b[31mex"}, "one line"),
    ("name", {"name": "Al\x7fex"}, "one line"),
    ("name", {"name": "Al\x85ex"}, "one line"),
    ("name", {"name": "Al\u2028ex"}, "one line"),
    ("name", {"name": "Alex\U0010FFFF"}, "one line"),
    ("contact_method", {"contact_method": None}, "Please choose how we should reach you"),
    ("contact_method", {"contact_method": ""}, "Please choose how we should reach you"),
    ("contact_method", {"contact_method": "fax"}, "Please choose one of the options"),
    ("contact_method", {"contact_method": "CALL"}, "Please choose one of the options"),
    ("contact_method", {"contact_method": "call\r\n"}, "Please choose one of the options"),
    ("phone", {"phone": "12"}, "full phone number"),
    ("phone", {"phone": "not a number"}, "full phone number"),
    ("phone", {"phone": "203 555 014"}, "full phone number"),
    ("phone", {"phone": "+999 123 456 789"}, "full phone number"),
    ("phone", {"phone": "1" * 41}, "under 40 characters"),
    ("phone", {"phone": "203\n555 0147"}, "one line"),
    ("phone", {"phone": "203.555.0147\r\nBcc: x@example.com"}, "one line"),
    ("phone", {"phone": "203\x00555 0147"}, "one line"),
    ("email", {"contact_method": "email", "email": "visitor"}, "look like an email address"),
    ("email", {"contact_method": "email", "email": "visitor@"}, "look like an email address"),
    ("email", {"contact_method": "email", "email": "visitor@example"}, "look like an email address"),
    ("email", {"contact_method": "email", "email": "visitor@localhost"}, "look like an email address"),
    ("email", {"contact_method": "email", "email": "a b@example.org"}, "look like an email address"),
    ("email", {"contact_method": "call", "email": "visitor@@example.org"}, "look like an email address"),
    ("email", {"contact_method": "email", "email": "v" * 250 + "@example.org"}, "under 254 characters"),
    ("email", {"contact_method": "email", "email": "v@example.org\r\nBcc: x@example.com"}, "one line"),
    ("email", {"contact_method": "email", "email": "v@example.org\x00"}, "one line"),
    ("best_time", {"best_time": "noon"}, "Please choose one of the options"),
    ("best_time", {"best_time": "<script>"}, "Please choose one of the options"),
    ("leave_message", {"leave_message": "maybe"}, "Please choose one of the options"),
    ("leave_message", {"leave_message": "YES"}, "Please choose one of the options"),
    ("for_whom", {"for_whom": "dog"}, "Please choose one of the options"),
    ("message", {"message": "x" * 1001}, "under 1,000 characters"),
    ("message", {"message": "Hello\x07"}, "plain text only"),
    ("message", {"message": "Hello\x00there"}, "plain text only"),
    ("message", {"message": "Hello\x1b[2J"}, "plain text only"),
    ("message", {"message": "Hello\U0010FFFF"}, "plain text only"),
]


@pytest.mark.parametrize("field, changes, message", INVALID,
                         ids=[f"{field}-{repr(next(iter(c.values())))[:24]}" for field, c, _ in INVALID])
def test_invalid_answer_is_refused_with_a_message_beside_the_field(app, visitor, field, changes, message):
    response = visitor.submit(**changes, htmx=True)
    assert response.status_code == 422
    assert message in field_message(response.text, field)
    assert stored_inquiries(app) == []


CROSS_FIELD = [
    # (contact_method, phone, email, the field that must be refused or None)
    ("call", "", "", "phone"),
    ("call", "", "visitor@example.org", "phone"),
    ("text", "", "", "phone"),
    ("text", "  ", "visitor@example.org", "phone"),
    ("email", "", "", "email"),
    ("email", "(203) 555-0147", "", "email"),
    ("email", "(203) 555-0147", " ", "email"),
    ("call", "(203) 555-0147", "", None),
    ("text", "(203) 555-0147", "", None),
    ("email", "", "visitor@example.org", None),
    ("call", "(203) 555-0147", "visitor@example.org", None),
]


@pytest.mark.parametrize("method, phone, email, refused", CROSS_FIELD)
def test_the_chosen_way_to_reach_decides_whether_phone_or_email_is_needed(app, visitor, method, phone, email,
                                                                        refused):
    data = visitor.form(contact_method=method, phone=phone, email=email)
    response = visitor.post(data, htmx=True)
    if refused is None:
        assert response.status_code == 200
        assert len(stored_inquiries(app)) == 1
    else:
        assert response.status_code == 422
        needed = {"phone": "Please give a phone number", "email": "Please give an email address"}[refused]
        assert needed in field_message(response.text, refused)
        assert summary_links(response.text) == [f"#{refused}"]
        assert stored_inquiries(app) == []


@pytest.mark.parametrize("htmx", [True, False], ids=["htmx", "plain"])
def test_invalid_form_comes_back_with_every_typed_value_escaped(visitor, htmx):
    data = visitor.form(**TRICKY_VALUES)
    response = visitor.post(data, htmx=htmx)
    assert response.status_code == 422
    assert_shown_in_form(response.text, data)
    assert "<script>alert(1)</script>" not in response.text
    assert '<b>"O\'Brien"</b>' not in response.text
    assert "01<i>" not in response.text


@pytest.mark.parametrize("htmx", [True, False], ids=["htmx", "plain"])
def test_htmx_gets_the_form_region_and_a_plain_browser_the_whole_page(visitor, htmx):
    response = visitor.submit(phone="12", htmx=htmx)
    assert response.status_code == 422
    if htmx:
        assert_is_form_region_fragment(response.text)
    else:
        assert response.text.lstrip().lower().startswith("<!doctype html>")
        assert '<div id="contact-form-region"' in response.text
        assert PHONE_LINK in response.text


@pytest.mark.parametrize("htmx", [True, False], ids=["htmx", "plain"])
def test_error_summary_links_to_each_bad_field_and_marks_it_invalid(visitor, htmx):
    data = visitor.form(name="", contact_method="", phone="12", best_time="noon")
    response = visitor.post(data, htmx=htmx)
    assert response.status_code == 422
    assert summary_links(response.text) == ["#name", "#contact_method-0", "#phone", "#best_time-0"]
    page = FormPage(response.text)
    assert page.by_id["name"].get("aria-invalid") == "true"
    assert page.by_id["phone"].get("aria-invalid") == "true"
    assert page.by_id["contact_method-group"].get("aria-invalid") == "true"
    assert page.by_id["best_time-group"].get("aria-invalid") == "true"
    assert "aria-invalid" not in page.by_id["email"]
    assert "aria-invalid" not in page.by_id["message"]
    assert "contact_method-0" in page.by_id  # the summary link has somewhere to go


def test_summary_heading_says_this_answer_for_one_problem(visitor):
    response = visitor.submit(phone="12", htmx=True)
    assert "Please check this answer" in response.text
    assert summary_links(response.text) == ["#phone"]


def test_unknown_radio_value_is_refused_and_no_choice_is_checked(visitor):
    response = visitor.submit(contact_method="fax", htmx=True)
    assert response.status_code == 422
    assert "contact_method" not in FormPage(response.text).checked


# ----------------------------------------------------------------------------------------------
# The per-field check (sent by htmx when a visitor leaves a field)


@pytest.mark.parametrize("field, data, message", [
    ("phone", {"contact_method": "call", "phone": "12"}, "full phone number"),
    ("phone", {"contact_method": "call", "phone": ""}, "Please give a phone number"),
    ("phone", {"contact_method": "call", "phone": "203\n555 0147"}, "one line"),
    ("phone", {"contact_method": "call", "phone": "203.555.0147"}, ""),
    ("phone", {"contact_method": "email", "phone": ""}, ""),
    ("email", {"contact_method": "email", "email": "visitor@"}, "look like an email address"),
    ("email", {"contact_method": "email", "email": ""}, "Please give an email address"),
    ("email", {"contact_method": "email", "email": "visitor@example.org"}, ""),
    ("email", {"contact_method": "call", "email": ""}, ""),
])
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


@pytest.mark.parametrize("value, message", [
    ("", "Please choose how we should reach you"),
    ("fax", "Please choose one of the options"),
])
def test_method_check_reports_a_missing_or_unknown_method(client, value, message):
    response = client.post("/contact/check/contact_method", data={"contact_method": value})
    assert message in FormText(response.text.split("<div", 1)[0]).text
    assert set(out_of_band(response.text)) == {"phone", "email"}


@pytest.mark.parametrize("path", ["/contact/check/name", "/contact/check/message", "/contact/check/",
                                  "/contact/check/website", "/contact/check/phone%0A"])
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


# ----------------------------------------------------------------------------------------------
# The same form sent twice


def test_same_form_sent_twice_is_stored_once_with_the_same_reference(app, visitor):
    data = visitor.form()
    first = visitor.post(data, htmx=True)
    second = visitor.post(data, htmx=True)
    assert first.status_code == second.status_code == 200
    assert REFERENCE.findall(first.text)[0] == REFERENCE.findall(second.text)[0]
    assert len(stored_inquiries(app)) == 1
    assert len(outbox_ids(app)) == 1


def test_plain_form_sent_twice_shows_the_same_reference_both_times(app, client, visitor):
    data = visitor.form()
    references = []
    for _ in range(2):
        assert visitor.post(data).status_code == 303
        references.append(REFERENCE.search(client.get("/contact/thanks").text).group(0))
    [row] = stored_inquiries(app)
    assert references == [row["reference"], row["reference"]]


def test_same_form_with_changed_content_is_a_second_request(app, visitor):
    data = visitor.form()
    first = visitor.post(data, htmx=True)
    second = visitor.post({**data, "message": "Actually, mornings are better."}, htmx=True)
    rows = stored_inquiries(app)
    assert len(rows) == 2
    assert [row["reference"] for row in rows] == [REFERENCE.search(first.text).group(0),
                                                  REFERENCE.search(second.text).group(0)]
    assert rows[0]["reference"] != rows[1]["reference"]
    assert len(outbox_ids(app)) == 2


def test_same_words_from_a_fresh_form_within_the_hour_are_one_request(app, visitor):
    """Without JavaScript, Back after sending reloads the form with a new token but the typed words."""
    first = visitor.submit(htmx=True)
    second = visitor.submit(htmx=True)
    assert len(stored_inquiries(app)) == 1
    assert REFERENCE.search(first.text)[0] == REFERENCE.search(second.text)[0]


def test_same_words_after_an_hour_are_a_new_request(app, visitor):
    visitor.submit(htmx=True)
    with sqlite3.connect(app.config["DATABASE"]) as db:
        db.execute("UPDATE inquiries SET submitted_at = submitted_at - 3601")
    db.close()
    visitor.submit(htmx=True)
    assert len({row["reference"] for row in stored_inquiries(app)}) == 2


# ----------------------------------------------------------------------------------------------
# Robots


@pytest.mark.parametrize("htmx", [True, False], ids=["htmx", "plain"])
def test_filled_honeypot_is_quarantined_but_looks_accepted(app, client, visitor, htmx):
    response = visitor.submit(website="http://spam.example", htmx=htmx)
    if htmx:
        assert response.status_code == 200
        shown = REFERENCE.search(response.text).group(0)
    else:
        assert response.status_code == 303
        shown = REFERENCE.search(client.get("/contact/thanks").text).group(0)
    [row] = stored_inquiries(app)
    assert row["reference"] == shown
    assert row["state"] == "quarantined"
    assert row["quarantine_reason"]
    assert outbox_ids(app) == []


def test_blank_honeypot_is_not_quarantined(app, visitor):
    visitor.submit(website="  ", htmx=True)
    [row] = stored_inquiries(app)
    assert row["state"] == "pending" and row["quarantine_reason"] is None


def test_form_sent_faster_than_a_person_could_is_marked_but_still_delivered(make_app):
    app = make_app(MIN_FILL_SECONDS=30)
    assert Visitor(app.test_client()).submit(htmx=True).status_code == 200
    [row] = stored_inquiries(app)
    assert row["possibly_automated"] == 1
    assert row["state"] == "pending" and row["quarantine_reason"] is None
    assert outbox_ids(app) == [row["id"]]


def test_form_filled_in_at_a_human_pace_is_not_marked(make_app):
    app = make_app(MIN_FILL_SECONDS=30)
    Visitor(app.test_client()).submit(form_token=old_form_token(app, 120), htmx=True)
    [row] = stored_inquiries(app)
    assert row["possibly_automated"] == 0


def test_without_a_minimum_fill_time_nothing_is_marked(make_app):
    app = make_app(MIN_FILL_SECONDS=0)
    Visitor(app.test_client()).submit(htmx=True)
    [row] = stored_inquiries(app)
    assert row["possibly_automated"] == 0


def _tampered(token: str) -> str:
    """The same token with one character of its signature changed (a middle one: every bit of it counts)."""
    payload, signature = token.rsplit(".", 1)
    middle = len(signature) // 2
    changed = "A" if signature[middle] != "A" else "B"
    return f"{payload}.{signature[:middle]}{changed}{signature[middle + 1:]}"


@pytest.mark.parametrize("token", [
    "garbage", "", None, "a.b.c", "\u00e9\u00e9.\u00e9", "x" * 2000, "tampered",
])
def test_bad_form_token_is_stored_anyway_and_marked(app, visitor, token):
    if token == "tampered":
        token = _tampered(visitor.fresh_token())
    response = visitor.submit(form_token=token, htmx=True)
    assert response.status_code == 200
    [row] = stored_inquiries(app)
    assert row["reference"] == REFERENCE.search(response.text).group(0)
    assert row["possibly_automated"] == 1
    assert row["state"] == "pending"
    assert row["fields"]["name"] == VISITOR["name"]


def test_token_signed_with_another_key_is_marked(make_app, app, visitor):
    other = make_app(SECRET_KEY="another key " * 4, INSTANCE_PATH=app.instance_path + "-other")
    token = Visitor(other.test_client()).fresh_token()
    visitor.submit(form_token=token, htmx=True)
    [row] = stored_inquiries(app)
    assert row["possibly_automated"] == 1


# ----------------------------------------------------------------------------------------------
# Caching, logs, failures


def _get_form(make_app):
    return make_app().test_client().get("/contact")


def _post_valid(make_app, htmx=True):
    return Visitor(make_app().test_client()).submit(htmx=htmx)


def _post_invalid(make_app):
    return Visitor(make_app().test_client()).submit(name="", htmx=True)


def _get_thanks(make_app):
    client = make_app().test_client()
    Visitor(client).submit()
    return client.get("/contact/thanks")


def _post_rate_limited(make_app):
    visitor = Visitor(make_app(RATE_LIMIT_COUNT=1).test_client())
    visitor.submit()
    return visitor.submit(message="Another request")


def _post_csrf_failure(make_app):
    return Visitor(make_app(WTF_CSRF_ENABLED=True).test_client()).submit(csrf_token="wrong")


def _post_storage_failure(make_app):
    app = make_app()
    visitor = Visitor(app.test_client())
    data = visitor.form()
    break_database(app)
    return visitor.post(data)


def _post_too_large(make_app):
    return Visitor(make_app().test_client()).submit(message="x" * 40_000)


def _check_field(make_app):
    return make_app().test_client().post("/contact/check/phone", data={"phone": "12"})


@pytest.mark.parametrize("request_, status", [
    (_get_form, 200), (_post_valid, 200), (lambda m: _post_valid(m, htmx=False), 303), (_post_invalid, 422),
    (_get_thanks, 200), (_post_rate_limited, 429), (_post_csrf_failure, 400), (_post_storage_failure, 503),
    (_post_too_large, 413), (_check_field, 200),
], ids=["form", "sent-htmx", "sent-plain", "invalid", "thanks", "rate-limited", "csrf", "storage", "too-large",
        "check"])
def test_no_browser_or_proxy_may_keep_a_copy(make_app, request_, status):
    response = request_(make_app)
    assert response.status_code == status
    assert response.headers["Cache-Control"] == "no-store"


CANARY = dict(name="Zyxcanary Qvw", phone="203-555-0188", email="zyxcanary@example.org",
              message="Zyxcanary note about my brother")


def _log_text(records) -> str:
    parts = []
    for record in records:
        parts.append(record.getMessage())
        parts.append(repr(record.args))
        if record.exc_info:
            parts.append(logging.Formatter().formatException(record.exc_info))
    return "\n".join(parts)


def _assert_no_canary(records) -> None:
    text = _log_text(records)
    assert "zyxcanary" not in text.lower()
    assert "0188" not in re.sub(r"\D", "", text)


@pytest.mark.parametrize("htmx", [True, False], ids=["htmx", "plain"])
def test_logs_name_the_reference_but_never_what_the_visitor_typed(app, visitor, caplog, htmx):
    caplog.set_level(logging.DEBUG)
    response = visitor.submit(**CANARY, htmx=htmx)
    assert response.status_code in (200, 303)
    [row] = stored_inquiries(app)
    assert row["reference"] in caplog.text
    _assert_no_canary(caplog.records)


@pytest.mark.parametrize("scenario", ["invalid", "rate-limited", "storage", "too-large", "check", "csrf"])
def test_failures_never_log_what_the_visitor_typed(make_app, caplog, scenario):
    caplog.set_level(logging.DEBUG)
    settings = {"rate-limited": {"RATE_LIMIT_COUNT": 1}, "csrf": {"WTF_CSRF_ENABLED": True}}.get(scenario, {})
    app = make_app(**settings)
    client = app.test_client()
    visitor = Visitor(client)
    data = visitor.form(**CANARY)
    expected = {"invalid": 422, "rate-limited": 429, "storage": 503, "too-large": 413, "check": 200, "csrf": 400}
    if scenario == "invalid":
        data["phone"] = "203-555-0188 x"
        data["contact_method"] = "fax"
    elif scenario == "rate-limited":
        visitor.submit()
    elif scenario == "storage":
        break_database(app)
    elif scenario == "too-large":
        data["message"] += " Zyxcanary" * 4000
    elif scenario == "csrf":
        data["csrf_token"] = "wrong"
    url = "/contact/check/contact_method" if scenario == "check" else "/contact"
    caplog.clear()
    response = client.post(url, data=data, headers=HTMX)
    assert response.status_code == expected[scenario]
    if scenario == "storage":
        assert "could not be stored" in caplog.text  # the operator still hears about it
    _assert_no_canary(caplog.records)


@pytest.mark.parametrize("htmx", [True, False], ids=["htmx", "plain"])
def test_database_that_cannot_be_written_keeps_the_words_and_gives_the_phone_number(app, visitor, htmx):
    data = visitor.form(**TRICKY_VALUES)
    data["phone"] = "(203) 555-0147"
    break_database(app)
    response = visitor.post(data, htmx=htmx)
    assert response.status_code == 503
    assert PHONE_LINK in response.text
    assert "could not save your request" in response.text
    assert_shown_in_form(response.text, data)
    if htmx:
        assert_is_form_region_fragment(response.text)
    else:
        assert "<html" in response.text


def test_database_in_an_impossible_place_gives_503_not_500(app, visitor):
    data = visitor.form()
    app.config["DATABASE"] = "/proc/rsct-nowhere.sqlite3"
    response = visitor.post(data, htmx=True)
    assert response.status_code == 503
    assert PHONE_LINK in response.text
    assert_shown_in_form(response.text, data)


def test_database_below_a_file_gives_503_not_500(app, visitor, tmp_path):
    data = visitor.form()
    (tmp_path / "not-a-folder").write_text("")
    app.config["DATABASE"] = str(tmp_path / "not-a-folder" / "rsct.sqlite3")
    response = visitor.post(data)
    assert response.status_code == 503
    assert PHONE_LINK in response.text


def test_form_sent_after_the_database_recovers_is_stored(app, visitor):
    data = visitor.form()
    path = app.config["DATABASE"]
    app.config["DATABASE"] = "/proc/rsct-nowhere.sqlite3"
    assert visitor.post(data, htmx=True).status_code == 503
    app.config["DATABASE"] = path
    assert visitor.post(data, htmx=True).status_code == 200
    assert len(stored_inquiries(app)) == 1


def test_too_much_text_from_htmx_keeps_the_form_and_shows_a_short_notice(app, visitor):
    response = visitor.submit(message="x" * 40_000, htmx=True)
    assert response.status_code == 413
    assert response.headers["HX-Retarget"] == "#form-status"
    assert response.headers["HX-Reswap"] == "innerHTML"
    assert PHONE_LINK in response.text
    assert "more text than the form can take" in response.text
    assert "<html" not in response.text and "<form" not in response.text
    assert stored_inquiries(app) == []


def test_too_much_text_from_a_plain_browser_gives_a_page_with_the_phone_number(app, visitor):
    response = visitor.submit(message="x" * 40_000)
    assert response.status_code == 413
    assert "<html" in response.text
    assert PHONE_LINK in response.text
    assert "HX-Retarget" not in response.headers
    assert stored_inquiries(app) == []


def test_body_just_under_the_limit_is_read(app, visitor):
    data = visitor.form(message="x" * 1001)  # too long for the form, not for the server
    response = visitor.post(data, htmx=True)
    assert response.status_code == 422


def _corrupt_database(app) -> None:
    path = app.config["DATABASE"]
    for suffix in ("-wal", "-shm"):
        if os.path.exists(path + suffix):
            os.remove(path + suffix)
    with open(path, "wb") as handle:
        handle.write(b"not a database " * 100)


def test_database_file_that_is_not_a_database_gives_503_not_500(app, visitor):
    data = visitor.form()
    _corrupt_database(app)
    response = visitor.post(data, htmx=True)
    assert response.status_code == 503
    assert PHONE_LINK in response.text
    assert_shown_in_form(response.text, data)
    gc.collect()  # see the next test: the failed connection is only closed by the garbage collector


def _open_files_under(prefix: str) -> list[str]:
    paths = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            paths.append(os.readlink(f"/proc/self/fd/{fd}"))
        except OSError:
            pass
    return [path for path in paths if path.startswith(prefix)]


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc to list open files")
def test_failed_database_connection_is_closed_at_once(app, visitor):
    data = visitor.form()
    _corrupt_database(app)
    gc.collect()
    gc.disable()  # only reference counting: what is not closed explicitly stays open
    try:
        response = visitor.post(data, htmx=True)
        assert response.status_code == 503
        del response
        assert _open_files_under(app.config["DATABASE"]) == []
    finally:
        gc.enable()
        gc.collect()


def test_thanks_page_shows_the_reference_once(client, visitor):
    response = visitor.submit()
    assert response.status_code == 303
    first = client.get("/contact/thanks")
    assert REFERENCE.search(first.text)
    again = client.get("/contact/thanks")  # the next person at a shared computer
    assert not REFERENCE.search(again.text)
    assert PHONE_LINK in again.text


def test_an_address_with_accents_before_the_at_is_explained_not_stored(app, visitor):
    """Such an address cannot go in a Reply-To header every server accepts; the inquiry would never leave."""
    data = visitor.form(contact_method="email", email="jörg.müller@bücher.example")
    response = visitor.post(data, htmx=True)
    assert response.status_code == 422
    assert "accented letters before the @" in response.text
    assert stored_inquiries(app) == []
    ok = visitor.submit(contact_method="email", email="jorg@bücher.example", htmx=True)
    assert ok.status_code == 200


def test_same_words_from_another_browser_are_a_new_request_and_reveal_nothing(app, visitor):
    first = visitor.submit(htmx=True)
    stranger = Visitor(app.test_client())
    second = stranger.submit(htmx=True)
    assert REFERENCE.search(first.text)[0] != REFERENCE.search(second.text)[0]
    assert len(stored_inquiries(app)) == 2
