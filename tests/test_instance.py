"""What is created on disk, and by whom: the web app before its first request, the commands that write, and
`flask --app app setup`; never a command that only reads."""

import pytest

from app import create_app


def fresh_app(folder, **settings):
    """An app as `flask` or gunicorn makes it: create_app() only, nothing prepared."""
    return create_app({"CONFIG_NAME": "testing", "INSTANCE_PATH": str(folder), **settings})


@pytest.mark.parametrize(
    "args", [["outbox", "status"], ["inquiry", "list"], ["inquiry", "show", "RSCT-ABCDEF"], ["inquiry", "verify", "-"]]
)
def test_read_only_commands_create_nothing(tmp_path, args):
    fresh = tmp_path / "fresh"
    app = fresh_app(fresh)
    result = app.test_cli_runner().invoke(args=args, input=b"Subject: x\n\nhello\n")
    assert result.exit_code == 2, result.output
    assert not fresh.exists()


def test_first_request_and_setup_create_the_instance(tmp_path):
    fresh = tmp_path / "fresh"
    app = fresh_app(fresh)
    assert not fresh.exists()
    assert app.test_client().get("/contact").status_code == 200
    assert (fresh / "rsct.sqlite3").exists() and (fresh / "signing_key").exists()
    other = tmp_path / "other"
    app = fresh_app(other)
    result = app.test_cli_runner().invoke(args=["setup"])
    assert result.exit_code == 0, result.output
    assert (other / "rsct.sqlite3").exists()
    assert app.test_cli_runner().invoke(args=["outbox", "status"]).exit_code == 0


def test_a_database_out_of_reach_at_the_first_request_still_serves_pages(tmp_path):
    folder = tmp_path / "instance"
    app = fresh_app(folder, DATABASE="/proc/rsct-nowhere.sqlite3")
    client = app.test_client()
    assert client.get("/").status_code == 200  # the page a visitor in crisis needs, with the phone number
    assert client.get("/healthz").status_code == 503
    app.config["DATABASE"] = str(folder / "rsct.sqlite3")  # the disk is back: the next request prepares it
    assert client.get("/healthz").status_code == 200
    assert (folder / "rsct.sqlite3").exists()
