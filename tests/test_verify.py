"""`flask inquiry verify` on emails as the office may receive them, through a table of expected exit statuses.

Every email starts as a genuine one: the app delivers it to a real SMTP server (aiosmtpd). The table
then changes it as mail transport does (0), as a gateway or a forward adds to it (3), or as a forger
would (1), and runs the command on the result.
"""

import base64
import email
import html
import os
import re
import subprocess
import sys
import textwrap
from email import policy
from email.message import EmailMessage, MIMEPart

import pytest

from rsct import signing, verify

from helpers import ROOT, Visitor, body_text, deliver

VISITOR_EMAIL = "Jordan.Qzx@example.org"
BANNER = "[EXTERNAL EMAIL] This message came from outside the organisation. Be careful with links."
LONG_NOTE = (
    "I would like to talk about Qzxnote options for my brother, who has been drinking more since "
    "the winter and does not want to go to a hospital.\nSecond line of my note."
)
BY_EMAIL = {"contact_method": "email", "email": VISITOR_EMAIL, "phone": "", "message": LONG_NOTE}
BY_PHONE = {"email": VISITOR_EMAIL}
BY_TEXT = {"contact_method": "text", "leave_message": "yes"}
NON_ASCII = {
    "contact_method": "email",
    "name": "Zoë Łukasiewicz-Núñez",
    "email": "zoe@bücher.example",
    "phone": "",
    "message": "Ça va? Necesito hablar con alguien — pronto.\n第二行",
}
HEADING = "NOT COVERED BY THE SIGNATURE"


@pytest.fixture
def genuine(smtp_app, inbox):
    """genuine(**visitor changes) -> the raw bytes of that inquiry as the office's server received them."""

    def send(**changes) -> bytes:
        before = len(inbox.messages)
        assert Visitor(smtp_app.test_client()).submit(**changes).status_code == 303
        assert len(deliver(smtp_app).delivered) == 1
        return inbox.wait_for(before + 1)[-1].content

    return send


def run_verify(app, raw: bytes, tmp_path, name="saved.eml"):
    path = tmp_path / name
    path.write_bytes(raw)
    return app.test_cli_runner().invoke(args=["inquiry", "verify", str(path)])


# --- ways to change an email --------------------------------------------------------------------


def parsed(raw: bytes) -> EmailMessage:
    return email.message_from_bytes(raw, policy=policy.default)


def text_of(raw: bytes) -> str:
    return body_text(parsed(raw)).replace("\r\n", "\n")


def raw_header(raw: bytes, name: str, value: str | None = None, keep: bool = False) -> bytes:
    """The raw email with header `name` removed (unless keep) and, when value is given, a raw line added on top."""
    head, sep, body = raw.partition(b"\r\n\r\n")
    if not keep:
        field = rb"(?mi)^" + re.escape(name.encode()) + rb":[^\r\n]*(\r\n[ \t][^\r\n]*)*(\r\n|$)"
        head = re.sub(field, b"", head + b"\r\n")
        head = head.rstrip(b"\r\n")
    if value is not None:
        head = f"{name}: {value}".encode() + b"\r\n" + head
    return head + sep + body


def with_text(raw: bytes, change=lambda text: text, cte="quoted-printable", **params) -> bytes:
    message = parsed(raw)
    message.set_content(change(text_of(raw)), subtype="plain", charset="utf-8", cte=cte, params=params or None)
    return message.as_bytes()


def gateway_mixed(raw: bytes, first=None, last=None) -> bytes:
    """A gateway's multipart/mixed: the headers kept, plain-text parts before and after the original."""
    original, wrapper = parsed(raw), EmailMessage()
    for name, value in original.items():
        if name.lower() not in ("content-type", "content-transfer-encoding", "mime-version"):
            wrapper[name] = value
    wrapper.make_mixed()
    for text in (first, text_of(raw), last):
        if text is not None:
            part = MIMEPart(policy=policy.default)
            part.set_content(text, cte="quoted-printable")
            wrapper.attach(part)
    return wrapper.as_bytes()


def with_html(raw: bytes, html_text: str) -> bytes:
    """multipart/alternative: the plain text, then an HTML version (what mail programs show)."""
    message = parsed(raw)
    message.set_content(text_of(raw), cte="quoted-printable")
    message.add_alternative(html_text, subtype="html")
    return message.as_bytes()


