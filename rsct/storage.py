"""The SQLite file: connections with safe settings, and the schema the app migrates itself."""

import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

BUSY_TIMEOUT_MS = 5000

# Each entry moves the schema one version up; never edit one that has shipped, add another.
MIGRATIONS = (
    """
    CREATE TABLE inquiries (
        id INTEGER PRIMARY KEY,
        reference TEXT NOT NULL UNIQUE,
        form_token TEXT NOT NULL,
        content_hash TEXT,
        submitted_at REAL NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'failed', 'quarantined')),
        quarantine_reason TEXT,
        possibly_automated INTEGER NOT NULL DEFAULT 0,
        fields TEXT,
        erased_at REAL,
        digest_sent_at REAL,
        UNIQUE (form_token, content_hash)
    );
    CREATE INDEX inquiries_state ON inquiries (state, submitted_at);
    CREATE TABLE outbox (
        inquiry_id INTEGER PRIMARY KEY REFERENCES inquiries (id) ON DELETE CASCADE,
        message_id TEXT NOT NULL UNIQUE,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at REAL NOT NULL,
        claimed_by TEXT,
        claim_expires_at REAL,
        last_error TEXT,
        delivered_at REAL,
        failed_at REAL
    );
    CREATE INDEX outbox_due ON outbox (delivered_at, failed_at, next_attempt_at);
    CREATE TABLE rate_events (
        client TEXT NOT NULL,
        at REAL NOT NULL
    );
    CREATE INDEX rate_events_client ON rate_events (client, at);
    CREATE TABLE digests (
        id INTEGER PRIMARY KEY,
        sent_at REAL NOT NULL,
        inquiry_count INTEGER NOT NULL
    );
    """,
    # 2: a repeat from a fresh copy of the form is matched only within the same browser session.
    """
    ALTER TABLE inquiries ADD COLUMN session_tag TEXT;
    """,
    # 3: sealed mode keeps only the message encrypted for the office, never the fields.
    """
    ALTER TABLE inquiries ADD COLUMN sealed BLOB;
    """,
    # 4: what the operator was last told about each watched problem, so a timer does not repeat itself.
    """
    CREATE TABLE alerts (
        topic TEXT PRIMARY KEY,
        problem INTEGER NOT NULL DEFAULT 0,
        told_problem INTEGER NOT NULL DEFAULT 0,
        problem_sent_at REAL,
        tried_at REAL,
        last_error TEXT
    );
    """,
)


class StorageError(Exception):
    """The database could not be read or written."""


def connect(path: str) -> sqlite3.Connection:
    """Open the database with WAL, full sync, a busy timeout and secure deletion."""
    if not os.path.exists(path):
        # Created owner-only; SQLite gives the WAL and shared-memory files the same mode.
        os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
    connection = sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
    try:
        connection.row_factory = sqlite3.Row
        connection.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        connection.execute("PRAGMA journal_mode = WAL")
        connection.execute("PRAGMA synchronous = FULL")
        connection.execute("PRAGMA foreign_keys = ON")
        connection.execute("PRAGMA secure_delete = ON")
    except BaseException:
        connection.close()  # not a database, or unreadable: do not leave the file open
        raise
    return connection


@contextmanager
def opened(path: str) -> Iterator[sqlite3.Connection]:
    """A connection that is closed afterwards; sqlite3 errors become StorageError."""
    try:
        connection = connect(path)
    except (sqlite3.Error, OSError) as error:
        raise StorageError(str(error)) from error
    try:
        yield connection
    except sqlite3.Error as error:
        raise StorageError(str(error)) from error
    finally:
        connection.close()


@contextmanager
def write(path: str) -> Iterator[sqlite3.Connection]:
    """A write transaction taken with BEGIN IMMEDIATE, committed on success, rolled back on error."""
    with opened(path) as connection:
        connection.execute("BEGIN IMMEDIATE")
        try:
            yield connection
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        connection.execute("COMMIT")


def migrate(path: str) -> int:
    """Bring the schema up to date; safe when several workers start at once. Returns the version."""
    with write(path) as connection:
        version = connection.execute("PRAGMA user_version").fetchone()[0]
        for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
            for statement in script.split(";"):
                if statement.strip():
                    connection.execute(statement)
            connection.execute(f"PRAGMA user_version = {number}")
        return len(MIGRATIONS)


def checkpoint(path: str) -> bool:
    """Fold the WAL back into the main file and empty it, so erased data leaves the disk.

    It never waits: a TRUNCATE checkpoint holds the write lock while it waits for readers, so a
    reader holding a snapshot (`flask backup`, an operator's sqlite3) kept every visitor's
    submission waiting for the whole busy timeout, and some then failed with "database is locked"
    (RELIABILITY.md, the long reader). Returns whether the WAL was emptied; the sender's minutely
    pass tries again until it is.
    """
    with opened(path) as connection:
        connection.execute("PRAGMA busy_timeout = 0")
        busy, _, _ = connection.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    return not busy
