"""Sign the inquiry block of an email, and check a received email against that signature.

The signature covers the text between the BEGIN and END lines: the reference, the time
and every field value shown. Checking reads that text back from the decoded body, so a
gateway that re-encodes the message or adds a banner outside the block does not break it.
"""
import email
import hashlib
import re
from dataclasses import dataclass
from email import policy

from itsdangerous import Signer

SALT = "rsct.inquiry-email.v1"
BEGIN = "----- BEGIN INQUIRY -----"
END = "----- END INQUIRY -----"
SIGNATURE_LABEL = "Signature: "


@dataclass(frozen=True)
class Verdict:
    authentic: bool
    reason: str
    reference: str = ""
    submitted: str = ""


def _signer(keys: list[str]) -> Signer:
    # itsdangerous signs with the last key and accepts any of them: rotation adds a key at the end.
    return Signer(keys, salt=SALT, key_derivation="hmac", digest_method=hashlib.sha256)


def canonical(block: str) -> str:
    """The block as signed: LF line ends, no trailing spaces, no blank lines at either end."""
    lines = [line.rstrip() for line in block.replace("\r\n", "\n").replace("\r", "\n").split("\n")]
    return "\n".join(lines).strip("\n")


def signature(keys: list[str], block: str) -> str:
    """The signature line's value for an inquiry block (the BEGIN and END lines included or not)."""
    inner = canonical(block).removeprefix(BEGIN).removesuffix(END)
    return _signer(keys).get_signature(canonical(inner).encode("utf-8")).decode("ascii")


def verify_text(keys: list[str], text: str) -> Verdict:
    """Check the inquiry block and signature found in a decoded plain-text body."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    found = re.search(re.escape(BEGIN) + r"\n(.*?)\n" + re.escape(END) + r"\n" + re.escape(SIGNATURE_LABEL)
                      + r"(\S+)", text, re.S)
    if not found:
        return Verdict(False, "no signed inquiry block was found in this email")
    block, sig = found.group(1), found.group(2)
    if not _signer(keys).verify_signature(canonical(block).encode("utf-8"), sig.encode("ascii", "replace")):
        return Verdict(False, "the signature does not match: the inquiry was changed, "
                              "or it was not made with this site's signing keys")
    reference = re.search(r"^Reference: (\S+)$", canonical(block), re.M)
    submitted = re.search(r"^Submitted: (.+)$", canonical(block), re.M)
    return Verdict(True, "authentic", reference.group(1) if reference else "", submitted.group(1) if submitted else "")


def verify_message(keys: list[str], raw: bytes) -> Verdict:
    """Check an email as received (the bytes of an .eml file)."""
    message = email.message_from_bytes(raw, policy=policy.default)
    part = message.get_body(preferencelist=("plain",))
    if part is None:
        return Verdict(False, "this email has no plain-text part")
    try:
        text = part.get_content()
    except (LookupError, UnicodeError, ValueError) as error:
        return Verdict(False, f"the plain-text part could not be decoded ({error.__class__.__name__})")
    return verify_text(keys, text)

