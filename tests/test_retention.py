"""Retention: personal fields erased on time (and gone from the file), owner-only files, no personal data in logs."""

import logging
import os
import signal
import stat
import time
import types
from pathlib import Path

import pytest

from rsct import cli, inquiries, outbox, sender, storage

from helpers import VISITOR, Visitor, db, deliver
from smtp_servers import Inbox, running_smtp, smtp_settings

DAY = 86400
CANARY = "Qzxcanary7"


def store(app, token: str, quarantine_reason=None, **changes) -> str:
    fields = dict(VISITOR, phone="(203) 555-0147", **changes)
    return inquiries.store(
        app.config["DATABASE"], token, fields, key=b"k", quarantine_reason=quarantine_reason
    ).reference


def row(app, reference):
    return inquiries.find(app.config["DATABASE"], reference)


def set_times(app, reference, submitted_ago=None, delivered_ago=None, now=None):
    now = now or time.time()
    with db(app) as connection:
        if submitted_ago is not None:
            connection.execute(
                "UPDATE inquiries SET submitted_at = ? WHERE reference = ?", (now - submitted_ago, reference)
            )
        if delivered_ago is not None:
            connection.execute(
                "UPDATE outbox SET delivered_at = ? WHERE inquiry_id = (SELECT id FROM inquiries WHERE reference = ?)",
                (now - delivered_ago, reference),
            )


def database_bytes(path: str) -> bytes:
    """The raw bytes SQLite keeps on disk for this database: the file, its WAL and shared memory."""
    data = b""
    for name in (path, path + "-wal", path + "-shm", path + "-journal"):
        if os.path.exists(name):
            with open(name, "rb") as handle:
                data += handle.read()
    return data


def test_purge_follows_the_retention_rules(make_app):
    app = make_app()  # delivery to files
    path = app.config["DATABASE"]
    delivered_old = store(app, "t1", name="Delivered Long Ago")
    delivered_recent = store(app, "t2", name="Delivered Yesterday")
    assert sorted(deliver(app).delivered) == sorted([delivered_old, delivered_recent])
    held_shown = store(app, "t3", quarantine_reason="honeypot field filled", name="Held And Shown")
    with app.app_context():
        assert sender.send_digest() == 1
    held_unshown = store(app, "t4", quarantine_reason="honeypot field filled", name="Held Not Shown")
    pending_old = store(app, "t5", name="Pending For Ages")
    failed_old = store(app, "t6", name="Failed Long Ago")
    failed_recent = store(app, "t7", name="Failed Yesterday")
    with db(app) as connection:
        connection.execute(
            "UPDATE outbox SET next_attempt_at = ? WHERE inquiry_id IN (SELECT id FROM inquiries"
            " WHERE reference IN (?, ?, ?))",
            (time.time() + DAY, pending_old, failed_old, failed_recent),
        )
        connection.execute(
            "UPDATE inquiries SET state = 'failed' WHERE reference IN (?, ?)", (failed_old, failed_recent)
        )

    now = time.time()
    set_times(app, delivered_old, submitted_ago=32 * DAY, delivered_ago=31 * DAY, now=now)
    set_times(app, delivered_recent, submitted_ago=40 * DAY, delivered_ago=1 * DAY, now=now)  # counts from delivery
    for reference in (held_shown, held_unshown, pending_old, failed_old):
        set_times(app, reference, submitted_ago=60 * DAY, now=now)
    set_times(app, failed_recent, submitted_ago=1 * DAY, now=now)
    before = {r: dict(row(app, r)) for r in (delivered_old, held_shown, failed_old)}

    # Failed ones, like held ones, wait until a digest has shown them to the office.
    assert sorted(inquiries.purge(path, 30, now=now)) == sorted([delivered_old, held_shown])
    with app.app_context():
        assert sender.send_digest() == 3  # held_unshown, failed_old, failed_recent
    assert sorted(inquiries.purge(path, 30, now=now)) == sorted([held_unshown, failed_old])
    erased = [delivered_old, held_shown, failed_old]
    for reference in erased:
        after = row(app, reference)
        assert after["fields"] is None and after["content_hash"] is None and after["erased_at"] == now
        for kept in ("reference", "submitted_at", "state", "message_id", "delivered_at"):
            assert after[kept] == before[reference][kept], kept
        assert inquiries.load_fields(after)["name"] is None
    for reference in (delivered_recent, pending_old, failed_recent):
        assert row(app, reference)["fields"] is not None and row(app, reference)["erased_at"] is None
    assert row(app, pending_old)["state"] == "pending"
    assert inquiries.purge(path, 30, now=now) == []


