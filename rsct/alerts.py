"""Tell the operator when inquiries stop reaching the office, and when they flow again, without mail.

The mail relay may be what broke, so alerts take another path: a POST over HTTPS to FLASK_ALERT_URL
(an ntfy topic, a chat webhook, a Healthchecks check). What the operator was last told about each
topic is kept in the database, so a timer that checks every few minutes reports each change once.
Alerts carry counts and ages, never a visitor's details or references.
"""

import json
import logging
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from http.client import HTTPException
from urllib.parse import urlsplit

from . import storage

log = logging.getLogger("rsct.alerts")
TIMEOUT_SECONDS = 10.0
SENT, UNCHANGED, WAITING, FAILED = "sent", "unchanged", "waiting", "failed"


class AlertError(Exception):
    """The alert could not be handed over: no connection, a timeout, or an error status."""


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect is reported as an error: it could lead from https to http, or somewhere else entirely."""

    def redirect_request(self, *args, **kwargs):
        return None


_opener = urllib.request.build_opener(_NoRedirect)


def post(url: str, fmt: str, text: str, problem: bool = True, timeout: float = TIMEOUT_SECONDS) -> None:
    """Send one alert. `text` and `healthchecks` POST the text itself, `json` posts {"text": ...};
    `healthchecks` goes to URL when all is well and to URL/fail when not (the text becomes the ping's log)."""
    if fmt == "json":
        body, content_type = json.dumps({"text": text}).encode(), "application/json"
    else:
        body, content_type = text.encode(), "text/plain; charset=utf-8"
    if fmt == "healthchecks" and problem:
        url += "/fail"
    request = urllib.request.Request(
        url, data=body, method="POST", headers={"Content-Type": content_type, "User-Agent": "rsct-alerts"}
    )
    host = urlsplit(url).netloc
    try:
        with _opener.open(request, timeout=timeout) as response:
            response.read(4096)
    except urllib.error.HTTPError as error:
        error.close()  # it holds the connection open
        raise AlertError(f"{host} answered HTTP {error.code}") from error
    except urllib.error.URLError as error:
        raise AlertError(f"{host}: {error.reason}") from error
    except (OSError, HTTPException) as error:  # a timeout while reading, a dropped connection
        raise AlertError(f"{host}: {error.__class__.__name__}") from error


def tell(
    path: str,
    topic: str,
    problem: bool,
    send: Callable[[], None],
    now: float | None = None,
    quiet_seconds: float = 0,
    retry_seconds: float = 0,
) -> str:
    """Call send() when `problem` differs from what the operator was last told about `topic`.

    Returns SENT, UNCHANGED, WAITING (a retry or a new problem alert not due yet) or FAILED (logged;
    tried again on a later call, no sooner than retry_seconds). A new problem alert comes no sooner
    than quiet_seconds after the last one, so a flapping problem does not flood the operator.
    """
    now = time.time() if now is None else now
    with storage.write(path) as db:
        db.execute("INSERT OR IGNORE INTO alerts (topic) VALUES (?)", (topic,))
        db.execute("UPDATE alerts SET problem = ? WHERE topic = ?", (int(problem), topic))
        row = db.execute("SELECT * FROM alerts WHERE topic = ?", (topic,)).fetchone()
        if bool(row["told_problem"]) == problem:
            return UNCHANGED
        if row["tried_at"] is not None and now - row["tried_at"] < retry_seconds:
            return WAITING
        if problem and row["problem_sent_at"] is not None and now - row["problem_sent_at"] < quiet_seconds:
            return WAITING
        # Taken in the transaction, so that two senders meeting the same problem send one alert.
        db.execute("UPDATE alerts SET tried_at = ? WHERE topic = ?", (now, topic))
    try:
        send()
    except AlertError as error:
        log.error("The %s alert could not be sent (tried again later): %s", topic, error)
        with storage.write(path) as db:
            db.execute("UPDATE alerts SET last_error = ? WHERE topic = ?", (str(error), topic))
        return FAILED
    with storage.write(path) as db:
        db.execute(
            "UPDATE alerts SET told_problem = ?, tried_at = NULL, last_error = NULL,"
            " problem_sent_at = CASE WHEN ? THEN ? ELSE problem_sent_at END WHERE topic = ?",
            (int(problem), int(problem), now, topic),
        )
    log.info("The %s alert was sent (%s)", topic, "a problem" if problem else "recovered")
    return SENT


def has_problem(path: str, topic: str) -> bool:
    """Whether the last check of `topic` found a problem."""
    with storage.opened(path) as db:
        row = db.execute("SELECT problem FROM alerts WHERE topic = ?", (topic,)).fetchone()
    return bool(row and row["problem"])


def site_name(site_url: str) -> str:
    return f"RSCT website ({urlsplit(site_url).hostname})"


def duration(seconds: float) -> str:
    minutes = round(seconds / 60)
    if minutes < 120:
        return f"{minutes} minute{'s' if minutes != 1 else ''}"
    return f"{minutes / 60:.0f} hours"


def outbox_text(site: str, report: dict, stuck_minutes: int) -> str:
    """What the monitor says: counts and ages only."""
    if not report["stuck"]:
        return f"{site}: inquiries are reaching the office again. None has waited longer than {stuck_minutes} minutes."
    waiting = report["counts"].get("pending", 0)
    age = report["oldest_undelivered_seconds"]
    parts = []
    if waiting:
        parts.append(f"{waiting} waiting, the oldest for {duration(age)}" if age is not None else f"{waiting} waiting")
    if report["failed_open"]:
        parts.append(f"{report['failed_open']} refused by the mail server")
    return (
        f"{site}: inquiries are not reaching the office ({'; '.join(parts)}). They are kept; on the server,"
        " `deploy/rsct-flask outbox status` shows why."
    )


def relay_text(site: str, reason: str | None) -> str:
    """What the sender says when the relay refuses the site's settings (a login, TLS, a client it will not serve)."""
    if reason is None:
        return f"{site}: the mail server accepts the site's mail again; waiting inquiries are on their way."
    return (
        f"{site}: the mail server refused the site's mail settings ({reason}). Inquiries are kept and retried."
        " Check FLASK_MAIL_USERNAME, FLASK_MAIL_PASSWORD and the TLS settings, or ask the relay to accept this server."
    )
