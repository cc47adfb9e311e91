"""What the sender does when the mail server misbehaves: TLS, hangs, 4xx, 5xx, drops and refusals."""

import time

import pytest

from rsct import inquiries, outbox

from helpers import Visitor, db, deliver
from smtp_servers import (
    DribblingSMTPServer,
    DroppingSMTPServer,
    Inbox,
    SilentServer,
    free_port,
    make_certs,
    running_smtp,
    server_tls_context,
    smtp_settings,
)


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    return make_certs(tmp_path_factory.mktemp("certs"))


def stored_one(app) -> str:
    """Submit one inquiry through the form; returns its reference."""
    response = Visitor(app.test_client()).submit()
    assert response.status_code == 303, response.text
    (row,) = inquiries.recent(app.config["DATABASE"])
    return row["reference"]


def entry(app, reference):
    """The inquiry with its outbox row."""
    return inquiries.find(app.config["DATABASE"], reference)


def make_due(app):
    with db(app) as connection:
        connection.execute("UPDATE outbox SET next_attempt_at = 0")


# --- TLS ---------------------------------------------------------------------------------------


def test_starttls_with_an_untrusted_certificate_is_retried_and_delivered_once_the_ca_is_set(make_app, certs):
    inbox = Inbox()
    tls = server_tls_context(certs["cert"], certs["key"])
    with running_smtp(inbox, tls_context=tls, require_starttls=True) as port:
        app = make_app(**smtp_settings(port, MAIL_USE_TLS=True))
        reference = stored_one(app)
        outcome = deliver(app)
        assert outcome.retrying == [reference] and not outcome.delivered and not outcome.failed
        row = entry(app, reference)
        assert row["state"] == "pending" and row["delivered_at"] is None and row["failed_at"] is None
        assert "certificate" in row["last_error"].lower()
        assert inbox.messages == []

        trusting = make_app(**smtp_settings(port, MAIL_USE_TLS=True, MAIL_CA_FILE=str(certs["ca"])))
        make_due(trusting)
        assert deliver(trusting).delivered == [reference]
        (received,) = inbox.wait_for(1)
        assert received.message["Message-ID"] == row["message_id"]  # the same id on every attempt
        assert entry(trusting, reference)["state"] == "delivered"


def test_starttls_certificate_for_another_host_is_refused(make_app, certs):
    inbox = Inbox()
    tls = server_tls_context(certs["other_cert"], certs["other_key"])
    with running_smtp(inbox, tls_context=tls, require_starttls=True) as port:
        app = make_app(**smtp_settings(port, MAIL_USE_TLS=True, MAIL_CA_FILE=str(certs["ca"])))
        reference = stored_one(app)
        assert deliver(app).retrying == [reference]
        error = entry(app, reference)["last_error"]
        assert "certificate" in error.lower() and "127.0.0.1" in error
        assert inbox.messages == []


def test_plain_smtp_to_a_server_that_requires_starttls_is_retried_not_failed(make_app, certs):
    """A 530 'must issue STARTTLS' is a TLS setting problem, not a refusal of this message."""
    inbox = Inbox()
    tls = server_tls_context(certs["cert"], certs["key"])
    with running_smtp(inbox, tls_context=tls, require_starttls=True) as port:
        app = make_app(**smtp_settings(port))  # MAIL_USE_TLS forgotten
        reference = stored_one(app)
        outcome = deliver(app)
        assert outcome.retrying == [reference] and not outcome.failed
        assert entry(app, reference)["state"] == "pending"
        assert "530" in entry(app, reference)["last_error"]


@pytest.mark.parametrize("trusted", [False, True])
def test_implicit_tls(make_app, certs, trusted):
    inbox = Inbox()
    with running_smtp(inbox, ssl_context=server_tls_context(certs["cert"], certs["key"])) as port:
        ca = {"MAIL_CA_FILE": str(certs["ca"])} if trusted else {}
        app = make_app(**smtp_settings(port, MAIL_USE_SSL=True, **ca))
        reference = stored_one(app)
        outcome = deliver(app)
        if trusted:
            assert outcome.delivered == [reference]
            assert len(inbox.wait_for(1)) == 1
        else:
            assert outcome.retrying == [reference]
            assert "certificate" in entry(app, reference)["last_error"].lower()
            assert inbox.messages == []


# --- a server that hangs ------------------------------------------------------------------------


def test_a_server_that_never_answers_times_out_and_is_retried_later(make_app):
    with SilentServer() as silent:
        app = make_app(**smtp_settings(silent.port, MAIL_TIMEOUT=1))
        reference = stored_one(app)
        started = time.monotonic()
        outcome = deliver(app)
        elapsed = time.monotonic() - started
    assert elapsed < 5, f"a hung server held the sender for {elapsed:.1f} s with MAIL_TIMEOUT=1"
    assert outcome.retrying == [reference]
    row = entry(app, reference)
    assert row["attempts"] == 1
    assert row["next_attempt_at"] > time.time() + 10  # backoff: 30 s +/- 20 %
    assert row["state"] == "pending" and row["last_error"]
    assert silent.connections  # it really connected


