"""CSRF protection as a visitor meets it: an old page asks for one more press, blocked cookies are explained.

Every case keeps what the visitor typed and never leaves them in a loop or on a bare error.
"""

import re
import time

import pytest
from itsdangerous import TimestampSigner, URLSafeTimedSerializer

from helpers import (
    HTMX,
    PHONE_LINK,
    REFERENCE,
    FormPage,
    Visitor,
    assert_is_form_region_fragment,
    assert_shown_in_form,
    stored_inquiries,
)

CSRF = re.compile(r'name="csrf_token" type="hidden" value="([^"]*)"')
PRESS_AGAIN = "press <strong>Send request</strong> once more"
BLOCKED = "blocking the small cookie"
VALUES = dict(
    name="Zoë <O'Brien>",
    phone="(203) 555-0147",
    best_time="morning",
    leave_message="yes",
    for_whom="other",
    message="Two lines\nof & text",
)


@pytest.fixture
def app(make_app):
    return make_app(WTF_CSRF_ENABLED=True)


def csrf_token(html: str) -> str:
    return CSRF.search(html).group(1)


def opened_form(client, **changes) -> dict:
    """Open the contact page like a browser and fill it in: form token, CSRF token and the visitor's answers."""
    page = client.get("/contact")
    return Visitor(client).form(**{"csrf_token": csrf_token(page.text), **VALUES, **changes})


def resubmit(response_html: str, data: dict) -> dict:
    """What the browser sends when the visitor presses the button on the re-rendered form."""
    page = FormPage(response_html)
    hidden = {name: page.values[name] for name in ("csrf_token", "form_token", "cookie_check")}
    return {**data, **hidden}