def test_zero_retention_erases_right_after_delivery(make_app):
    app = make_app(INQUIRY_RETENTION_DAYS=0)
    runner = app.test_cli_runner()
    reference = store(app, "t1")
    result = runner.invoke(args=["inquiry", "purge"])
    assert result.exit_code == 0 and "Erased the details of 0 inquiries" in result.output  # not before delivery
    assert deliver(app).delivered == [reference]
    result = runner.invoke(args=["inquiry", "purge"])
    assert "Erased the details of 1 inquiries" in result.output
    assert row(app, reference)["fields"] is None and row(app, reference)["state"] == "delivered"


def test_the_sender_applies_retention_as_soon_as_it_starts(make_app, monkeypatch):
    """`outbox run` erases at once with retention 0, even on a machine up for less than ten minutes."""
    app = make_app(INQUIRY_RETENTION_DAYS=0)
    reference = store(app, "t1")
    handlers = {}
    monkeypatch.setattr(cli.signal, "signal", lambda signum, handler: handlers.setdefault(signum, handler))
    monkeypatch.setattr(cli, "time", types.SimpleNamespace(monotonic=lambda: 100.0, sleep=time.sleep))
    real_deliver_due = sender.deliver_due

    def deliver_then_stop(*args, **kwargs):
        outcome = real_deliver_due(*args, **kwargs)
        handlers[signal.SIGTERM](signal.SIGTERM, None)  # as if SIGTERM came during the first round
        return outcome

    monkeypatch.setattr(cli.sender, "deliver_due", deliver_then_stop)
    result = app.test_cli_runner().invoke(args=["outbox", "run"])
    assert result.exit_code == 0, result.output
    assert f"Delivered {reference}" in result.output and "stopped" in result.output
    assert row(app, reference)["fields"] is None


@pytest.mark.parametrize("other_connection", [False, True], ids=["alone", "while-another-process-has-it-open"])
def test_erased_text_is_gone_from_the_database_file(make_app, other_connection):
    app = make_app(INQUIRY_RETENTION_DAYS=0)
    path = app.config["DATABASE"]
    # A web worker or the sender holding the file open keeps the WAL from being removed on close.
    holder = storage.connect(path) if other_connection else None
    try:
        response = Visitor(app.test_client()).submit(name=f"Pat {CANARY}", message=f"My note {CANARY} here")
        assert response.status_code == 303
        assert CANARY.encode() in database_bytes(path)  # the check can see it while it is stored
        assert len(deliver(app).delivered) == 1
        assert len(inquiries.purge(path, 0)) == 1
        assert CANARY.encode() not in database_bytes(path)
    finally:
        if holder is not None:
            holder.close()
    assert CANARY.encode() not in database_bytes(path)


def test_database_wal_and_shm_are_owner_only(make_app):
    app = make_app()
    path = app.config["DATABASE"]
    holder = storage.connect(path)  # keeps the WAL and shared-memory files in place
    try:
        assert Visitor(app.test_client()).submit().status_code == 303
        holder.execute("SELECT count(*) FROM inquiries").fetchone()
        for name in (path, path + "-wal", path + "-shm"):
            assert os.path.exists(name), name
            assert stat.S_IMODE(os.stat(name).st_mode) == 0o600, name
    finally:
        holder.close()


def test_delete_erases_one_inquiry_on_request(make_app):
    app = make_app()
    runner = app.test_cli_runner()
    keep, erase = store(app, "t1", name="Keep Me"), store(app, "t2", name="Erase Me")
    assert len(deliver(app).delivered) == 2
    waiting = store(app, "t3", name="Erase Me Before Sending")

    result = runner.invoke(args=["inquiry", "delete", erase.lower()])
    assert result.exit_code == 0 and erase in result.output
    assert row(app, erase)["fields"] is None and row(app, erase)["erased_at"] is not None
    assert row(app, erase)["state"] == "delivered"
    assert row(app, keep)["fields"] is not None

    assert runner.invoke(args=["inquiry", "delete", waiting]).exit_code == 0
    assert deliver(app) == outbox.Outcome()  # an erased request is not sent afterwards
    assert row(app, waiting)["state"] == "failed" and row(app, waiting)["fields"] is None
    assert runner.invoke(args=["outbox", "status"]).exit_code == 0  # and is not reported as stuck

    again = runner.invoke(args=["inquiry", "delete", erase])
    assert again.exit_code == 1 and "No inquiry" in again.output
    assert b"Erase Me" not in database_bytes(app.config["DATABASE"])


