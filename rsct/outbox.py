"""The outbox: claim what is due, deliver it, record the outcome. Never lost, never sent twice.

A claim is a lease in the database: two senders never hold the same inquiry, and a claim
left by a crashed sender expires and is taken up again.
"""

import json
import logging
import os
import random
import socket
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field

from . import storage
from .mailer import PermanentError, SetupError, TransientError

log = logging.getLogger("rsct.outbox")
BACKOFF_DOUBLINGS = 120  # the longest wait is this many times the first (an hour after 30 s)


@dataclass
class Outcome:
    delivered: list[str] = field(default_factory=list)
    retrying: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    setup_problem: str | None = None  # the relay refused the site's settings (a login, TLS): see mailer.SetupError


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{random.getrandbits(32):08x}"


def lease_seconds(mail_timeout: float) -> float:
    """How long a claim lasts: longer than the slowest SMTP conversation the timeout allows, with room to spare."""
    return mail_timeout * 10 + 60


def backoff(attempts: int, first: float = 30.0) -> float:
    """Seconds before the next try: doubling from `first` (FLASK_OUTBOX_RETRY_SECONDS) up to 120 times it,
    with jitter, so that many inquiries waiting on one relay do not all retry at once."""
    return min(first * BACKOFF_DOUBLINGS, first * 2 ** max(attempts - 1, 0)) * random.uniform(0.8, 1.2)


def claim(path: str, worker: str, now: float, lease: float):
    """Take the next due inquiry for this worker, or None."""
    with storage.write(path) as db:
        row = db.execute(
            "SELECT o.inquiry_id, o.message_id, o.attempts, i.reference, i.submitted_at, i.fields, i.sealed,"
            " i.possibly_automated FROM outbox o JOIN inquiries i ON i.id = o.inquiry_id"
            " WHERE o.delivered_at IS NULL AND o.failed_at IS NULL AND o.next_attempt_at <= ?"
            " AND (o.claimed_by IS NULL OR o.claim_expires_at < ?)"
            " ORDER BY o.next_attempt_at LIMIT 1",
            (now, now),
        ).fetchone()
        if row is None:
            return None
        db.execute(
            "UPDATE outbox SET claimed_by = ?, claim_expires_at = ?, attempts = attempts + 1 WHERE inquiry_id = ?",
            (worker, now + lease, row["inquiry_id"]),
        )
        return row


def _finish(path: str, row, worker: str, outbox_sets: str, values: tuple, state: str | None) -> None:
    with storage.write(path) as db:
        updated = db.execute(
            f"UPDATE outbox SET claimed_by = NULL, claim_expires_at = NULL, {outbox_sets}"
            " WHERE inquiry_id = ? AND claimed_by = ?",
            (*values, row["inquiry_id"], worker),
        ).rowcount
        # A sender whose lease ran out no longer owns the inquiry: the one that took it over records the state.
        if state and updated:
            db.execute("UPDATE inquiries SET state = ? WHERE id = ?", (state, row["inquiry_id"]))


def deliver_one(path: str, row, send: Callable, worker: str, outcome: Outcome, retry_seconds: float = 30.0) -> None:
    """Send one claimed inquiry with send(row) and record what happened; a retry waits backoff(retry_seconds)."""
    reference = row["reference"]
    try:
        where = send(row)
    except PermanentError as error:
        _finish(path, row, worker, "failed_at = ?, last_error = ?", (time.time(), str(error)), "failed")
        log.error("Inquiry %s failed permanently: %s", reference, error)
        outcome.failed.append(reference)
    except Exception as error:  # transient, or a fault of ours: keep it and try again later
        reason = str(error) if isinstance(error, TransientError) else _where(error)
        if isinstance(error, SetupError):
            outcome.setup_problem = reason
        delay = backoff(row["attempts"] + 1, retry_seconds)
        _finish(path, row, worker, "next_attempt_at = ?, last_error = ?", (time.time() + delay, reason), None)
        log.warning(
            "Inquiry %s not delivered yet (attempt %d), next try in %.0f s: %s",
            reference,
            row["attempts"] + 1,
            delay,
            reason,
        )
        outcome.retrying.append(reference)
    else:
        _finish(path, row, worker, "delivered_at = ?, last_error = NULL", (time.time(),), "delivered")
        log.info("Inquiry %s delivered to %s", reference, where)
        outcome.delivered.append(reference)


