"""/healthz/mail is public: it says ok or stuck and nothing that would date or count anyone's request."""

import re
import time

from helpers import Visitor, db


def test_mail_health_answers_ok_or_stuck_and_no_numbers(make_app):
    app = make_app(OUTBOX_STUCK_MINUTES=30)
    client = app.test_client()
    response = client.get("/healthz/mail")
    assert (response.status_code, response.get_json()) == (200, {"status": "ok"})

    assert Visitor(client).submit().status_code == 303
    response = client.get("/healthz/mail")
    assert (response.status_code, response.get_json()) == (200, {"status": "ok"})  # waiting, not for long
    assert not re.search(r"\d", response.text)

    with db(app) as connection:
        connection.execute("UPDATE inquiries SET submitted_at = ?", (time.time() - 31 * 60,))
    response = client.get("/healthz/mail")
    assert (response.status_code, response.get_json()) == (503, {"status": "stuck"})
    assert not re.search(r"\d", response.text)
    assert response.headers["Cache-Control"] == "no-store"

    status = app.test_cli_runner().invoke(args=["outbox", "status"])
    assert status.exit_code == 4 and "pending: 1" in status.output  # the counts stay on the server


def test_mail_health_is_stuck_when_the_database_cannot_be_read(make_app, tmp_path):
    app = make_app()
    (tmp_path / "not-a-folder").write_text("")
    app.config["DATABASE"] = str(tmp_path / "not-a-folder" / "rsct.sqlite3")
    response = app.test_client().get("/healthz/mail")
    assert (response.status_code, response.get_json()) == (503, {"status": "stuck"})
