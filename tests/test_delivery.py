"""An inquiry travels from the form to a real SMTP server: envelope, headers, body, signature, digest, health."""

import email
import logging
import os
import stat
import time
from datetime import UTC, datetime
from email import policy
from zoneinfo import ZoneInfo

import pytest

from rsct import inquiries, mailer, outbox, signing, verify

from helpers import (
    REFERENCE,
    VISITOR,
    Visitor,
    body_text,
    change_in_line,
    db,
    deliver,
    gateway_rewrite,
    rewritten,
    send_one,
    verify_file,
)
from smtp_servers import HEADER_ALLOWLIST, RECIPIENT_ADDRESS, SENDER_DOMAIN, smtp_settings

OLD_KEY = "old-signing-key-" + "o" * 32
NEW_KEY = "new-signing-key-" + "n" * 32


def visitor_values(fields: dict) -> list[str]:
    """Every value a visitor typed, and the pieces a careless header might carry."""
    values = [v for k, v in fields.items() if v and k in ("name", "phone", "email", "message")]
    values += fields["name"].split() + fields["message"].split("\n") + ["Qzxnote"]
    if fields.get("phone"):
        values += ["(203) 555-0147", "555-0147", "2035550147"]
    return values


# --- the message as the office receives it ------------------------------------------------------


def test_inquiry_arrives_at_the_office_mailbox_with_only_allowed_headers(smtp_app, inbox):
    reference, received = send_one(smtp_app, inbox)
    assert REFERENCE.fullmatch(reference)
    assert received.rcpt_tos == [RECIPIENT_ADDRESS]
    assert received.mail_from == f"website@{SENDER_DOMAIN}"

    message = received.message
    names = {name.lower() for name in message.keys()}
    assert names <= HEADER_ALLOWLIST, names - HEADER_ALLOWLIST
    assert message["Subject"] == f"Website inquiry {reference} - call back"
    # No visitor value in any header, the subject included.
    for header, value in message.items():
        for typed in visitor_values(VISITOR):
            assert typed.lower() not in str(value).lower(), (header, typed)
    assert "Reply-To" not in message  # the visitor chose a phone call
    with db(smtp_app) as connection:
        stored_id = connection.execute("SELECT message_id FROM outbox").fetchone()[0]
    assert message["Message-ID"] == stored_id
    assert message["Message-ID"].endswith(f"@{SENDER_DOMAIN}>")


def test_body_shows_every_field_the_office_needs(smtp_app, inbox):
    reference, received = send_one(
        smtp_app, inbox, email="jordan.rivers@example.org", best_time="evening", for_whom="other"
    )
    assert received.message["Content-Transfer-Encoding"] == "quoted-printable"
    assert all(len(line) <= 78 for line in received.content.split(b"\r\n"))
    body = body_text(received.message)
    for expected in (
        "Name: Jordan Qzxname Rivers",
        "Phone: (203) 555-0147",
        "Email: jordan.rivers@example.org",
        "Best time to reach them: Evening",
        "Who it is for: Someone I care about",
        "  | I would like to talk about Qzxnote options.",
        "  | Second line of my note.",
        f"Reference: {reference}",
        "PREFERRED CONTACT: PHONE CALL",
        "OK to mention RSCT in a message: NO",
        "kept confidential",
    ):
        assert expected in body, expected
    assert "possibly automated" not in body

    with db(smtp_app) as connection:
        submitted_at = connection.execute("SELECT submitted_at FROM inquiries").fetchone()[0]
    local = datetime.fromtimestamp(submitted_at, ZoneInfo("America/New_York"))
    assert local.tzname() in ("EST", "EDT")
    utc = datetime.fromtimestamp(submitted_at, UTC)
    assert (
        f"Submitted: {local:%A, %B} {local.day}, {local.year} at {local.hour % 12 or 12}:{local:%M %p}"
        f" {local.tzname()} ({utc:%Y-%m-%dT%H:%M:%SZ})"
    ) in body


def test_leave_message_yes_is_shown_as_yes(smtp_app, inbox):
    _, received = send_one(smtp_app, inbox, leave_message="yes", contact_method="text")
    body = body_text(received.message)
    assert "OK to mention RSCT in a message: YES" in body
    assert "PREFERRED CONTACT: TEXT MESSAGE" in body


