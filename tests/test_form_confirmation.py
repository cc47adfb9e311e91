"""After sending: the confirmation an htmx visitor sees, the thanks page a plain browser is sent to,
and the reference shown once, to the visitor who sent the request and to no one else.
"""

from helpers import PHONE_LINK, REFERENCE, assert_is_form_region_fragment, stored_inquiries


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
    assert "reach out to you by\n    email" in visitor.post(data, htmx=True).text
    data = visitor.form(contact_method="text")
    assert "text message" in visitor.post(data, htmx=True).text


def test_thanks_page_in_another_browser_shows_no_reference(app, visitor):
    visitor.submit()
    other = app.test_client().get("/contact/thanks")
    assert other.status_code == 200
    assert not REFERENCE.search(other.text)
    assert PHONE_LINK in other.text


def test_thanks_page_shows_the_reference_once(client, visitor):
    response = visitor.submit()
    assert response.status_code == 303
    first = client.get("/contact/thanks")
    assert REFERENCE.search(first.text)
    again = client.get("/contact/thanks")  # the next person at a shared computer
    assert not REFERENCE.search(again.text)
    assert PHONE_LINK in again.text