def test_purge_removes_old_development_mail_files(make_app):
    app = make_app()  # no MAIL_SERVER: mail is written to files
    old, new = store(app, "t1"), store(app, "t2", name="Someone Else")
    assert len(deliver(app).delivered) == 2
    folder = os.path.join(app.instance_path, "mail")
    files = {name.rsplit("-", 2)[-2] + "-" + name.rsplit("-", 1)[-1][:-4]: name for name in os.listdir(folder)}
    assert set(files) == {old, new}
    month_ago = time.time() - 31 * DAY
    os.utime(os.path.join(folder, files[old]), (month_ago, month_ago))

    result = app.test_cli_runner().invoke(args=["inquiry", "purge"])
    assert result.exit_code == 0, result.output
    assert os.listdir(folder) == [files[new]]


def test_no_personal_data_in_logs(make_app, caplog):
    canaries = {
        "name": "Qzxcanaryname Person",
        "email": "qzxcanarymail@example.org",
        "phone": "203-555-0199",
        "message": "Qzxcanarynote about my situation",
    }
    markers = ["Qzxcanary", "qzxcanary", "555-0199", "situation"]
    inbox = Inbox()
    with running_smtp(inbox) as port:
        app = make_app(**smtp_settings(port), INQUIRY_RETENTION_DAYS=0)
        # aiosmtpd (the test's own mail server, not the app) logs every line it receives at DEBUG.
        caplog.set_level(logging.WARNING, logger="mail.log")
        for name in ("app", "rsct", "rsct.outbox", None):  # last: the root, which sets the handler to DEBUG
            caplog.set_level(logging.DEBUG, logger=name)
        visitor = Visitor(app.test_client())
        references = []

        invalid = visitor.submit(**dict(canaries, email="qzxcanary-not-an-address", contact_method="email"))
        assert invalid.status_code == 422
        assert visitor.submit(**canaries).status_code == 303
        (sent,) = deliver(app).delivered
        references.append(sent)

        inbox.reply = "451 4.3.0 try later"
        assert visitor.submit(**dict(canaries, name="Qzxcanaryname Second")).status_code == 303
        (retried,) = deliver(app).retrying
        inbox.reply = "550 5.7.1 no"
        with db(app) as connection:
            connection.execute("UPDATE outbox SET next_attempt_at = 0")
        assert deliver(app).failed == [retried]
        references.append(retried)

        inbox.reply = "250 OK"
        assert visitor.submit(**dict(canaries, website="spam", name="Qzxcanaryname Third")).status_code == 303
        assert app.test_cli_runner().invoke(args=["inquiry", "digest"]).exit_code == 0
        assert len(app.test_cli_runner().invoke(args=["inquiry", "purge"]).output) > 0
        references.append(inquiries.recent(app.config["DATABASE"], 1)[0]["reference"])

    assert len(inbox.messages) == 2  # the inquiry and the digest: the canaries did travel
    app_records = [record for record in caplog.records if not record.name.startswith("mail.log")]
    logged = "\n".join(record.getMessage() for record in app_records)
    for marker in markers:
        assert marker not in logged, [r.getMessage() for r in app_records if marker in r.getMessage()]
    for reference in references:  # sent, failed, held: each named by its reference
        assert reference in logged
    assert "digest" in logged.lower()


def test_a_refused_inquiry_is_never_erased_unseen_even_with_zero_retention(make_app):
    app = make_app(INQUIRY_RETENTION_DAYS=0)
    reference = store(app, "t1", name="Refused By The Server")
    with db(app) as connection:
        connection.execute("UPDATE inquiries SET state = 'failed' WHERE reference = ?", (reference,))
        connection.execute(
            "UPDATE outbox SET failed_at = ?, last_error = 'SMTP 550: no such user'"
            " WHERE inquiry_id = (SELECT id FROM inquiries WHERE reference = ?)",
            (time.time(), reference),
        )
    assert inquiries.purge(app.config["DATABASE"], 0) == []
    runner = app.test_cli_runner()
    assert runner.invoke(args=["outbox", "status"]).exit_code == 4  # the monitor still sees it
    result = runner.invoke(args=["inquiry", "digest"])
    assert result.exit_code == 0, result.output
    folder = Path(app.instance_path, "mail")
    mail = "".join(path.read_text() for path in folder.iterdir())
    assert reference in mail and "the office's mail server refused it (the website's operator" in mail
    assert "SMTP" not in mail and "550" not in mail  # plain words for the office, not codes
    assert inquiries.purge(app.config["DATABASE"], 0) == [reference]


def test_delete_waits_while_the_inquiry_is_being_sent(make_app):
    app = make_app()
    reference = store(app, "t1", name="Being Sent")
    with app.app_context():
        assert outbox.claim(app.config["DATABASE"], "sender-1", time.time(), 60) is not None
    result = app.test_cli_runner().invoke(args=["inquiry", "delete", reference])
    assert result.exit_code == 2 and "being emailed right now" in result.output
    assert row(app, reference)["fields"] is not None
