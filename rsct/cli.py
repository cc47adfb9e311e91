"""Operator commands: `flask --app app outbox ...`, `inquiry ...`, `backup` and `setup`.

Exit statuses (the README's table): 0 success; 1 the command's negative answer; 2 could not do
the job (bad settings, an unreadable file, no keys, no database, a crash); above that, codes of
one command (`inquiry verify` 3: authentic with additions; `outbox status` 4: stuck).
"""

import os
import signal
import sqlite3
import sys
import time
import traceback
from datetime import UTC, datetime

import click
from flask import current_app
from flask.cli import AppGroup, with_appcontext

from . import alerts, inquiries, instance, mailer, outbox, security, sender, smime, storage, verify

EXIT_FAILED = 2  # could not do the job (the README's exit-status table)
EXIT_STUCK = 4  # inquiries are not reaching the office
POLL_SECONDS = 2.0
PURGE_EVERY_SECONDS = 60.0


class Failed(click.ClickException):
    """The command could not do its job: exit status 2, with one line saying why."""

    exit_code = EXIT_FAILED


class Command(click.Command):
    """A command whose crash exits 2 ("could not do the job"), not Python's 1 (a negative answer)."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except Exception as error:
            # The traceback without the exception's message, which could quote a visitor (as in rsct.logs).
            frames = "".join(traceback.format_tb(error.__traceback__))
            click.echo(f"Traceback (message withheld):\n{frames}{error.__class__.__name__}", err=True)
            ctx.exit(EXIT_FAILED)


class Commands(AppGroup):
    command_class = Command


outbox_cli = Commands("outbox", help="Deliver inquiries to the office and report on delivery.")
inquiry_cli = Commands("inquiry", help="Read, release, erase and verify inquiries.")
alert_cli = Commands("alert", help="Alerts to the operator that do not depend on mail.")


def prepared() -> dict:
    """The settings, after making the instance folder, development secrets and database (commands that write)."""
    instance.prepare(current_app.config)
    return current_app.config


def existing_database() -> str:
    """The database path for a read-only command, which must not create it."""
    path = current_app.config["DATABASE"]
    if not os.path.exists(path):
        raise Failed(
            f"There is no database at {path} yet: the site has not been set up here "
            "(run `flask --app app setup`), or FLASK_DATABASE / FLASK_INSTANCE_PATH point elsewhere."
        )
    return path


@outbox_cli.command("run")
def outbox_run():
    """Keep delivering until stopped; SIGTERM or Ctrl-C finishes the current message first."""
    prepared()
    stopping = []
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopping.append(True))
    worker = outbox.worker_id()
    target = current_app.config["MAIL_SERVER"] or "files under " + current_app.instance_path + "/mail"
    click.echo(f"Outbox sender started; delivering to {target}.")
    last_purge = float("-inf")  # apply retention in the first round: monotonic() may be small after a boot
    while not stopping:
        outcome = sender.deliver_due(worker, should_stop=lambda: bool(stopping))
        for reference in outcome.delivered:
            click.echo(f"Delivered {reference}")
        if time.monotonic() - last_purge > PURGE_EVERY_SECONDS:
            sender.apply_retention()
            last_purge = time.monotonic()
        deadline = time.monotonic() + POLL_SECONDS
        while not stopping and time.monotonic() < deadline:
            time.sleep(0.1)
    click.echo("Outbox sender stopped.")


@outbox_cli.command("send")
def outbox_send():
    """Deliver what is due once, then exit (for a timer). Exits 1 if anything could not be delivered."""
    prepared()
    outcome = sender.deliver_due()
    click.echo(f"Delivered {len(outcome.delivered)}, will retry {len(outcome.retrying)}, failed {len(outcome.failed)}.")
    sys.exit(1 if outcome.retrying or outcome.failed else 0)


@outbox_cli.command("status")
def outbox_status():
    """Counts by state, the oldest undelivered inquiry, recent failures. Exits 4 when something is stuck."""
    config = current_app.config
    report = outbox.status(existing_database(), config["OUTBOX_STUCK_MINUTES"])
    for state in ("pending", "delivered", "failed", "quarantined"):
        click.echo(f"{state}: {report['counts'].get(state, 0)}")
    age = report["oldest_undelivered_seconds"]
    click.echo("oldest undelivered: " + (f"{age / 60:.1f} minutes" if age is not None else "none"))
    for failure in report["failures"]:
        click.echo(
            f"  {failure['reference']} ({failure['state']}, {failure['attempts']} attempts): {failure['last_error']}"
        )
    if config["SMIME_SIGNER_CERT"]:
        click.echo(
            "S/MIME signer: "
            + smime_status(config["SMIME_SIGNER_CERT"], config["SMIME_SIGNER_KEY"], config["MAIL_DEFAULT_SENDER"])
        )
    if report["stuck"]:
        click.echo(
            f"STUCK: an inquiry has waited more than {config['OUTBOX_STUCK_MINUTES']} minutes, or one failed for good.",
            err=True,
        )
        sys.exit(EXIT_STUCK)
    click.echo("OK")


def smime_status(cert: str, key: str, sender: str) -> str:
    """One line on the S/MIME signer for `outbox status`: its expiry, or what is wrong with it."""
    try:
        signer = smime.load_signer(cert, key)  # once: loading the key costs about 0.3 s of CPU
    except smime.SmimeError as error:
        return f"NOT USABLE: {error}"
    findings = smime.check(signer, sender)
    if findings:
        return "; ".join(f"{'NOT USABLE' if f.level == 'error' else 'WARNING'}: {f.message}" for f in findings)
    return f"ok, expires {signer.certificate.not_valid_after_utc:%Y-%m-%d} ({smime.days_left(signer):.0f} days)"


@outbox_cli.command("monitor")
def outbox_monitor():
    """Check delivery and alert the operator when it stops and when it recovers (run by the monitor timer).

    Exits 4 while something is stuck, 2 when an alert could not be sent (it is tried again at the next run).
    """
    config = prepared()  # it records what it alerted, so it may write
    report, alerted = sender.monitor()
    if report["stuck"]:
        click.echo(alerts.outbox_text(alerts.site_name(config["SITE_URL"]), report, config["OUTBOX_STUCK_MINUTES"]))
    else:
        click.echo(f"OK: no inquiry has waited longer than {config['OUTBOX_STUCK_MINUTES']} minutes.")
    if alerted == "not configured":
        click.echo("FLASK_ALERT_URL is not set: nobody is alerted, only this exit status tells.", err=True)
    elif alerted == alerts.FAILED:
        click.echo("The alert could not be sent; it is tried again at the next run.", err=True)
    if report["stuck"]:
        sys.exit(EXIT_STUCK)
    if alerted == alerts.FAILED:
        sys.exit(EXIT_FAILED)


@outbox_cli.command("test-email")
def outbox_test_email():
    """Send the office mailbox a message marked as a test (no visitor data, not an inquiry)."""
    try:
        where = mailer.deliver(mailer.test_message(), "test")
    except (mailer.TransientError, mailer.PermanentError) as error:
        click.echo(f"The test message could not be sent: {error}", err=True)
        sys.exit(EXIT_FAILED)
    click.echo(f"Test message sent to {current_app.config['INQUIRY_RECIPIENT']} through {where}.")


@alert_cli.command("test")
def alert_test():
    """Send a test alert to FLASK_ALERT_URL, so the operator sees that alerts reach them.

    In the healthchecks format it pings URL/fail: the check goes down until the next healthy monitor run.
    """
    config = current_app.config
    if not config["ALERT_URL"]:
        click.echo('FLASK_ALERT_URL is not set; see DEPLOY.md, "Alerts".', err=True)
        sys.exit(EXIT_FAILED)
    site = alerts.site_name(config["SITE_URL"])
    try:
        alerts.post(
            config["ALERT_URL"],
            config["ALERT_FORMAT"],
            f"{site}: a test alert (`alert test`). If you can read this, alerts reach you.",
        )
    except alerts.AlertError as error:
        click.echo(f"The test alert could not be sent: {error}", err=True)
        sys.exit(EXIT_FAILED)
    click.echo(f"Test alert sent ({config['ALERT_FORMAT']}).")


def _when(timestamp) -> str:
    return mailer.local_time(timestamp) if timestamp else "-"


@inquiry_cli.command("list")
@click.option("--limit", default=50, show_default=True)
def inquiry_list(limit):
    """The newest inquiries: reference, time, state (no personal details; use `show`)."""
    for row in inquiries.recent(existing_database(), limit):
        flags = [
            flag
            for flag, on in (
                ("possibly automated", row["possibly_automated"]),
                ("sealed", row["sealed"]),
                ("erased", row["erased_at"]),
            )
            if on
        ]
        reason = f" ({row['quarantine_reason']})" if row["quarantine_reason"] else ""
        click.echo(
            f"{row['reference']}  {_when(row['submitted_at'])}  {row['state']}{reason}"
            + (f"  [{', '.join(flags)}]" if flags else "")
        )


@inquiry_cli.command("show")
@click.argument("reference")
def inquiry_show(reference):
    """Everything stored for one inquiry."""
    row = inquiries.find(existing_database(), reference)
    if row is None:
        raise click.ClickException(f"No inquiry {reference}.")
    click.echo(f"Reference: {row['reference']}\nSubmitted: {_when(row['submitted_at'])}\nState: {row['state']}")
    if row["quarantine_reason"]:
        click.echo(f"Held because: {row['quarantine_reason']}")
    click.echo(
        f"Attempts: {row['attempts'] or 0}  Last error: {row['last_error'] or '-'}  "
        f"Delivered: {_when(row['delivered_at'])}"
    )
    if row["erased_at"]:
        click.echo(f"Personal details erased: {_when(row['erased_at'])}")
        return
    if row["sealed"]:
        click.echo("Details: sealed (encrypted for the office; only the office's mail program can open them)")
        return
    for name, value in inquiries.load_fields(row).items():
        click.echo(f"{name}: {value if value is not None else '-'}")


@inquiry_cli.command("release")
@click.argument("reference")
def inquiry_release(reference):
    """Deliver a quarantined (or failed) inquiry as a normal one."""
    config = prepared()
    domain = mailer.sender_domain(config["MAIL_DEFAULT_SENDER"])
    if not inquiries.release(config["DATABASE"], reference, domain):
        raise click.ClickException(f"{reference} is not a quarantined or failed inquiry with its details.")
    click.echo(f"{reference.upper()} will be delivered by the outbox sender.")


@inquiry_cli.command("delete")
@click.argument("reference")
def inquiry_delete(reference):
    """Erase one inquiry's personal details at the visitor's request (the reference remains)."""
    try:
        erased = inquiries.erase(prepared()["DATABASE"], reference)
    except inquiries.BeingSent:
        raise Failed(f"{reference} is being emailed right now; try again in a minute.") from None
    if not erased:
        raise click.ClickException(f"No inquiry {reference} with details left to erase.")
    click.echo(f"Erased the details of {reference.upper()}.")


@inquiry_cli.command("purge")
def inquiry_purge():
    """Apply the retention period now."""
    prepared()
    erased = sender.apply_retention()
    click.echo(f"Erased the details of {len(erased)} inquiries.")


@inquiry_cli.command("digest")
def inquiry_digest():
    """Send the office its summary: requests held or refused, and references delivered (sent even when empty)."""
    prepared()
    try:
        count = sender.send_digest()
    except (mailer.TransientError, mailer.PermanentError) as error:
        raise Failed(f"The digest could not be sent: {error}") from None
    click.echo(f"Digest sent, listing {count} held or refused requests." if count else "Digest sent: nothing held.")


@inquiry_cli.command("verify")
@click.argument("file", type=click.File("rb"))
def inquiry_verify(file):
    """Check an email saved as a file (.eml, or Outlook's .txt; - reads standard input) against the
    website's signature, and print what can be trusted.

    Exits 0 when the email is as the website sent it; 1 when it is not authentic; 3 when the inquiry is
    authentic but the email carries additions the signature does not cover (they are printed apart);
    2 when it could not be checked. Creates nothing on disk.
    """
    keys = current_app.config["INQUIRY_SIGNING_KEYS"]
    if not keys:
        raise Failed(
            "No signing keys are configured, so nothing was checked. On the server, run this through the "
            "deployment's wrapper, which loads the site's settings: deploy/rsct-flask inquiry verify - < FILE"
        )
    report = verify.check_email(keys, file.read())
    if report.status == verify.COULD_NOT_CHECK:
        raise Failed(f"Could not check this file: {report.reason}.")
    if report.status == verify.NOT_AUTHENTIC:
        click.echo(f"NOT AUTHENTIC: {report.reason}.", err=True)
        if report.hint:
            click.echo(f"What to do: {report.hint}", err=True)
        sys.exit(report.status)
    inquiry = report.inquiry
    click.echo(f"Authentic: inquiry {inquiry.reference}, submitted {inquiry.submitted}.")
    for line in inquiry.fields:
        click.echo(f"  {line}")
    if report.smime_signed:
        click.echo(
            "This email is also S/MIME signed: that signature is for the office's mail program to check and show;"
            " this command checked the website's own signature inside it."
        )
    if report.status == verify.AUTHENTIC:
        click.echo("Everything in this email is as the website sent it.")
        return
    click.echo("")
    click.echo("NOT COVERED BY THE SIGNATURE - added after the website sent the email; do not act on it:")
    for what, text in report.uncovered:
        click.echo(f"- {what}:")
        for line in text.split("\n"):
            click.echo(f"    {line}")
    click.echo("Only the inquiry lines printed at the top can be trusted.")
    sys.exit(report.status)


@click.command("backup", cls=Command)
@click.argument("destination", type=click.Path(dir_okay=False, writable=True))
def backup(destination):
    """Copy the database safely while the site runs (SQLite's online backup)."""
    database = existing_database()
    if not os.path.exists(destination):
        os.close(os.open(destination, os.O_WRONLY | os.O_CREAT, 0o600))  # owner-only, like the original
    with storage.opened(database) as source:
        target = sqlite3.connect(destination)
        try:
            source.backup(target)
        finally:
            target.close()
    click.echo(f"Backed up to {destination} at {datetime.now(UTC):%Y-%m-%d %H:%M:%SZ}.")


@click.command("setup", cls=Command)
@with_appcontext
def setup():
    """Create the instance folder, development secrets and database, or bring the database up to date."""
    config = prepared()
    click.echo(f"Ready: database {config['DATABASE']} is up to date.")


@click.command("security-headers", cls=Command)
def security_headers():
    """Print the app's security headers as nginx directives (for deploy/nginx)."""
    click.echo(security.nginx_snippet(current_app.config), nl=False)


smime_cli = Commands("smime", help="Check and make the S/MIME certificate that signs the office's emails.")


@smime_cli.command("check")
@click.option("--cert", help="Certificate file (default: FLASK_SMIME_SIGNER_CERT).")
@click.option("--key", help="Key file (default: FLASK_SMIME_SIGNER_KEY).")
def smime_check(cert, key):
    """Say in plain words whether the signer files can sign the site's emails. Exit 0 usable (warnings
    allowed), 1 not usable, 2 nothing to check."""
    config = current_app.config
    if config["SMIME_OFFICE_CERT"]:
        try:
            offices = smime.load_office_certificates(config["SMIME_OFFICE_CERT"])
        except smime.SmimeError as error:
            click.echo(f"NOT USABLE: {error}.", err=True)
            sys.exit(1)
        for office_cert in offices:
            until = office_cert.not_valid_after_utc
            names = ", ".join(sorted(smime.certificate_addresses(office_cert))) or "no address"
            click.echo(f"Sealed mode: encrypting for {names} (certificate valid until {until:%Y-%m-%d}).")
    cert, key = cert or config["SMIME_SIGNER_CERT"], key or config["SMIME_SIGNER_KEY"]
    if not (cert and key):
        if config["SMIME_OFFICE_CERT"]:
            return  # sealed without signing: the office certificates were the thing to check
        click.echo("S/MIME signing is off: set FLASK_SMIME_SIGNER_CERT and FLASK_SMIME_SIGNER_KEY.", err=True)
        sys.exit(2)
    try:
        signer = smime.load_signer(cert, key)
    except smime.SmimeError as error:
        click.echo(f"NOT USABLE: {error}.", err=True)
        sys.exit(1)
    findings = smime.check(signer, config["MAIL_DEFAULT_SENDER"])
    for finding in findings:
        click.echo(f"{'NOT USABLE' if finding.level == 'error' else 'WARNING'}: {finding.message}.", err=True)
    if any(finding.level == "error" for finding in findings):
        sys.exit(1)
    addresses = ", ".join(sorted(smime.certificate_addresses(signer.certificate)))
    click.echo(
        f"OK: the certificate for {addresses} matches its key and can sign email until "
        f"{signer.certificate.not_valid_after_utc:%Y-%m-%d} ({len(signer.chain)} chain certificate(s) included)."
    )


@smime_cli.command("new-ca")
@click.argument("folder", type=click.Path(file_okay=False))
@click.option("--name", default="RSCT website private CA", show_default=True, help="The CA's name.")
def smime_new_ca(folder, name):
    """Make a small private CA (ca.pem, ca.key, owner-only) for an office without a public S/MIME certificate."""
    try:
        cert_path, key_path = smime.new_ca(folder, name)
    except FileExistsError as error:
        raise Failed(f"{error.filename} exists already; nothing was changed.") from None
    click.echo(f"Wrote {cert_path} (give this to the office's mail programs) and {key_path} (keep it offline).")


@smime_cli.command("new-signer")
@click.argument("folder", type=click.Path(file_okay=False))
@click.option("--ca-cert", required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--ca-key", required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--address", help="The From address to certify (default: FLASK_MAIL_DEFAULT_SENDER).")
def smime_new_signer(folder, ca_cert, ca_key, address):
    """Make the signer certificate (signer.pem with the CA after it) and key (signer.key) for the From address."""
    address = address or current_app.config["MAIL_DEFAULT_SENDER"]
    try:
        cert_path, key_path = smime.new_signer(folder, ca_cert, ca_key, address)
    except FileExistsError as error:
        raise Failed(f"{error.filename} exists already; nothing was changed.") from None
    click.echo(f"Wrote {cert_path} and {key_path}: set FLASK_SMIME_SIGNER_CERT and FLASK_SMIME_SIGNER_KEY to them.")


@smime_cli.command("new-office-identity")
@click.argument("folder", type=click.Path(file_okay=False))
@click.option("--address", help="The office mailbox (default: FLASK_INQUIRY_RECIPIENT).")
@click.option("--ca-cert", type=click.Path(exists=True, dir_okay=False), help="Issue it with this private CA.")
@click.option("--ca-key", type=click.Path(exists=True, dir_okay=False))
@click.password_option(
    "--password", prompt="Password for the PKCS#12 file (staff type it once when importing)", help="Omit to be asked."
)
def smime_new_office_identity(folder, address, ca_cert, ca_key, password):
    """Run on your own computer, never on the server: make the office mailbox's key pair for sealed mode,
    as office.p12 (password-protected, for the mail programs) and office-cert.pem (for the server)."""
    if bool(ca_cert) != bool(ca_key):
        raise click.UsageError("give both --ca-cert and --ca-key, or neither (self-signed)")
    if len(password) < 12:
        raise Failed("Use a password of at least 12 characters: it alone protects the office's key.")
    address = address or current_app.config["INQUIRY_RECIPIENT"]
    try:
        p12, cert = smime.new_office_identity(folder, address, password, ca_cert, ca_key)
    except FileExistsError as error:
        raise Failed(f"{error.filename} exists already; nothing was changed.") from None
    click.echo(
        f"Wrote {p12} (import it into each mail program that reads the office mailbox, and keep a backup copy:"
        f" without it sealed inquiries cannot be read) and {cert} (copy this one to the server and set"
        " FLASK_SMIME_OFFICE_CERT to it)."
    )


@alert_cli.command("failed")
@click.argument("unit")
def alert_failed(unit):
    """Tell the operator that a service failed (run by systemd's rsct-alert@ unit)."""
    config = current_app.config
    if not config["ALERT_URL"]:
        click.echo("FLASK_ALERT_URL is not set: the journal line is the only alert.", err=True)
        sys.exit(EXIT_FAILED)
    text = (
        f"{alerts.site_name(config['SITE_URL'])}: {unit} failed on the server. Inquiries may not be reaching"
        f" the office; `journalctl -u {unit}` shows why."
    )
    try:
        alerts.post(config["ALERT_URL"], config["ALERT_FORMAT"], text)
    except alerts.AlertError as error:
        click.echo(f"The alert could not be sent: {error}", err=True)
        sys.exit(EXIT_FAILED)
    click.echo("Alert sent.")
