"""Read an email as the office received it and say exactly how far the website's signature vouches for it.

The answer is a Report with the command's exit status:

- AUTHENTIC (0): the email is as the site sent it, apart from what mail transport changes (trace
  headers, transfer encoding, line ends, format=flowed re-wrapping, an HTML copy of the same text);
- NOT_AUTHENTIC (1): the signed text or a header that decides where a reply goes was changed, or
  cannot be read as the site wrote it (a malformed header, a second inquiry block, another version
  that a mail program shows instead);
- UNCOVERED (3): the signed inquiry is authentic, but the email also carries text, parts or headers
  the signature does not cover (a gateway's banner or subject tag, an HTML version with other
  words, a forwarding or spam-report wrapper, an old-format email's unsigned text). They are listed
  in Report.uncovered so that the command can print them apart from the trusted lines.

Only the text/plain parts and the headers From, Reply-To, Mail-Reply-To, Mail-Followup-To and
Subject count; every other header is transport. An attached original (message/rfc822) is checked
against its own headers, and the message around it is an addition.
"""

import codecs
import email
import re
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from html.parser import HTMLParser

import idna

from . import signing

AUTHENTIC, NOT_AUTHENTIC, COULD_NOT_CHECK, UNCOVERED = 0, 1, 2, 3
COVERED_HEADERS = ("From", "Reply-To", "Mail-Reply-To", "Mail-Followup-To", "Subject")
NEVER_WRITTEN = ("Mail-Reply-To", "Mail-Followup-To")
EMAIL_MARKERS = ("MIME-Version", "Message-ID", "Date", "Received", "Content-Type")
SMIME_TYPES = ("application/pkcs7-signature", "application/x-pkcs7-signature")
ENCRYPTED_TYPES = ("application/pkcs7-mime", "application/x-pkcs7-mime")
# Gmail, Outlook (old and new: a rule of underscores above the original's From line), Apple Mail, Thunderbird.
FORWARD_MARK = re.compile(
    r"^\s*(-{2,}\s*(forwarded message|original message)\s*-{2,}|begin forwarded message:|_{10,}\n\s*from:.*)\s*$",
    re.I | re.M,
)
OUTLOOK_MSG = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # the compound-file signature of Outlook's .msg
SAVE_HINT = (
    'Ask for the original email saved as a file (see "For office staff" in DEPLOY.md), '
    "not a forwarded or copied version, and check that one."
)
REWRAP_HINT = (
    "The words are exactly as the website wrote them, but a mail program changed the line breaks, so this copy "
    "cannot be trusted line by line. This usually happens when an email is forwarded or copied. " + SAVE_HINT
)


@dataclass
class Report:
    status: int
    reason: str = ""
    hint: str = ""
    inquiry: signing.Inquiry | None = None
    uncovered: list[tuple[str, str]] = field(default_factory=list)  # (what it is, its text)
    smime_signed: bool = False  # the email also carries an S/MIME signature, for the mail program to check


class Refused(Exception):
    """The email is not authentic; the message is the reason, for a receptionist."""

    def __init__(self, reason: str, hint: str = ""):
        super().__init__(reason)
        self.hint = hint


def check_email(keys: list[str], raw: bytes) -> Report:
    """Check a file as the office saved it: an email (.eml), or only its text (Outlook's .txt)."""
    if raw.startswith(OUTLOOK_MSG):
        return Report(
            COULD_NOT_CHECK,
            "this is an Outlook .msg file, which this command does not read. In Outlook, open the email and use "
            "File > Save As with the type Text Only (*.txt), or save it from Outlook on the web as .eml",
        )
    message = parse(raw)
    if message.get_content_type() in ENCRYPTED_TYPES:
        return Report(
            COULD_NOT_CHECK,
            "this email is sealed (encrypted for the office), so the server cannot read it. Open it in the office's "
            "mail program, which checks its S/MIME signature; or save it from there once opened, and check that file",
        )
    try:
        if not any(name in message for name in EMAIL_MARKERS):
            return _checked(keys, None, read_text_file(raw), [])
        report = check_message(keys, message)
        report.smime_signed = any(part.get_content_type() in SMIME_TYPES for part in message.walk())
        return report
    except Refused as refusal:
        return Report(NOT_AUTHENTIC, str(refusal), refusal.hint)