def test_a_server_that_dribbles_its_reply_is_cut_off_at_the_conversation_deadline(make_app):
    """Each "250-" line comes well within MAIL_TIMEOUT, but the reply never ends: the whole conversation
    has a deadline (5 x MAIL_TIMEOUT), far below the claim's lease, so no second sender takes it over."""
    with DribblingSMTPServer(interval=0.3) as server:
        app = make_app(**smtp_settings(server.port, MAIL_TIMEOUT=1))
        reference = stored_one(app)
        started = time.monotonic()
        outcome = deliver(app)
        elapsed = time.monotonic() - started
        assert elapsed < 8, f"a dribbling server held the sender for {elapsed:.1f} s with MAIL_TIMEOUT=1"
        assert server.client_hung_up.wait(5), "the sender never hung up on the dribbling server"
    assert elapsed >= 4.5  # ended by the deadline, not by the per-read timeout
    with app.app_context():
        assert elapsed < outbox.lease_seconds(app.config["MAIL_TIMEOUT"])
    assert outcome.retrying == [reference] and not outcome.delivered and not outcome.failed
    row = entry(app, reference)
    assert row["state"] == "pending" and row["attempts"] == 1
    assert row["delivered_at"] is None and row["failed_at"] is None
    assert row["next_attempt_at"] > time.time() + 10
    assert "no complete SMTP conversation within 5 s" in row["last_error"]
    with db(app) as connection:
        assert connection.execute("SELECT claimed_by FROM outbox").fetchone()["claimed_by"] is None
    assert [command[:4].upper() for command in server.commands] == [b"EHLO"]  # no MAIL, RCPT or DATA
    assert server.messages == []


def test_a_slow_conversation_that_finishes_before_the_deadline_is_delivered(make_app):
    """The deadline bounds the whole conversation, not each reply: longer than MAIL_TIMEOUT in total
    (about 2 s of EHLO lines with MAIL_TIMEOUT=1) but within 5 x MAIL_TIMEOUT is a normal delivery."""
    with DribblingSMTPServer(interval=0.25, finish_after=8) as server:
        app = make_app(**smtp_settings(server.port, MAIL_TIMEOUT=1))
        reference = stored_one(app)
        started = time.monotonic()
        outcome = deliver(app)
        elapsed = time.monotonic() - started
    assert outcome.delivered == [reference], entry(app, reference)["last_error"]
    assert 1.5 < elapsed < 5
    assert len(server.messages) == 1 and reference.encode() in server.messages[0]
    assert entry(app, reference)["state"] == "delivered"
    assert [command[:4].upper() for command in server.commands] == [b"EHLO", b"MAIL", b"RCPT", b"DATA", b"QUIT"]


# --- replies to the message ---------------------------------------------------------------------


def test_451_is_retried_and_delivered_later_with_the_same_message_id(make_app):
    inbox = Inbox(reply="451 4.3.0 try later")
    with running_smtp(inbox) as port:
        app = make_app(**smtp_settings(port))
        reference = stored_one(app)
        outcome = deliver(app)
        assert outcome.retrying == [reference]
        row = entry(app, reference)
        assert row["state"] == "pending" and row["attempts"] == 1 and "451" in row["last_error"]
        assert row["next_attempt_at"] > time.time()
        assert inbox.refused == 1 and inbox.messages == []
        assert deliver(app) == outbox.Outcome()  # not due yet

        inbox.reply = "250 OK"
        make_due(app)
        assert deliver(app).delivered == [reference]
        (received,) = inbox.wait_for(1)
        assert received.message["Message-ID"] == row["message_id"]
        row = entry(app, reference)
        assert row["state"] == "delivered" and row["attempts"] == 2 and row["last_error"] is None


def test_550_fails_for_good_and_is_reported_until_released(make_app):
    inbox = Inbox(reply="550 5.7.1 message refused")
    with running_smtp(inbox) as port:
        app = make_app(**smtp_settings(port))
        reference = stored_one(app)
        outcome = deliver(app)
        assert outcome.failed == [reference] and not outcome.retrying
        row = entry(app, reference)
        assert row["state"] == "failed" and row["failed_at"] is not None and "550" in row["last_error"]

        make_due(app)
        assert deliver(app) == outbox.Outcome()  # a failed one is not tried again by itself
        assert inbox.refused == 1

        runner = app.test_cli_runner()
        status = runner.invoke(args=["outbox", "status"])
        assert status.exit_code == 4, status.output
        assert "failed: 1" in status.output and reference in status.output
        assert app.test_client().get("/healthz/mail").status_code == 503

        inbox.reply = "250 OK"
        assert runner.invoke(args=["inquiry", "release", reference]).exit_code == 0
        assert deliver(app).delivered == [reference]
        assert len(inbox.wait_for(1)) == 1
        assert runner.invoke(args=["outbox", "status"]).exit_code == 0


def test_connection_dropped_after_the_message_was_accepted_is_delivered_exactly_once(make_app):
    with DroppingSMTPServer() as server:
        app = make_app(**smtp_settings(server.port))
        reference = stored_one(app)
        assert deliver(app).delivered == [reference]
        make_due(app)
        assert deliver(app) == outbox.Outcome()
    assert len(server.messages) == 1
    assert reference.encode() in server.messages[0]
    assert entry(app, reference)["state"] == "delivered"


def test_connection_refused_is_retried(make_app):
    app = make_app(**smtp_settings(free_port()))
    reference = stored_one(app)
    outcome = deliver(app)
    assert outcome.retrying == [reference]
    row = entry(app, reference)
    assert row["state"] == "pending" and "refused" in row["last_error"].lower()
