"""Inquiries: what a visitor asked for, stored once per form, with a reference they can quote."""
import hashlib
import json
import secrets
import sqlite3
import time
from dataclasses import dataclass

import storage

REFERENCE_ALPHABET = "23456789ABCDEFGHJKMNPQRSTVWXYZ"  # no 0/O, 1/I/L or U: easy to read aloud
REFERENCE_PREFIX = "RSCT-"

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


def store(path: str, form_token: str, fields: dict, *, quarantine_reason: str | None = None,
          possibly_automated: bool = False, message_domain: str = "localhost") -> Stored:
    """Save a submission and, unless quarantined, its outbox entry, in one transaction.

    The same form token with the same content returns the first reference instead of
    storing again; the same token with other content is a new inquiry.
    """
    digest = content_hash(fields)
    now = time.time()
    with storage.write(path) as db:
        row = db.execute("SELECT reference, submitted_at FROM inquiries WHERE form_token = ? AND content_hash = ?",
                         (form_token, digest)).fetchone()
        if row:
            return Stored(row["reference"], row["submitted_at"], created=False)
        state = "quarantined" if quarantine_reason else "pending"
        for _ in range(20):
            reference = new_reference()
            try:
                cursor = db.execute(
                    "INSERT INTO inquiries (reference, form_token, content_hash, submitted_at, state,"
                    " quarantine_reason, possibly_automated, fields) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (reference, form_token, digest, now, state, quarantine_reason, int(possibly_automated),
                     json.dumps({name: fields.get(name) for name in FIELD_NAMES})))
                break
            except sqlite3.IntegrityError:
                continue  # the reference was taken; draw another
        else:
            raise storage.StorageError("no free reference after 20 draws")
        if state == "pending":
            enqueue(db, cursor.lastrowid, reference, now, message_domain)
    return Stored(reference, now, created=True)


def enqueue(db: sqlite3.Connection, inquiry_id: int, reference: str, now: float, domain: str) -> None:
    """Add an inquiry to the outbox with the Message-ID every retry will reuse."""
    message_id = f"<{reference.lower()}.{secrets.token_hex(6)}@{domain}>"
    db.execute("INSERT INTO outbox (inquiry_id, message_id, next_attempt_at) VALUES (?, ?, ?)",
               (inquiry_id, message_id, now))


def load_fields(row: sqlite3.Row) -> dict:
    """The visitor's fields of a stored inquiry, or empty values once erased."""
    return json.loads(row["fields"]) if row["fields"] else {name: None for name in FIELD_NAMES}