@pytest.mark.parametrize(
    "timestamp, expected",
    [
        (datetime(2025, 1, 15, 17, 5, tzinfo=UTC).timestamp(), "Wednesday, January 15, 2025 at 12:05 PM EST"),
        (datetime(2025, 7, 15, 17, 5, tzinfo=UTC).timestamp(), "Tuesday, July 15, 2025 at 1:05 PM EDT"),
    ],
)
def test_submission_time_is_office_local_time(timestamp, expected):
    assert mailer.local_time(timestamp).startswith(expected + " (2025-")


@pytest.mark.parametrize(
    "method, typed, reply_to",
    [
        ("email", "Visitor.Name@EXAMPLE.org", "Visitor.Name@example.org"),
        ("call", "visitor@example.org", None),
        ("text", "visitor@example.org", None),
        ("call", "", None),
    ],
)
def test_reply_to_only_when_the_visitor_chose_email(smtp_app, inbox, method, typed, reply_to):
    _, received = send_one(
        smtp_app, inbox, contact_method=method, email=typed, phone="" if method == "email" else VISITOR["phone"]
    )
    message = received.message
    assert message.get_all("Reply-To") == ([reply_to] if reply_to else None)
    if typed:
        assert f"Email: {typed.split('@')[0]}@{typed.split('@')[1].lower()}" in body_text(message)


def test_quick_form_is_marked_possibly_automated(make_app, inbox, smtp_port):
    app = make_app(**smtp_settings(smtp_port), MIN_FILL_SECONDS=600)
    _, received = send_one(app, inbox)
    assert "it is possibly automated" in body_text(received.message)


# --- verifying the signature -------------------------------------------------------------------


@pytest.fixture
def signed(smtp_app, inbox, tmp_path):
    """A delivered inquiry as received: (app, reference, raw bytes)."""
    reference, received = send_one(smtp_app, inbox, email="jordan.qzx@example.org")
    return smtp_app, reference, received.content


def test_received_email_verifies(signed, tmp_path):
    app, reference, raw = signed
    result = verify_file(app, raw, tmp_path)
    assert result.exit_code == 0, result.output
    assert f"Authentic: inquiry {reference}" in result.output
    report = verify.check_email(app.config["INQUIRY_SIGNING_KEYS"], raw)
    assert report.status == verify.AUTHENTIC and report.inquiry.reference == reference


def test_re_encoding_without_a_change_still_verifies(signed, tmp_path):
    """Control for the tampering tests: the rewrite itself keeps a message authentic."""
    app, _, raw = signed
    again = rewritten(raw, lambda text: text)
    assert again != raw
    assert verify_file(app, again, tmp_path).exit_code == 0


@pytest.mark.parametrize(
    "prefix, index",
    [
        ("Name: ", -1),
        ("Phone: ", -2),
        ("Email: ", -1),
        ("  | I would like", 5),
        ("  | Second line", -1),
        ("Reference: ", -1),
        ("Submitted: ", 0),  # the weekday
        ("Submitted: ", -5),  # the UTC time
        ("OK to mention RSCT in a message: ", 0),
        ("PREFERRED CONTACT: ", -1),
        ("Best time to reach them: ", 0),
        ("Who it is for: ", 0),
    ],
)
def test_one_changed_character_in_any_value_fails_verification(signed, tmp_path, prefix, index):
    app, _, raw = signed
    tampered = rewritten(raw, change_in_line(prefix, index))
    assert body_text(email.message_from_bytes(tampered, policy=policy.default)) != body_text(
        email.message_from_bytes(raw, policy=policy.default)
    )
    result = verify_file(app, tampered, tmp_path)
    assert result.exit_code == 1, result.output
    assert "NOT AUTHENTIC" in result.output
    assert verify.check_email(app.config["INQUIRY_SIGNING_KEYS"], tampered).status == verify.NOT_AUTHENTIC


def _resign(keys):
    """Change the name and sign the whole text again with `keys`."""

    def change(text: str) -> str:
        body = text.split("\nSignature: ")[0].replace("Name: Jordan Qzxname Rivers", "Name: Mallory Forger")
        return body + "\n" + signing.signature_line(keys, body) + "\n"

    return change


