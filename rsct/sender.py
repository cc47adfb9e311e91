"""The sender's work, read from the app's settings: deliver what is due, send the digest, apply retention.

The outbox and retention modules take plain values; this is the edge that reads `current_app`
for the CLI commands (and the tests) that run inside the app.
"""

import os

from flask import current_app

from . import mailer, outbox, retention


def deliver_due(worker: str | None = None, should_stop=lambda: False) -> outbox.Outcome:
    """Deliver every inquiry that is due now to the configured mail server (or files in development)."""
    config = current_app.config
    return outbox.deliver_due(
        config["DATABASE"], mailer.send_inquiry, outbox.lease_seconds(config["MAIL_TIMEOUT"]), worker, should_stop
    )


def send_digest() -> int:
    """Send the digest of held and refused requests; returns how many it listed."""
    return outbox.send_digest(current_app.config["DATABASE"], mailer.send_digest)


def apply_retention() -> list[str]:
    """Apply the retention period now; returns the references erased."""
    config = current_app.config
    mail_folder = None if config["MAIL_SERVER"] else os.path.join(current_app.instance_path, "mail")
    return retention.apply(
        config["DATABASE"], config["INQUIRY_RETENTION_DAYS"], config["RATE_LIMIT_SECONDS"], mail_folder
    )
