"""After sending: the confirmation an htmx visitor sees, the thanks page a plain browser is sent to,
and the reference shown again for ten minutes (masked), to the visitor who sent it and to no one else.
"""

import html
import json
import re

import pytest

from rsct import contact

from helpers import PHONE_LINK, REFERENCE, Visitor, assert_is_form_region_fragment, stored_inquiries


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


def test_confirmation_names_the_chosen_way_to_reach_the_visitor(visitor):
    data = visitor.form(contact_method="email", email="visitor@example.org", phone="")
    shown = visitor.post(data, htmx=True).text
    assert re.search(r"By email\s+to <strong class=\"way-back\">visitor@example.org</strong>", shown)
    data = visitor.form(contact_method="text")
    shown = visitor.post(data, htmx=True).text
    assert re.search(r"By text message\s+at <strong class=\"way-back\">\(203\) 555-0147</strong>", shown)


def test_thanks_page_in_another_browser_shows_no_reference(app, visitor):
    visitor.submit()
    other = app.test_client().get("/contact/thanks")
    assert other.status_code == 200
    assert not REFERENCE.search(other.text)
    assert PHONE_LINK in other.text


def test_thanks_page_forgets_the_reference_once_a_new_form_is_shown(client, visitor):
    response = visitor.submit()
    assert response.status_code == 303
    first = client.get("/contact/thanks")
    assert REFERENCE.search(first.text)
    client.get("/contact")  # the next person at a shared computer opens the form
    again = client.get("/contact/thanks")
    assert not REFERENCE.search(again.text)
    assert PHONE_LINK in again.text


# --- the way back, repeated; a reload within ten minutes shows it again, masked ---------------------

MASKED_PHONE = "(203) \u00b7\u00b7\u00b7-0147"
GONE = "We can't show the details of your request on this page any more."


def session_of(app, client) -> dict:
    """The session as the browser holds it: signed by Flask, readable by anyone with the cookie."""
    cookie = client.get_cookie(app.config["SESSION_COOKIE_NAME"])
    return app.session_interface.get_signing_serializer(app).loads(cookie.value) if cookie else {}


def later(monkeypatch, seconds):
    """Move the clock forward (the contact views read time.time())."""
    now = contact.time.time()
    monkeypatch.setattr(contact.time, "time", lambda: now + seconds)


def test_htmx_confirmation_moves_the_address_to_thanks_and_names_the_full_number(visitor):
    response = visitor.submit(htmx=True)
    assert response.status_code == 200
    assert response.headers["HX-Push-Url"] == "/contact/thanks"
    text = response.text
    assert '<h2 id="confirmation-title"' in text and "Ask us to contact you" not in text
    assert '<strong class="way-back">(203) 555-0147</strong>' in text
    assert "The best time, you said: morning." in text
    assert "We will not leave a message that names us." in text
    assert "as soon as possible" in text
    assert 'href="/contact">send a new request</a>' in text
    assert text.count("not watched around the clock") == 1


def test_reload_shows_the_confirmation_again_masked_without_a_new_request(app, client, visitor):
    sent = visitor.submit(htmx=True)
    reference = REFERENCE.search(sent.text).group(0)
    for _ in range(2):
        again = client.get("/contact/thanks")
        assert again.status_code == 200
        assert REFERENCE.search(again.text).group(0) == reference
        assert f'<strong class="way-back">{MASKED_PHONE}</strong>' in again.text
        assert "555-0147" not in again.text and "morning" not in again.text
        assert "We will not leave a message that names us." in again.text
    assert len(stored_inquiries(app)) == 1


def test_the_session_holds_only_the_reference_method_masked_contact_and_message_choice(app, client, visitor):
    visitor.submit(htmx=True)
    note = session_of(app, client)["thanks"]
    assert set(note) == {"reference", "method", "contact", "leave_message", "until"}
    assert (note["method"], note["contact"], note["leave_message"]) == ("call", MASKED_PHONE, "no")
    raw = json.dumps(session_of(app, client))
    assert "Qzxname" not in raw and "Qzxnote" not in raw and "555" not in raw and "morning" not in raw


def test_the_confirmation_is_forgotten_after_ten_minutes(app, client, visitor, monkeypatch):
    visitor.submit(htmx=True)
    later(monkeypatch, 9 * 60)
    assert REFERENCE.search(client.get("/contact/thanks").text)
    later(monkeypatch, 2 * 60)
    gone = client.get("/contact/thanks")
    assert GONE in gone.text and not REFERENCE.search(gone.text)
    assert "thanks" not in session_of(app, client)


