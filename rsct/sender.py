"""The sender's work, read from the app's settings: deliver what is due, send the digest, apply retention.

The outbox and retention modules take plain values; this is the edge that reads `current_app`
for the CLI commands (and the tests) that run inside the app.
"""

import os

from flask import current_app

from . import alerts, mailer, outbox, retention, smime

RELAY_ALERT_QUIET_SECONDS = 3600  # a relay that keeps changing its mind alerts at most once an hour
ALERT_RETRY_SECONDS = 300  # the sender loops every few seconds; an alert endpoint that is down is not hammered


def deliver_due(worker: str | None = None, should_stop=lambda: False) -> outbox.Outcome:
    """Deliver every inquiry that is due now to the configured mail server (or files in development).

    When the relay refuses the site's settings, the operator is alerted; when it accepts mail again, told so.
    """
    config = current_app.config
    outcome = outbox.deliver_due(
        config["DATABASE"],
        mailer.send_inquiry,
        outbox.lease_seconds(config["MAIL_TIMEOUT"]),
        worker,
        should_stop,
        config["OUTBOX_RETRY_SECONDS"],
    )
    if outcome.setup_problem or outcome.delivered:
        watch_relay(outcome.setup_problem)
    return outcome


def watch_relay(problem: str | None) -> str:
    """Record whether the relay refuses the site's settings, and alert on each change (see alerts.tell)."""
    config = current_app.config
    if not config["ALERT_URL"]:
        return "not configured"  # the sender's log line is all there is
    text = alerts.relay_text(alerts.site_name(config["SITE_URL"]), problem)
    return alerts.tell(
        config["DATABASE"],
        "relay",
        bool(problem),
        lambda: alerts.post(config["ALERT_URL"], config["ALERT_FORMAT"], text, bool(problem)),
        quiet_seconds=RELAY_ALERT_QUIET_SECONDS,
        retry_seconds=ALERT_RETRY_SECONDS,
    )


def monitor() -> tuple[dict, str]:
    """Check delivery once and tell the operator about a change; returns the status report and what happened.

    The text and json formats say each change once (stuck, then recovered); the healthchecks format pings on
    every run, to URL/fail while stuck or while the relay refuses the site's settings.
    """
    config = current_app.config
    report = outbox.status(config["DATABASE"], config["OUTBOX_STUCK_MINUTES"])
    text = alerts.outbox_text(alerts.site_name(config["SITE_URL"]), report, config["OUTBOX_STUCK_MINUTES"])
    if not config["ALERT_URL"]:
        return report, "not configured"
    if config["ALERT_FORMAT"] == "healthchecks":
        relay_problem = alerts.has_problem(config["DATABASE"], "relay")
        if relay_problem and not report["stuck"]:
            text = alerts.relay_text(alerts.site_name(config["SITE_URL"]), "see `journalctl -u rsct-sender`")
        elif not report["stuck"]:
            text = f"OK: no inquiry has waited longer than {config['OUTBOX_STUCK_MINUTES']} minutes."
        unusable = [  # an expired or broken S/MIME certificate keeps the check down; an expiring one does not
            f.message
            for f in (
                smime.signer_findings(
                    config["SMIME_SIGNER_CERT"], config["SMIME_SIGNER_KEY"], config["MAIL_DEFAULT_SENDER"]
                )
                if config["SMIME_SIGNER_CERT"]
                else []
            )
            if f.level == "error"
        ]
        if unusable and not (report["stuck"] or relay_problem):
            text = f"{alerts.site_name(config['SITE_URL'])}: the S/MIME certificate cannot sign: {'; '.join(unusable)}."
        try:
            alerts.post(config["ALERT_URL"], "healthchecks", text, report["stuck"] or relay_problem or bool(unusable))
        except alerts.AlertError as error:
            alerts.log.error("The monitor's ping could not be sent (tried again at the next run): %s", error)
            return report, alerts.FAILED
        return report, alerts.SENT
    told = alerts.tell(
        config["DATABASE"],
        "outbox",
        report["stuck"],
        lambda: alerts.post(config["ALERT_URL"], config["ALERT_FORMAT"], text, report["stuck"]),
    )
    certificate = watch_certificate()
    return report, alerts.FAILED if alerts.FAILED in (told, certificate) else told


def watch_certificate() -> str | None:
    """Alert once when the S/MIME signer certificate expires within 30 days, has expired or cannot be used,
    and once when it is fine again. Leads keep flowing meanwhile: the signature is what suffers."""
    config = current_app.config
    if not config["SMIME_SIGNER_CERT"] or not config["ALERT_URL"]:
        return None
    findings = smime.signer_findings(
        config["SMIME_SIGNER_CERT"], config["SMIME_SIGNER_KEY"], config["MAIL_DEFAULT_SENDER"]
    )
    site = alerts.site_name(config["SITE_URL"])
    if findings:
        text = (
            f"{site}: the S/MIME certificate that signs the office's emails needs attention: "
            + "; ".join(f.message for f in findings)
            + ". Renew it (see DEPLOY.md, S/MIME); inquiries still flow."
        )
    else:
        text = f"{site}: the S/MIME certificate is fine again."
    return alerts.tell(
        config["DATABASE"],
        "smime",
        bool(findings),
        lambda: alerts.post(config["ALERT_URL"], config["ALERT_FORMAT"], text, bool(findings)),
    )


def send_digest() -> int:
    """Send the digest of held and refused requests; returns how many it listed."""
    try:
        return outbox.send_digest(current_app.config["DATABASE"], mailer.send_digest)
    except mailer.SetupError as error:
        watch_relay(str(error))  # the digest may be the only mail that day: the operator still hears of it
        raise


def apply_retention() -> list[str]:
    """Apply the retention period now; returns the references erased."""
    config = current_app.config
    mail_folder = None if config["MAIL_SERVER"] else os.path.join(current_app.instance_path, "mail")
    return retention.apply(
        config["DATABASE"], config["INQUIRY_RETENTION_DAYS"], config["RATE_LIMIT_SECONDS"], mail_folder
    )
