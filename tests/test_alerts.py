"""Someone is told when leads stop: alerts over HTTP to a real local receiver, never through the mail relay."""

import json
import time

import pytest

from rsct import alerts, inquiries

from helpers import Visitor, db, deliver
from smtp_servers import RECIPIENT_ADDRESS, Inbox, running_smtp, smtp_settings

CLIENT_REJECTED = "554 5.7.1 <office@rsct.example.org>: Client host rejected: Access denied"


class PolicyInbox(Inbox):
    """A relay that, while `refusing`, answers RCPT TO as Postfix does to a client it does not relay for."""

    def __init__(self):
        super().__init__()
        self.refusing = True

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.refusing:
            return CLIENT_REJECTED
        envelope.rcpt_tos.append(address)
        return "250 OK"


def store(app, **changes) -> str:
    """Send the call-back form as a plain browser would; returns the stored inquiry's reference."""
    response = Visitor(app.test_client()).submit(**changes)
    assert response.status_code == 303, response.text[:500]
    return inquiries.recent(app.config["DATABASE"], 1)[0]["reference"]


def make_due(app):
    """Skip the back-off: the next delivery run tries every waiting inquiry."""
    with db(app) as connection:
        connection.execute("UPDATE outbox SET next_attempt_at = 0")


def assert_no_visitor_data(texts, references):
    for text in texts:
        for secret in ("Qzxname", "Qzxnote", "555-0147", *references):
            assert secret not in text


# --- the relay refuses the site's settings -------------------------------------------------------


def test_a_relay_refusing_this_server_keeps_the_inquiry_and_alerts_once_then_says_it_recovered(make_app, receiver):
    inbox = PolicyInbox()
    with running_smtp(inbox) as port:
        app = make_app(**smtp_settings(port), ALERT_URL=receiver.url + "/rsct-alerts")
        reference = store(app)

        first = deliver(app)
        assert first.retrying == [reference] and not first.failed
        assert inquiries.find(app.config["DATABASE"], reference)["state"] == "pending"
        make_due(app)
        assert deliver(app).retrying == [reference]  # still refused: no second alert
        assert len(receiver.requests) == 1
        alert = receiver.requests[0]
        assert alert["path"] == "/rsct-alerts" and alert["type"].startswith("text/plain")
        assert "refused the site's mail settings" in alert["body"].decode()
        assert "5.7.1" in alert["body"].decode() and "Client host rejected" in alert["body"].decode()

        inbox.refusing = False
        make_due(app)
        assert deliver(app).delivered == [reference]
        assert [m.rcpt_tos for m in inbox.wait_for(1)] == [[RECIPIENT_ADDRESS]]
        assert len(receiver.requests) == 2
        assert "accepts the site's mail again" in receiver.bodies()[1]
        assert_no_visitor_data(receiver.bodies(), [reference])


def test_a_refusal_after_data_stays_a_refusal_of_the_message_and_is_no_settings_alert(make_app, receiver):
    inbox = Inbox(reply="554 5.7.1 Message rejected by content policy")
    with running_smtp(inbox) as port:
        app = make_app(**smtp_settings(port), ALERT_URL=receiver.url)
        reference = store(app)
        assert deliver(app).failed == [reference]
    assert inquiries.find(app.config["DATABASE"], reference)["state"] == "failed"
    assert receiver.requests == []


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_a_relay_that_wants_a_login_is_a_setting_to_fix(make_app, receiver):
    inbox = Inbox()
    with running_smtp(inbox, auth_required=True, auth_require_tls=False) as port:
        app = make_app(**smtp_settings(port), ALERT_URL=receiver.url)
        reference = store(app)
        outcome = deliver(app)
    assert outcome.retrying == [reference] and outcome.setup_problem.startswith("SMTP 530")
    assert "refused the site's mail settings (SMTP 530" in receiver.bodies()[0]


def test_a_flapping_problem_alerts_at_most_once_an_hour(app, receiver):
    path = app.config["DATABASE"]
    sent = []
    tell = lambda problem, now: alerts.tell(  # noqa: E731
        path, "relay", problem, lambda: sent.append(problem), now=now, quiet_seconds=3600
    )
    assert tell(True, 1000) == alerts.SENT
    assert tell(False, 1100) == alerts.SENT
    assert tell(True, 1200) == alerts.WAITING  # within the hour of the last problem alert
    assert tell(False, 1300) == alerts.UNCHANGED  # nobody was told of that one, so no recovery either
    assert tell(True, 1000 + 3600) == alerts.SENT
    assert sent == [True, False, True]


# --- the monitor ---------------------------------------------------------------------------------


def monitor(app):
    return app.test_cli_runner().invoke(args=["outbox", "monitor"])


def age_everything(app, minutes):
    with db(app) as connection:
        connection.execute("UPDATE inquiries SET submitted_at = ?", (time.time() - minutes * 60,))


