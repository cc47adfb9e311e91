"""Whatever arrives, the form answers calmly: never a 500, only 200, 303, 422 or 429 (413 when over the size limit).

Hypothesis sends arbitrary text (control characters, header injection, long and non-BMP text) into every
field and into the per-field checks, plus raw bytes that are not UTF-8 at all.
"""

import os
from urllib.parse import quote_from_bytes, urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers import HTMX, Visitor

OK_STATUSES = {200, 303, 422, 429}

FIELDS = (
    "name",
    "contact_method",
    "phone",
    "email",
    "best_time",
    "leave_message",
    "for_whom",
    "message",
    "website",
    "form_token",
    "cookie_check",
    "csrf_token",
)
CHECKS = ("phone", "email", "contact_method")
NASTY = [
    "\r\nBcc: x@example.com",
    "Alex\r\nBcc: x@example.com",
    "x@example.com\nBcc: y@example.com",
    "\x00",
    "\U0010ffff",
    "\U0001f600" * 50,
    "\ufeff",
    "\u202e",
    "\u2028",
    "\x85",
    "%00",
    "&amp;",
    "<script>",
    "a" * 5000,
    "\U0001f600" * 2000,
    " " * 3000,
    "call",
    "email",
    "yes",
    "+44 20 7946 0958",
]

# st.text() never draws lone surrogates (they could not be sent as UTF-8 anyway); the filter makes that explicit.
any_text = st.one_of(
    st.text(max_size=200),
    st.text(max_size=5000),
    st.text(alphabet=st.characters(max_codepoint=0x1F), max_size=50),
    st.text(alphabet=st.characters(min_codepoint=0x10000), max_size=100),
    st.sampled_from(NASTY),
).filter(lambda text: not any(0xD800 <= ord(char) <= 0xDFFF for char in text))

# FUZZ_EXAMPLES=2000 runs a deeper search locally; the suite keeps to about 60 examples per test.
FUZZ = settings(
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "60")),
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture
def app(make_app):
    return make_app(RATE_LIMIT_COUNT=10000)


def expected(status: int, body_size: int, app) -> bool:
    """200/303/422/429 for anything that fits; 413 only when the body is over the configured limit."""
    if body_size > app.config["MAX_CONTENT_LENGTH"]:
        return status == 413
    return status in OK_STATUSES


@FUZZ
@given(field=st.sampled_from(FIELDS), value=any_text, htmx=st.booleans())
def test_any_text_in_one_field_never_breaks_the_form(app, field, value, htmx):
    client = app.test_client()
    data = Visitor(client).form(**{field: value})
    body = urlencode(data).encode()
    response = client.post(
        "/contact", data=body, content_type="application/x-www-form-urlencoded", headers=HTMX if htmx else {}
    )
    assert expected(response.status_code, len(body), app), (response.status_code, field, value[:80])


@FUZZ
@given(data=st.fixed_dictionaries({name: any_text for name in FIELDS[:9]}), htmx=st.booleans())
def test_any_text_in_every_field_never_breaks_the_form(app, data, htmx):
    body = urlencode(data).encode()
    response = app.test_client().post(
        "/contact", data=body, content_type="application/x-www-form-urlencoded", headers=HTMX if htmx else {}
    )
    assert expected(response.status_code, len(body), app), response.status_code


@FUZZ
@given(check=st.sampled_from(CHECKS), data=st.dictionaries(st.sampled_from(FIELDS), any_text, max_size=4))
def test_any_text_sent_to_a_field_check_never_breaks_it(app, check, data):
    body = urlencode(data).encode()
    response = app.test_client().post(
        f"/contact/check/{check}", data=body, content_type="application/x-www-form-urlencoded", headers=HTMX
    )
    if len(body) > app.config["MAX_CONTENT_LENGTH"]:
        assert response.status_code == 413
    else:
        assert response.status_code == 200
        assert "<html" not in response.text


@FUZZ
@given(raw=st.binary(max_size=3000), path=st.sampled_from(["/contact", *(f"/contact/check/{c}" for c in CHECKS)]))
def test_raw_bytes_that_are_not_utf8_never_break_anything(app, raw, path):
    response = app.test_client().post(path, data=raw, content_type="application/x-www-form-urlencoded")
    allowed = OK_STATUSES if path == "/contact" else {200}
    assert response.status_code in allowed


@FUZZ
@given(field=st.sampled_from(FIELDS), raw=st.binary(min_size=1, max_size=500), htmx=st.booleans())
def test_invalid_utf8_inside_a_field_is_refused_or_replaced_never_a_500(app, field, raw, htmx):
    client = app.test_client()
    data = Visitor(client).form(**{field: None})  # the field is added below, as raw bytes
    body = (urlencode(data) + f"&{field}=" + quote_from_bytes(raw)).encode()
    response = client.post(
        "/contact", data=body, content_type="application/x-www-form-urlencoded", headers=HTMX if htmx else {}
    )
    assert response.status_code in OK_STATUSES
    for check in CHECKS:
        assert (
            client.post(
                f"/contact/check/{check}", data=body, content_type="application/x-www-form-urlencoded"
            ).status_code
            == 200
        )