def html_copy(text: str) -> str:
    """The text as Exchange re-emits it: escaped, one <br> per line, wrapped in a document."""
    lines = "<br>\n".join(html.escape(line) for line in text.split("\n"))
    return f"<html><head><style>p {{margin:0}}</style></head><body><div>{lines}</div></body></html>"


def with_smime(raw: bytes) -> bytes:
    wrapper = parsed(gateway_mixed(raw))
    wrapper.set_type("multipart/signed")
    wrapper.set_param("protocol", "application/pkcs7-signature")
    signature = MIMEPart(policy=policy.default)
    signature.set_content(b"\x30\x80fake", maintype="application", subtype="pkcs7-signature", filename="smime.p7s")
    wrapper.attach(signature)
    return wrapper.as_bytes()


def forwarded_as_attachment(raw: bytes, note="Please call this one back today.", subject_tag="Fwd: ") -> bytes:
    outer = EmailMessage()
    outer["From"] = "Front Desk <desk@rsct.example.org>"
    outer["To"] = "manager@rsct.example.org"
    outer["Subject"] = subject_tag + str(parsed(raw)["Subject"])
    outer["Date"] = "Mon, 30 Nov 2026 09:00:00 -0500"
    outer.set_content(note)
    outer.add_attachment(parsed(raw))
    return outer.as_bytes()


def spam_report(raw: bytes) -> bytes:
    """SpamAssassin's report_safe: the original attached, under a report with the original's headers."""
    original, outer = parsed(raw), EmailMessage()
    for name in ("From", "To", "Date", "Message-ID"):
        outer[name] = original[name]
    outer["Subject"] = "[SPAM] " + original["Subject"]
    outer["X-Spam-Flag"] = "YES"
    outer.set_content(
        'Spam detection software, running on the system "mx", has identified this incoming '
        "email as possible spam. Content analysis details: (5.1 points, 5.0 required)"
    )
    outer.add_attachment(original, disposition="inline")
    return outer.as_bytes()


def forwarded_inline(raw: bytes, mark="---------- Forwarded message ---------") -> bytes:
    original, outer = parsed(raw), EmailMessage()
    outer["From"] = "Front Desk <desk@rsct.example.org>"
    outer["To"] = "manager@rsct.example.org"
    outer["Subject"] = "Fwd: " + original["Subject"]
    outer["Date"] = "Mon, 30 Nov 2026 09:00:00 -0500"
    outer.set_content(
        f"Can you take this one?\n\n{mark}\n"
        f"From: {original['From']}\nDate: {original['Date']}\nSubject: {original['Subject']}\n"
        f"To: {original['To']}\n\n{text_of(raw)}"
    )
    return outer.as_bytes()


def rewrapped(raw: bytes, width=72) -> bytes:
    """Long lines broken at `width` with hard line breaks, as a mail program without format=flowed does."""

    def wrap(text):
        return "\n".join(
            "\n".join(textwrap.wrap(line, width, break_long_words=False, break_on_hyphens=False)) or line
            for line in text.split("\n")
        )

    return with_text(raw, wrap)


def flowed(raw: bytes, delsp: bool) -> bytes:
    """Re-wrapped as format=flowed (RFC 3676) at 40 columns."""
    lines = []
    for line in text_of(raw).split("\n"):
        pieces = [""]
        for word in re.split("(?<= )", line):
            if len(pieces[-1]) + len(word) > 40 and pieces[-1].endswith(" "):
                pieces.append("")
            pieces[-1] += word
        if delsp:  # the wrapper adds a space at each soft break, which the reader removes
            pieces = [p + " " for p in pieces[:-1]] + pieces[-1:]
        lines += [" " + p if p.startswith((" ", ">", "From ")) else p for p in pieces]
    params = {"format": "flowed", **({"delsp": "yes"} if delsp else {})}
    return with_text(raw, lambda _: "\n".join(lines), cte="8bit", **params)


def replace_line(prefix: str, new: str):
    return lambda text: re.sub(f"(?m)^{re.escape(prefix)}.*$", new.replace("\\", "\\\\"), text, count=1)


def resigned(keys, change):
    """The body changed and signed again (v2) with `keys`."""

    def apply(text: str) -> str:
        body = change(text.split("\nSignature: ")[0])
        return body + "\n" + signing.signature_line(keys, body) + "\n"

    return apply


