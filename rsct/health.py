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
    """503 when an inquiry has waited longer than the stuck threshold or failed for good."""
    config = current_app.config
    try:
        report = outbox.status(config["DATABASE"], config["OUTBOX_STUCK_MINUTES"])
    except storage.StorageError:
        return jsonify(status="database unavailable"), 503
    body = {
        "status": "stuck" if report["stuck"] else "ok",
        "pending": report["counts"].get("pending", 0),
        "failed_open": report["failed_open"],
        "oldest_undelivered_seconds": report["oldest_undelivered_seconds"],
    }
    return jsonify(body), 503 if report["stuck"] else 200


@bp.after_request
def no_store(response):
    response.headers["Cache-Control"] = "no-store"
    return response
