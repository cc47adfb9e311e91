"""The per-client limit on sending the form: kept in SQLite, shared by every worker, storing no address."""

import http.client
import os
import re
import socket
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path
from urllib.parse import urlencode

import pytest

from rsct import ratelimit

from helpers import (
    HTMX,
    PHONE_LINK,
    ROOT,
    Visitor,
    assert_is_form_region_fragment,
    assert_shown_in_form,
    stored_inquiries,
)

GUNICORN = Path(sys.executable).parent / "gunicorn"
PAUSED = "paused it for a few minutes"
HASH = re.compile(r"[0-9a-f]{64}")


@pytest.fixture
def app(make_app):
    return make_app(RATE_LIMIT_COUNT=3, RATE_LIMIT_SECONDS=600)


def rate_events(app) -> list[tuple[str, float]]:
    with closing(sqlite3.connect(app.config["DATABASE"])) as db:
        return db.execute("SELECT client, at FROM rate_events ORDER BY at").fetchall()


def add_rate_events(app, client: str, *ages: float) -> None:
    with closing(sqlite3.connect(app.config["DATABASE"])) as db, db:
        db.executemany(
            "INSERT INTO rate_events (client, at) VALUES (?, ?)", [(client, time.time() - age) for age in ages]
        )


def local_client_key(app) -> str:
    return ratelimit.client_key(app.config["SECRET_KEY"], "127.0.0.1")


def send_requests(client, count: int, htmx: bool = True) -> list[int]:
    visitor = Visitor(client)
    return [visitor.submit(message=f"Request {n}", htmx=htmx).status_code for n in range(count)]


@pytest.mark.parametrize("htmx", [True, False], ids=["htmx", "plain"])
def test_fourth_request_within_the_window_is_paused_with_values_kept(app, htmx):
    client = app.test_client()
    assert send_requests(client, 3, htmx) == ([200] * 3 if htmx else [303] * 3)
    data = Visitor(client).form(name="Zoë <O'Brien>", phone="203.555.0147", message="Still here\n& waiting")
    response = client.post("/contact", data=data, headers=HTMX if htmx else {})
    assert response.status_code == 429
    assert PAUSED in response.text
    assert PHONE_LINK in response.text
    assert_shown_in_form(response.text, data)
    if htmx:
        assert_is_form_region_fragment(response.text)
    else:
        assert "<html" in response.text
    assert response.headers["Cache-Control"] == "no-store"
    assert len(stored_inquiries(app)) == 3


def test_only_requests_that_would_be_stored_count(app):
    """Corrections after errors, and a repeat of a stored request, never use up the visitor's allowance."""
    client = app.test_client()
    visitor = Visitor(client)
    statuses = [visitor.submit(name="", htmx=True).status_code for _ in range(5)]
    assert statuses == [422] * 5
    data = visitor.form()
    statuses = [visitor.post(data, htmx=True).status_code for _ in range(5)]
    assert statuses == [200] * 5
    assert send_requests(client, 3) == [200, 200, 429]


def test_field_checks_never_count(app):
    client = app.test_client()
    data = Visitor(client).form()
    for _ in range(10):
        for field in ("phone", "email", "contact_method"):
            assert client.post(f"/contact/check/{field}", data=data, headers=HTMX).status_code == 200
    assert rate_events(app) == []
    assert send_requests(client, 4) == [200, 200, 200, 429]


def test_another_client_is_not_held_back(app):
    client = app.test_client()
    assert send_requests(client, 4)[-1] == 429
    neighbour = app.test_client()
    neighbour.environ_base["REMOTE_ADDR"] = "192.0.2.10"
    assert send_requests(neighbour, 1) == [200]


def test_only_a_hash_of_the_address_is_stored(app):
    client = app.test_client()
    send_requests(client, 2)
    events = rate_events(app)
    assert len(events) == 2
    for client_key, _ in events:
        assert HASH.fullmatch(client_key)
        assert client_key == local_client_key(app)
    with closing(sqlite3.connect(app.config["DATABASE"])) as db:
        for table in ("rate_events", "inquiries", "outbox"):
            for row in db.execute(f"SELECT * FROM {table}"):
                assert not any("127.0.0.1" in str(value) for value in row), table


def test_the_hash_depends_on_the_secret_key():
    assert ratelimit.client_key("one key", "127.0.0.1") != ratelimit.client_key("another key", "127.0.0.1")
    assert ratelimit.client_key("one key", "127.0.0.1") != ratelimit.client_key("one key", "127.0.0.2")


