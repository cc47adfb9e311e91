"""The information pages and the files search engines ask for."""

from flask import Blueprint, Response, current_app, has_request_context, render_template, request, url_for

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
