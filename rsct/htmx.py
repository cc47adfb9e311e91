"""htmx helpers: tell an htmx request from a plain browser's, and answer each the way it can show."""

from flask import make_response, render_template, request


def is_htmx() -> bool:
    """True for a request htmx made (it swaps a fragment), False for a plain browser's."""
    return request.headers.get("HX-Request") == "true"


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