def test_the_monitor_alerts_once_when_inquiries_are_stuck_and_once_when_they_recover(make_app, receiver):
    app = make_app(ALERT_URL=receiver.url, ALERT_FORMAT="json", OUTBOX_STUCK_MINUTES=30)
    assert monitor(app).exit_code == 0
    reference = store(app)
    assert monitor(app).exit_code == 0  # waiting, but not for long
    assert receiver.requests == []

    age_everything(app, 45)
    for _ in range(3):  # a timer every few minutes: one alert, and the "stuck" status every time
        result = monitor(app)
        assert result.exit_code == 4, result.output
    assert len(receiver.requests) == 1
    assert receiver.requests[0]["type"] == "application/json"
    text = json.loads(receiver.requests[0]["body"])["text"]
    assert "not reaching the office (1 waiting, the oldest for 45 minutes)" in text

    assert deliver(app).delivered == [reference]  # development files: delivered
    assert monitor(app).exit_code == 0
    assert monitor(app).exit_code == 0
    assert len(receiver.requests) == 2
    assert "reaching the office again" in json.loads(receiver.requests[1]["body"])["text"]
    assert_no_visitor_data(receiver.bodies(), [reference])


def test_the_monitor_reports_an_inquiry_the_relay_refused_for_good(make_app, receiver):
    app = make_app(ALERT_URL=receiver.url)
    store(app)
    with db(app) as connection:
        connection.execute("UPDATE inquiries SET state = 'failed'")
        connection.execute("UPDATE outbox SET failed_at = ?, last_error = 'SMTP 550: no such user'", (time.time(),))
    assert monitor(app).exit_code == 4
    assert "1 refused by the mail server" in receiver.bodies()[0]


def test_an_alert_that_cannot_be_sent_is_logged_and_sent_at_the_next_run(make_app, receiver, caplog):
    app = make_app(ALERT_URL=receiver.url, OUTBOX_STUCK_MINUTES=30)
    store(app)
    age_everything(app, 31)
    receiver.status = 503
    with caplog.at_level("ERROR", logger="rsct.alerts"):
        result = monitor(app)
    assert result.exit_code == 4
    assert "could not be sent" in result.output
    assert any("HTTP 503" in record.getMessage() for record in caplog.records)

    receiver.status = 200
    assert monitor(app).exit_code == 4
    assert monitor(app).exit_code == 4
    assert len(receiver.requests) == 2  # the refused one, the retry, and no more
    assert receiver.bodies()[1] == receiver.bodies()[0]


def test_a_recovery_alert_that_cannot_be_sent_fails_the_run(make_app, receiver):
    app = make_app(ALERT_URL=receiver.url, OUTBOX_STUCK_MINUTES=30)
    store(app)
    age_everything(app, 31)
    assert monitor(app).exit_code == 4
    deliver(app)
    receiver.status = 500
    assert monitor(app).exit_code == 2  # not stuck, but the operator still believes it is
    receiver.status = 200
    assert monitor(app).exit_code == 0
    assert "reaching the office again" in receiver.bodies()[-1]


def test_healthchecks_hears_from_every_run_and_fail_while_stuck(make_app, receiver):
    app = make_app(ALERT_URL=receiver.url + "/ping/0c3f", ALERT_FORMAT="healthchecks", OUTBOX_STUCK_MINUTES=30)
    assert monitor(app).exit_code == 0
    assert monitor(app).exit_code == 0
    store(app)
    age_everything(app, 31)
    assert monitor(app).exit_code == 4
    assert [r["path"] for r in receiver.requests] == ["/ping/0c3f", "/ping/0c3f", "/ping/0c3f/fail"]
    assert "1 waiting" in receiver.bodies()[2]


def test_healthchecks_hears_fail_while_the_relay_refuses_the_sites_settings(make_app, receiver):
    with running_smtp(PolicyInbox()) as port:
        app = make_app(**smtp_settings(port), ALERT_URL=receiver.url + "/ping/0c3f", ALERT_FORMAT="healthchecks")
        store(app)
        deliver(app)  # the sender pings URL/fail at once
        assert monitor(app).exit_code == 0  # not stuck yet: the timer's exit status says so
    assert [r["path"] for r in receiver.requests] == ["/ping/0c3f/fail", "/ping/0c3f/fail"]
    assert "refused the site's mail settings" in receiver.bodies()[1]


def test_without_an_alert_url_the_monitor_says_so_and_still_exits_stuck(make_app):
    app = make_app(OUTBOX_STUCK_MINUTES=30)
    store(app)
    age_everything(app, 31)
    result = monitor(app)
    assert result.exit_code == 4
    assert "FLASK_ALERT_URL is not set" in result.output


# --- checking both paths without a fake lead -----------------------------------------------------