def _where(error: Exception) -> str:
    """A fault of ours, named without its message (which might quote a visitor's words)."""
    frame = traceback.extract_tb(error.__traceback__)[-1] if error.__traceback__ else None
    return (
        f"{error.__class__.__name__} at {os.path.basename(frame.filename)}:{frame.lineno}"
        if frame
        else error.__class__.__name__
    )


def deliver_due(
    path: str,
    send: Callable,
    lease: float,
    worker: str | None = None,
    should_stop: Callable[[], bool] = lambda: False,
    retry_seconds: float = 30.0,
) -> Outcome:
    """Deliver everything that is due now, one inquiry at a time, until none is left or asked to stop.

    send(row) composes and sends one claimed inquiry and returns where it went; it raises
    TransientError or PermanentError (anything else counts as a fault of ours, retried).
    """
    worker = worker or worker_id()
    outcome = Outcome()
    while not should_stop():
        row = claim(path, worker, time.time(), lease)
        if row is None:
            break
        deliver_one(path, row, send, worker, outcome, retry_seconds)
    return outcome


def status(path: str, stuck_minutes: int, now: float | None = None) -> dict:
    """Counts by state, the oldest undelivered inquiry, recent failures, and whether anything is stuck."""
    now = time.time() if now is None else now
    with storage.opened(path) as db:
        counts = dict(db.execute("SELECT state, count(*) FROM inquiries GROUP BY state").fetchall())
        oldest = db.execute(
            "SELECT min(i.submitted_at) FROM inquiries i JOIN outbox o ON o.inquiry_id = i.id"
            " WHERE o.delivered_at IS NULL AND o.failed_at IS NULL"
        ).fetchone()[0]
        failures = db.execute(
            "SELECT i.reference, i.state, o.attempts, o.last_error, i.erased_at FROM outbox o"
            " JOIN inquiries i ON i.id = o.inquiry_id WHERE o.last_error IS NOT NULL AND o.delivered_at IS NULL"
            " ORDER BY i.submitted_at DESC LIMIT 10"
        ).fetchall()
        (failed_open,) = db.execute(
            "SELECT count(*) FROM inquiries WHERE state = 'failed' AND erased_at IS NULL"
        ).fetchone()
    oldest_age = now - oldest if oldest else None
    stuck = (oldest_age is not None and oldest_age > stuck_minutes * 60) or failed_open > 0
    return {
        "counts": counts,
        "oldest_undelivered_seconds": oldest_age,
        "failed_open": failed_open,
        "failures": [dict(f) for f in failures],
        "stuck": stuck,
    }


def send_digest(path: str, send: Callable[[list[dict], list[str]], object]) -> int:
    """Send the office its summary with send(held, delivered): the requests held as spam or refused by the mail
    server since the last summary, and the references delivered since then. It goes out even when both are
    empty, so the office notices a lead missing from the inbox, and notices when the summary stops.
    Returns how many held or refused requests it listed; a request is erased only after a digest has shown it."""
    with storage.opened(path) as db:
        rows = db.execute(
            "SELECT i.id, i.reference, i.submitted_at, i.state, i.quarantine_reason, i.fields, i.sealed, o.last_error"
            " FROM inquiries i LEFT JOIN outbox o ON o.inquiry_id = i.id"
            " WHERE i.state IN ('quarantined', 'failed') AND i.digest_sent_at IS NULL"
            " AND (i.fields IS NOT NULL OR i.sealed IS NOT NULL)"
            " ORDER BY i.submitted_at"
        ).fetchall()
        previous = db.execute("SELECT MAX(sent_at) FROM digests").fetchone()[0] or 0.0
        delivered = [
            r["reference"]
            for r in db.execute(
                "SELECT i.reference FROM inquiries i JOIN outbox o ON o.inquiry_id = i.id"
                " WHERE o.delivered_at > ? ORDER BY o.delivered_at",
                (previous,),
            )
        ]
    items = [
        {
            "reference": r["reference"],
            "submitted_at": r["submitted_at"],
            "fields": json.loads(r["fields"]) if r["fields"] else None,
            "sealed": r["sealed"],
            "state": r["state"],
            "quarantine_reason": r["quarantine_reason"],
            "last_error": r["last_error"],
        }
        for r in rows
    ]
    send(items, delivered)
    now = time.time()
    with storage.write(path) as db:
        db.executemany("UPDATE inquiries SET digest_sent_at = ? WHERE id = ?", [(now, r["id"]) for r in rows])
        db.execute("INSERT INTO digests (sent_at, inquiry_count) VALUES (?, ?)", (now, len(rows)))
    log.info("Digest sent with %d held or refused inquiries and %d delivered references", len(rows), len(delivered))
    return len(rows)
