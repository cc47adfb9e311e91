"""Error pages: calm words and the phone number, whatever went wrong."""

from flask import Blueprint, Response, current_app, render_template
from werkzeug.exceptions import HTTPException, SecurityError

from . import i18n, office
from .htmx import notice_response

bp = Blueprint("errors", __name__)


@bp.app_errorhandler(HTTPException)
def http_error(error: HTTPException):
    """Show a calm page with the phone number for 404s and other client errors."""
    if isinstance(error, SecurityError):
        # Refused before routing (a Host name the site does not answer to): no URLs can be built.
        return Response(
            f"Bad request. To reach {office.NAME}, call {office.PHONE}.\n", status=error.code, mimetype="text/plain"
        )
    template = {404: "404.html", 405: "404.html", 413: "413.html"}.get(error.code, "error.html")
    # Keep what the exception says about itself (405's Allow, 429's Retry-After), not its content type.
    headers = [(name, value) for name, value in error.get_headers() if name.lower() != "content-type"]
    return render_template(template, error=error), error.code, headers


@bp.app_errorhandler(500)
def server_error(error):
    """Show the phone number instead of internals when something breaks."""
    try:
        return render_template("500.html"), 500
    except Exception:  # a broken template must not hide the phone number
        current_app.logger.exception("500 page could not be rendered")
        return Response(
            f"Something went wrong on our side. Please call {office.PHONE}.", status=500, mimetype="text/plain"
        )


@i18n.route(
    bp,
    "/errors/<any('rate-limited', 'too-large'):kind>",
    "/es/errors/<any('rate-limited', 'too-large'):kind>",
    methods=["GET", "POST"],
)
def proxy_error(kind):
    """What nginx shows when it refuses a form post itself (a burst of posts, an oversized body)."""
    notice, status, template = {
        "rate-limited": ("rate_limited", 429, "429.html"),
        "too-large": ("too_large", 413, "413.html"),
    }[kind]
    return notice_response(notice, status, template)
