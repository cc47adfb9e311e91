"""Health checks for an outside monitor: no personal data, and no dependence on mail working."""

from flask import Blueprint, current_app, jsonify

from . import outbox, storage

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def app_health():
    """200 when the app can read its database, 503 otherwise."""
    try:
        with storage.opened(current_app.config["DATABASE"]) as db:
            version = db.execute("PRAGMA user_version").fetchone()[0]
    except storage.StorageError:
        current_app.logger.error("Health check: the database cannot be read")
        return jsonify(status="database unavailable"), 503
    ok = version == len(storage.MIGRATIONS)
    return jsonify(status="ok" if ok else "schema out of date"), 200 if ok else 503


@bp.get("/healthz/mail")
def mail_health():
    """503 "stuck" when an inquiry has waited longer than the stuck threshold or failed for good, else 200 "ok".

    Public, so it says nothing more: counts or the age of the oldest inquiry would let someone watching
    a person confirm that they had just asked for help. `outbox status` shows them on the server.
    """
    config = current_app.config
    try:
        stuck = outbox.status(config["DATABASE"], config["OUTBOX_STUCK_MINUTES"])["stuck"]
    except storage.StorageError:
        current_app.logger.error("Mail health check: the database cannot be read")
        stuck = True  # no inquiry can be stored or sent: the outside monitor should hear of it
    return jsonify(status="stuck" if stuck else "ok"), 503 if stuck else 200


@bp.after_request
def no_store(response):
    response.headers["Cache-Control"] = "no-store"
    return response