def trace_headers(raw: bytes) -> bytes:
    for line in (
        "Received: from mx.example.org by mail.office.example; Mon, 30 Nov 2026 22:20:49 -0500",
        "Authentication-Results: mx.office.example; dkim=pass; spf=pass; dmarc=pass",
        "DKIM-Signature: v=1; a=rsa-sha256; d=rsct.example.org; s=mail; b=abc",
        "ARC-Seal: i=1; a=rsa-sha256; cv=none; d=office.example; b=xyz",
        "X-MS-Exchange-Organization-SCL: 1",
        "X-Spam-Status: No, score=-1.0",
    ):
        name, value = line.split(": ", 1)
        raw = raw_header(raw, name, value, keep=True)
    return raw


def old_format(keys, reference="RSCT-ABCDEF", subject=None) -> bytes:
    """An email as the site wrote them before the whole body was signed (format v1)."""
    block = (
        f"{signing.BEGIN}\nReference: {reference}\nSubmitted: Monday, November 30, 2026 at 10:20 PM EST "
        "(2026-12-01T03:20:49Z)\nPREFERRED CONTACT: PHONE CALL\nName: Jordan\nPhone: (203) 555-0147\n"
        f"Email: (not given)\nMessage:\n  (none)\n{signing.END}"
    )
    message = EmailMessage()
    message["From"] = "RSCT website <website@rsct.example.org>"
    message["To"] = "office@rsct.example.org"
    message["Subject"] = subject or f"Website inquiry {reference}"
    message["Date"] = "Mon, 30 Nov 2026 22:20:49 -0500"
    message["Message-ID"] = f"<{reference.lower()}@rsct.example.org>"
    message.set_content(
        f"Someone asked the Madison office to get in touch.\n\n{block}\nSignature: "
        f"{signing.signature(keys, block)}\n\nCONFIDENTIAL: keep it inside the office.\n",
        cte="quoted-printable",
    )
    return message.as_bytes()


# --- the table ----------------------------------------------------------------------------------

same = lambda raw: raw  # noqa: E731

