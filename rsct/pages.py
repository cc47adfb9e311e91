"""The information pages and the files search engines ask for.

PUBLIC_PAGES is the one list of the pages a visitor can reach. It drives four things: the sitemap,
the canonical links, which pages are rendered once per process (served with an ETag, so a repeat visit
gets a 304), and which answers the shipped nginx site may cache (X-Accel-Expires, sent only on those).
A page added later joins all four with one call to add_page(). Each page is served in every language of
i18n.LANGUAGES, at its English and its Spanish address (public_pages() lists both), and rendered once per
language.
"""

import hashlib
import os
from dataclasses import dataclass
from functools import lru_cache

from flask import Blueprint, Flask, Response, current_app, has_request_context, render_template, request, url_for
from werkzeug.exceptions import SecurityError
from werkzeug.http import parse_etags, quote_etag
from werkzeug.sansio.utils import get_host

from . import i18n, office
from .security import header_values

bp = Blueprint("pages", __name__)

# How long nginx may keep a rendered page (DEPLOY.md: an upgrade shows within this time).
PROXY_CACHE_SECONDS = 300


@dataclass(frozen=True)
class PublicPage:
    """A page in the sitemap. `template` set: the same bytes for every visitor, rendered once per process."""

    endpoint: str
    template: str | None = None


# In the order the sitemap lists them. /contact is per visitor (its tokens), so it has its own view.
PUBLIC_PAGES: list[PublicPage] = [
    PublicPage("pages.index", "index.html"),
    PublicPage("pages.iop", "iop.html"),
    PublicPage("pages.therapy", "therapy.html"),
    PublicPage("pages.resources", "resources.html"),
    PublicPage("contact.form"),
    PublicPage("pages.privacy", "privacy.html"),
]


def add_page(endpoint: str, template: str | None = None) -> PublicPage:
    """Add a page to the list (call at import time, before any request); a view serves it with serve_page()."""
    page = PublicPage(endpoint, template)
    PUBLIC_PAGES.append(page)
    return page


def public_endpoints() -> list[str]:
    return [page.endpoint for page in PUBLIC_PAGES]


def serve_page(endpoint: str) -> Response:
    """The page's stored bytes with a strong ETag; a matching If-None-Match gets a 304, HEAD no body."""
    body, etag = _rendered(endpoint)
    response = Response(body, mimetype="text/html")
    response.set_etag(etag)
    # nginx keeps only answers that carry this (it never reaches the visitor: nginx hides it).
    response.headers["X-Accel-Expires"] = str(PROXY_CACHE_SECONDS)
    return response.make_conditional(request)


def _rendered(endpoint: str) -> tuple[bytes, str]:
    """Render once per process and language: these pages depend only on settings and the address's language."""
    store = current_app.extensions.setdefault("rendered_pages", {})
    key = (endpoint, i18n.current_language())
    if key not in store:
        template = next(page.template for page in PUBLIC_PAGES if page.endpoint == endpoint and page.template)
        body = render_template(template).encode()
        store[key] = (body, hashlib.sha256(body).hexdigest()[:32])
        current_app.extensions["stored_paths"][request.path] = key
    return store[key]


def init_app(app: Flask) -> None:
    """Answer stored pages before Flask (install before ProxyFix, so that it sees the visitor's scheme)."""
    app.extensions["rendered_pages"] = {}
    app.extensions["stored_paths"] = {}
    app.wsgi_app = StoredPages(app, app.wsgi_app)


