"""Inquiries: what a visitor asked for, stored once per form, with a reference they can quote."""

import email.parser
import email.policy
import hashlib
import hmac
import json
import secrets
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass

from . import storage

REFERENCE_ALPHABET = "23456789ABCDEFGHJKMNPQRSTVWXYZ"  # no 0/O, 1/I/L or U: easy to read aloud
REFERENCE_PREFIX = "RSCT-"
SAME_WORDS_SECONDS = 3600

# The visitor's fields, in the order the office reads them, and the language of the form they used.
FIELD_NAMES = (
    "name",
    "contact_method",
    "phone",
    "email",
    "best_time",
    "leave_message",
    "for_whom",
    "message",
    "language",
)


@dataclass(frozen=True)
class Stored:
    """The outcome of storing a submission."""

    reference: str
    submitted_at: float
    created: bool


def new_reference() -> str:
    """A short random reference like RSCT-7Q4K2M."""
    return REFERENCE_PREFIX + "".join(secrets.choice(REFERENCE_ALPHABET) for _ in range(6))


def content_hash(fields: dict, key: bytes) -> str:
    """A keyed fingerprint of what was typed, so that the same form sent twice is stored once.

    Keyed (HMAC, key derived from the secret key), so that the database alone cannot be used to
    confirm a guess of what someone typed: in sealed mode it is the only trace of the words.
    """
    canonical = json.dumps({name: fields.get(name) for name in FIELD_NAMES}, sort_keys=True)
    return hmac.new(key, canonical.encode(), hashlib.sha256).hexdigest()


def hash_key(secret_key: str) -> bytes:
    """The key of content_hash(), derived from the secret key for this one purpose."""
    return hashlib.sha256(b"rsct.content-hash:" + secret_key.encode()).digest()


# seal(reference, submitted_at, message_id) -> the message's bytes, encrypted for the office.
Sealer = Callable[[str, float, str], bytes]


def store(
    path: str,
    form_token: str,
    fields: dict,
    *,
    key: bytes,
    quarantine_reason: str | None = None,
    possibly_automated: bool = False,
    message_domain: str = "localhost",
    session_tag: str | None = None,
    seal: Sealer | None = None,
    admit: Callable[[sqlite3.Connection], bool] | None = None,
) -> Stored | None:
    """Save a submission and, unless quarantined, its outbox entry, in one transaction.

    The same form token with the same content, or the same content within the hour from the same
    browser session, returns the first reference instead of storing again; the same token with other
    content is a new inquiry, so edited words are never thrown away.

    With seal (sealed mode) only the sealed message is stored, never the fields: the reference is drawn
    and the repeat check made first, then the message is composed and encrypted outside the write lock
    (it takes milliseconds), then stored; a reference taken meanwhile is drawn again.

    admit (the rate limit) is asked inside the same transaction, after the repeat check (a repeat is
    never counted): one commit per submission. When it says no, nothing is stored and None is returned.
    """
    digest = content_hash(fields, key)
    now = time.time()
    state = "quarantined" if quarantine_reason else "pending"
    for _ in range(20):
        sealed, reference, message_id = None, None, None
        if seal is not None:
            with storage.opened(path) as db:
                row = _same_request(db, form_token, digest, session_tag, now)
                if row:
                    return Stored(row["reference"], row["submitted_at"], created=False)
                reference = _free_reference(db)
            message_id = new_message_id(reference, message_domain)
            sealed = seal(reference, now, message_id)
        with storage.write(path) as db:
            row = _same_request(db, form_token, digest, session_tag, now)
            if row:
                return Stored(row["reference"], row["submitted_at"], created=False)
            if reference is None:
                reference = _free_reference(db)
                message_id = new_message_id(reference, message_domain)
            elif db.execute("SELECT 1 FROM inquiries WHERE reference = ?", (reference,)).fetchone():
                continue  # taken while the message was sealed: draw another and seal again
            if admit is not None and not admit(db):
                return None
            cursor = db.execute(
                "INSERT INTO inquiries (reference, form_token, content_hash, submitted_at, state, quarantine_reason,"
                " possibly_automated, fields, sealed, session_tag) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    reference,
                    form_token,
                    digest,
                    now,
                    state,
                    quarantine_reason,
                    int(possibly_automated),
                    None if sealed else json.dumps({name: fields.get(name) for name in FIELD_NAMES}),
                    sealed,
                    session_tag,
                ),
            )
            if state == "pending":
                enqueue(db, cursor.lastrowid, message_id, now)
        return Stored(reference, now, created=True)
    raise storage.StorageError("no free reference after 20 draws")


def _free_reference(db: sqlite3.Connection) -> str:
    for _ in range(20):
        reference = new_reference()
        if not db.execute("SELECT 1 FROM inquiries WHERE reference = ?", (reference,)).fetchone():
            return reference
    raise storage.StorageError("no free reference after 20 draws")


def _same_request(db: sqlite3.Connection, form_token: str, digest: str, session_tag: str | None, now: float):
    # The same form sent again; or the very same words within the hour from a fresh copy of the form
    # in the same browser session (without JavaScript, Back after sending reloads the page with a new
    # token but the typed values). Never across sessions: that would tell a stranger what someone sent.
    return db.execute(
        "SELECT reference, submitted_at FROM inquiries WHERE content_hash = ?"
        " AND (form_token = ? OR (session_tag = ? AND submitted_at > ?)) ORDER BY submitted_at LIMIT 1",
        (digest, form_token, session_tag, now - SAME_WORDS_SECONDS),
    ).fetchone()


def new_message_id(reference: str, domain: str) -> str:
    """The Message-ID every attempt at sending this inquiry reuses, on the office's domain."""
    return f"<{reference.lower()}.{secrets.token_hex(6)}@{domain}>"


