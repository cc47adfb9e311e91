"""The short proofs behind RELIABILITY.md's soak: the retry wait is a setting, a long reader no longer
holds writers up behind the sender's checkpoint, and the S/MIME signer is not loaded for every message."""

import sqlite3
import time

from rsct import inquiries, mailer, smime, storage

from helpers import Visitor, deliver
from smtp_servers import SENDER, Inbox, running_smtp, smtp_settings


def test_the_retry_wait_follows_the_setting(make_app):
    with running_smtp(Inbox(reply="451 4.3.0 try again later")) as port:
        app = make_app(**smtp_settings(port, OUTBOX_RETRY_SECONDS=1000))
        assert Visitor(app.test_client()).submit().status_code == 303
        outcome = deliver(app)
    (reference,) = outcome.retrying
    row = inquiries.find(app.config["DATABASE"], reference)
    # 1000 s +/- 20 %, where the default would have said 30 s: the setting reached the sender
    assert time.time() + 700 < row["next_attempt_at"] < time.time() + 1300


def test_a_long_reader_does_not_hold_up_writers_behind_the_checkpoint(tmp_path):
    path = str(tmp_path / "rsct.sqlite3")
    storage.migrate(path)
    with storage.write(path) as db:
        db.execute("INSERT INTO digests (sent_at, inquiry_count) VALUES (1, 1)")
    reader = sqlite3.connect(path, isolation_level=None)
    try:
        reader.execute("BEGIN")
        reader.execute("SELECT count(*) FROM digests").fetchone()  # a snapshot, as `flask backup` holds one
        with storage.write(path) as db:
            db.execute("INSERT INTO digests (sent_at, inquiry_count) VALUES (2, 2)")
        # The checkpoint gives up instead of waiting for the reader with the write lock held...
        assert storage.checkpoint(path) is False
        # ...so a visitor's write goes straight through, and the reader still sees its snapshot.
        with storage.write(path) as db:
            db.execute("INSERT INTO digests (sent_at, inquiry_count) VALUES (3, 3)")
        assert reader.execute("SELECT count(*) FROM digests").fetchone()[0] == 1
    finally:
        reader.execute("COMMIT")
        reader.close()
    # Once the reader is gone, the next minutely pass empties the WAL (erased words leave the disk).
    assert storage.checkpoint(path) is True
    wal = tmp_path / "rsct.sqlite3-wal"
    assert not wal.exists() or wal.stat().st_size == 0


def test_the_signer_is_loaded_once_and_again_when_its_files_change(tmp_path):
    ca_cert, ca_key = smime.new_ca(str(tmp_path / "ca"), "RSCT test CA")
    cert, key = smime.new_signer(str(tmp_path / "signer"), ca_cert, ca_key, SENDER)
    config = {"SMIME_SIGNER_CERT": cert, "SMIME_SIGNER_KEY": key}
    first = mailer.signer_from(config)
    assert mailer.signer_from(config) is first
    renewed_cert, renewed_key = smime.new_signer(str(tmp_path / "renewed"), ca_cert, ca_key, SENDER)
    with open(cert, "wb") as out, open(renewed_cert, "rb") as source:
        out.write(source.read())
    with open(key, "wb") as out, open(renewed_key, "rb") as source:
        out.write(source.read())
    renewed = mailer.signer_from(config)
    assert renewed.certificate.serial_number != first.certificate.serial_number
