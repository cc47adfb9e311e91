"""`flask inquiry verify` on emails as the office may receive them: genuine, re-encoded by a gateway, or forged.

Every email starts as a genuine one, made by the app and delivered to a real SMTP server; the
tests then change it the way a gateway (must still verify) or a forger (must not) would.
"""

import email
import re
from email import policy
from email.message import EmailMessage, MIMEPart

import pytest

from rsct import signing

from helpers import body_text, change_in_line, gateway_rewrite, rewritten, send_one, verify_file

VISITOR_EMAIL = "Jordan.Qzx@example.org"
BANNER = "[EXTERNAL EMAIL] This message came from outside the organisation. Be careful with links."
LONG_NOTE = (
    "I would like to talk about Qzxnote options for my brother, who has been drinking more since "
    "the winter and does not want to go to a hospital.\nSecond line of my note."
)


@pytest.fixture
def by_email(smtp_app, inbox):
    """A delivered inquiry from a visitor who asked for email (so it has a Reply-To): (app, reference, raw)."""
    reference, received = send_one(
        smtp_app, inbox, contact_method="email", email=VISITOR_EMAIL, phone="", message=LONG_NOTE
    )
    assert received.message["Reply-To"] == VISITOR_EMAIL
    return smtp_app, reference, received.content


@pytest.fixture
def by_phone(smtp_app, inbox):
    """A delivered inquiry from a visitor who asked for a call (no Reply-To): (app, reference, raw)."""
    reference, received = send_one(smtp_app, inbox, email=VISITOR_EMAIL)
    assert "Reply-To" not in received.message
    return smtp_app, reference, received.content


def parsed(raw: bytes) -> EmailMessage:
    return email.message_from_bytes(raw, policy=policy.default)


def with_headers(raw: bytes, **headers) -> bytes:
    """The email with headers replaced (Reply_To= for Reply-To); None removes one."""
    message = parsed(raw)
    for name, value in headers.items():
        name = name.replace("_", "-")
        del message[name]
        if value is not None:
            message[name] = value
    return message.as_bytes()


def block_of(text: str) -> str:
    """The genuine block and its signature line, as shown in the decoded text."""
    return re.search(f"{re.escape(signing.BEGIN)}.*?\n{signing.SIGNATURE_LABEL}\\S+", text, re.S).group(0)


def forged_block(text: str) -> str:
    """The genuine block with another name and email, and the genuine signature line copied under it."""
    return block_of(text).replace(VISITOR_EMAIL, "mallory@evil.example").replace("Jordan Qzxname", "Mallory")


def gateway_mixed(raw: bytes, first: str | None, last: str | None) -> bytes:
    """A gateway's multipart/mixed: the headers kept, optional plain-text parts before and after the original."""
    original = parsed(raw)
    wrapper = EmailMessage()
    for name, value in original.items():
        if name.lower() not in ("content-type", "content-transfer-encoding", "mime-version"):
            wrapper[name] = value
    wrapper.make_mixed()
    for text in (first, body_text(original), last):
        if text is not None:
            part = MIMEPart(policy=policy.default)
            part.set_content(text, cte="quoted-printable")
            wrapper.attach(part)
    return wrapper.as_bytes()


def flowed(text: str, width: int, delsp: bool) -> str:
    """Re-wrap as format=flowed (RFC 3676) would: soft breaks end in a space, leading spaces stuffed."""
    lines = []
    for line in text.replace("\r\n", "\n").split("\n"):
        line = line.rstrip(" ")
        if delsp:  # break anywhere and add the space that marks the soft break
            pieces = [line[i : i + width] for i in range(0, len(line), width)] or [""]
            pieces = [piece + " " for piece in pieces[:-1]] + pieces[-1:]
        else:  # break only after a space, which stays at the end of the line
            pieces = [""]
            for word in re.split("(?<= )", line):
                if len(pieces[-1]) + len(word) > width and pieces[-1].endswith(" "):
                    pieces.append("")
                pieces[-1] += word
        lines += [" " + piece if piece.startswith((" ", ">", "From ")) else piece for piece in pieces]
    return "\n".join(lines)


