"""What is never kept or written down: no cached copy of any answer, no typed words in the logs or
in the address of the thanks page.
"""

import logging
import re

import pytest

from helpers import HTMX, Visitor, break_database, stored_inquiries


def test_redirect_address_carries_no_personal_data(visitor):
    data = visitor.form(name="Zyxcanary", phone="203-555-0188", contact_method="text", email="zyxcanary@example.org")
    location = visitor.post(data).headers["Location"]
    assert "zyxcanary" not in location.lower()
    assert "0188" not in location and "?" not in location


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


@pytest.mark.parametrize(
    "request_, status",
    [
        (_get_form, 200),
        (_post_valid, 200),
        (lambda m: _post_valid(m, htmx=False), 303),
        (_post_invalid, 422),
        (_get_thanks, 200),
        (_post_rate_limited, 429),
        (_post_csrf_failure, 400),
        (_post_storage_failure, 503),
        (_post_too_large, 413),
        (_check_field, 200),
    ],
    ids=[
        "form",
        "sent-htmx",
        "sent-plain",
        "invalid",
        "thanks",
        "rate-limited",
        "csrf",
        "storage",
        "too-large",
        "check",
    ],
)
def test_no_browser_or_proxy_may_keep_a_copy(make_app, request_, status):
    response = request_(make_app)
    assert response.status_code == status
    assert response.headers["Cache-Control"] == "no-store"


CANARY = dict(
    name="Zyxcanary Qvw", phone="203-555-0188", email="zyxcanary@example.org", message="Zyxcanary note about my brother"
)


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