def parse(raw: bytes) -> EmailMessage:
    """The email as a mail program reads it; headers in raw UTF-8 (RFC 6532, SMTPUTF8) are read as UTF-8."""
    head = re.split(rb"\r?\n\r?\n", raw, maxsplit=1)[0]
    if not head.isascii():
        try:
            head.decode("utf-8")
        except UnicodeDecodeError:
            pass
        else:
            return email.message_from_string(raw.decode("utf-8", "surrogateescape"), policy=policy.default)
    return email.message_from_bytes(raw, policy=policy.default)


def check_message(keys: list[str], message: EmailMessage) -> Report:
    """Check a parsed email: find the message that holds the signed text, then its headers and parts."""
    texts = [text for part in _leaves(message, into_attached=True) if (text := _plain(part)) is not None]
    if sum(_begin_lines(text) for text in texts) > 1 or sum(_signature_lines(text) for text in texts) > 1:
        raise Refused("this email holds more than one inquiry block; a second one was added")
    holder, wrappers = _holder(message, [])
    if holder is None:
        hint = SAVE_HINT if any(p.get_content_type() == "text/html" for p in message.walk()) else ""
        raise Refused("no signed inquiry from the website was found in this email", hint)
    uncovered = []
    for wrapper in wrappers:  # forwarded as an attachment, or wrapped in a spam filter's report
        uncovered += _wrapper_additions(wrapper)
    return _checked(keys, holder, None, uncovered)


def _checked(keys: list[str], message: EmailMessage | None, file_text: str | None, uncovered: list) -> Report:
    if message is None:
        texts = [(None, file_text)]
        uncovered.append(
            (
                "Headers",
                "This file holds only the text of the email: who sent it, the Subject and where a reply goes "
                "were not in it, so they were not checked.",
            )
        )
    else:
        texts = [(part, text) for part in _leaves(message) if (text := _plain(part)) is not None]
    signed = [(part, text) for part, text in texts if _begin_lines(text) or _signature_lines(text)]
    if not signed:
        raise Refused("no signed inquiry from the website was found in this email")
    part, text = signed[0]
    inquiry, above, below, version, sender = _read_signed(keys, text)
    uncovered += [
        (what, words) for what, words in (("Text above the inquiry", above), ("Text below it", below)) if words
    ]
    if message is not None:
        uncovered += _part_additions(message, part, text)
        forwarded = FORWARD_MARK.search(above) is not None
        uncovered += _header_additions(message, inquiry, version, sender, forwarded)
    if version == 1:
        uncovered.append(
            ("Older email format", "This email was sent before the whole text was signed: only the inquiry block is.")
        )
    return Report(UNCOVERED if uncovered else AUTHENTIC, inquiry=inquiry, uncovered=uncovered)


# --- the signed text -------------------------------------------------------------------------------


