"""Refused answers: 422, a message beside each field, a summary that links to each problem, and
every typed value back in the form, escaped. Nothing is stored.
"""

import pytest

from helpers import (
    PHONE_LINK,
    TRICKY_VALUES,
    FormPage,
    assert_is_form_region_fragment,
    assert_shown_in_form,
    field_message,
    stored_inquiries,
    summary_links,
)

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
    ("name", {"name": "Alex\U0010ffff"}, "one line"),
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
    ("message", {"message": "Hello\U0010ffff"}, "plain text only"),
]


@pytest.mark.parametrize(
    "field, changes, message", INVALID, ids=[f"{field}-{repr(next(iter(c.values())))[:24]}" for field, c, _ in INVALID]
)
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
def test_the_chosen_way_to_reach_decides_whether_phone_or_email_is_needed(app, visitor, method, phone, email, refused):
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
        assert '<section id="contact-form-region"' in response.text
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


def test_an_address_with_accents_before_the_at_is_explained_not_stored(app, visitor):
    """Such an address cannot go in a Reply-To header every server accepts; the inquiry would never leave."""
    data = visitor.form(contact_method="email", email="jörg.müller@bücher.example")
    response = visitor.post(data, htmx=True)
    assert response.status_code == 422
    assert "accented letters before the @" in response.text
    assert stored_inquiries(app) == []
    ok = visitor.submit(contact_method="email", email="jorg@bücher.example", htmx=True)
    assert ok.status_code == 200
