"""The office's daily summary, as a real SMTP server (aiosmtpd) receives it: held and refused requests with the
same fields as an inquiry and plain reasons, the references delivered since the last summary, and a summary
even when nothing was held."""

import re

from helpers import ROOT, Visitor, body_text, db, deliver


def digest(app, inbox):
    before = len(inbox.messages)
    result = app.test_cli_runner().invoke(args=["inquiry", "digest"])
    assert result.exit_code == 0, result.output
    message = inbox.wait_for(before + 1)[-1].message
    return message, body_text(message).replace("\r\n", "\n")


def test_summary_lists_held_and_refused_requests_in_plain_words_and_what_was_delivered(smtp_app, inbox):
    visitor = Visitor(smtp_app.test_client())
    assert visitor.submit(name="Delivered Person").status_code == 303
    (delivered,) = deliver(smtp_app).delivered
    assert (
        visitor.submit(
            website="http://spam.example", name="Held Person", best_time="evening", for_whom="other"
        ).status_code
        == 303
    )
    inbox.reply = "550 5.7.1 Message rejected by policy"
    assert visitor.submit(name="Refused Person").status_code == 303
    (refused,) = deliver(smtp_app).failed
    inbox.reply = "250 OK"

    message, body = digest(smtp_app, inbox)
    assert message["Subject"] == "Website daily summary: 2 to check by hand, 1 delivered"
    held = body.split("Name: Held Person")[0].rsplit("Reference: ", 1)[1] + body.split("Name: Held Person")[1]
    assert "Best time to reach them: Evening" in held and "Who it is for: Someone I care about" in held
    assert "Why it is here: the automatic spam check held it" in body
    assert "Why it is here: the office's mail server refused it for a security or spam rule" in body
    assert f"Reference: {refused}" in body
    assert not re.search(r"\b(SMTP|550|5\.7\.1)\b", body)  # no codes: the operator has those
    assert f"Delivered to this mailbox since the last summary (1):\n  {delivered}\n" in body
    assert "junk or quarantine folder" in body
    assert "flask" not in body  # staff have no shell; the operator releases a request

    # The next summary goes out although nothing new was held, and lists only what was delivered since.
    assert visitor.submit(name="Later Person").status_code == 303
    (later,) = deliver(smtp_app).delivered
    message, body = digest(smtp_app, inbox)
    assert message["Subject"] == "Website daily summary: 0 to check by hand, 1 delivered"
    assert "Nothing from the website was held or refused since the last summary." in body
    assert later in body and delivered not in body and refused not in body


def test_an_empty_summary_still_goes_out(smtp_app, inbox):
    message, body = digest(smtp_app, inbox)
    assert message["Subject"] == "Website daily summary: 0 to check by hand, 0 delivered"
    assert "No inquiry emails were delivered since the last summary." in body
    assert "If it stops\narriving, please tell the website's operator." in body
    with db(smtp_app) as connection:
        assert connection.execute("SELECT COUNT(*) FROM digests").fetchone()[0] == 1


def test_the_timer_runs_every_weekday():
    timer = (ROOT / "deploy" / "systemd" / "rsct-digest.timer").read_text()
    assert re.search(r"^OnCalendar=Mon\.\.Fri \*-\*-\* 08,15:00:00 America/New_York$", timer, re.M)
    assert "Persistent=true" in timer
