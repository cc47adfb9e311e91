"""Retention: forget what the site no longer needs, on the sender's minutely pass or on demand."""

import os
import time

from . import inquiries, ratelimit


def apply(database: str, retention_days: int, rate_window: float, mail_folder: str | None = None) -> list[str]:
    """Erase personal fields past the retention period, drop expired rate-limit hashes and, in
    development, old .eml files in mail_folder. Returns the references erased."""
    ratelimit.forget_expired(database, rate_window)
    erased = inquiries.purge(database, retention_days)
    if mail_folder:
        purge_mail_files(mail_folder, retention_days)
    return erased


def purge_mail_files(folder: str, retention_days: int, now: float | None = None) -> int:
    """Development mail files follow the retention rule too: removed once older than the period."""
    if not os.path.isdir(folder):
        return 0
    cutoff = (time.time() if now is None else now) - retention_days * 86400
    removed = 0
    for name in os.listdir(folder):
        path = os.path.join(folder, name)
        if name.endswith(".eml") and os.path.getmtime(path) <= cutoff:
            os.remove(path)
            removed += 1
    return removed
