"""Make what the site writes to: the instance folder, development secrets and the database.

Only the processes that write call prepare(): the web app (before its first request), the mail
sender and the other commands that change data, and `flask --app app setup` (run by `make run`
and by a deployment). Read-only commands (`inquiry verify`, `outbox status`, `inquiry list`,
`inquiry show`) never do, so they create nothing on disk.
"""

import os
import secrets
import threading

from . import storage


def prepare(settings: dict) -> None:
    """Create the instance folder, fill in development secrets and migrate the database (idempotent)."""
    os.makedirs(settings["INSTANCE_PATH"], mode=0o700, exist_ok=True)
    if settings["CONFIG_NAME"] != "production":
        settings["SECRET_KEY"] = settings["SECRET_KEY"] or instance_secret(settings["INSTANCE_PATH"], "secret_key")
        settings["INQUIRY_SIGNING_KEYS"] = settings["INQUIRY_SIGNING_KEYS"] or [
            instance_secret(settings["INSTANCE_PATH"], "signing_key")
        ]
    storage.migrate(settings["DATABASE"])


def prepare_on_first_request(app) -> None:
    """Wrap the app's WSGI callable so the first request prepares the instance (once, under a lock)."""
    wsgi_app, lock, done = app.wsgi_app, threading.Lock(), []

    def first_request_prepares(environ, start_response):
        if not done:
            with lock:
                if not done:
                    try:
                        prepare(app.config)
                        done.append(True)
                    except (storage.StorageError, OSError):
                        # Pages are still served; the form answers with its kind "could not be saved" page.
                        app.logger.exception("The instance folder or database could not be prepared; trying again")
        return wsgi_app(environ, start_response)

    app.wsgi_app = first_request_prepares


def instance_secret(folder: str, name: str) -> str:
    """Return a random secret kept in the instance folder (mode 0600), made on first use.

    Written to a temporary file and hard-linked into place, so that several workers
    starting at once all end up reading the same secret.
    """
    path = os.path.join(folder, name)
    if not os.path.exists(path):
        temp = f"{path}.{os.getpid()}.{secrets.token_hex(4)}"
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(48))
        try:
            os.link(temp, path)
        except FileExistsError:
            pass
        finally:
            os.unlink(temp)
    with open(path, encoding="ascii") as handle:
        return handle.read().strip()
