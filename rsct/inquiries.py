"""Inquiries: what a visitor asked for, stored once per form, with a reference they can quote."""

import hashlib
import json
import secrets
import sqlite3
import time
from dataclasses import dataclass

from . import storage

REFERENCE_ALPHABET = "23456789ABCDEFGHJKMNPQRSTVWXYZ"  # no 0/O, 1/I/L or U: easy to read aloud
REFERENCE_PREFIX = "RSCT-"
SAME_WORDS_SECONDS = 3600

# The visitor's fields, in the order the office reads them.
FIELD_NAMES = ("name", "contact_method", "phone", "email", "best_time", "leave_message", "for_whom", "message")


@dataclass(frozen=True)
class Stored:
    """The outcome of storing a submission."""

    reference: str
    submitted_at: float
    created: bool


def new_reference() -> str:
    """A short random reference like RSCT-7Q4K2M."""
    return REFERENCE_PREFIX + "".join(secrets.choice(REFERENCE_ALPHABET) for _ in range(6))


def content_hash(fields: dict) -> str:
    """A fingerprint of what was typed, so that the same form sent twice is stored once."""
    canonical = json.dumps({name: fields.get(name) for name in FIELD_NAMES}, sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


def store(
    path: str,
    form_token: str,
    fields: dict,
    *,
    quarantine_reason: str | None = None,
    possibly_automated: bool = False,
    message_domain: str = "localhost",
    session_tag: str | None = None,
) -> Stored:
    """Save a submission and, unless quarantined, its outbox entry, in one transaction.

    The same form token with the same content, or the same content within the hour from the same
    browser session, returns the first reference instead of storing again; the same token with other content is a new
    inquiry, so edited words are never thrown away.
    """
    digest = content_hash(fields)
    now = time.time()
    with storage.write(path) as db:
        row = _same_request(db, form_token, digest, session_tag, now)
        if row:
            return Stored(row["reference"], row["submitted_at"], created=False)
        state = "quarantined" if quarantine_reason else "pending"
        for _ in range(20):
            reference = new_reference()
            try:
                cursor = db.execute(
                    "INSERT INTO inquiries (reference, form_token, content_hash, submitted_at, state,"
                    " quarantine_reason, possibly_automated, fields, session_tag) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        reference,
                        form_token,
                        digest,
                        now,
                        state,
                        quarantine_reason,
                        int(possibly_automated),
                        json.dumps({name: fields.get(name) for name in FIELD_NAMES}),
                        session_tag,
                    ),
                )
                break
            except sqlite3.IntegrityError:
                continue  # the reference was taken; draw another
        else:
            raise storage.StorageError("no free reference after 20 draws")
        if state == "pending":
            enqueue(db, cursor.lastrowid, reference, now, message_domain)
    return Stored(reference, now, created=True)


def find_same(path: str, form_token: str, fields: dict, session_tag: str | None) -> Stored | None:
    """The inquiry this submission repeats, if any (read-only: to answer without counting it again)."""
    with storage.opened(path) as db:
        row = _same_request(db, form_token, content_hash(fields), session_tag, time.time())
    return Stored(row["reference"], row["submitted_at"], created=False) if row else None


def _same_request(db: sqlite3.Connection, form_token: str, digest: str, session_tag: str | None, now: float):
    # The same form sent again; or the very same words within the hour from a fresh copy of the form
    # in the same browser session (without JavaScript, Back after sending reloads the page with a new
    # token but the typed values). Never across sessions: that would tell a stranger what someone sent.
    return db.execute(
        "SELECT reference, submitted_at FROM inquiries WHERE content_hash = ?"
        " AND (form_token = ? OR (session_tag = ? AND submitted_at > ?)) ORDER BY submitted_at LIMIT 1",
        (digest, form_token, session_tag, now - SAME_WORDS_SECONDS),
    ).fetchone()


def enqueue(db: sqlite3.Connection, inquiry_id: int, reference: str, now: float, domain: str) -> None:
    """Add an inquiry to the outbox with the Message-ID every retry will reuse."""
    message_id = f"<{reference.lower()}.{secrets.token_hex(6)}@{domain}>"
    db.execute(
        "INSERT INTO outbox (inquiry_id, message_id, next_attempt_at) VALUES (?, ?, ?)", (inquiry_id, message_id, now)
    )


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
            " o.attempts, o.last_error FROM inquiries i LEFT JOIN outbox o ON o.inquiry_id = i.id"
            " ORDER BY i.submitted_at DESC LIMIT ?",
            (limit,),
        ).fetchall()


def release(path: str, reference: str, domain: str) -> bool:
    """Queue a quarantined (or failed) inquiry for normal delivery. False when there is nothing to release."""
    now = time.time()
    with storage.write(path) as db:
        row = db.execute(
            "SELECT id, reference, state FROM inquiries WHERE reference = ? AND fields IS NOT NULL"
            " AND state IN ('quarantined', 'failed')",
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
            enqueue(db, row["id"], row["reference"], now, domain)
        return True


ERASE = "UPDATE inquiries SET fields = NULL, content_hash = NULL, session_tag = NULL, erased_at = ? WHERE id = ?"


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