def _read_signed(keys: list[str], text: str):
    """(inquiry, text above, text below, format version, From address it names) from one decoded text."""
    # A narrow re-wrap may have put the signature's value on a line of its own: join them back.
    text = re.sub(r"(?m)^(Signature:)[ \t]*\n(v2\.)", r"\1 \2", text)
    lines = text.split("\n")
    ends = [i for i, line in enumerate(lines) if signing.SIGNATURE_V2.match(line.strip())]
    if ends:
        end = ends[0]
        starts = [i for i in range(end) if lines[i].strip() == signing.BEGIN]
        if not starts:
            raise Refused("the start of the inquiry (its BEGIN line) is missing", SAVE_HINT)
        start = starts[-1]
        body = "\n".join(
            line.strip() if line.strip() in (signing.BEGIN, signing.END) else line for line in lines[start:end]
        )
        match = signing.check_body(keys, body, lines[end])
        if match == "words":
            raise Refused("the line breaks of this copy were changed", REWRAP_HINT)
        if match != "exact":
            raise Refused(
                "the text was changed after the website sent it, or it was not signed by this website",
                "If you think this email is genuine, " + SAVE_HINT[0].lower() + SAVE_HINT[1:],
            )
        inquiry = signing.Inquiry(tuple(_block_lines(lines[start:end])))
        sender = next((m.group(1) for line in lines[start:end] if (m := signing.SENDER_LINE.match(line))), "")
        return inquiry, _joined(lines[:start]), _joined(lines[end + 1 :]), 2, sender
    found = signing.SIGNED_BLOCK.search(text)
    if not found:
        raise Refused("the inquiry's signature line is missing or broken", SAVE_HINT)
    if not signing.check_block(keys, found.group(1), found.group(2)):
        raise Refused(
            "the inquiry was changed after the website sent it, or it was not signed by this website",
            "If you think this email is genuine, " + SAVE_HINT[0].lower() + SAVE_HINT[1:],
        )
    inquiry = signing.Inquiry(tuple(signing.canonical(found.group(1)).split("\n")))
    return inquiry, _joined([text[: found.start()]]), _joined([text[found.end() :]]), 1, ""


def _block_lines(lines: list[str]) -> list[str]:
    """The lines between BEGIN and END."""
    inside = []
    for line in lines[1:]:
        if line.strip() == signing.END:
            break
        inside.append(line)
    return [line for line in inside if line.strip()] if inside else []


def _joined(pieces: list[str]) -> str:
    return "\n".join(pieces).strip("\n")


def _begin_lines(text: str) -> int:
    return sum(line.strip() == signing.BEGIN for line in text.split("\n"))


def _signature_lines(text: str) -> int:
    return sum(line.strip().startswith(signing.SIGNATURE_LABEL) for line in text.split("\n"))


# --- the email's parts -------------------------------------------------------------------------------


def _leaves(message: EmailMessage, into_attached: bool = False) -> list[EmailMessage]:
    """The message's single parts in order; an attached email is one leaf unless into_attached."""
    if message.get_content_type() == "message/rfc822":
        inner = message.get_payload()
        inner = inner[0] if isinstance(inner, list) else inner
        return _leaves(inner, into_attached) if into_attached else [message]
    if message.is_multipart():
        return [leaf for part in message.iter_parts() for leaf in _leaves(part, into_attached)]
    return [message]


def _holder(message: EmailMessage, wrappers: list) -> tuple[EmailMessage | None, list]:
    """The message (this one, or one attached to it) whose own text parts hold the signed text."""
    if any(_begin_lines(t) or _signature_lines(t) for p in _leaves(message) if (t := _plain(p)) is not None):
        return message, wrappers
    for leaf in _leaves(message):
        if leaf.get_content_type() == "message/rfc822":
            inner = leaf.get_payload()
            inner = inner[0] if isinstance(inner, list) else inner
            found, outer = _holder(inner, [*wrappers, message])
            if found is not None:
                return found, outer
    return None, wrappers


def _plain(part: EmailMessage) -> str | None:
    """A text/plain part decoded (LF line ends, format=flowed undone, no trailing spaces); None otherwise."""
    if part.get_content_type() != "text/plain":
        return None
    try:
        text = part.get_content()
    except (LookupError, UnicodeError, ValueError, AssertionError):
        payload = part.get_payload(decode=True) or b""
        text = payload.decode("utf-8", "replace")
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if str(part.get_param("format", "")).lower() == "flowed":
        text = signing.unflow(text, delsp=str(part.get_param("delsp", "")).lower() == "yes")
    return signing.tidy_lines(text)


