"""The same request sent twice is stored once and shows the same reference; changed words, an hour
later or another browser make a new request.
"""

import sqlite3

from helpers import REFERENCE, Visitor, outbox_ids, stored_inquiries


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
    assert [row["reference"] for row in rows] == [
        REFERENCE.search(first.text).group(0),
        REFERENCE.search(second.text).group(0),
    ]
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


def test_same_words_from_another_browser_are_a_new_request_and_reveal_nothing(app, visitor):
    first = visitor.submit(htmx=True)
    stranger = Visitor(app.test_client())
    second = stranger.submit(htmx=True)
    assert REFERENCE.search(first.text)[0] != REFERENCE.search(second.text)[0]
    assert len(stored_inquiries(app)) == 2