def test_requests_older_than_the_window_are_forgotten(app):
    add_rate_events(app, local_client_key(app), 601, 700, 5000)
    add_rate_events(app, "f" * 64, 900)
    client = app.test_client()
    assert send_requests(client, 3) == [200, 200, 200]
    events = rate_events(app)
    assert len(events) == 3
    assert all(time.time() - at < 600 for _, at in events)


def test_requests_inside_the_window_are_remembered(app):
    add_rate_events(app, local_client_key(app), 10, 300, 590)
    client = app.test_client()
    assert send_requests(client, 1) == [429]


def test_allow_counts_per_window_at_given_times(app):
    path = app.config["DATABASE"]
    results = [ratelimit.allow(path, "a" * 64, 2, 60, now=t) for t in (0, 1, 2, 59, 60, 60.5, 61, 61.5)]
    assert results == [True, True, False, False, True, False, True, False]


# ----------------------------------------------------------------------------------------------
# Across worker processes: real gunicorn, two workers, one SQLite file


def free_port() -> int:
    with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def http_request(port: int, method: str, path: str, body: bytes | None = None, headers: dict | None = None) -> int:
    """One request on its own connection (Connection: close), so the workers share the load."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request(method, path, body=body, headers={"Connection": "close", **(headers or {})})
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


def wait_until_answering(port: int, process: subprocess.Popen, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"gunicorn exited with {process.returncode}")
        try:
            if http_request(port, "GET", "/contact") == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"gunicorn did not answer within {timeout} seconds")


@pytest.fixture
def gunicorn_site(tmp_path):
    """The site under gunicorn with two workers and a limit of 4 requests per 10 minutes."""
    if not GUNICORN.exists():
        pytest.fail(f"gunicorn is missing from the virtual environment: {GUNICORN}")
    port = free_port()
    instance = tmp_path / "instance"
    env = {name: value for name, value in os.environ.items() if not name.startswith("FLASK_")}
    env.update(
        FLASK_CONFIG="testing",
        FLASK_INSTANCE_PATH=str(instance),
        FLASK_RATE_LIMIT_COUNT="4",
        FLASK_RATE_LIMIT_SECONDS="600",
        PYTHONDONTWRITEBYTECODE="1",
    )
    log_path = tmp_path / "gunicorn.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [
                str(GUNICORN),
                "--workers",
                "2",
                "--bind",
                f"127.0.0.1:{port}",
                "--no-control-socket",
                "--graceful-timeout",
                "5",
                "app:create_app()",
            ],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until_answering(port, process)
        yield port
    except AssertionError as error:
        raise AssertionError(f"{error}\n{log_path.read_text(errors='replace')}") from None
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=15)


FORM = {"name": "Alex", "contact_method": "call", "phone": "203.555.0147", "form_token": "x"}
FORM_HEADERS = {"Content-Type": "application/x-www-form-urlencoded", "HX-Request": "true"}


def form_body(n: int) -> bytes:
    return urlencode({**FORM, "message": f"Request {n}"}).encode()


def test_limit_is_shared_by_every_worker_process(gunicorn_site):
    port = gunicorn_site
    # A request whose body has not arrived yet keeps one worker busy (sync workers serve one connection
    # at a time), so the next four requests are all answered by the other worker process.
    held = socket.create_connection(("127.0.0.1", port), timeout=10)
    with closing(held):
        body = form_body(0)
        head = "".join(
            f"{name}: {value}\r\n"
            for name, value in {
                **FORM_HEADERS,
                "Host": f"127.0.0.1:{port}",
                "Connection": "close",
                "Content-Length": len(body),
            }.items()
        )
        held.sendall(f"POST /contact HTTP/1.1\r\n{head}\r\n".encode())
        other_worker = [http_request(port, "POST", "/contact", form_body(n), FORM_HEADERS) for n in range(1, 5)]
        held.sendall(body)
        with closing(http.client.HTTPResponse(held)) as response:
            response.begin()
            response.read()
            held_worker = response.status
    either_worker = [http_request(port, "POST", "/contact", form_body(n), FORM_HEADERS) for n in range(5, 10)]
    statuses = other_worker + [held_worker] + either_worker
    assert statuses.count(200) == 4, statuses
    assert statuses.count(429) == 6, statuses
    # The busy worker had seen no request of its own, yet it knew the limit was used up.
    assert other_worker == [200] * 4 and held_worker == 429, statuses


def test_purge_forgets_hashes_the_limit_no_longer_needs(app):
    add_rate_events(app, local_client_key(app), 601, 700, 10)
    result = app.test_cli_runner().invoke(args=["inquiry", "purge"])
    assert result.exit_code == 0, result.output
    assert [age for _, age in rate_events(app)] == [pytest.approx(time.time() - 10, abs=5)]