def flowed_rewrite(raw: bytes, delsp: bool, change=lambda text: text) -> bytes:
    message = parsed(raw)
    text = flowed(change(body_text(message).replace("\r\n", "\n")), width=40, delsp=delsp)
    params = {"format": "flowed", **({"delsp": "yes"} if delsp else {})}
    message.set_content(text, subtype="plain", charset="utf-8", cte="8bit", params=params)
    return message.as_bytes()


def assert_authentic(app, raw: bytes, tmp_path, reference: str):
    result = verify_file(app, raw, tmp_path)
    assert result.exit_code == 0, result.output
    assert f"Authentic: inquiry {reference}, submitted " in result.output
    assert signing.verify_message(app.config["INQUIRY_SIGNING_KEYS"], raw).authentic
    return result


def assert_refused(app, raw: bytes, tmp_path, reason: str):
    result = verify_file(app, raw, tmp_path)
    assert result.exit_code == 1, result.output
    assert "NOT AUTHENTIC" in result.output and reason in result.output, result.output
    assert "Authentic: inquiry" not in result.output


# --- genuine emails, as sent and as a gateway passes them on -----------------------------------


def test_genuine_email_prints_every_checked_line(by_email, tmp_path):
    app, reference, raw = by_email
    output = assert_authentic(app, raw, tmp_path, reference).output
    lines = output.splitlines()
    assert lines[0].startswith(f"Authentic: inquiry {reference}, submitted ") and lines[0].endswith("Z).")
    for expected in (
        "  PREFERRED CONTACT: EMAIL",
        (
            "  OK to leave a message that mentions RSCT: NO - do not mention RSCT in a voicemail or to anyone"
            " else who answers"
        ),
        "  Name: Jordan Qzxname Rivers",
        "  Phone: (not given)",
        f"  Email: {VISITOR_EMAIL}",
        "  Best time to reach them: Morning",
        "  Who it is for: Myself",
        "  Message:",
        "    | " + LONG_NOTE.split("\n")[0],
        "    | Second line of my note.",
    ):
        assert expected in lines, expected
    assert len(lines) == 11  # the first line, then the block's lines other than reference and time


def test_genuine_phone_inquiry_verifies(by_phone, tmp_path):
    app, reference, raw = by_phone
    output = assert_authentic(app, raw, tmp_path, reference).output
    assert "  PREFERRED CONTACT: PHONE CALL" in output.splitlines()


def test_banner_as_a_leading_plain_text_part(by_email, tmp_path):
    app, reference, raw = by_email
    wrapped = gateway_mixed(raw, first=BANNER, last=None)
    assert parsed(wrapped).get_content_type() == "multipart/mixed"
    assert body_text(parsed(wrapped)).strip() == BANNER  # what a reader of the first plain part sees
    assert_authentic(app, wrapped, tmp_path, reference)
    # Control: the wrapping keeps the check working, a changed value still fails it.
    tampered = gateway_mixed(rewritten(raw, change_in_line("Email: ", 0)), first=BANNER, last=None)
    assert_refused(app, tampered, tmp_path, "signature does not match")


def test_banner_as_a_trailing_plain_text_part(by_email, tmp_path):
    app, reference, raw = by_email
    assert_authentic(app, gateway_mixed(raw, first=None, last=BANNER), tmp_path, reference)


def test_banner_around_the_block_base64_and_crlf(by_email, tmp_path):
    app, reference, raw = by_email
    rewrapped = gateway_rewrite(raw)  # banner before and after, in the same part; base64; CRLF
    assert b"base64" in rewrapped and "\r\n" in body_text(parsed(rewrapped))
    assert_authentic(app, rewrapped, tmp_path, reference)


@pytest.mark.parametrize("delsp", [False, True])
def test_format_flowed_re_wrap(by_email, tmp_path, delsp):
    app, reference, raw = by_email
    rewrapped = flowed_rewrite(raw, delsp)
    message = parsed(rewrapped)
    assert message.get_param("format") == "flowed"
    decoded = body_text(message)
    # The re-wrap really did soft-break block lines and stuff the visitor's note lines.
    assert sum(line.endswith(" ") for line in decoded.split("\n")) > 5
    assert "\n   | Second line of my note." in decoded
    assert_authentic(app, rewrapped, tmp_path, reference)
    # Control: the same re-wrap of a changed email is refused.
    tampered = flowed_rewrite(raw, delsp, change_in_line("Name: ", -1))
    assert_refused(app, tampered, tmp_path, "signature does not match")


