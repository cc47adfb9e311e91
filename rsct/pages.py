"""The information pages, the files search engines ask for, and the error pages."""
from flask import (Blueprint, Response, current_app, has_request_context, make_response, render_template, request,
                   url_for)
from werkzeug.exceptions import HTTPException, SecurityError

from . import office

bp = Blueprint("pages", __name__)

# Every page a visitor can reach, in the order the sitemap lists them.
SITEMAP_ENDPOINTS = (
    "pages.index",
    "pages.iop",
    "pages.therapy",
    "pages.resources",
    "contact.form",
    "pages.privacy",
)


@bp.get("/")
def index():
    """Show the home page: who the office is and how to reach it."""
    return render_template("index.html")


@bp.get("/intensive-outpatient-programs")
def iop():
    """Explain Intensive Outpatient Programs, the office's main service."""
    return render_template("iop.html")


@bp.get("/substance-abuse-therapy")
def therapy():
    """Explain what outpatient substance use therapy involves."""
    return render_template("therapy.html")


@bp.get("/resources")
def resources():
    """List crisis lines, help lines and the continuum of care."""
    return render_template("resources.html")


@bp.get("/privacy")
def privacy():
    """Say what the site collects, why, for how long, and who sees it."""
    return render_template("privacy.html")


@bp.get("/robots.txt")
def robots():
    """Tell crawlers they are welcome, except on form responses, and where the sitemap is."""
    body = render_template("robots.txt", sitemap=site_url("pages.sitemap"))
    return Response(body, mimetype="text/plain")


@bp.get("/sitemap.xml")
def sitemap():
    """List every page for search engines."""
    urls = [site_url(endpoint) for endpoint in SITEMAP_ENDPOINTS]
    return Response(render_template("sitemap.xml", urls=urls), mimetype="application/xml")


def site_url(endpoint: str, **values) -> str:
    """The public address of a page, built from FLASK_SITE_URL rather than the request."""
    return current_app.config["SITE_URL"] + url_for(endpoint, **values)


@bp.app_context_processor
def page_context() -> dict:
    """Values every template may use: the office's facts, canonical URL, structured data."""
    config = current_app.config
    endpoint = request.endpoint if has_request_context() else None  # emails render without a request
    canonical = site_url(endpoint) if endpoint in SITEMAP_ENDPOINTS else None
    return {
        "office": office,
        "canonical_url": canonical,
        "structured_data": office.structured_data(config["SITE_URL"], config["FACEBOOK_URL"]),
    }


@bp.app_errorhandler(HTTPException)
def http_error(error: HTTPException):
    """Show a calm page with the phone number for 404s and other client errors."""
    if isinstance(error, SecurityError):
        # Refused before routing (a Host name the site does not answer to): no URLs can be built.
        return Response(f"Bad request. To reach {office.NAME}, call {office.PHONE}.\n",
                        status=error.code, mimetype="text/plain")
    template = {404: "404.html", 405: "404.html", 413: "413.html"}.get(error.code, "error.html")
    return render_template(template, error=error), error.code


@bp.app_errorhandler(500)
def server_error(error):
    """Show the phone number instead of internals when something breaks."""
    try:
        return render_template("500.html"), 500
    except Exception:  # a broken template must not hide the phone number
        current_app.logger.exception("500 page could not be rendered")
        return Response(f"Something went wrong on our side. Please call {office.PHONE}.",
                        status=500, mimetype="text/plain")


@bp.route("/errors/<any('rate-limited', 'too-large'):kind>", methods=["GET", "POST"])
def proxy_error(kind):
    """What nginx shows when it refuses a form post itself (a burst of posts, an oversized body)."""
    notice, status, template = {"rate-limited": ("rate_limited", 429, "429.html"),
                                "too-large": ("too_large", 413, "413.html")}[kind]
    return notice_response(notice, status, template)


def notice_response(notice: str, status: int, page_template: str):
    """For htmx, a message placed above the form's button (the form and its values stay);
    for a plain browser, a full page that says what happened and gives the phone number."""
    if is_htmx():
        response = make_response(render_template("_form_status.html", notice=notice), status)
        response.headers["HX-Retarget"] = "#form-status"
        response.headers["HX-Reswap"] = "innerHTML"
        response.headers["Cache-Control"] = "no-store"
        return response
    return render_template(page_template), status


def is_htmx() -> bool:
    """True for a request htmx made (it swaps a fragment), False for a plain browser's."""
    return request.headers.get("HX-Request") == "true"
