"""Sign the inquiry block of an email, and check a received email against that signature.

The signature covers the text between the BEGIN and END lines: the reference, the time
and every field value shown. Checking reads that text back from the decoded plain text, so
a gateway may re-encode the message (base64, CRLF, format=flowed), add a banner around the
block or add a banner as a separate plain-text part. What the signature cannot cover is
checked against the verified block instead:

- the email holds exactly one BEGIN line, in all of its plain-text parts together, so no
  second (forged) block can sit next to the genuine one;
- the Subject names the block's reference and no other;
- Reply-To is the block's email address when the visitor asked for email, and absent otherwise.
"""

import email
import hashlib
import re
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.utils import getaddresses

from itsdangerous import Signer

SALT = "rsct.inquiry-email.v1"
BEGIN = "----- BEGIN INQUIRY -----"
END = "----- END INQUIRY -----"
SIGNATURE_LABEL = "Signature: "
SIGNED_BLOCK = re.compile(
    f"^{re.escape(BEGIN)}\n(.*?)\n{re.escape(END)}\n{re.escape(SIGNATURE_LABEL)}(\\S+)$", re.M | re.S
)
REFERENCE_TOKEN = re.compile(r"RSCT-[A-Z0-9]+", re.I)  # broad on purpose: any look-alike counts


@dataclass(frozen=True)
class Verdict:
    authentic: bool
    reason: str
    reference: str = ""
    submitted: str = ""
    fields: tuple[str, ...] = ()  # the block's other lines, as signed ("Name: ...", "  | ...")

    def value(self, label: str) -> str:
        return line_value(self.fields, label)


def line_value(lines, label: str) -> str:
    """The value of the first "Label: value" line ("" when there is none)."""
    return next((line[len(label) + 2 :] for line in lines if line.startswith(label + ": ")), "")


def _signer(keys: list[str]) -> Signer:
    # itsdangerous signs with the last key and accepts any of them: rotation adds a key at the end.
    return Signer(keys, salt=SALT, key_derivation="hmac", digest_method=hashlib.sha256)


def tidy_lines(text: str) -> str:
    """LF line ends and no trailing spaces: what a mail gateway may change without changing the words."""
    return "\n".join(line.rstrip() for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"))


def canonical(block: str) -> str:
    """The block as signed: tidy lines, no blank lines at either end."""
    return tidy_lines(block).strip("\n")


def signature(keys: list[str], block: str) -> str:
    """The signature line's value for an inquiry block (the BEGIN and END lines included or not)."""
    inner = canonical(block).removeprefix(BEGIN).removesuffix(END)
    return _signer(keys).get_signature(canonical(inner).encode("utf-8")).decode("ascii")


# --- reading the text back ---------------------------------------------------------------------


def unflow(text: str, delsp: bool) -> str:
    """Undo a format=flowed re-wrap (RFC 3676): unstuff each line, join soft-broken lines.

    A line ending in a space (other than the "-- " signature separator) continues on the next
    line; with delsp=yes that space was added by the wrapper and is removed. Our emails have
    no quoted (">") lines, so quote depth is not tracked.
    """
    lines, pending = [], ""
    for line in text.split("\n"):
        line = line[1:] if line.startswith(" ") else line
        if line.endswith(" ") and line != "-- ":
            pending += line[:-1] if delsp else line
        else:
            lines.append(pending + line)
            pending = ""
    if pending:
        lines.append(pending)
    return "\n".join(lines)


def plain_text(part: EmailMessage) -> str:
    """One text/plain part decoded: LF line ends, format=flowed undone, no trailing spaces."""
    text = part.get_content().replace("\r\n", "\n").replace("\r", "\n")
    if str(part.get_param("format", "")).lower() == "flowed":
        text = unflow(text, delsp=str(part.get_param("delsp", "")).lower() == "yes")
    return tidy_lines(text)


def begin_lines(text: str) -> int:
    return sum(line.strip() == BEGIN for line in text.split("\n"))


# --- checking -------------------------------------------------------------------------------------


def verify_text(keys: list[str], text: str) -> Verdict:
    """Check the one inquiry block and its signature in a decoded plain text."""
    text = tidy_lines(text)
    if begin_lines(text) > 1:
        return Verdict(False, "this email holds more than one inquiry block (BEGIN INQUIRY line)")
    found = SIGNED_BLOCK.search(text)
    if not found:
        return Verdict(False, "no signed inquiry block was found in this email")
    block, sig = canonical(found.group(1)), found.group(2)
    if not _signer(keys).verify_signature(block.encode("utf-8"), sig.encode("ascii", "replace")):
        return Verdict(
            False,
            "the signature does not match: the inquiry was changed, or it was not made with this site's signing keys",
        )
    return verdict_for(block)


def verdict_for(block: str) -> Verdict:
    """An authentic verdict carrying the verified block's lines."""
    lines = block.split("\n")
    fields = tuple(line for line in lines if not line.startswith(("Reference: ", "Submitted: ")))
    return Verdict(True, "authentic", line_value(lines, "Reference"), line_value(lines, "Submitted"), fields)


def subject_problem(message: EmailMessage, reference: str) -> str:
    """Why the Subject does not belong to this inquiry ("" when it does). A gateway may prefix it."""
    subjects = message.get_all("Subject") or []
    if len(subjects) != 1:
        return f"the email has {len(subjects)} Subject headers instead of one"
    if not reference or set(REFERENCE_TOKEN.findall(str(subjects[0]))) != {reference}:
        return f"the Subject does not name this inquiry's reference {reference}, or names another one"
    return ""


def same_address(received: str, signed: str) -> bool:
    """The same mailbox: the local part exactly, the domain in any case."""
    local, at, domain = received.rpartition("@")
    signed_local, signed_at, signed_domain = signed.rpartition("@")
    return bool(at and signed_at and local) and local == signed_local and domain.lower() == signed_domain.lower()


def reply_to_problem(message: EmailMessage, verdict: Verdict) -> str:
    """Why Reply-To does not match the block's contact choice ("" when it does). Gateways add none."""
    headers = [str(header) for header in message.get_all("Reply-To") or []]
    if verdict.value("PREFERRED CONTACT") != "EMAIL":
        return "the email has a Reply-To header, but the visitor did not ask for email" if headers else ""
    if not headers:
        return "the Reply-To header is missing, but the visitor asked for email"
    addresses = getaddresses(headers)
    if len(addresses) != 1 or not same_address(addresses[0][1], verdict.value("Email")):
        return "the Reply-To header is not the visitor's email address shown in the inquiry"
    return ""


def verify_message(keys: list[str], raw: bytes) -> Verdict:
    """Check an email as received (the bytes of an .eml file): block, signature and headers."""
    message = email.message_from_bytes(raw, policy=policy.default)
    try:
        texts = [plain_text(part) for part in message.walk() if part.get_content_type() == "text/plain"]
    except (LookupError, UnicodeError, ValueError) as error:
        return Verdict(False, f"a plain-text part could not be decoded ({error.__class__.__name__})")
    if not texts:
        return Verdict(False, "this email has no plain-text part")
    if sum(begin_lines(text) for text in texts) > 1:
        return Verdict(False, "this email holds more than one inquiry block (BEGIN INQUIRY line)")
    verdict = verify_text(keys, next((text for text in texts if begin_lines(text)), ""))
    if not verdict.authentic:
        return verdict
    problem = subject_problem(message, verdict.reference) or reply_to_problem(message, verdict)
    return Verdict(False, problem, verdict.reference, verdict.submitted) if problem else verdict
