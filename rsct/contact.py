"""The contact page and its call-back form: one URL for htmx and for plain browsers."""

import hashlib
import hmac
import re
import secrets
import time

from flask import Blueprint, current_app, make_response, redirect, render_template, request, session, url_for
from flask_wtf.csrf import generate_csrf
from itsdangerous import BadSignature, URLSafeTimedSerializer
from werkzeug.exceptions import RequestEntityTooLarge

from . import i18n, inquiries, mailer, ratelimit, storage
from .forms import ContactForm
from .htmx import is_htmx, notice_response

bp = Blueprint("contact", __name__)
FORM_TOKEN_SALT = "rsct.contact-form-token"
THANKS_SECONDS = 600  # how long a reload of /contact/thanks still shows the confirmation
METHOD_NEEDS = {"call": "phone", "text": "phone", "email": "email"}
HIDDEN = "\u00b7"  # a middle dot stands for each hidden character: (203) ···-0147


@bp.after_request
def no_store(response):
    """Never let a browser or proxy keep a copy of the form or what was typed in it."""
    response.headers["Cache-Control"] = "no-store"
    return response


# Stand-ins for the two per-visitor tokens in the blank form page, which is rendered once per language.
CSRF_PLACEHOLDER = "rsct-csrf-token-placeholder"
FORM_TOKEN_PLACEHOLDER = "rsct-form-token-placeholder"


@i18n.route(bp, "/contact", "/es/contacto", methods=["GET"])
def form():
    """Show the office's contact details and an empty call-back form."""
    session.setdefault("browser", secrets.token_hex(16))
    session.pop("thanks", None)  # a new form forgets the last confirmation
    page = _blank_form_page()
    if CSRF_PLACEHOLDER in page:
        page = page.replace(CSRF_PLACEHOLDER, generate_csrf())
    return page.replace(FORM_TOKEN_PLACEHOLDER, _token_serializer().dumps(secrets.token_hex(16)))


def _blank_form_page() -> str:
    """The contact page with stand-ins for its two tokens, rendered once per language and kept.

    Everything else on it is the same for every visitor; rendering the form's fields cost ~5 ms a
    request, two substitutions cost microseconds (the speed issue's /contact row). The tokens are
    URL-safe text, so they need no escaping where they replace the stand-ins.
    """
    pages = current_app.extensions.setdefault("rsct.blank_form_pages", {})
    language = i18n.current_language()
    if language not in pages:
        contact_form = ContactForm(formdata=None, form_token=FORM_TOKEN_PLACEHOLDER)
        if getattr(contact_form, "csrf_token", None) is not None:
            contact_form.csrf_token.current_token = CSRF_PLACEHOLDER
        pages[language] = render_template("contact.html", form=contact_form)
    return pages[language]


@i18n.route(bp, "/contact", "/es/contacto", methods=["POST"])
def submit():
    """Store a valid request and thank the visitor; otherwise show the form again, values kept."""
    contact_form = ContactForm()
    valid = contact_form.validate()
    csrf_field = getattr(contact_form, "csrf_token", None)
    if csrf_field is not None and csrf_field.errors:
        csrf_field.errors = []  # the notice explains it; the summary lists only what the visitor can fix
        return _csrf_failed(contact_form)
    if not valid:
        return _form_response(contact_form, 422)

    config = current_app.config
    nonce, automated = _read_form_token(contact_form.form_token.data)
    fields = contact_form.visitor_fields(i18n.current_language())
    # A repeat of a stored request shows its reference again and does not count against the limit.
    tag = _session_tag()
    # The repeat check, the rate limit and the insert share one transaction: one commit per request.
    client = ratelimit.client_key(config["SECRET_KEY"], request.remote_addr)
    stored = inquiries.store(
        config["DATABASE"],
        nonce,
        fields,
        quarantine_reason="honeypot field filled" if contact_form.website.data else None,
        possibly_automated=automated,
        message_domain=mailer.sender_domain(config["MAIL_DEFAULT_SENDER"]),
        session_tag=tag,
        key=inquiries.hash_key(config["SECRET_KEY"]),
        seal=mailer.sealer(fields, automated) if config["SMIME_OFFICE_CERT"] else None,
        admit=lambda db: ratelimit.record(db, client, config["RATE_LIMIT_COUNT"], config["RATE_LIMIT_SECONDS"]),
    )
    if stored is None:
        return _form_response(contact_form, 429, notice="rate_limited")
    if stored.created:
        current_app.logger.info("Inquiry %s stored", stored.reference)
    thanks = confirmation(stored.reference, fields)
    session["thanks"] = remembered(thanks, time.time() + THANKS_SECONDS)
    if is_htmx():
        response = make_response(render_template("_confirmation.html", thanks=thanks))
        # The address bar shows /contact/thanks, as after a plain browser's redirect: a reload shows the
        # confirmation again instead of an empty form that invites a second request.
        response.headers["HX-Push-Url"] = url_for("contact.thanks")
        return response
    session["thanks"]["full_once"] = True  # the page after the redirect may show the full contact once
    return redirect(url_for("contact.thanks"), 303)


@i18n.route(bp, "/contact/thanks", "/es/contacto/gracias", methods=["GET"])
def thanks():
    """Confirm a request again for ten minutes in this browser session; the contact is partly hidden."""
    note = session.get("thanks")
    if not note or note.get("until", 0) < time.time():
        session.pop("thanks", None)  # on a shared computer the next person should not see it
        return render_template("thanks.html", thanks=None)
    shown = {**note, "masked": True}
    if note.get("full_once"):
        session["thanks"] = {key: value for key, value in note.items() if key != "full_once"}
        shown = _full_confirmation(note) or shown
    return render_template("thanks.html", thanks=shown)


