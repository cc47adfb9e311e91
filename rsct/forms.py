"""The call-back form: fields, validators and the messages a visitor sees."""

import unicodedata

import phonenumbers
from email_validator import EmailNotValidError, validate_email
from flask import request
from flask_babel import gettext, lazy_gettext
from flask_wtf import FlaskForm
from wtforms import HiddenField, RadioField, StringField, TextAreaField
from wtforms.fields import EmailField, TelField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, StopValidation, ValidationError

from .inquiries import FIELD_NAMES

NAME_MAX, PHONE_MAX, EMAIL_MAX, MESSAGE_MAX = 100, 40, 254, 1000
NEEDS_PHONE = ("call", "text")


def clean_text(value):
    """Trim and NFC-normalise text; line breaks become plain newlines."""
    if not isinstance(value, str):
        return value
    value = value.replace("\r\n", "\n").replace("\r", "\n")
    return unicodedata.normalize("NFC", value).strip()


def clip(value):
    """Hidden fields are never shown as errors: anything longer than the site ever sends is cut."""
    return value[:300] if isinstance(value, str) else value


def _refuse_controls(text: str, allow_newlines: bool, message: str) -> None:
    for char in text:
        if char in "\n\t" and allow_newlines:
            continue
        if unicodedata.category(char) in ("Cc", "Cs", "Co", "Cn") or char in "\u2028\u2029":
            raise StopValidation(message)


def single_line(form, field):
    """Refuse line breaks and control characters in a one-line field."""
    _refuse_controls(field.data or "", False, gettext("Please keep this to one line of plain text."))


def multi_line(form, field):
    """Refuse control characters other than line breaks and tabs."""
    _refuse_controls(field.data or "", True, gettext("Please use plain text only. Some characters here can't be sent."))


def limit(maximum: int, message: str):
    """Stop at the first problem: a too-long value gets one clear message and no more checks."""

    def check(form, field):
        if field.data and len(field.data) > maximum:
            raise StopValidation(message)

    return check


def one_of(choices, required_message=None):
    """Accept one of the offered choices; an empty answer is allowed unless a message is given."""
    allowed = {choice.value for choice in choices}

    def check(form, field):
        if not field.data:
            if required_message:
                raise StopValidation(required_message)
            field.data = None
            raise StopValidation()
        if field.data not in allowed:
            raise StopValidation(gettext("Please choose one of the options."))

    return check


METHODS = [
    SelectChoice("call", lazy_gettext("Phone call")),
    SelectChoice("text", lazy_gettext("Text message")),
    SelectChoice("email", lazy_gettext("Email")),
]
TIMES = [
    SelectChoice("morning", lazy_gettext("Morning")),
    SelectChoice("afternoon", lazy_gettext("Afternoon")),
    SelectChoice("evening", lazy_gettext("Evening")),
    SelectChoice("any", lazy_gettext("Any time")),
]
YES_NO = [SelectChoice("no", lazy_gettext("No")), SelectChoice("yes", lazy_gettext("Yes"))]
FOR_WHOM = [SelectChoice("self", lazy_gettext("Myself")), SelectChoice("other", lazy_gettext("Someone I care about"))]


def non_text_fields() -> dict[str, str]:
    """Names sent as something a browser's form never sends: a file, or the same field twice.

    Each maps to the message shown beside it; the form is answered with 422 like any other mistake.
    """
    odd = {name: gettext("Please type your answer here as plain text.") for name in request.files}
    for name, values in request.form.lists():
        if len(values) > 1:
            odd.setdefault(name, gettext("Please give one answer here."))
    return odd


