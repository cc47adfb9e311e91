"""Real sender processes against a real SMTP server: two at once, kill -9, SIGTERM, a server that is down."""

import asyncio
import os
import pathlib
import re
import signal
import subprocess
import sys
import time

import pytest

from rsct import inquiries, mailer, outbox, sender

from helpers import ROOT, Visitor, db
from smtp_servers import RECIPIENT, SENDER, SENDER_DOMAIN, Inbox, free_port, running_smtp, smtp_settings

PROCESS_SECONDS = 60


class Sender:
    """A `flask --app app outbox ...` process; its output goes to files, read with output()."""

    def __init__(self, folder: pathlib.Path, number: int, args: list[str], env: dict):
        self.out_path = folder / f"sender{number}.out"
        self.err_path = folder / f"sender{number}.err"
        with open(self.out_path, "wb") as out, open(self.err_path, "wb") as err:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "flask", "--app", "app", *args],
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=err,
                stdin=subprocess.DEVNULL,
            )

    def output(self) -> str:
        return self.out_path.read_text() + self.err_path.read_text()

    def wait(self, timeout: float = PROCESS_SECONDS) -> int:
        return self.process.wait(timeout=timeout)

    def wait_for_output(self, text: str, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.output():
            assert self.process.poll() is None, f"sender exited early:\n{self.output()}"
            assert time.monotonic() < deadline, f"no {text!r} within {timeout} s:\n{self.output()}"
            time.sleep(0.05)


@pytest.fixture
def senders(tmp_path):
    """Start sender processes; every one still running at the end is killed."""
    started: list[Sender] = []

    def start(args: list[str], env: dict) -> Sender:
        started_sender = Sender(tmp_path, len(started), args, env)
        started.append(started_sender)
        return started_sender

    yield start
    for process in started:
        if process.process.poll() is None:
            process.process.kill()
        process.process.wait(timeout=10)


def sender_env(instance: str, port: int, timeout: int = 5) -> dict:
    """Development settings (they do not suppress sending) aimed at the test server."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("FLASK_")}
    env.update(
        FLASK_CONFIG="development",
        FLASK_INSTANCE_PATH=instance,
        FLASK_MAIL_SERVER="127.0.0.1",
        FLASK_MAIL_PORT=str(port),
        FLASK_MAIL_DEFAULT_SENDER=SENDER,
        FLASK_INQUIRY_RECIPIENT=RECIPIENT,
        FLASK_MAIL_TIMEOUT=str(timeout),
        PYTHONUNBUFFERED="1",
    )
    return env


def store_many(app, count: int) -> list[str]:
    references = []
    for i in range(count):
        fields = {
            "name": f"Person {i:02d}",
            "contact_method": "call",
            "phone": f"(203) 555-{i:04d}",
            "email": None,
            "best_time": "any",
            "leave_message": "no",
            "for_whom": "self",
            "message": f"Note number {i}",
        }
        stored = inquiries.store(app.config["DATABASE"], f"token{i}", fields, key=b"k", message_domain=SENDER_DOMAIN)
        references.append(stored.reference)
    return references


def outbox_rows(app) -> list:
    with db(app) as connection:
        return connection.execute(
            "SELECT i.reference, i.state, o.message_id, o.claimed_by, o.delivered_at"
            " FROM inquiries i JOIN outbox o ON o.inquiry_id = i.id"
        ).fetchall()


def message_ids(messages) -> list[str]:
    return [str(received.message["Message-ID"]) for received in messages]


class Rendezvous(Inbox):
    """Holds the first message until a second one is in flight at the same time.

    A sender sends one message at a time, so two at once prove that both senders were working together.
    """

    def __init__(self, wait_seconds: float):
        super().__init__(delay=0.005)
        self.wait_seconds = wait_seconds
        self.in_flight = 0
        self.met = False

    async def handle_DATA(self, server, session, envelope):
        self.in_flight += 1
        self.met = self.met or self.in_flight >= 2
        deadline = time.monotonic() + self.wait_seconds
        while not self.met and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        self.in_flight -= 1
        return await super().handle_DATA(server, session, envelope)


def test_two_senders_at_once_deliver_each_inquiry_exactly_once(make_app, senders):
    app = make_app(CONFIG_NAME="development")
    references = store_many(app, 50)
    inbox = Rendezvous(wait_seconds=15)
    with running_smtp(inbox) as port:
        env = sender_env(app.instance_path, port, timeout=30)
        first, second = senders(["outbox", "send"], env), senders(["outbox", "send"], env)
        assert first.wait() == 0, first.output()
        assert second.wait() == 0, second.output()
        messages = inbox.wait_for(50, timeout=5)
        time.sleep(0.2)  # a stray 51st would arrive now
        messages = inbox.messages
    assert inbox.met, "the two senders never had a message in flight at the same time"
    ids = message_ids(messages)
    assert len(messages) == 50
    assert len(set(ids)) == 50
    rows = outbox_rows(app)
    assert set(ids) == {row["message_id"] for row in rows}
    assert {row["reference"] for row in rows if row["state"] == "delivered"} == set(references)
    subjects = {received.message["Subject"] for received in messages}
    assert subjects == {f"Website inquiry {reference} - call back" for reference in references}


def test_a_sender_killed_mid_run_loses_nothing(make_app, senders):
    app = make_app(CONFIG_NAME="development")
    references = store_many(app, 20)
    inbox = Inbox(delay=0.2)
    with running_smtp(inbox) as port:
        env = sender_env(app.instance_path, port)
        runner = senders(["outbox", "run"], env)
        assert len(inbox.wait_for(5, timeout=30)) >= 5, runner.output()
        os.kill(runner.process.pid, signal.SIGKILL)
        assert runner.wait(10) == -signal.SIGKILL
        time.sleep(0.4)  # the message in flight at the kill, if the server still accepts it
        accepted_before = message_ids(inbox.messages)
        assert len(accepted_before) < 20, "the sender finished before it was killed; slow the server down"

        with db(app) as connection:
            # The lease of the killed sender's claim runs out (shortened here instead of waiting).
            held = connection.execute("UPDATE outbox SET claim_expires_at = 0 WHERE claimed_by IS NOT NULL").rowcount
        assert held <= 1
        finisher = senders(["outbox", "send"], env)
        assert finisher.wait() == 0, finisher.output()
        messages = inbox.wait_for(20, timeout=5)
    ids = message_ids(messages)
    assert len(set(ids)) == len(references) == 20
    duplicated = {message_id for message_id in ids if ids.count(message_id) > 1}
    # At most the one in flight at the kill, sent again only because the server had accepted it
    # while the killed sender could no longer record that.
    assert len(ids) - len(set(ids)) == len(duplicated) <= 1
    assert duplicated <= set(accepted_before)
    rows = outbox_rows(app)
    assert all(row["state"] == "delivered" and row["claimed_by"] is None for row in rows)
    assert set(ids) == {row["message_id"] for row in rows}


def test_sigterm_finishes_the_current_message_and_stops_cleanly(make_app, senders):
    app = make_app(CONFIG_NAME="development")
    store_many(app, 5)
    inbox = Inbox(delay=0.5)
    with running_smtp(inbox) as port:
        runner = senders(["outbox", "run"], sender_env(app.instance_path, port))
        runner.wait_for_output("Outbox sender started")
        assert len(inbox.wait_for(1, timeout=20)) >= 1
        started = time.monotonic()
        runner.process.send_signal(signal.SIGTERM)
        assert runner.wait(10) == 0, runner.output()
        assert time.monotonic() - started < 5
        time.sleep(0.2)
        accepted = set(message_ids(inbox.messages))
    assert "Outbox sender stopped." in runner.output()
    assert 1 <= len(accepted) < 5
    rows = outbox_rows(app)
    # Nothing is left claimed, and exactly what the server accepted is marked delivered.
    assert all(row["claimed_by"] is None for row in rows)
    assert {row["message_id"] for row in rows if row["delivered_at"]} == accepted
    assert all(row["state"] == "pending" for row in rows if row["message_id"] not in accepted)


def test_visitors_are_thanked_while_the_mail_server_is_down_and_served_when_it_returns(make_app):
    port = free_port()
    app = make_app(**smtp_settings(port))
    client = app.test_client()
    thanked = []
    for i in range(5):
        response = Visitor(client).submit(name=f"Visitor {i}")
        assert response.status_code == 303, response.text
        page = client.get(response.headers["Location"])
        assert page.status_code == 200 and "Request sent" in page.text
        thanked += re.findall(r"RSCT-[0-9A-Z]{6}", page.text)[:1]
    assert len(set(thanked)) == 5
    with app.app_context():
        outcome = sender.deliver_due()
    assert sorted(outcome.retrying) == sorted(thanked) and not outcome.delivered

    inbox = Inbox()
    with running_smtp(inbox, port=port):
        with db(app) as connection:
            connection.execute("UPDATE outbox SET next_attempt_at = 0")
        with app.app_context():
            outcome = sender.deliver_due()
        assert sorted(outcome.delivered) == sorted(thanked)
        assert len(inbox.wait_for(5)) == 5
    assert all(row["state"] == "delivered" for row in outbox_rows(app))


def test_a_late_finisher_whose_lease_ran_out_does_not_overwrite_the_outcome(make_app):
    """Sender A's lease expired and B delivered; A's late 5xx must not mark the inquiry failed."""
    inbox = Inbox()
    with running_smtp(inbox) as port:
        app = make_app(**smtp_settings(port))
        assert Visitor(app.test_client()).submit().status_code == 303
        path = app.config["DATABASE"]
        now = time.time()
        with app.app_context():
            row_a = outbox.claim(path, "worker-a", now, 10)
            assert outbox.claim(path, "worker-b", now + 1, 10) is None  # A's lease holds
            row_b = outbox.claim(path, "worker-b", now + 11, 10)  # ...until it runs out
            assert row_b["reference"] == row_a["reference"]
            outcome = outbox.Outcome()
            outbox.deliver_one(path, row_b, mailer.send_inquiry, "worker-b", outcome)
            inbox.reply = "550 5.7.1 refused"
            outbox.deliver_one(path, row_a, mailer.send_inquiry, "worker-a", outcome)
        row = inquiries.find(path, row_a["reference"])
    assert row["delivered_at"] is not None and row["failed_at"] is None
    assert row["state"] == "delivered"
    assert len(inbox.messages) == 1