CASES = [
    # (id, visitor, change, status, words in the output)
    ("genuine phone call", BY_PHONE, same, 0, "as the website sent it"),
    ("genuine text message", BY_TEXT, same, 0, "PREFERRED CONTACT: TEXT MESSAGE"),
    ("genuine email", BY_EMAIL, same, 0, f"Email: {VISITOR_EMAIL}"),
    ("non-ASCII name, domain and note", NON_ASCII, same, 0, "Name: Zoë Łukasiewicz-Núñez"),
    (
        "non-ASCII domain as Unicode in Reply-To",
        NON_ASCII,
        lambda r: raw_header(r, "Reply-To", "zoe@bücher.example"),
        0,
        "第二行",
    ),
    ("re-encoded quoted-printable", BY_EMAIL, with_text, 0, "as the website sent it"),
    ("base64 and CRLF", BY_EMAIL, lambda r: with_text(r, cte="base64"), 0, "as the website sent it"),
    ("format=flowed", BY_EMAIL, lambda r: flowed(r, delsp=False), 0, "as the website sent it"),
    ("format=flowed delsp", BY_EMAIL, lambda r: flowed(r, delsp=True), 0, "as the website sent it"),
    ("trace headers", BY_EMAIL, trace_headers, 0, "as the website sent it"),
    ("HTML copy of the same text", BY_EMAIL, lambda r: with_html(r, html_copy(text_of(r))), 0, "as the website"),
    ("S/MIME signature part", BY_PHONE, with_smime, 0, "as the website sent it"),
    # additions: authentic, with what is not covered printed apart
    ("banner above, quoted-printable", BY_EMAIL, lambda r: with_text(r, lambda t: f"{BANNER}\n\n{t}"), 3, BANNER),
    ("banner below, base64", BY_EMAIL, lambda r: with_text(r, lambda t: f"{t}\n{BANNER}\n", cte="base64"), 3, BANNER),
    ("banner above, 8bit", BY_PHONE, lambda r: with_text(r, lambda t: f"{BANNER}\n{t}", cte="8bit"), 3, BANNER),
    ("banner as a leading part", BY_EMAIL, lambda r: gateway_mixed(r, first=BANNER), 3, BANNER),
    ("banner as a trailing part", BY_EMAIL, lambda r: gateway_mixed(r, last=BANNER), 3, BANNER),
    (
        "HTML version with a banner",
        BY_EMAIL,
        lambda r: with_html(r, html_copy(BANNER + "\n" + text_of(r))),
        3,
        "An HTML version with other content",
    ),
    (
        "[EXTERNAL] subject tag",
        BY_EMAIL,
        lambda r: raw_header(r, "Subject", "[EXTERNAL] " + parsed(r)["Subject"]),
        3,
        "[EXTERNAL] Website inquiry",
    ),
    ("forwarded as an attachment", BY_EMAIL, forwarded_as_attachment, 3, "Please call this one back today."),
    (
        "forwarded as an attachment with a Reply-To of its own",
        BY_EMAIL,
        lambda r: raw_header(forwarded_as_attachment(r), "Reply-To", "mallory@evil.example", keep=True),
        3,
        "Reply-To: mallory@evil.example",
    ),
    ("forwarded inline", BY_EMAIL, forwarded_inline, 3, "This email was forwarded"),
    ("spam filter's report", BY_PHONE, spam_report, 3, "Spam detection software"),
    (
        "forwarded inline by new Outlook",
        BY_PHONE,
        lambda r: forwarded_inline(r, "_" * 32),
        3,
        "This email was forwarded",
    ),
    (
        "unsigned correction below",
        BY_PHONE,
        lambda r: with_text(r, lambda t: t + "\nCORRECTION: please call 203-555-0199 instead.\n"),
        3,
        "CORRECTION: please call 203-555-0199 instead.",
    ),
    # not authentic
    (
        "changed name",
        BY_EMAIL,
        lambda r: with_text(r, replace_line("Name: ", "Name: Mallory")),
        1,
        "the text was changed",
    ),
    (
        "changed guidance",
        BY_TEXT,
        lambda r: with_text(r, lambda t: t.replace("It may say that it comes from RSCT.", "Say it comes from RSCT.")),
        1,
        "the text was changed",
    ),
    (
        "changed and signed with another key",
        BY_EMAIL,
        lambda r: with_text(
            r,
            resigned(
                ["an attacker's key, long enough to look real"], replace_line("Email: ", "Email: mallory@evil.example")
            ),
        ),
        1,
        "not signed by this website",
    ),
    ("re-wrapped without format=flowed", BY_EMAIL, rewrapped, 1, "line breaks"),
    (
        "Reply-To another address",
        BY_EMAIL,
        lambda r: raw_header(r, "Reply-To", "mallory@evil.example"),
        1,
        "Reply-To header is not the visitor's",
    ),
    (
        "Reply-To read differently by a mail program",
        BY_EMAIL,
        lambda r: raw_header(r, "Reply-To", f"{VISITOR_EMAIL} <mallory@evil.example>"),
        1,
        "Reply-To header is malformed",
    ),
    (
        "Reply-To with a second address",
        BY_EMAIL,
        lambda r: raw_header(r, "Reply-To", f"{VISITOR_EMAIL}, mallory@evil.example"),
        1,
        "Reply-To header is not",
    ),
    (
        "two Reply-To headers",
        BY_EMAIL,
        lambda r: raw_header(r, "Reply-To", "mallory@evil.example", keep=True),
        1,
        "2 Reply-To headers",
    ),
    ("Reply-To removed", BY_EMAIL, lambda r: raw_header(r, "Reply-To"), 1, "Reply-To header is missing"),
    (
        "Reply-To added to a phone inquiry",
        BY_PHONE,
        lambda r: raw_header(r, "Reply-To", VISITOR_EMAIL),
        1,
        "did not ask for email",
    ),
    (
        "Mail-Reply-To added",
        BY_EMAIL,
        lambda r: raw_header(r, "Mail-Reply-To", "mallory@evil.example"),
        1,
        "Mail-Reply-To header",
    ),
    (
        "Mail-Followup-To added",
        BY_PHONE,
        lambda r: raw_header(r, "Mail-Followup-To", "mallory@evil.example"),
        1,
        "Mail-Followup-To header",
    ),
    (
        "From another address",
        BY_PHONE,
        lambda r: raw_header(r, "From", "RSCT website <mallory@evil.example>"),
        1,
        "sender (From)",
    ),
    (
        "Subject of another inquiry",
        BY_PHONE,
        lambda r: raw_header(r, "Subject", re.sub("RSCT-[A-Z0-9]+", "RSCT-ZZZZZZ", parsed(r)["Subject"])),
        1,
        "Subject is not the one",
    ),
    (
        "a second plain-text version shown instead",
        BY_EMAIL,
        lambda r: (
            lambda m: (
                m.set_content(text_of(r), cte="quoted-printable"),
                m.add_alternative("Please email mallory@evil.example instead."),
                m.as_bytes(),
            )[-1]
        )(parsed(r)),
        1,
        "second plain-text version",
    ),
    (
        "a second, forged block in a trailing part",
        BY_EMAIL,
        lambda r: gateway_mixed(r, last=text_of(r).replace(VISITOR_EMAIL, "mallory@evil.example")),
        1,
        "more than one inquiry block",
    ),
    (
        "converted to HTML only",
        BY_PHONE,
        lambda r: raw_header(with_text(r), "Content-Type", "text/html; charset=utf-8"),
        1,
        "original email",
    ),
]