def test_flowed_separator_and_hard_breaks_are_kept():
    assert signing.unflow("one \ntwo\n-- \nsig", delsp=False) == "one two\n-- \nsig"
    assert signing.unflow("wo \nrd\n  | note\n >quoted", delsp=True) == "word\n | note\n>quoted"
    assert signing.unflow("ends soft ", delsp=False) == "ends soft "


@pytest.mark.parametrize("prefix", ["[EXTERNAL] ", "RE: ", "[EXTERNAL] Fwd: "])
def test_prefixed_subject_still_verifies(by_email, tmp_path, prefix):
    app, reference, raw = by_email
    assert parsed(raw)["Subject"] == f"Website inquiry {reference}"
    assert_authentic(app, with_headers(raw, Subject=f"{prefix}Website inquiry {reference}"), tmp_path, reference)


@pytest.mark.parametrize(
    "reply_to", [VISITOR_EMAIL.replace("example.org", "EXAMPLE.ORG"), f"Jordan Rivers <{VISITOR_EMAIL}>"]
)
def test_reply_to_domain_case_and_display_name_are_accepted(by_email, tmp_path, reply_to):
    app, reference, raw = by_email
    assert_authentic(app, with_headers(raw, Reply_To=reply_to), tmp_path, reference)


# --- forged emails ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "place", ["after the block", "before the block", "bare BEGIN line after", "trailing part", "leading part"]
)
def test_a_second_inquiry_block_anywhere_is_refused(by_email, tmp_path, place):
    app, _, raw = by_email
    text = body_text(parsed(raw)).replace("\r\n", "\n")
    forged = forged_block(text)
    if place == "after the block":
        raw = rewritten(raw, lambda text: text + "\n\n(corrected)\n" + forged + "\n")
    elif place == "before the block":
        raw = rewritten(raw, lambda text: forged + "\n\n" + text)
    elif place == "bare BEGIN line after":
        raw = rewritten(raw, lambda text: text + "\n" + signing.BEGIN + "\nEmail: mallory@evil.example\n")
    elif place == "trailing part":
        raw = gateway_mixed(raw, first=None, last="Correction from the website:\n" + forged)
    else:
        raw = gateway_mixed(raw, first="Correction from the website:\n" + forged, last=None)
    assert_refused(app, raw, tmp_path, "more than one inquiry block")


@pytest.mark.parametrize(
    "subject",
    [
        "Website inquiry RSCT-ZZZZZZ",
        "Website inquiry {ref} RSCT-ZZZZZZ",
        "Website inquiry rsct-zzzzzz {ref}",
        "Website inquiry",
        None,
    ],
)
def test_subject_must_name_the_block_reference_only(by_email, tmp_path, subject):
    app, reference, raw = by_email
    changed = with_headers(raw, Subject=subject and subject.format(ref=reference))
    reason = "Subject" if subject else "0 Subject headers"
    assert_refused(app, changed, tmp_path, reason)


def test_reply_to_changed_to_another_address_is_refused(by_email, tmp_path):
    app, _, raw = by_email
    for reply_to in (
        "mallory@evil.example",
        VISITOR_EMAIL.replace("Jordan", "jordan"),
        f"{VISITOR_EMAIL}, mallory@evil.example",
        "Jordan <mallory@evil.example>",
    ):
        assert_refused(
            app, with_headers(raw, Reply_To=reply_to), tmp_path, "Reply-To header is not the visitor's email address"
        )


def test_reply_to_removed_when_the_visitor_asked_for_email_is_refused(by_email, tmp_path):
    app, _, raw = by_email
    assert_refused(app, with_headers(raw, Reply_To=None), tmp_path, "Reply-To header is missing")


def test_reply_to_added_when_the_visitor_asked_for_a_call_is_refused(by_phone, tmp_path):
    app, _, raw = by_phone
    for reply_to in ("mallory@evil.example", VISITOR_EMAIL):
        assert_refused(app, with_headers(raw, Reply_To=reply_to), tmp_path, "did not ask for email")
