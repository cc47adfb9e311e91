"""A per-client limit on form submissions, shared by every worker through the SQLite file.

Client addresses are never stored: only a keyed hash, kept no longer than the window.
"""

import hashlib
import hmac
import sqlite3
import time

from . import storage


def client_key(secret_key: str, address: str | None) -> str:
    """A salted hash of the client's address; the salt is derived from the secret key."""
    salt = hashlib.sha256(("rsct.rate-limit:" + secret_key).encode()).digest()
    return hmac.new(salt, (address or "unknown").encode(), hashlib.sha256).hexdigest()


def allow(path: str, client: str, limit: int, window: float, now: float | None = None) -> bool:
    """Record one submission by this client; False when it is over the limit for the window."""
    with storage.write(path) as db:
        return record(db, client, limit, window, now)


def record(db: sqlite3.Connection, client: str, limit: int, window: float, now: float | None = None) -> bool:
    """allow() inside a write transaction the caller holds (the one that stores the inquiry: one commit)."""
    now = time.time() if now is None else now
    db.execute("DELETE FROM rate_events WHERE at <= ?", (now - window,))
    (count,) = db.execute("SELECT count(*) FROM rate_events WHERE client = ?", (client,)).fetchone()
    if count >= limit:
        return False
    db.execute("INSERT INTO rate_events (client, at) VALUES (?, ?)", (client, now))
    return True


def forget_expired(path: str, window: float, now: float | None = None) -> int:
    """Delete the hashes the limit no longer needs (also done on every submission)."""
    now = time.time() if now is None else now
    with storage.write(path) as db:
        return db.execute("DELETE FROM rate_events WHERE at <= ?", (now - window,)).rowcount
