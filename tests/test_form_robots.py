"""Robots: a filled honeypot is held back, a form filled faster than a person could or with a bad
form token is marked; every sender is thanked the same way.
"""

import os
import time

import pytest
from itsdangerous import TimestampSigner, URLSafeTimedSerializer

from rsct import contact

from helpers import REFERENCE, VISITOR, Visitor, outbox_ids, stored_inquiries


def old_form_token(app, age_seconds: float) -> str:
    """A correctly signed form token issued `age_seconds` ago (what a page left open would send)."""

    class Backdated(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(time.time() - age_seconds)

    serializer = URLSafeTimedSerializer(app.config["SECRET_KEY"], salt=contact.FORM_TOKEN_SALT, signer=Backdated)
    return serializer.dumps(os.urandom(8).hex())


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
    return f"{payload}.{signature[:middle]}{changed}{signature[middle + 1 :]}"


@pytest.mark.parametrize(
    "token",
    [
        "garbage",
        "",
        None,
        "a.b.c",
        "\u00e9\u00e9.\u00e9",
        "x" * 2000,
        "tampered",
    ],
)
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