def _part_additions(message: EmailMessage, signed_part, signed_text: str) -> list[tuple[str, str]]:
    """The parts other than the signed one: transport, an addition to list, or a reason to refuse."""
    additions = []
    alternatives = _alternatives_of(message, signed_part)
    for leaf in _leaves(message):
        if leaf is signed_part:
            continue
        kind = leaf.get_content_type()
        if kind in SMIME_TYPES:
            continue  # an S/MIME signature part is expected (checked by the mail program, not here)
        if kind == "text/plain":
            text = _plain(leaf) or ""
            if leaf in alternatives and signing.words(text) != signing.words(signed_text):
                raise Refused(
                    "the email carries a second plain-text version with other words, and a mail program may "
                    "show that one instead of the signed inquiry"
                )
            if leaf not in alternatives and text.strip():
                additions.append(("Another text part", text.strip()))
        elif kind == "text/html":
            visible = visible_text(_decoded(leaf))
            if leaf in alternatives and signing.words(visible) == signing.words(signed_text):
                continue  # the same words as HTML, as Exchange and some gateways add
            additions.append(("An HTML version with other content (what it shows)", visible.strip() or "(nothing)"))
        elif kind == "message/rfc822":
            inner = leaf.get_payload()
            inner = inner[0] if isinstance(inner, list) else inner
            additions.append(
                ("An attached email", f"From: {inner.get('From', '')}\nSubject: {inner.get('Subject', '')}")
            )
        else:
            name = leaf.get_filename() or "(no name)"
            additions.append(("An attachment", f"{name} ({kind})"))
    return additions


def _alternatives_of(message: EmailMessage, part) -> list:
    """The other versions of `part` in the multipart/alternative that holds it (empty when none)."""
    for container in message.walk():
        if container.get_content_type() == "multipart/alternative":
            children = list(container.iter_parts())
            if any(part is child or part in _leaves(child) for child in children):
                return [leaf for child in children for leaf in _leaves(child) if leaf is not part]
    return []


def _decoded(part: EmailMessage) -> str:
    try:
        return part.get_content()
    except (LookupError, UnicodeError, ValueError, AssertionError):
        return (part.get_payload(decode=True) or b"").decode("utf-8", "replace")


class _Visible(HTMLParser):
    """Collects the text a browser would show: no tags, scripts, styles or head."""

    HIDDEN = ("script", "style", "head", "title")
    BREAKS = ("br", "p", "div", "tr", "li", "pre", "table", "h1", "h2", "h3", "h4", "h5", "h6")

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.pieces, self.hidden = [], 0

    def handle_starttag(self, tag, attrs):
        if tag in self.HIDDEN:
            self.hidden += 1
        elif tag in self.BREAKS:
            self.pieces.append("\n")

    def handle_endtag(self, tag):
        if tag in self.HIDDEN:
            self.hidden = max(0, self.hidden - 1)
        elif tag in self.BREAKS:
            self.pieces.append("\n")

    def handle_data(self, data):
        if not self.hidden:
            self.pieces.append(data)


def visible_text(html: str) -> str:
    """The words an HTML part shows, one paragraph or line break per line."""
    parser = _Visible()
    parser.feed(html)
    parser.close()
    lines = [" ".join(line.split()) for line in "".join(parser.pieces).split("\n")]
    return "\n".join(line for line in lines if line)


# --- the headers -----------------------------------------------------------------------------------


def _header_additions(message, inquiry: signing.Inquiry, version: int, sender: str, forwarded: bool) -> list:
    """Check the five headers that count against the signed text; returns what is not covered."""
    for name in COVERED_HEADERS:
        headers = message.get_all(name) or []
        if len(headers) > 1:
            raise Refused(f"the email has {len(headers)} {name} headers; the website writes one at most")
        if headers and getattr(headers[0], "defects", None):
            raise Refused(f"the {name} header is malformed, so mail programs may read it differently from this check")
    for name in NEVER_WRITTEN:
        if name in message:
            raise Refused(f"the email has a {name} header, which the website never writes: replies could go elsewhere")
    if forwarded:
        return [
            (
                "Forwarded email",
                "This email was forwarded, so its sender, Subject and Reply-To are the forwarder's and not covered "
                f"(From: {message.get('From', '')}; Reply-To: {message.get('Reply-To', 'none')}; "
                f"Subject: {message.get('Subject', '')}). Reach the visitor only "
                "through the details in the inquiry lines.",
            )
        ]
    additions = _subject_addition(message, inquiry, version)
    _check_reply_to(message, inquiry)
    if version == 2:
        addresses = _addresses(message, "From")
        if len(addresses) != 1 or not same_address(addresses[0], sender):
            raise Refused("the sender (From) is not the website's address the inquiry was signed with")
    else:
        additions.append(("From (the older format does not cover it)", str(message.get("From", ""))))
    return additions