class ContactForm(FlaskForm):
    """Everything a visitor may tell us; only a name and one way to reach them are needed."""

    class Meta:
        def wrap_formdata(self, form, formdata):
            """Text parts only: a file part is no answer, and would reach the validators as an object."""
            wrapped = super().wrap_formdata(form, formdata)
            return request.form if wrapped is not None and request.files else wrapped

    non_text: dict[str, str] = {}

    name = StringField(
        lazy_gettext("Name"),
        filters=[clean_text],
        validators=[
            DataRequired(lazy_gettext("Please tell us a name we can use. A first name is enough.")),
            limit(NAME_MAX, lazy_gettext("Please keep the name under 100 characters.")),
            single_line,
        ],
    )
    contact_method = RadioField(
        lazy_gettext("How should we reach you?"),
        choices=METHODS,
        validate_choice=False,
        validators=[one_of(METHODS, lazy_gettext("Please choose how we should reach you."))],
    )
    phone = TelField(
        lazy_gettext("Phone"),
        filters=[clean_text],
        validators=[limit(PHONE_MAX, lazy_gettext("Please keep the phone number under 40 characters.")), single_line],
    )
    email = EmailField(
        lazy_gettext("Email"),
        filters=[clean_text],
        validators=[limit(EMAIL_MAX, lazy_gettext("Please keep the email address under 254 characters.")), single_line],
    )
    best_time = RadioField(
        lazy_gettext("Best time to reach you"), choices=TIMES, validate_choice=False, validators=[one_of(TIMES)]
    )
    leave_message = RadioField(
        lazy_gettext("Is it OK to leave a message that mentions our name?"),
        choices=YES_NO,
        default="no",
        validate_choice=False,
        validators=[one_of(YES_NO)],
    )
    for_whom = RadioField(
        lazy_gettext("Who is this for?"), choices=FOR_WHOM, validate_choice=False, validators=[one_of(FOR_WHOM)]
    )
    message = TextAreaField(
        lazy_gettext("Anything you'd like us to know"),
        filters=[clean_text],
        validators=[
            limit(
                MESSAGE_MAX,
                lazy_gettext("Please keep your note under 1,000 characters. You can tell us more when we talk."),
            ),
            multi_line,
        ],
    )
    # A trap for robots: hidden from people, screen readers and autofill (see _contact_form.html).
    website = StringField(lazy_gettext("Leave this field empty"), filters=[clean_text, clip])
    form_token = HiddenField(filters=[clip])
    cookie_check = HiddenField(filters=[clip])

    def validate(self, extra_validators=None) -> bool:
        """The usual checks, and none of the fields may hold a file or come twice (see non_text_fields)."""
        valid = super().validate(extra_validators)
        self.non_text = non_text_fields()
        for name, message in self.non_text.items():
            field = self._fields.get(name)
            if field is not None and field.type not in ("HiddenField", "CSRFTokenField") and name != "website":
                field.errors = [message]
            else:  # robots' fields: a line of its own in the summary, no link
                self.form_errors.append(
                    gettext("The form arrived in a way we could not read. Please check it and send it again.")
                )
        return valid and not self.non_text

    def validate_phone(self, field):
        """Need a phone number for a call or a text; accept any number phonenumbers finds valid, and for a
        text only one that can receive texts."""
        if not field.data:
            if self.contact_method.data in NEEDS_PHONE:
                raise ValidationError(gettext("Please give a phone number so we can call or text you."))
            return
        normalise_phone(field.data)
        if self.contact_method.data == "text":
            check_textable(field.data)

    def validate_email(self, field):
        """Need an email address when email is the chosen way; check its form, never DNS."""
        if not field.data:
            if self.contact_method.data == "email":
                raise ValidationError(gettext("Please give an email address so we can write to you."))
            return
        try:
            normalise_email(field.data)
        except ValidationError as error:
            if self.contact_method.data == "email":
                raise
            # Typed as a second way back: checked because it is there, but it may as well go.
            raise ValidationError(
                gettext("%(problem)s Or leave it empty: it is only needed if you choose email.", problem=error)
            ) from None

    def visitor_fields(self, language: str) -> dict:
        """The validated answers, normalised for the office, keyed by field name, with the form's language.

        The fields themselves keep what the visitor typed, so a form shown again shows their words.
        """
        fields = {name: (getattr(self, name).data or None) for name in FIELD_NAMES if name != "language"}
        fields["language"] = language  # the office calls back in Spanish when the form was Spanish
        fields["phone"] = normalise_phone(fields["phone"]) if fields["phone"] else None
        fields["email"] = normalise_email(fields["email"]) if fields["email"] else None
        fields["leave_message"] = fields["leave_message"] or "no"  # never assume yes
        return fields


def normalise_email(text: str) -> str:
    """The address as email-validator normalises it (no DNS look-up)."""
    try:
        # allow_smtputf8=False: an address with accents before the @ cannot be put in a Reply-To
        # header that every mail server accepts, so we ask for another way instead of failing later.
        return validate_email(text, check_deliverability=False, allow_smtputf8=False).normalized
    except EmailNotValidError as error:
        if "before the @-sign are not supported" in str(error):
            raise ValidationError(
                gettext(
                    "We can't send email to an address with accented letters before the @. "
                    "Please give another address, or choose a phone call or a text message."
                )
            ) from None
        raise ValidationError(
            gettext("This doesn't look like an email address. Please check it, for example name@example.com.")
        ) from None


def check_textable(text: str) -> None:
    """Refuse, kindly, a number that cannot receive a text: one with an extension, or a landline.

    Only numbers phonenumbers types as FIXED_LINE are refused; most US numbers are FIXED_LINE_OR_MOBILE.
    """
    number = phonenumbers.parse(text, "US")
    if number.extension:
        raise ValidationError(
            gettext(
                "A text message can't reach a number with an extension. "
                "Please give a mobile number, or choose a phone call instead."
            )
        )
    if phonenumbers.number_type(number) == phonenumbers.PhoneNumberType.FIXED_LINE:
        raise ValidationError(
            gettext(
                "This looks like a landline, which can't receive text messages. "
                "Please give a mobile number, or choose a phone call instead."
            )
        )


def normalise_phone(text: str) -> str:
    """A valid number in a form the office can dial: US numbers as (203) 555-0147."""
    message = gettext("This doesn't look like a full phone number. Please check it, for example (203) 555-0147.")
    try:
        number = phonenumbers.parse(text, "US")
    except phonenumbers.NumberParseException:
        raise ValidationError(message) from None
    if not phonenumbers.is_valid_number(number):
        raise ValidationError(message)
    style = (
        phonenumbers.PhoneNumberFormat.NATIONAL
        if number.country_code == 1
        else phonenumbers.PhoneNumberFormat.INTERNATIONAL
    )
    return phonenumbers.format_number(number, style)