@pytest.mark.parametrize("visitor, change, status, words", [case[1:] for case in CASES], ids=[c[0] for c in CASES])
def test_verify_table(smtp_app, genuine, tmp_path, visitor, change, status, words):
    raw = change(genuine(**visitor))
    result = run_verify(smtp_app, raw, tmp_path)
    assert result.exit_code == status, result.output
    assert words in result.output, result.output
    if status == 0:
        assert HEADING not in result.output
    if status == 3:
        trusted, _, additions = result.output.partition(HEADING)
        assert trusted.startswith("Authentic: inquiry RSCT-")
        assert words in additions and words not in trusted  # printed apart, never among the trusted lines
        assert result.output.rstrip().endswith("Only the inquiry lines printed at the top can be trusted.")
    if status == 1:
        assert result.output.startswith("NOT AUTHENTIC: ") and "Authentic: inquiry" not in result.output


def test_authentic_output_lists_every_signed_line(smtp_app, genuine, tmp_path):
    raw = genuine(**BY_EMAIL)
    reference = re.search("RSCT-[A-Z0-9]+", parsed(raw)["Subject"]).group(0)
    lines = run_verify(smtp_app, raw, tmp_path).output.splitlines()
    assert lines[0].startswith(f"Authentic: inquiry {reference}, submitted ") and lines[0].endswith("Z).")
    for expected in (
        "  PREFERRED CONTACT: EMAIL",
        "  OK to mention RSCT in a message: NO",
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


def test_rewrap_hint_tells_what_to_do(smtp_app, genuine, tmp_path):
    result = run_verify(smtp_app, rewrapped(genuine(**BY_EMAIL)), tmp_path)
    assert "What to do: " in result.output and "saved as a file" in result.output
    # Control: the same re-wrap with one changed word is a changed text, not a re-wrap.
    changed = rewrapped(with_text(genuine(**BY_EMAIL), lambda t: t.replace("Second line", "Sekond line")))
    assert "the text was changed" in run_verify(smtp_app, changed, tmp_path).output


def test_standard_input_as_the_deployment_wrapper_passes_it(smtp_app, genuine):
    result = smtp_app.test_cli_runner().invoke(args=["inquiry", "verify", "-"], input=genuine(**BY_PHONE))
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("encoding", ["utf-8", "utf-16", "cp1252"])
def test_outlook_text_file_checks_the_block_but_not_the_headers(smtp_app, genuine, tmp_path, encoding):
    """Outlook classic's "Save as" .txt: a few header lines (not the real ones) and the text."""
    raw = genuine(**{**BY_PHONE, "name": "Renée"})
    message = parsed(raw)
    saved = (
        f"From:\tRSCT website\nSent:\tMonday, November 30, 2026 10:20 PM\nTo:\tMadison office\n"
        f"Subject:\t{message['Subject']}\n\n{text_of(raw)}"
    ).replace("\n", "\r\n")
    result = run_verify(smtp_app, saved.encode(encoding), tmp_path, name="saved.txt")
    assert result.exit_code == 3, result.output
    assert "Name: Renée" in result.output.partition(HEADING)[0]
    assert "were not checked" in result.output.partition(HEADING)[2]
    tampered = saved.replace("Name: Renée", "Name: Mallory")
    assert run_verify(smtp_app, tampered.encode(encoding), tmp_path, name="t.txt").exit_code == 1


def test_old_format_is_authentic_with_its_unsigned_text_not_covered(smtp_app, tmp_path):
    """Emails sent before the whole body was signed: exit 3, their unsigned text listed as not covered."""
    keys = smtp_app.config["INQUIRY_SIGNING_KEYS"]
    result = run_verify(smtp_app, old_format(keys), tmp_path)
    assert result.exit_code == 3, result.output
    trusted, _, additions = result.output.partition(HEADING)
    assert "Authentic: inquiry RSCT-ABCDEF" in trusted and "Name: Jordan" in trusted
    assert "Someone asked the Madison office" in additions and "Older email format" in additions
    assert run_verify(smtp_app, old_format(["another key, long enough to look real..."]), tmp_path).exit_code == 1
    assert run_verify(smtp_app, old_format(keys, subject="Website inquiry RSCT-ZZZZZZ"), tmp_path).exit_code == 1


def test_key_rotation_keeps_old_emails_verifiable(make_app, smtp_app, genuine, tmp_path):
    raw = genuine(**BY_PHONE)
    old_key = smtp_app.config["INQUIRY_SIGNING_KEYS"][0]
    rotated = make_app(INQUIRY_SIGNING_KEYS=[old_key, "new-signing-key-" + "n" * 32])
    assert run_verify(rotated, raw, tmp_path).exit_code == 0
    removed = make_app(INQUIRY_SIGNING_KEYS=["new-signing-key-" + "n" * 32])
    assert run_verify(removed, raw, tmp_path).exit_code == 1


def test_check_email_report_for_code_callers(smtp_app, genuine):
    raw = genuine(**BY_EMAIL)
    report = verify.check_email(smtp_app.config["INQUIRY_SIGNING_KEYS"], raw)
    assert report.status == verify.AUTHENTIC and report.inquiry.reference in parsed(raw)["Subject"]
    assert verify.same_address("a@xn--bcher-kva.example", "a@BÜCHER.example")
    assert not verify.same_address("A@example.org", "a@example.org")


# --- could not check: exit 2, nothing created ---------------------------------------------------


def test_without_keys_verify_exits_2_and_creates_nothing(tmp_path, smtp_app, genuine):
    saved = tmp_path / "inquiry.eml"
    saved.write_bytes(genuine(**BY_PHONE))
    fresh = tmp_path / "fresh-instance"
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLASK_")}
    env["FLASK_INSTANCE_PATH"] = str(fresh)
    result = subprocess.run(
        [sys.executable, "-m", "flask", "--app", "app", "inquiry", "verify", str(saved)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert "No signing keys are configured" in result.stderr and "deploy/rsct-flask" in result.stderr
    assert not fresh.exists()


def test_outlook_msg_file_exits_2_with_the_way_to_save_instead(app, tmp_path):
    saved = tmp_path / "inquiry.msg"
    saved.write_bytes(bytes.fromhex("d0cf11e0a1b11ae1") + b"\0" * 504)
    result = app.test_cli_runner().invoke(args=["inquiry", "verify", str(saved)])
    assert result.exit_code == 2 and "Text Only (*.txt)" in result.output


def test_unreadable_file_exits_2(app, tmp_path):
    result = app.test_cli_runner().invoke(args=["inquiry", "verify", str(tmp_path / "missing.eml")])
    assert result.exit_code == 2


def test_base64_gateway_copy_keeps_no_encoded_text_visible(smtp_app, genuine):
    """Control for the table: the base64 copy really has no readable block in its raw bytes."""
    raw = with_text(genuine(**BY_EMAIL), cte="base64")
    assert b"Reference:" not in raw and base64.b64decode(raw.partition(b"\n\n")[2] or b"==", validate=False)


def test_damaged_emails_never_crash_the_check(smtp_app, genuine):
    """Bad input never crashes anything: random damage to real emails (bytes changed, cut or inserted) always
    gets an answer, and never "authentic" for a changed inquiry line."""
    import random

    keys = smtp_app.config["INQUIRY_SIGNING_KEYS"]
    raw = genuine(**BY_EMAIL)
    rng = random.Random(9)
    pieces = [
        b"\r\n",
        b"--",
        b"\x00",
        b"\xff",
        b"Content-Type: message/rfc822\r\n",
        b"Content-Type: text/html\r\n",
        b"Reply-To: a@b\r\n",
        b"=?utf-8?q?",
        b"<",
    ]
    for base in (raw, forwarded_as_attachment(raw), with_html(raw, html_copy(text_of(raw)))):
        for _ in range(150):
            damaged = bytearray(base)
            for _ in range(rng.randint(1, 12)):
                at = rng.randrange(len(damaged))
                choice = rng.random()
                if choice < 0.4:
                    damaged[at] = rng.randrange(256)
                elif choice < 0.7:
                    del damaged[at : at + rng.randint(1, 30)]
                else:
                    damaged[at:at] = rng.choice(pieces)
            report = verify.check_email(keys, bytes(damaged))
            assert report.status in (0, 1, 2, 3)
            if report.status in (0, 3):
                assert report.inquiry.value("Email") == VISITOR_EMAIL