@pytest.mark.parametrize(
    "fmt, path, content_type",
    [
        ("text", "/rsct-alerts", "text/plain; charset=utf-8"),
        ("json", "/rsct-alerts", "application/json"),
        ("healthchecks", "/rsct-alerts/fail", "text/plain; charset=utf-8"),
    ],
)
def test_alert_test_sends_each_format_as_the_receiver_expects(make_app, receiver, fmt, path, content_type):
    app = make_app(ALERT_URL=receiver.url + "/rsct-alerts", ALERT_FORMAT=fmt, SITE_URL="https://rsct.example.org")
    result = app.test_cli_runner().invoke(args=["alert", "test"])
    assert result.exit_code == 0, result.output
    [request] = receiver.requests
    assert (request["method"], request["path"], request["type"]) == ("POST", path, content_type)
    text = json.loads(request["body"])["text"] if fmt == "json" else request["body"].decode()
    assert text == (
        "RSCT website (rsct.example.org): a test alert (`alert test`). If you can read this, alerts reach you."
    )


def test_alert_test_without_a_url_or_with_a_dead_one_exits_2(make_app, receiver):
    assert make_app().test_cli_runner().invoke(args=["alert", "test"]).exit_code == 2
    receiver.status = 404
    result = make_app(ALERT_URL=receiver.url).test_cli_runner().invoke(args=["alert", "test"])
    assert result.exit_code == 2 and "HTTP 404" in result.output


def test_test_email_reaches_the_office_marked_as_a_test_and_is_no_inquiry(make_app):
    inbox = Inbox()
    with running_smtp(inbox) as port:
        app = make_app(**smtp_settings(port))
        result = app.test_cli_runner().invoke(args=["outbox", "test-email"])
        assert result.exit_code == 0, result.output
        [received] = inbox.wait_for(1)
    assert received.rcpt_tos == [RECIPIENT_ADDRESS]
    message = received.message
    assert message["Subject"] == "Test message from the website (not an inquiry)"
    assert "It is not an inquiry" in message.get_body(preferencelist=("plain",)).get_content()
    assert inquiries.recent(app.config["DATABASE"], 10) == []


def test_test_email_that_the_relay_refuses_exits_2(make_app):
    with running_smtp(PolicyInbox()) as port:
        app = make_app(**smtp_settings(port))
        result = app.test_cli_runner().invoke(args=["outbox", "test-email"])
    assert result.exit_code == 2
    assert "Client host rejected" in result.output


def test_a_failed_service_is_named_in_an_alert(make_app, receiver):
    """systemd's rsct-alert@ unit runs this when the web server, the sender or a timer's job fails."""
    app = make_app(ALERT_URL=receiver.url)
    result = app.test_cli_runner().invoke(args=["alert", "failed", "rsct-sender.service"])
    assert result.exit_code == 0, result.output
    assert "rsct-sender.service failed on the server" in receiver.bodies()[0]


def test_a_relay_that_offers_no_starttls_is_a_setting_to_fix(make_app, receiver):
    with running_smtp(Inbox()) as port:
        app = make_app(**smtp_settings(port), MAIL_USE_TLS=True, ALERT_URL=receiver.url)
        reference = store(app)
        outcome = deliver(app)
    assert outcome.retrying == [reference]
    assert "STARTTLS" in outcome.setup_problem
    assert len(receiver.requests) == 1 and "refused the site's mail settings" in receiver.bodies()[0]


class SenderPolicyInbox(Inbox):
    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        return "554 5.7.1 <website@rsct.example.org>: Relay access denied"


def test_a_relay_refusing_the_sender_address_to_this_server_is_a_setting_to_fix(make_app, receiver):
    with running_smtp(SenderPolicyInbox()) as port:
        app = make_app(**smtp_settings(port), ALERT_URL=receiver.url)
        reference = store(app)
        outcome = deliver(app)
    assert outcome.retrying == [reference] and "Relay access denied" in outcome.setup_problem
    assert inquiries.find(app.config["DATABASE"], reference)["state"] == "pending"
    assert len(receiver.requests) == 1


def test_a_redirect_is_not_followed_but_reported(make_app, receiver):
    receiver.status = 301
    result = make_app(ALERT_URL=receiver.url).test_cli_runner().invoke(args=["alert", "test"])
    assert result.exit_code == 2 and "HTTP 301" in result.output
    assert len(receiver.requests) == 1


def test_a_digest_the_relay_refuses_for_its_settings_alerts_too(make_app, receiver):
    with running_smtp(PolicyInbox()) as port:
        app = make_app(**smtp_settings(port), ALERT_URL=receiver.url)
        store(app, website="https://spam.example")  # the honeypot: held for the digest
        result = app.test_cli_runner().invoke(args=["inquiry", "digest"])
    assert result.exit_code != 0 and "Client host rejected" in result.output
    assert len(receiver.requests) == 1 and "refused the site's mail settings" in receiver.bodies()[0]
    assert_no_visitor_data(receiver.bodies(), [])