def test_a_new_form_forgets_the_confirmation(app, client, visitor):
    visitor.submit(htmx=True)
    client.get("/contact")
    assert "thanks" not in session_of(app, client)
    assert GONE in client.get("/contact/thanks").text


def test_without_javascript_the_first_thanks_page_is_full_and_a_reload_masked(app, client, visitor):
    assert visitor.submit().status_code == 303
    first = client.get("/contact/thanks").text
    assert '<strong class="way-back">(203) 555-0147</strong>' in first and "morning" in first
    assert "is hidden here" not in first
    second = client.get("/contact/thanks").text
    assert f'<strong class="way-back">{MASKED_PHONE}</strong>' in second
    assert "555-0147" not in second and "is hidden here" in second
    assert len(stored_inquiries(app)) == 1


def test_office_hours_say_when_to_expect_contact(make_app):
    visitor = Visitor(make_app(OFFICE_HOURS="Monday to Friday, 9 am to 5 pm").test_client())
    text = visitor.submit(htmx=True).text
    assert "will reach out during our office hours: Monday to Friday, 9 am to 5 pm." in text
    assert "as soon as possible" not in text


def test_a_yes_to_messages_is_not_contradicted(visitor):
    assert "We will not leave a message" not in visitor.submit(htmx=True, leave_message="yes").text


def test_email_is_confirmed_with_the_office_as_sender_and_masked_on_reload(client, visitor):
    text = visitor.submit(htmx=True, contact_method="email", email="sam.jones@example.org", phone="").text
    assert '<strong class="way-back">sam.jones@example.org</strong>' in text
    assert "Our answer will come from the office's own email address." in text
    again = client.get("/contact/thanks").text
    assert '<strong class="way-back">s\u00b7\u00b7\u00b7@example.org</strong>' in again
    assert "sam.jones" not in again


def test_an_email_typed_beside_a_phone_call_is_kept_as_a_second_way(app, visitor):
    text = visitor.submit(htmx=True, email="sam@example.org").text
    assert "second way to reach you: <strong>sam@example.org</strong>" in text
    [row] = stored_inquiries(app)
    assert row["fields"]["email"] == "sam@example.org"


def test_a_wrong_email_beside_a_phone_call_says_it_may_be_left_empty(client, visitor):
    response = visitor.submit(htmx=True, email="sam@")
    assert response.status_code == 422
    assert "Or leave it empty: it is only needed if you choose email." in response.text
    check = client.post("/contact/check/email", data={"contact_method": "text", "email": "sam@"})
    assert "Or leave it empty" in check.text
    needed = client.post("/contact/check/email", data={"contact_method": "email", "email": "sam@"})
    assert "look like an email address" in needed.text and "leave it empty" not in needed.text


@pytest.mark.parametrize(
    "number, masked",
    [
        ("(203) 555-0147", MASKED_PHONE),
        ("+44 20 7946 0958", "+44 2\u00b7 \u00b7\u00b7\u00b7\u00b7 0958"),
        ("(203) 555-0147 ext. 12", MASKED_PHONE + " ext. 12"),
    ],
)
def test_phone_numbers_are_masked_in_the_middle(number, masked):
    assert contact.mask_phone(number) == masked


@pytest.mark.parametrize(
    "address, masked",
    [("sam.jones@example.org", "s\u00b7\u00b7\u00b7@example.org"), ("x@y.example", "x\u00b7\u00b7\u00b7@y.example")],
)
def test_email_addresses_keep_only_their_first_letter_and_domain(address, masked):
    assert contact.mask_email(address) == masked


def test_the_contact_page_skips_to_the_form_and_lets_the_site_speak(client):
    text = client.get("/contact").text
    assert '<a class="skip-link" href="#contact-form-region">Skip to the form</a>' in text
    form_tag = re.search(r"<form [^>]*>", text).group(0)
    assert " novalidate" in form_tag
    assert 'data-hx-history="false"' in text
    assert re.search(r'<input[^>]*\brequired\b[^>]*id="name"|<input[^>]*id="name"[^>]*\brequired\b', text)
    assert 'autocomplete="tel"' in text and 'type="email"' in text
    visible = re.sub(r"<script\b.*?</script>", "", text, flags=re.S)  # the JSON-LD data is not shown
    assert visible.count("71 Bradley Road") == 1, "the address once, not twice in a row"
    assert "Our answer will come from the office's own email address." in html.unescape(text)