def enqueue(db: sqlite3.Connection, inquiry_id: int, message_id: str, now: float) -> None:
    """Add an inquiry to the outbox with the Message-ID every retry will reuse."""
    db.execute(
        "INSERT INTO outbox (inquiry_id, message_id, next_attempt_at) VALUES (?, ?, ?)", (inquiry_id, message_id, now)
    )


def sealed_message_id(sealed: bytes) -> str:
    """The Message-ID fixed inside a sealed message's outer headers at submission."""
    headers = email.parser.BytesHeaderParser(policy=email.policy.default).parsebytes(sealed)
    return str(headers["Message-ID"])


def load_fields(row: sqlite3.Row) -> dict:
    """The visitor's fields of a stored inquiry, or empty values once erased."""
    return json.loads(row["fields"]) if row["fields"] else {name: None for name in FIELD_NAMES}


def find(path: str, reference: str):
    """One inquiry with its outbox entry, by reference (case-insensitive), or None."""
    with storage.opened(path) as db:
        return db.execute(
            "SELECT i.*, o.attempts, o.last_error, o.delivered_at, o.failed_at, o.next_attempt_at, o.message_id"
            " FROM inquiries i LEFT JOIN outbox o ON o.inquiry_id = i.id WHERE i.reference = ?",
            (reference.strip().upper(),),
        ).fetchone()


def recent(path: str, limit: int = 50) -> list:
    """The newest inquiries, for reading on the server when email is down."""
    with storage.opened(path) as db:
        return db.execute(
            "SELECT i.reference, i.submitted_at, i.state, i.quarantine_reason, i.possibly_automated, i.erased_at,"
            " i.sealed IS NOT NULL AS sealed,"
            " o.attempts, o.last_error FROM inquiries i LEFT JOIN outbox o ON o.inquiry_id = i.id"
            " ORDER BY i.submitted_at DESC LIMIT ?",
            (limit,),
        ).fetchall()


def release(path: str, reference: str, domain: str) -> bool:
    """Queue a quarantined (or failed) inquiry for normal delivery. False when there is nothing to release."""
    now = time.time()
    with storage.write(path) as db:
        row = db.execute(
            "SELECT id, reference, state, sealed FROM inquiries WHERE reference = ?"
            " AND (fields IS NOT NULL OR sealed IS NOT NULL) AND state IN ('quarantined', 'failed')",
            (reference.strip().upper(),),
        ).fetchone()
        if row is None:
            return False
        db.execute("UPDATE inquiries SET state = 'pending' WHERE id = ?", (row["id"],))
        if db.execute("SELECT 1 FROM outbox WHERE inquiry_id = ?", (row["id"],)).fetchone():
            db.execute(
                "UPDATE outbox SET failed_at = NULL, last_error = NULL, next_attempt_at = ?, claimed_by = NULL"
                " WHERE inquiry_id = ?",
                (now, row["id"]),
            )
        else:
            # A sealed message carries its Message-ID from submission: the outbox must use the same one.
            message_id = sealed_message_id(row["sealed"]) if row["sealed"] else new_message_id(row["reference"], domain)
            enqueue(db, row["id"], message_id, now)
        return True


ERASE = (
    "UPDATE inquiries SET fields = NULL, sealed = NULL, content_hash = NULL, session_tag = NULL, erased_at = ?"
    " WHERE id = ?"
)


class BeingSent(Exception):
    """A sender holds the inquiry right now; erasing it would race the email already on its way."""


def erase(path: str, reference: str) -> bool:
    """Erase one inquiry's personal fields on the visitor's request; an undelivered one is not sent."""
    now = time.time()
    with storage.write(path) as db:
        row = db.execute(
            "SELECT i.id, i.state, o.claimed_by, o.claim_expires_at FROM inquiries i"
            " LEFT JOIN outbox o ON o.inquiry_id = i.id WHERE i.reference = ? AND i.erased_at IS NULL",
            (reference.strip().upper(),),
        ).fetchone()
        if row is None:
            return False
        if row["claimed_by"] and row["claim_expires_at"] > now:
            raise BeingSent(reference)
        db.execute(ERASE, (now, row["id"]))
        if row["state"] == "pending":
            db.execute("UPDATE inquiries SET state = 'failed' WHERE id = ?", (row["id"],))
            db.execute(
                "UPDATE outbox SET failed_at = ?, last_error = 'erased on request' WHERE inquiry_id = ?",
                (now, row["id"]),
            )
    storage.checkpoint(path)
    return True


def purge(path: str, retention_days: int, now: float | None = None) -> list[str]:
    """Erase personal fields past the retention period; returns the references erased.

    Delivered inquiries count from delivery; quarantined and failed ones from submission.
    Pending ones are kept until delivered, and quarantined or failed ones until a digest has
    shown them to the office: erasing them earlier would lose a request.
    """
    now = time.time() if now is None else now
    cutoff = now - retention_days * 86400
    with storage.write(path) as db:
        rows = db.execute(
            "SELECT i.id, i.reference FROM inquiries i LEFT JOIN outbox o ON o.inquiry_id = i.id"
            " WHERE i.erased_at IS NULL AND ("
            " (i.state = 'delivered' AND o.delivered_at <= ?)"
            " OR (i.state IN ('failed', 'quarantined') AND i.submitted_at <= ?"
            "     AND i.digest_sent_at IS NOT NULL))",
            (cutoff, cutoff),
        ).fetchall()
        db.executemany(ERASE, [(now, row["id"]) for row in rows])
    storage.checkpoint(path)
    return [row["reference"] for row in rows]