def confirmation(reference: str, fields: dict) -> dict:
    """What the confirmation repeats of a request just sent: the way back in full, so a typo can be caught."""
    method = fields.get("contact_method")
    needed = METHOD_NEEDS.get(method, "phone")
    other = "email" if needed == "phone" else "phone"
    return {
        "reference": reference,
        "method": method,
        "contact": fields.get(needed) or "",
        "also": fields.get(other) or "",
        "best_time": fields.get("best_time"),
        "leave_message": fields.get("leave_message") or "no",
        "masked": False,
    }


def remembered(thanks: dict, until: float) -> dict:
    """What the session keeps for a reload: the session cookie is signed, not encrypted, so nothing more."""
    contact = thanks["contact"]
    masked = mask_email(contact) if thanks["method"] == "email" else mask_phone(contact)
    return {
        "reference": thanks["reference"],
        "method": thanks["method"],
        "contact": masked,
        "leave_message": thanks["leave_message"],
        "until": int(until),
    }


def mask_phone(number: str) -> str:
    """(203) 555-0147 becomes (203) ···-0147: the first three and the last four digits stay."""
    main, ext, rest = number.partition(" ext. ")
    digits = sum(char.isdigit() for char in main)
    seen = 0

    def hide(match):
        nonlocal seen
        seen += 1
        return match.group(0) if seen <= 3 or seen > digits - 4 else HIDDEN

    return re.sub(r"\d", hide, main) + ext + rest


def mask_email(address: str) -> str:
    """sam.jones@example.org becomes s···@example.org."""
    local, at, domain = address.partition("@")
    return (local[:1] + HIDDEN * 3 + at + domain) if at else HIDDEN * 3


def _full_confirmation(note: dict) -> dict | None:
    """The stored request in full, for the first page after a plain browser's redirect (None if gone)."""
    try:
        row = inquiries.find(current_app.config["DATABASE"], note["reference"])
    except storage.StorageError:
        return None
    fields = inquiries.load_fields(row) if row is not None else {}
    thanks = confirmation(note["reference"], fields)
    return thanks if thanks["contact"] else None


@i18n.route(
    bp,
    "/contact/check/<any(phone, email, contact_method):field>",
    "/es/contacto/comprobar/<any(phone, email, contact_method):field>",
    methods=["POST"],
)
def check(field):
    """Return only the message for one field (and, for the contact method, its two dependants)."""
    contact_form = ContactForm(meta={"csrf": False})
    contact_form.validate()
    status = 422 if contact_form.non_text else 200
    messages = {name: _first_error(contact_form, name) for name in ("phone", "email")}
    if field == "contact_method":
        # Only re-check a field the visitor has filled in: an empty one is not wrong yet.
        dependants = {name: msg if request.form.get(name, "").strip() else "" for name, msg in messages.items()}
        return render_template(
            "_field_messages.html", message=_first_error(contact_form, field), out_of_band=dependants
        ), status
    return render_template("_field_messages.html", message=messages[field], out_of_band={}), status


@bp.errorhandler(storage.StorageError)
def storage_failed(error):
    """The request could not be saved: say so plainly, keep the words, give the phone number."""
    current_app.logger.error("Inquiry could not be stored: %s", error)
    # With its CSRF field, so that the form shown can be sent again once storage is back.
    return _form_response(ContactForm(), 503, notice="storage_failed")


@bp.errorhandler(RequestEntityTooLarge)
def too_large(error):
    """More data than any real form holds: the body is not read, so let htmx keep the values."""
    return notice_response("too_large", 413, "413.html")


def _csrf_failed(contact_form: ContactForm):
    """An expired session is fixed by pressing again; blocked cookies are not, so say that instead."""
    has_cookie = current_app.config["SESSION_COOKIE_NAME"] in request.cookies
    if has_cookie:
        notice = "press_again"
    elif contact_form.cookie_check.data:
        notice = "cookies_blocked"
    else:
        notice = "press_again"
        contact_form.cookie_check.data = "1"
    return _form_response(contact_form, 400, notice=notice)


def _form_response(contact_form: ContactForm, status: int, notice: str | None = None):
    if not contact_form.form_token.data:
        contact_form.form_token.data = _token_serializer().dumps(secrets.token_hex(16))
    if is_htmx():
        return render_template("_contact_form.html", form=contact_form, notice=notice), status
    return render_template("contact.html", form=contact_form, notice=notice), status


def _read_form_token(raw: str | None) -> tuple[str, bool]:
    """The form's one-time id, and whether it came back suspiciously fast or unsigned."""
    try:
        nonce, issued = _token_serializer().loads(raw or "", return_timestamp=True)
    except BadSignature:
        return "unsigned:" + hashlib.sha256((raw or "").encode()).hexdigest()[:32], True
    age = time.time() - issued.timestamp()
    return str(nonce), age < current_app.config["MIN_FILL_SECONDS"]


def _session_tag() -> str | None:
    """A keyed hash of this browser session's random id: recognises a repeat without naming anyone."""
    browser = session.get("browser")
    if not browser:
        return None
    return hmac.new(
        current_app.config["SECRET_KEY"].encode(), b"rsct.session:" + browser.encode(), hashlib.sha256
    ).hexdigest()


def _token_serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=FORM_TOKEN_SALT)


def _first_error(contact_form: ContactForm, name: str) -> str:
    errors = contact_form.errors.get(name) or []
    return errors[0] if errors else ""
