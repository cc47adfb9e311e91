"""The inquiry email as the office reads and answers it, asserted on messages a real SMTP server (aiosmtpd) received:
the subject for triage, the Date in the office's time zone, a body fit to be quoted back to the visitor on
Reply, plain guidance for texts and voicemails, and no texts to numbers that cannot receive them."""

import html
import re
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from zoneinfo import ZoneInfo

import pytest

from helpers import VISITOR, Visitor, body_text, deliver
from smtp_servers import running_smtp, smtp_settings

HTMX = {"HX-Request": "true"}
LANDLINE = "+44 20 7946 0958"  # phonenumbers: FIXED_LINE
MOBILE = "+44 7911 123456"  # phonenumbers: MOBILE
# Words that must never reach a visitor who receives a staff member's reply quoting the whole email.
NOT_FOR_THE_VISITOR = [
    "flask",
    "--app",
    "run on the server",
    "substance use",
    "a person seeking",
    "robot",
    "spam",
    "verify FILE",
    "sudo",
    "/srv/",
    "seeking help",
]


def received_for(app, inbox, **changes):
    """Submit the form, deliver, and return (reference, the message the SMTP server received)."""
    before = len(inbox.messages)
    assert Visitor(app.test_client()).submit(**changes).status_code == 303
    (reference,) = deliver(app).delivered
    return reference, inbox.wait_for(before + 1)[-1].message


@pytest.mark.parametrize(
    "changes, way_back",
    [
        ({}, "call back"),
        ({"contact_method": "text"}, "text back"),
        ({"contact_method": "email", "email": "jordan.qzx@example.org", "phone": ""}, "reply by email"),
    ],
)
def test_subject_names_the_reference_and_the_way_back_and_nothing_else(smtp_app, inbox, changes, way_back):
    reference, message = received_for(smtp_app, inbox, **changes)
    assert message["Subject"] == f"Website inquiry {reference} - {way_back}"
    typed = [v for k, v in {**VISITOR, **changes}.items() if k in ("name", "phone", "email", "message") and v]
    typed += VISITOR["name"].split() + ["555-0147", "Qzxnote", "jordan.qzx"]
    for name, value in message.items():
        if name == "Reply-To":
            assert changes.get("contact_method") == "email" and value == "jordan.qzx@example.org"
            continue
        for word in typed:
            assert word.lower() not in str(value).lower(), (name, word)


def test_date_header_is_in_the_office_time_zone_like_the_body(smtp_app, inbox):
    _, message = received_for(smtp_app, inbox)
    date = parsedate_to_datetime(message["Date"])
    now_in_office = datetime.now(ZoneInfo("America/New_York"))
    assert date.utcoffset() == now_in_office.utcoffset()  # -0500 or -0400, never +0000
    assert abs(date - now_in_office) < timedelta(minutes=5)
    submitted = re.search(r"^Submitted: .* at (\d+:\d\d [AP]M) (E[SD]T)", body_text(message), re.M)
    assert submitted.group(2) == now_in_office.tzname()
    shown = datetime.strptime(submitted.group(1), "%I:%M %p")
    minutes_apart = (date.hour * 60 + date.minute - shown.hour * 60 - shown.minute) % 1440
    assert minutes_apart in (0, 1, 1439)  # the header and the body tell the same office time


@pytest.mark.parametrize(
    "changes",
    [
        {"contact_method": "email", "email": "jordan.qzx@example.org", "phone": ""},
        {"contact_method": "text", "leave_message": "yes"},
        {},
    ],
)
def test_every_line_is_fit_to_be_quoted_back_to_the_visitor(make_app, inbox, changes):
    """Outlook, Gmail and Apple Mail quote the whole email on Reply: nothing in it may speak about the visitor
    behind their back, hold a server command, or call them a robot. (MIN_FILL_SECONDS makes it "possibly
    automated", the most delicate line.)"""
    with running_smtp(inbox) as port:
        app = make_app(**smtp_settings(port), MIN_FILL_SECONDS=600)
        _, message = received_for(app, inbox, **changes)
    quoted = "\n".join("> " + line for line in body_text(message).replace("\r\n", "\n").split("\n"))
    for words in NOT_FOR_THE_VISITOR:
        assert words.lower() not in quoted.lower(), words
    assert "POSSIBLY AUTOMATED" not in quoted  # the old shouted marker
    assert "> It was sent within seconds of the page opening, as happens with auto-fill, so" in quoted
    assert "possibly automated. Please treat it as a genuine request" in quoted
    assert '> How to check it: "For office staff" in the website\'s DEPLOY.md guide.' in quoted
    assert "> What was sent through the form is kept confidential within the office" in quoted