def test_message_signed_with_another_key_fails(signed, tmp_path):
    app, _, raw = signed
    forged = rewritten(raw, _resign(["a key the attacker made up, long enough to look real"]))
    result = verify_file(app, forged, tmp_path)
    assert result.exit_code == 1 and "NOT AUTHENTIC" in result.output
    # Control: the same edit signed with the site's key does verify, so it is the key that fails it.
    assert verify_file(app, rewritten(raw, _resign(app.config["INQUIRY_SIGNING_KEYS"])), tmp_path).exit_code == 0


@pytest.mark.parametrize(
    "text",
    [
        "Hello, please call me back.\n",
        f"{signing.BEGIN}\nReference: RSCT-222222\nName: Someone\n{signing.END}\n",  # a block without a signature
    ],
)
def test_message_without_a_signed_block_fails(app, tmp_path, text):
    message = email.message.EmailMessage()
    message["Subject"] = "Website inquiry RSCT-222222"
    message.set_content(text)
    result = verify_file(app, message.as_bytes(), tmp_path)
    assert result.exit_code == 1 and "NOT AUTHENTIC" in result.output


def test_gateway_re_encoding_and_banner_are_authentic_with_the_banner_apart(signed, tmp_path):
    app, reference, raw = signed
    rewritten_raw = gateway_rewrite(raw)
    assert b"quoted-printable" not in rewritten_raw and b"Reference:" not in rewritten_raw
    decoded = body_text(email.message_from_bytes(rewritten_raw, policy=policy.default))
    assert "\r\n" in decoded and decoded.startswith("[EXTERNAL EMAIL]")
    assert decoded.rstrip().endswith("careful with links.")
    result = verify_file(app, rewritten_raw, tmp_path)
    assert result.exit_code == 3, result.output  # authentic, the banner listed as not covered
    assert reference in result.output and "NOT COVERED" in result.output
    # ...but the gateway may not change what the visitor wrote.
    assert verify_file(app, gateway_rewrite(rewritten(raw, change_in_line("Name: ", -1))), tmp_path).exit_code == 1


# --- key rotation ------------------------------------------------------------------------------


def eml_for(app, reference) -> bytes:
    folder = os.path.join(app.instance_path, "mail")
    (name,) = [name for name in os.listdir(folder) if name.endswith(f"-{reference}.eml")]
    with open(os.path.join(folder, name), "rb") as handle:
        return handle.read()


def file_inquiry(app, **changes) -> bytes:
    """Submit and deliver to a file (no MAIL_SERVER); returns the .eml bytes."""
    assert Visitor(app.test_client()).submit(**changes).status_code == 303
    outcome = deliver(app)
    (reference,) = outcome.delivered
    return eml_for(app, reference)


def test_key_rotation(make_app, tmp_path):
    signed_old = file_inquiry(make_app(INQUIRY_SIGNING_KEYS=[OLD_KEY]), name="Old Key Person")
    rotated = make_app(INQUIRY_SIGNING_KEYS=[OLD_KEY, NEW_KEY])
    signed_new = file_inquiry(rotated, name="New Key Person")

    def authentic(keys, raw):
        return verify.check_email(keys, raw).status == verify.AUTHENTIC

    assert authentic([OLD_KEY], signed_old)
    assert authentic([OLD_KEY, NEW_KEY], signed_old)  # old mail still checks after rotation
    assert verify_file(rotated, signed_old, tmp_path).exit_code == 0
    assert authentic([NEW_KEY], signed_new)  # the new (last) key signed it
    assert authentic([OLD_KEY, NEW_KEY], signed_new)
    assert not authentic([OLD_KEY], signed_new)
    assert not authentic([NEW_KEY], signed_old)  # the old key, once removed, is gone


# --- quarantine digest and release --------------------------------------------------------------