def _subject_addition(message, inquiry: signing.Inquiry, version: int) -> list:
    subject = " ".join(str(message.get("Subject", "")).split())
    if version == 2:
        expected = next((line for line in inquiry.lines if line.startswith("Website inquiry ")), "")
        if subject == expected:
            return []
        if expected and expected in subject:
            return [("Subject (words were added to it)", subject)]
        raise Refused("the Subject is not the one the website wrote for this inquiry")
    if not inquiry.reference or set(signing.REFERENCE_TOKEN.findall(subject)) != {inquiry.reference}:
        raise Refused(f"the Subject does not name this inquiry's reference {inquiry.reference}, or names another one")
    return [] if subject == f"Website inquiry {inquiry.reference}" else [("Subject (words were added to it)", subject)]


def _check_reply_to(message, inquiry: signing.Inquiry) -> None:
    """Reply-To is the signed email address when the visitor asked for email, and absent otherwise."""
    addresses = _addresses(message, "Reply-To")
    if inquiry.value("PREFERRED CONTACT") != "EMAIL":
        if "Reply-To" in message:
            raise Refused("the email has a Reply-To header, but the visitor did not ask for email")
        return
    if "Reply-To" not in message:
        raise Refused("the Reply-To header is missing, but the visitor asked for email")
    if len(addresses) != 1 or not same_address(addresses[0], inquiry.value("Email")):
        raise Refused("the Reply-To header is not the visitor's email address shown in the inquiry")


def _addresses(message, name: str) -> list[str]:
    header = message.get(name)
    if header is None:
        return []
    return [address.addr_spec for address in getattr(header, "addresses", ())]


def domain_form(domain: str) -> str:
    """One form for a domain, however it was written: lower-case ASCII (IDNA, "xn--")."""
    domain = domain.strip().rstrip(".").lower()
    try:
        return idna.encode(domain, uts46=True).decode("ascii")
    except (idna.IDNAError, UnicodeError):
        return domain


def same_address(received: str, signed: str) -> bool:
    """The same mailbox: the local part exactly, the domain in one form (case and IDNA)."""
    local, at, domain = received.strip().rpartition("@")
    signed_local, signed_at, signed_domain = signed.strip().rpartition("@")
    return (
        bool(at and signed_at and local) and local == signed_local and domain_form(domain) == domain_form(signed_domain)
    )


def _wrapper_additions(wrapper: EmailMessage) -> list[tuple[str, str]]:
    """What a message around the attached original carries: its headers and its own text."""
    headers = [f"{name}: {wrapper.get(name)}" for name in COVERED_HEADERS if wrapper.get(name) is not None]
    additions = [("The email around the original (a forward or a spam filter's report)", "\n".join(headers))]
    for leaf in _leaves(wrapper):
        kind = leaf.get_content_type()
        if kind == "text/plain" and (text := (_plain(leaf) or "").strip()):
            additions.append(("Its text", text))
        elif kind == "text/html" and (text := visible_text(_decoded(leaf)).strip()):
            additions.append(("Its HTML text", text))
    return additions


# --- a text-only file ----------------------------------------------------------------------------


def read_text_file(raw: bytes) -> str:
    """A saved text file, as Outlook writes it (UTF-8, UTF-16 with a byte-order mark, or Windows-1252)."""
    for bom, encoding in (
        (codecs.BOM_UTF8, "utf-8-sig"),
        (codecs.BOM_UTF16_LE, "utf-16"),
        (codecs.BOM_UTF16_BE, "utf-16"),
    ):
        if raw.startswith(bom):
            return signing.tidy_lines(raw.decode(encoding, "replace"))
    try:
        return signing.tidy_lines(raw.decode("utf-8"))
    except UnicodeDecodeError:
        return signing.tidy_lines(raw.decode("cp1252", "replace"))
