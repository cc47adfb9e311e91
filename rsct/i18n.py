"""Languages: English at the site's root, Spanish under /es/, chosen by the address alone.

No cookie and no Accept-Language redirect: on a shared computer the next visitor gets the page the
link they followed names. Each translated page is one endpoint with two rules, told apart by `lang`.
"""

import os

from flask import Flask, current_app, has_request_context, request, url_for
from flask_babel import Babel
from markupsafe import Markup

from . import office

LANGUAGES = ("en", "es")
NAMES = {"en": "English", "es": "Español"}
CATALOGUE = os.path.join("es", "LC_MESSAGES", "messages.mo")


def language_of(path: str) -> str:
    """The language a path is written in: Spanish under /es, English everywhere else."""
    return "es" if path == "/es" or path.startswith("/es/") else "en"


def current_language() -> str:
    """The language of this request's address ("en" outside a request: emails, the CLI)."""
    return language_of(request.path) if has_request_context() else "en"


def route(bp, english: str, spanish: str, **options):
    """Register a view at its English and its Spanish address (one endpoint, `lang` tells them apart)."""

    def register(view):
        bp.add_url_rule(english, view_func=view, defaults={"lang": "en"}, **options)
        bp.add_url_rule(spanish, view_func=view, defaults={"lang": "es"}, **options)
        return view

    return register


def counterpart(language: str) -> str | None:
    """This page's address in another language, or None when the request has no translated page."""
    endpoint = request.endpoint
    if endpoint is None or not current_app.url_map.is_endpoint_expecting(endpoint, "lang"):
        return None
    return url_for(endpoint, **(request.view_args or {}), lang=language)


def check_catalogues(directory: str) -> None:
    """Refuse to start without the compiled Spanish catalogue: every Spanish page would be English."""
    path = os.path.join(directory, CATALOGUE)
    source = path[: -len(".mo")] + ".po"
    if not os.path.exists(path):
        raise RuntimeError(f"{path} is missing: run `make translations` (pybabel compile) before starting the site.")
    if os.path.getmtime(path) < os.path.getmtime(source):
        raise RuntimeError(f"{path} is older than {source}: run `make translations` to compile it again.")


def init_app(app: Flask) -> None:
    """Flask-Babel with the address as the only locale selector; URLs keep the page's language."""
    directory = os.path.join(app.root_path, "translations")
    check_catalogues(directory)
    Babel(app, locale_selector=current_language, default_translation_directories=directory)
    # Whitespace inside {% trans %} is collapsed, so re-wrapping a paragraph does not change its msgid.
    app.jinja_env.policies["ext.i18n.trimmed"] = True

    @app.url_value_preprocessor
    def drop_language(endpoint, values):
        if values:
            values.pop("lang", None)

    @app.url_defaults
    def keep_language(endpoint, values):
        # A link on a Spanish page leads to the Spanish page, unless it names a language itself.
        if "lang" not in values and current_language() == "es" and app.url_map.is_endpoint_expecting(endpoint, "lang"):
            values["lang"] = "es"

    @app.context_processor
    def language_context() -> dict:
        phone_link = Markup('<a href="tel:{}">{}</a>').format(office.PHONE_TEL, office.PHONE)
        if not has_request_context():  # emails: English, and no page to link
            return {"lang": "en", "phone_link": phone_link}
        language = current_language()
        other = "en" if language == "es" else "es"
        page_other = counterpart(other)
        return {
            "lang": language,
            "other_lang": other,
            "other_lang_name": NAMES[other],
            # A page without a counterpart (an error page) links to the other language's home page.
            "other_lang_url": page_other or url_for("pages.index", lang=other),
            "alternates": alternates() if page_other else {},
            "phone_link": phone_link,
        }


def alternates() -> dict[str, str]:
    """Every language's public address of this page, for <link rel=alternate hreflang>."""
    site = current_app.config["SITE_URL"]
    return {language: site + counterpart(language) for language in LANGUAGES}