def test_honeypot_inquiry_goes_to_the_digest_once_and_can_be_released(smtp_app, inbox):
    note = "".join(f"{i:03d}." for i in range(150))  # 600 characters; "050." starts the 201st
    response = Visitor(smtp_app.test_client()).submit(
        website="http://spam.example", name="Held Qzxperson", message=note
    )
    assert response.status_code == 303  # thanked like anyone else
    (reference,) = [r["reference"] for r in inquiries.recent(smtp_app.config["DATABASE"])]
    assert inquiries.find(smtp_app.config["DATABASE"], reference)["state"] == "quarantined"
    assert deliver(smtp_app) == outbox.Outcome()
    time.sleep(0.2)
    assert inbox.messages == []

    runner = smtp_app.test_cli_runner()
    result = runner.invoke(args=["inquiry", "digest"])
    assert result.exit_code == 0, result.output
    (digest,) = inbox.wait_for(1)
    message = digest.message
    assert digest.rcpt_tos == [RECIPIENT_ADDRESS]
    assert {name.lower() for name in message.keys()} <= HEADER_ALLOWLIST
    assert "Reply-To" not in message
    subject = message["Subject"]
    assert subject == "Website daily summary: 1 to check by hand, 0 delivered"
    for typed in ("Held", "Qzxperson", "000.", reference):
        assert typed not in subject
    assert message["Message-ID"].endswith(f"@{SENDER_DOMAIN}>")
    body = body_text(message)
    assert reference in body and "Name: Held Qzxperson" in body
    assert note[:200] + "..." in body
    assert "050." not in body

    again = runner.invoke(args=["inquiry", "digest"])  # sent even when empty, without the one already shown
    assert again.exit_code == 0 and "nothing held" in again.output
    assert reference not in body_text(inbox.wait_for(2)[1].message)

    released = runner.invoke(args=["inquiry", "release", reference])
    assert released.exit_code == 0, released.output
    assert deliver(smtp_app).delivered == [reference]
    messages = inbox.wait_for(3)
    assert len(messages) == 3
    assert messages[2].message["Subject"] == f"Website inquiry {reference} - call back"
    assert messages[2].message["Message-ID"].endswith(f"@{SENDER_DOMAIN}>")
    assert verify.check_email(smtp_app.config["INQUIRY_SIGNING_KEYS"], messages[2].content).status == 0
    assert inquiries.find(smtp_app.config["DATABASE"], reference)["state"] == "delivered"


# --- health and status --------------------------------------------------------------------------


def test_health_and_stuck_mail(make_app):
    app = make_app(OUTBOX_STUCK_MINUTES=30)  # no MAIL_SERVER: delivery writes files
    client = app.test_client()
    runner = app.test_cli_runner()
    assert client.get("/healthz").status_code == 200
    assert client.get("/healthz").get_json()["status"] == "ok"
    assert client.get("/healthz/mail").status_code == 200

    assert Visitor(client).submit().status_code == 303
    assert client.get("/healthz/mail").status_code == 200  # waiting, but not for long
    assert runner.invoke(args=["outbox", "status"]).exit_code == 0

    with db(app) as connection:
        connection.execute("UPDATE inquiries SET submitted_at = ?", (time.time() - 31 * 60,))
    response = client.get("/healthz/mail")
    assert response.status_code == 503
    assert response.get_json() == {"status": "stuck"}  # public: no counts, no ages
    status = runner.invoke(args=["outbox", "status"])
    assert status.exit_code == 4, status.output
    assert "STUCK" in status.output

    assert len(deliver(app).delivered) == 1
    assert client.get("/healthz/mail").status_code == 200
    assert runner.invoke(args=["outbox", "status"]).exit_code == 0


def test_development_writes_an_owner_only_eml_that_verifies(make_app):
    app = make_app(CONFIG_NAME="development")
    assert not app.config["MAIL_SERVER"]
    stored = inquiries.store(
        app.config["DATABASE"], "dev-token", dict(VISITOR, phone="(203) 555-0147"), key=b"k", message_domain="localhost"
    )
    assert deliver(app).delivered == [stored.reference]
    folder = os.path.join(app.instance_path, "mail")
    (name,) = os.listdir(folder)
    path = os.path.join(folder, name)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(folder).st_mode) == 0o700
    result = app.test_cli_runner().invoke(args=["inquiry", "verify", path])
    assert result.exit_code == 0, result.output
    assert stored.reference in result.output


def test_development_start_message_says_where_mail_goes(make_app, caplog):
    caplog.set_level(logging.INFO)
    make_app(CONFIG_NAME="development", MAIL_SERVER="127.0.0.1")
    assert "not sent" not in caplog.text