class StoredPages:
    """A GET or HEAD of a page already rendered is answered from its bytes without going through Flask.

    The answer is the one the view gives: the trusted-host check, the security headers (HSTS over HTTPS in
    production), the ETag and a 304 for a matching If-None-Match. Anything else (another method, a host not
    trusted, a page not rendered yet) goes to Flask as before.
    """

    def __init__(self, app: Flask, wsgi_app):
        self.config = app.config
        self.wsgi_app = wsgi_app
        self.rendered = app.extensions["rendered_pages"]
        self.paths = app.extensions["stored_paths"]
        self.security = {}

    def __call__(self, environ, start_response):
        key = self.paths.get(environ.get("PATH_INFO"))  # (endpoint, language)
        method = environ.get("REQUEST_METHOD")
        if key is None or method not in ("GET", "HEAD") or not self.trusted(environ):
            return self.wsgi_app(environ, start_response)
        body, etag = self.rendered[key]
        headers = [("ETag", quote_etag(etag)), ("X-Accel-Expires", str(PROXY_CACHE_SECONDS))]
        headers += self.security_headers(environ.get("wsgi.url_scheme") == "https")
        if parse_etags(environ.get("HTTP_IF_NONE_MATCH")).contains(etag):
            start_response("304 NOT MODIFIED", headers)
            return []
        start_response(
            "200 OK", [("Content-Type", "text/html; charset=utf-8"), ("Content-Length", str(len(body))), *headers]
        )
        return [] if method == "HEAD" else [body]

    def trusted(self, environ) -> bool:
        if not self.config["TRUSTED_HOSTS"]:
            return True
        server = (environ.get("SERVER_NAME", ""), int(environ.get("SERVER_PORT") or 0) or None)
        try:
            get_host(
                environ.get("wsgi.url_scheme", "http"), environ.get("HTTP_HOST"), server, self.config["TRUSTED_HOSTS"]
            )
        except SecurityError:
            return False
        return True

    def security_headers(self, secure: bool) -> list[tuple[str, str]]:
        if secure not in self.security:
            self.security[secure] = list(header_values(self.config, secure).items())
        return self.security[secure]


@i18n.route(bp, "/", "/es/", methods=["GET"])
def index():
    """Show the home page: who the office is and how to reach it."""
    return serve_page("pages.index")


@i18n.route(bp, "/intensive-outpatient-programs", "/es/programas-intensivos-ambulatorios", methods=["GET"])
def iop():
    """Explain Intensive Outpatient Programs, the office's main service."""
    return serve_page("pages.iop")


@i18n.route(bp, "/substance-abuse-therapy", "/es/terapia", methods=["GET"])
def therapy():
    """Explain what outpatient substance use therapy involves."""
    return serve_page("pages.therapy")


@i18n.route(bp, "/resources", "/es/recursos", methods=["GET"])
def resources():
    """List crisis lines, help lines and the continuum of care."""
    return serve_page("pages.resources")


@i18n.route(bp, "/privacy", "/es/privacidad", methods=["GET"])
def privacy():
    """Say what the site collects, why, for how long, and who sees it."""
    return serve_page("pages.privacy")


@bp.get("/robots.txt")
def robots():
    """Tell crawlers they are welcome, except on form responses, and where the sitemap is."""
    body = render_template("robots.txt", sitemap=site_url("pages.sitemap"))
    return Response(body, mimetype="text/plain")


@bp.get("/sitemap.xml")
def sitemap():
    """List every page for search engines, each in English and Spanish, with the other as its alternate."""
    site = current_app.config["SITE_URL"]
    pages = [{language: site + path for language, path in page.items()} for page in public_pages()]
    return Response(render_template("sitemap.xml", pages=pages), mimetype="application/xml")


def public_pages() -> list[dict[str, str]]:
    """Each public page's path in every language, in the sitemap's order: {"en": "/resources", "es": "/es/recursos"}.

    What serves, caches or measures every page in every language reads this.
    """
    return [
        {language: url_for(endpoint, lang=language) for language in i18n.LANGUAGES} for endpoint in public_endpoints()
    ]


@bp.get("/favicon.ico")
def favicon():
    """The icon browsers ask for on their own; nginx serves the same file itself."""
    response = Response(_favicon(current_app.static_folder), mimetype="image/vnd.microsoft.icon")
    response.cache_control.max_age = 31536000
    response.cache_control.public = True
    return response


@lru_cache(maxsize=1)
def _favicon(folder: str) -> bytes:
    with open(os.path.join(folder, "favicon.ico"), "rb") as handle:
        return handle.read()


def site_url(endpoint: str, **values) -> str:
    """The public address of a page, built from FLASK_SITE_URL rather than the request."""
    return current_app.config["SITE_URL"] + url_for(endpoint, **values)


@bp.app_context_processor
def page_context() -> dict:
    """Values every template may use: the office's facts, canonical URL, structured data."""
    config = current_app.config
    endpoint = request.endpoint if has_request_context() else None  # emails render without a request
    canonical = site_url(endpoint) if endpoint in public_endpoints() else None
    return {
        "office": office,
        "canonical_url": canonical,
        "structured_data": office.structured_data(config["SITE_URL"], config["FACEBOOK_URL"]),
    }