def backdated_csrf_token(app, client, age_seconds: float) -> str:
    """A CSRF token for this client's session, signed `age_seconds` ago (a page left open that long)."""

    class Backdated(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(time.time() - age_seconds)

    with client.session_transaction() as session:
        raw = session["csrf_token"]
    return URLSafeTimedSerializer(app.config["SECRET_KEY"], salt="wtf-csrf-token", signer=Backdated).dumps(raw)


def sent(response, htmx: bool) -> bool:
    return response.status_code == (200 if htmx else 303)


def assert_form_came_back(response, htmx: bool) -> None:
    """Not a bare 400: the form with its phone number, as a fragment for htmx or a whole page."""
    assert '<form id="contact-form"' in response.text
    if htmx:
        assert_is_form_region_fragment(response.text)
    else:
        assert "<html" in response.text and PHONE_LINK in response.text


def test_form_page_sets_a_session_cookie_and_carries_a_token(app):
    client = app.test_client()
    response = client.get("/contact")
    assert response.status_code == 200
    assert any(header.startswith("session=") for header in response.headers.getlist("Set-Cookie"))
    assert csrf_token(response.text)


def test_form_with_the_right_token_is_sent(app):
    client = app.test_client()
    assert client.post("/contact", data=opened_form(client), headers=HTMX).status_code == 200
    assert len(stored_inquiries(app)) == 1


@pytest.mark.parametrize("htmx", [True, False], ids=["htmx", "plain"])
@pytest.mark.parametrize("token", ["wrong", "", None], ids=["wrong", "empty", "missing"])
def test_bad_token_asks_to_press_again_with_values_kept_and_a_fresh_token(app, htmx, token):
    client = app.test_client()
    data = opened_form(client, csrf_token=token)
    headers = HTMX if htmx else {}
    response = client.post("/contact", data=data, headers=headers)
    assert response.status_code == 400
    assert PRESS_AGAIN in response.text
    assert BLOCKED not in response.text
    assert "error-summary" not in response.text and "CSRF" not in response.text  # no jargon, nothing to fix
    assert response.text.count("autofocus") == 1
    assert_form_came_back(response, htmx)
    assert_shown_in_form(response.text, data)
    fresh = csrf_token(response.text)
    assert fresh and fresh != token
    assert stored_inquiries(app) == []

    again = client.post("/contact", data=resubmit(response.text, data), headers=headers)
    assert sent(again, htmx)
    assert len(stored_inquiries(app)) == 1


@pytest.mark.parametrize("htmx", [True, False], ids=["htmx", "plain"])
def test_page_left_open_past_the_token_lifetime_asks_to_press_again(app, htmx):
    client = app.test_client()
    data = opened_form(client)
    data["csrf_token"] = backdated_csrf_token(app, client, app.config["WTF_CSRF_TIME_LIMIT"] + 60)
    headers = HTMX if htmx else {}
    response = client.post("/contact", data=data, headers=headers)
    assert response.status_code == 400
    assert PRESS_AGAIN in response.text
    assert_shown_in_form(response.text, data)
    assert csrf_token(response.text) != data["csrf_token"]
    again = client.post("/contact", data=resubmit(response.text, data), headers=headers)
    assert sent(again, htmx)
    assert len(stored_inquiries(app)) == 1


def test_page_open_for_a_while_but_within_the_token_lifetime_is_sent(app):
    client = app.test_client()
    data = opened_form(client)
    data["csrf_token"] = backdated_csrf_token(app, client, app.config["WTF_CSRF_TIME_LIMIT"] - 60)
    assert client.post("/contact", data=data, headers=HTMX).status_code == 200


@pytest.mark.parametrize("htmx", [True, False], ids=["htmx", "plain"])
def test_first_post_without_cookie_asks_to_press_again_and_marks_the_cookie_check(app, htmx):
    data = opened_form(app.test_client())
    no_cookies = app.test_client(use_cookies=False)
    response = no_cookies.post("/contact", data=data, headers=HTMX if htmx else {})
    assert response.status_code == 400
    assert PRESS_AGAIN in response.text
    assert FormPage(response.text).values["cookie_check"] == "1"
    assert_form_came_back(response, htmx)
    assert_shown_in_form(response.text, data)


@pytest.mark.parametrize("htmx", [True, False], ids=["htmx", "plain"])
def test_blocked_cookies_are_explained_on_the_second_press_and_stay_explained(app, htmx):
    data = opened_form(app.test_client())
    no_cookies = app.test_client(use_cookies=False)
    headers = HTMX if htmx else {}
    first = no_cookies.post("/contact", data=data, headers=headers)
    second = no_cookies.post("/contact", data=resubmit(first.text, data), headers=headers)
    assert second.status_code == 400
    assert BLOCKED in second.text and "blocking" in second.text
    assert PHONE_LINK in second.text
    assert PRESS_AGAIN not in second.text
    assert_form_came_back(second, htmx)
    assert_shown_in_form(second.text, data)
    # No loop back to "press again": every further press gets the same explanation.
    third = no_cookies.post("/contact", data=resubmit(second.text, data), headers=headers)
    assert third.status_code == 400 and BLOCKED in third.text
    assert stored_inquiries(app) == []


@pytest.mark.parametrize("htmx", [True, False], ids=["htmx", "plain"])
def test_lost_cookie_is_fixed_by_pressing_once_more_when_cookies_are_allowed(app, htmx):
    data = opened_form(app.test_client())
    restarted_browser = app.test_client()  # cookies allowed, but the old session cookie is gone
    headers = HTMX if htmx else {}
    first = restarted_browser.post("/contact", data=data, headers=headers)
    assert first.status_code == 400 and PRESS_AGAIN in first.text
    second = restarted_browser.post("/contact", data=resubmit(first.text, data), headers=headers)
    assert sent(second, htmx)
    [row] = stored_inquiries(app)
    shown = second.text if htmx else restarted_browser.get("/contact/thanks").text
    assert REFERENCE.search(shown).group(0) == row["reference"]


def test_field_checks_need_no_token(app):
    client = app.test_client(use_cookies=False)
    response = client.post("/contact/check/phone", data={"contact_method": "call", "phone": "12"})
    assert response.status_code == 200
    assert "full phone number" in response.text


def test_corrected_form_is_sent_with_the_token_from_the_error_page(app):
    client = app.test_client()
    data = opened_form(client, phone="12")
    response = client.post("/contact", data=data, headers=HTMX)
    assert response.status_code == 422
    corrected = {**resubmit(response.text, data), "phone": "203.555.0147"}
    assert client.post("/contact", data=corrected, headers=HTMX).status_code == 200


@pytest.mark.parametrize("htmx", [True, False], ids=["htmx", "plain"])
def test_form_shown_after_a_storage_failure_can_be_sent_once_storage_is_back(app, htmx):
    client = app.test_client()
    data = opened_form(client)
    path = app.config["DATABASE"]
    app.config["DATABASE"] = "/proc/rsct-nowhere.sqlite3"
    headers = HTMX if htmx else {}
    failed = client.post("/contact", data=data, headers=headers)
    assert failed.status_code == 503
    assert csrf_token(failed.text)
    app.config["DATABASE"] = path
    again = client.post("/contact", data=resubmit(failed.text, data), headers=headers)
    assert sent(again, htmx), again.status_code
    assert len(stored_inquiries(app)) == 1


def test_rate_limited_form_still_carries_a_token(make_app):
    app = make_app(WTF_CSRF_ENABLED=True, RATE_LIMIT_COUNT=1)
    client = app.test_client()
    client.post("/contact", data=opened_form(client), headers=HTMX)
    data = opened_form(client, message="A second, different request.")
    response = client.post("/contact", data=data, headers=HTMX)
    assert response.status_code == 429
    assert csrf_token(response.text)
    assert_shown_in_form(response.text, data)
