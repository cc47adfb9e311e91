"""What the office stores from a valid request: each answer normalised, every offered choice, one outbox entry."""

import pytest

from helpers import REFERENCE, outbox_ids, stored_inquiries


def test_valid_request_is_stored_normalised_with_one_outbox_entry(app, visitor):
    data = visitor.form(
        name="  Ame\u0301lie  ",
        phone=" 203.555.0147 ",
        email="Visitor@EXAMPLE.org",
        best_time="morning",
        leave_message="yes",
        for_whom="other",
        message="  Line one\r\nLine two  ",
    )
    assert visitor.post(data, htmx=True).status_code == 200
    [row] = stored_inquiries(app)
    assert row["fields"] == {
        "name": "Amélie",
        "contact_method": "call",
        "phone": "(203) 555-0147",
        "email": "Visitor@example.org",
        "best_time": "morning",
        "leave_message": "yes",
        "for_whom": "other",
        "message": "Line one\nLine two",
        "language": "en",
    }
    assert row["state"] == "pending"
    assert row["quarantine_reason"] is None
    assert row["possibly_automated"] == 0
    assert REFERENCE.fullmatch(row["reference"])
    assert outbox_ids(app) == [row["id"]]


@pytest.mark.parametrize(
    "changes, field, stored",
    [
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
        ({"name": "Sam \U0001f600"}, "name", "Sam \U0001f600"),
        ({"message": "x" * 1000}, "message", "x" * 1000),
        ({"message": "x" * 500 + "\r\n" + "x" * 499}, "message", "x" * 500 + "\n" + "x" * 499),  # fits the textarea
        ({"message": "one\rtwo\r\nthree\n\nfour"}, "message", "one\ntwo\nthree\n\nfour"),
        ({"message": "  "}, "message", None),
        ({"best_time": None}, "best_time", None),
        ({"for_whom": None}, "for_whom", None),
        ({"leave_message": None}, "leave_message", "no"),
        ({"contact_method": "text"}, "contact_method", "text"),
    ],
    ids=lambda value: repr(value)[:40] if isinstance(value, str) else None,
)
def test_accepted_values_are_stored_normalised(app, visitor, changes, field, stored):
    response = visitor.submit(**changes, htmx=True)
    assert response.status_code == 200, response.text
    [row] = stored_inquiries(app)
    assert row["fields"][field] == stored


@pytest.mark.parametrize(
    "field, choices",
    [
        ("contact_method", ["call", "text", "email"]),
        ("best_time", ["morning", "afternoon", "evening", "any"]),
        ("leave_message", ["yes", "no"]),
        ("for_whom", ["self", "other"]),
    ],
)
def test_every_offered_choice_is_accepted(app, visitor, field, choices):
    for choice in choices:
        data = visitor.form(**{field: choice, "email": "visitor@example.org"})
        assert visitor.post(data, htmx=True).status_code == 200, choice
    assert [row["fields"][field] for row in stored_inquiries(app)] == choices
