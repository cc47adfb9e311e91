"""Sign the text of an inquiry email, and check a signed text read back from a received email.

Two formats exist:

- v2 (written now): the signature covers the whole plain-text body the site writes, from the
  BEGIN line (the body's first line) to the line above the signature line (its last). The body
  also states what the headers must say: its second line is the Subject, its footer names the
  From address, and its PREFERRED CONTACT and Email lines decide Reply-To. The signature line
  carries two values: one over the exact lines, and a shorter one over the words alone, so that
  a copy whose lines a mail program re-wrapped can be told from a changed one.
- v1 (emails sent before v2): the signature covers only the block between the BEGIN and END lines.

Reading a received email (its parts, headers and additions) is rsct.verify's job.
"""

import hashlib
import hmac
import re
from dataclasses import dataclass

from itsdangerous import Signer

SALT = "rsct.inquiry-email.v1"
SALT_V2 = "rsct.inquiry-email.v2"
WORDS_SALT_V2 = "rsct.inquiry-email.v2.words"
# base64 characters kept of each value (192 and 96 bits), so the signature line stays under 64 characters
# and no mail program re-wraps it.
EXACT_LENGTH, WORDS_LENGTH = 32, 16
BEGIN = "----- BEGIN INQUIRY -----"
END = "----- END INQUIRY -----"
SIGNATURE_LABEL = "Signature: "
SIGNED_BLOCK = re.compile(
    f"^{re.escape(BEGIN)}\n(.*?)\n{re.escape(END)}\n{re.escape(SIGNATURE_LABEL)}(\\S+)$", re.M | re.S
)
SIGNATURE_V2 = re.compile(r"^Signature: v2\.([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]+)$")
SENDER_LINE = re.compile(r"^Sent by the website from (\S+@\S+)\.$")
REFERENCE_TOKEN = re.compile(r"RSCT-[A-Z0-9]+", re.I)  # broad on purpose: any look-alike counts


def _signer(keys: list[str], salt: str = SALT) -> Signer:
    # itsdangerous signs with the last key and accepts any of them: rotation adds a key at the end.
    return Signer(keys, salt=salt, key_derivation="hmac", digest_method=hashlib.sha256)


def tidy_lines(text: str) -> str:
    """LF line ends and no trailing spaces: what a mail gateway may change without changing the words."""
    return "\n".join(line.rstrip() for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"))


def canonical(block: str) -> str:
    """The text as signed: tidy lines, no blank lines at either end."""
    return tidy_lines(block).strip("\n")


def words(text: str) -> str:
    """The text with every run of white space (line breaks included) made one space."""
    return " ".join(text.split())


# --- v2: the whole body ------------------------------------------------------------------------


def _value(key: str, salt: str, text: str, length: int) -> str:
    return _signer([key], salt).get_signature(text.encode("utf-8")).decode("ascii")[:length]


def signature_line(keys: list[str], body: str) -> str:
    """The v2 signature line for a body (everything the site writes above that line), made with the last key."""
    text = canonical(body)
    exact = _value(keys[-1], SALT_V2, text, EXACT_LENGTH)
    return f"{SIGNATURE_LABEL}v2.{exact}.{_value(keys[-1], WORDS_SALT_V2, words(text), WORDS_LENGTH)}"


def check_body(keys: list[str], body: str, line: str) -> str:
    """ "exact" when the signature line covers this body; "words" when only the words match (the lines
    were re-wrapped or spaced differently); "" when neither does."""
    found = SIGNATURE_V2.match(line.strip())
    if not found or not keys:
        return ""
    text = canonical(body)
    if any(hmac.compare_digest(_value(key, SALT_V2, text, EXACT_LENGTH), found.group(1)) for key in keys):
        return "exact"
    if any(hmac.compare_digest(_value(key, WORDS_SALT_V2, words(text), WORDS_LENGTH), found.group(2)) for key in keys):
        return "words"
    return ""


# --- v1: the block only --------------------------------------------------------------------------


def signature(keys: list[str], block: str) -> str:
    """The v1 signature line's value for an inquiry block (the BEGIN and END lines included or not)."""
    inner = canonical(block).removeprefix(BEGIN).removesuffix(END)
    return _signer(keys).get_signature(canonical(inner).encode("utf-8")).decode("ascii")


def check_block(keys: list[str], block: str, value: str) -> bool:
    """Whether a v1 signature value covers this block (the text between BEGIN and END)."""
    return bool(keys) and _signer(keys).verify_signature(
        canonical(block).encode("utf-8"), value.encode("ascii", "replace")
    )


# --- the block's lines -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Inquiry:
    """The signed lines of one inquiry, as the office may trust them."""

    lines: tuple[str, ...]  # between the BEGIN and END lines

    def value(self, label: str) -> str:
        return line_value(self.lines, label)

    @property
    def reference(self) -> str:
        return self.value("Reference")

    @property
    def submitted(self) -> str:
        return self.value("Submitted")

    @property
    def fields(self) -> tuple[str, ...]:
        """The lines other than the reference and the time (and, in v2, the subject line)."""
        return tuple(
            line for line in self.lines if not line.startswith(("Reference: ", "Submitted: ", "Website inquiry "))
        )


def line_value(lines, label: str) -> str:
    """The value of the first "Label: value" line ("" when there is none)."""
    return next((line[len(label) + 2 :] for line in lines if line.startswith(label + ": ")), "")


# --- undoing format=flowed ----------------------------------------------------------------------


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
