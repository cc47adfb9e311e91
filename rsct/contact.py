"""The contact page and its call-back form: one URL for htmx and for plain browsers."""

import hashlib
import hmac
import secrets
import time

from flask import Blueprint, current_app, redirect, render_template, request, session, url_for
from itsdangerous import BadSignature, URLSafeTimedSerializer
from werkzeug.exceptions import RequestEntityTooLarge

from . import inquiries, mailer, ratelimit, storage
from .forms import ContactForm
from .htmx import is_htmx, notice_response

bp = Blueprint("contact", __name__)
FORM_TOKEN_SALT = "rsct.contact-form-token"


@bp.after_request
def no_store(response):
    """Never let a browser or proxy keep a copy of the form or what was typed in it."""
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/contact")
def form():
    """Show the office's contact details and an empty call-back form."""
    contact_form = ContactForm(formdata=None, form_token=_token_serializer().dumps(secrets.token_hex(16)))
    session.setdefault("browser", secrets.token_hex(16))
    return render_template("contact.html", form=contact_form)


@bp.post("/contact")
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
    fields = contact_form.visitor_fields()
    # A repeat of a stored request shows its reference again and does not count against the limit.
    tag = _session_tag()
    key = inquiries.hash_key(config["SECRET_KEY"])
    stored = inquiries.find_same(config["DATABASE"], nonce, fields, tag, key)
    if stored is None:
        client = ratelimit.client_key(config["SECRET_KEY"], request.remote_addr)
        if not ratelimit.allow(config["DATABASE"], client, config["RATE_LIMIT_COUNT"], config["RATE_LIMIT_SECONDS"]):
            return _form_response(contact_form, 429, notice="rate_limited")
        stored = inquiries.store(
            config["DATABASE"],
            nonce,
            fields,
            quarantine_reason="honeypot field filled" if contact_form.website.data else None,
            possibly_automated=automated,
            message_domain=mailer.sender_domain(config["MAIL_DEFAULT_SENDER"]),
            session_tag=tag,
            key=key,
            seal=mailer.sealer(fields, automated) if config["SMIME_OFFICE_CERT"] else None,
        )
    if stored.created:
        current_app.logger.info("Inquiry %s stored", stored.reference)
    thanks = {"reference": stored.reference, "method": contact_form.contact_method.data}
    if is_htmx():
        return render_template("_confirmation.html", **thanks)
    session["thanks"] = thanks
    return redirect(url_for("contact.thanks"), 303)


@bp.get("/contact/thanks")
def thanks():
    """Confirm a request sent without JavaScript; the reference comes from the session, not the URL."""
    # Shown once: on a shared computer the next person should not see it.
    return render_template("thanks.html", thanks=session.pop("thanks", None))


@bp.post("/contact/check/<any(phone, email, contact_method):field>")
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