@pytest.mark.parametrize(
    "changes, said, not_said",
    [
        (
            {"contact_method": "text", "leave_message": "no"},
            "- It must not mention RSCT, treatment or the reason for getting in touch,",
            "It may say that it comes from RSCT",
        ),
        (
            {"contact_method": "text", "leave_message": "yes"},
            "- It may say that it comes from RSCT. Keep health and treatment out of it;",
            "It must not mention RSCT",
        ),
        (
            {"contact_method": "call", "leave_message": "no"},
            "- If nobody answers, a voicemail may give only a first name and a number to\n"
            "  call back. It must not mention RSCT, treatment or the reason for the call.",
            "a voicemail may say that RSCT",
        ),
        (
            {"contact_method": "call", "leave_message": "yes"},
            "- If nobody answers, a voicemail may say that RSCT is returning the call.",
            "must not mention RSCT",
        ),
    ],
)
def test_text_and_voicemail_guidance_says_what_may_be_said(smtp_app, inbox, changes, said, not_said):
    _, message = received_for(smtp_app, inbox, **changes)
    body = body_text(message).replace("\r\n", "\n")
    assert said in body and not_said not in body


@pytest.mark.parametrize(
    "phone, words",
    [
        (LANDLINE, "looks like a landline, which can't receive text messages"),
        ("203-555-0147 ext. 12", "can't reach a number with an extension"),
    ],
)
def test_text_message_contact_refuses_numbers_that_cannot_receive_texts(smtp_app, inbox, phone, words):
    client = smtp_app.test_client()
    refused = Visitor(client).submit(contact_method="text", phone=phone)
    assert refused.status_code == 422 and words in html.unescape(refused.text)
    assert "choose a phone call instead" in refused.text
    check = client.post("/contact/check/phone", data={"contact_method": "text", "phone": phone}, headers=HTMX)
    assert words in html.unescape(check.text)  # the inline check says it as the visitor leaves the field
    assert deliver(smtp_app).delivered == [] and inbox.messages == []
    # The same number is fine for a call; and a mobile number for a text.
    _, message = received_for(smtp_app, inbox, contact_method="call", phone=phone)
    assert "PREFERRED CONTACT: PHONE CALL" in body_text(message)
    _, message = received_for(smtp_app, inbox, contact_method="text", phone=MOBILE)
    assert "PREFERRED CONTACT: TEXT MESSAGE" in body_text(message) and "Phone: +44 7911 123456" in body_text(message)


def test_choosing_text_after_typing_a_landline_shows_the_message_at_once(client):
    response = client.post(
        "/contact/check/contact_method", data={"contact_method": "text", "phone": LANDLINE}, headers=HTMX
    )
    assert "which can&#39;t receive text messages" in response.text or "which can't receive" in response.text


def test_email_guidance_when_messages_must_not_mention_rsct(smtp_app, inbox):
    _, message = received_for(smtp_app, inbox, contact_method="email", email="jordan.qzx@example.org", phone="")
    body = body_text(message).replace("\r\n", "\n")
    assert "- Messages should not mention RSCT: before sending a reply, change its\n  subject line" in body


def test_most_us_numbers_can_be_texted(client):
    """phonenumbers types most US numbers FIXED_LINE_OR_MOBILE: those are accepted for texts."""
    check = client.post("/contact/check/phone", data={"contact_method": "text", "phone": "203-555-0147"}, headers=HTMX)
    assert check.text == ""
